#![no_main]
// JSON DynamicValues (state upgrades, imports): decoding must never panic.
use akspolicy::plugin::wire::json;
use libfuzzer_sys::fuzz_target;

#[path = "types.rs"]
mod types;

fuzz_target!(|data: &[u8]| {
    for ty in types::schema_types() {
        if let Ok(v) = json::decode(data, &ty, true) {
            let _ = json::encode(&v, &ty);
        }
    }
});
