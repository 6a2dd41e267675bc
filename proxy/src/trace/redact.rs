//! Redaction of documents before they are written to a trace: request bodies, the
//! policy input, the upstream's response.

use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

/// Replaces the value of every object field whose name (case-insensitive) is in
/// `fields`, at any depth. `fields` must be lower-case.
pub fn redact(value: &mut Value, fields: &[String]) {
    mask(value, fields, &mut String::new(), &mut Vec::new());
}

/// [`redact`], also listing the dotted path of every value it replaced (array items by
/// index: `request.body.lines.0.card_number`), below `path`.
pub fn mask(value: &mut Value, fields: &[String], path: &mut String, masked: &mut Vec<String>) {
    let len = path.len();
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                push(path, key);
                if fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                    *v = Value::from(REDACTED);
                    masked.push(path.clone());
                } else {
                    mask(v, fields, path, masked);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                push(path, &i.to_string());
                mask(v, fields, path, masked);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn push(path: &mut String, segment: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
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

    #[test]
    fn lists_the_paths_it_masked() {
        let mut v = json!({"request": {"body": {"lines": [{"cvv": "1"}, {"n": 2}], "iban": "x"}}});
        let mut masked = Vec::new();
        mask(
            &mut v,
            &["cvv".into(), "iban".into()],
            &mut "input".to_string(),
            &mut masked,
        );
        assert_eq!(
            masked,
            ["input.request.body.iban", "input.request.body.lines.0.cvv"]
        );
        assert_eq!(v["request"]["body"]["lines"][1]["n"], 2);
    }
}
