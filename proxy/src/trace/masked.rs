//! A policy value written as JSON with redaction applied on the way out: fields named
//! in the redaction list become `"[redacted]"`, and their dotted paths are noted. One
//! pass over the value, straight into the output: no JSON tree is built to be masked
//! and thrown away (the trace writer does this for every record).

use super::redact::REDACTED;
use regorus::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::borrow::Cow;
use std::cell::RefCell;

/// What one masking pass shares: the fields to redact, where it is, what it masked.
pub struct Masking<'a> {
    fields: &'a [String],
    path: RefCell<String>,
    masked: RefCell<Vec<String>>,
}

impl<'a> Masking<'a> {
    /// A pass whose paths start with `root` (`input`).
    pub fn new(fields: &'a [String], root: &str) -> Masking<'a> {
        Masking {
            fields,
            path: RefCell::new(root.to_string()),
            masked: RefCell::new(Vec::new()),
        }
    }

    /// `value`, below `segments` of the root, ready to serialise.
    pub fn at<'v>(&'v self, value: &'v Value, segments: &[&str]) -> Masked<'v> {
        let mut path = self.path.borrow_mut();
        for segment in segments {
            path.push('.');
            path.push_str(segment);
        }
        Masked {
            value,
            masking: self,
        }
    }

    /// The dotted paths masked so far, in the order written.
    pub fn masked(&self) -> Vec<String> {
        self.masked.borrow().clone()
    }

    fn enter(&self, segment: &str) -> usize {
        let mut path = self.path.borrow_mut();
        let len = path.len();
        path.push('.');
        path.push_str(segment);
        len
    }

    fn leave(&self, len: usize) {
        self.path.borrow_mut().truncate(len);
    }

    fn hides(&self, key: &str) -> bool {
        self.fields.iter().any(|f| f.eq_ignore_ascii_case(key))
    }
}

/// A value in a masking pass.
pub struct Masked<'a> {
    value: &'a Value,
    masking: &'a Masking<'a>,
}

impl Serialize for Masked<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.masking;
        match self.value {
            Value::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields.iter() {
                    let key: Cow<'_, str> = match key {
                        Value::String(s) => Cow::Borrowed(s.as_ref()),
                        other => Cow::Owned(other.to_json_str().unwrap_or_default()),
                    };
                    let len = m.enter(&key);
                    if m.hides(&key) {
                        m.masked.borrow_mut().push(m.path.borrow().clone());
                        map.serialize_entry(&*key, REDACTED)?;
                    } else {
                        map.serialize_entry(&*key, &Masked { value, masking: m })?;
                    }
                    m.leave(len);
                }
                map.end()
            }
            Value::Array(items) => sequence(serializer, m, items.iter(), items.len()),
            Value::Set(items) => sequence(serializer, m, items.iter(), items.len()),
            other => other.serialize(serializer),
        }
    }
}

fn sequence<'v, S: Serializer>(
    serializer: S,
    m: &Masking<'_>,
    items: impl Iterator<Item = &'v Value>,
    len: usize,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(len))?;
    for (i, value) in items.enumerate() {
        let at = m.enter(&i.to_string());
        seq.serialize_element(&Masked { value, masking: m })?;
        m.leave(at);
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_named_fields_at_any_depth_and_lists_their_paths() -> anyhow::Result<()> {
        let value = Value::from_json_str(
            r#"{"request": {"body": {"lines": [{"CVV": "1"}, {"n": 2}], "iban": "x"}}, "s": 1.5}"#,
        )?;
        let fields = ["cvv".to_string(), "iban".to_string()];
        let masking = Masking::new(&fields, "input");
        let json = serde_json::to_value(masking.at(&value, &[]))?;
        assert_eq!(json["request"]["body"]["lines"][0]["CVV"], REDACTED);
        assert_eq!(json["request"]["body"]["lines"][1]["n"], 2);
        assert_eq!(json["request"]["body"]["iban"], REDACTED);
        assert_eq!(json["s"], 1.5);
        assert_eq!(
            masking.masked(),
            ["input.request.body.iban", "input.request.body.lines.0.CVV"]
        );
        Ok(())
    }
}
