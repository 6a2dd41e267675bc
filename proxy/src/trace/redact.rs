//! Redaction of JSON documents before they are written to a trace (response bodies,
//! annotation attributes); policy values are masked as they are written
//! ([`super::masked`]).

use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

/// Replaces the value of every object field whose name (case-insensitive) is in
/// `fields`, at any depth. `fields` must be lower-case.
pub fn redact(value: &mut Value, fields: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                    *v = Value::from(REDACTED);
                } else {
                    redact(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, fields)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_named_fields_at_any_depth() {
        let mut v = json!({"Password": "p", "user": {"api_key": "k", "name": "n"}, "list": [{"token": "t"}]});
        redact(
            &mut v,
            &["password".into(), "api_key".into(), "token".into()],
        );
        assert_eq!(
            v,
            json!({"Password": REDACTED, "user": {"api_key": REDACTED, "name": "n"}, "list": [{"token": REDACTED}]})
        );
    }
}
