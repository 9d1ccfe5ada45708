#![no_main]
// User-supplied ConstraintTemplate YAML: parsing and validation must never panic.
use akspolicy::policy::constraint_template::ConstraintTemplate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ConstraintTemplate::parse(text);
    }
});
