//! Whatever an operator writes, reading it as a config never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lastmile::config::Config::from_yaml(text, std::path::Path::new("/nonexistent"));
    }
});
