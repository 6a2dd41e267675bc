//! Whatever a policy returns, reading it as a decision never panics.
#![no_main]

use lastmile::policy::decision::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<regorus::Value>(data) {
        let _ = parse(&value);
    }
});
