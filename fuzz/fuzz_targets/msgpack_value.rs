#![no_main]
// Terraform → provider msgpack DynamicValues: decoding must never panic, and what decodes must
// survive an encode/decode round trip.
use akspolicy::plugin::wire::msgpack;
use libfuzzer_sys::fuzz_target;

#[path = "types.rs"]
mod types;

fuzz_target!(|data: &[u8]| {
    for ty in types::schema_types() {
        if let Ok(v) = msgpack::decode(data, &ty) {
            if let Ok(bytes) = msgpack::encode(&v, &ty) {
                assert!(msgpack::decode(&bytes, &ty).is_ok());
            }
        }
    }
});
