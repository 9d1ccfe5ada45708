#![no_main]
// ARM IDs from configuration and from Azure: parsing must never panic, and a parsed ID must
// print back to one that parses.
use akspolicy::arm::resource_id::{ResourceId, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = ResourceId::parse(text) {
            assert!(ResourceId::parse(&id.to_string()).is_ok());
        }
        let _ = Scope::parse(text);
    }
});
