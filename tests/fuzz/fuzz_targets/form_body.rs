//! A form-encoded request body: parsing never panics, and what it accepts is an object
//! whose leaves are strings (form values are never numbers or booleans to the policy).
#![no_main]

use lastmile::pipeline::form;
use lastmile::pipeline::request::MAX_JSON_DEPTH;
use libfuzzer_sys::fuzz_target;

fn only_strings(value: &regorus::Value) -> bool {
    match value {
        regorus::Value::String(_) => true,
        regorus::Value::Array(items) => items.iter().all(only_strings),
        regorus::Value::Object(fields) => fields.values().all(only_strings),
        _ => false,
    }
}

fuzz_target!(|body: &[u8]| {
    if let Ok(value) = form::parse(body, MAX_JSON_DEPTH) {
        assert!(matches!(value, regorus::Value::Object(_)), "{value:?}");
        assert!(only_strings(&value), "a non-string leaf: {value:?}");
    }
});
