//! Dedup keys: canonical JSON is a fixed point (canonicalising its own output changes
//! nothing), and derivation never panics.
#![no_main]

use lastmile::dedup::key::{canonical_json, derive, Actor, ClientKey, Fingerprint, Intent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = text.parse::<ClientKey>() {
            let _ = derive("crm", Actor::User(Some("u")), Intent::Client(&key));
        }
    }
    let Ok(value) = serde_json::from_slice::<regorus::Value>(data) else {
        return;
    };
    let canonical = canonical_json(&value);
    let again: regorus::Value = serde_json::from_str(&canonical).expect("canonical JSON parses");
    assert_eq!(
        canonical_json(&again),
        canonical,
        "canonical JSON is not a fixed point"
    );
    assert_eq!(
        derive("crm", Actor::Anyone, Intent::Policy(&value)),
        derive("crm", Actor::Anyone, Intent::Policy(&again))
    );
    let _ = Fingerprint::of_intent(&value);
});
