//! A policy value written as JSON with redaction applied on the way out: fields named
//! in the redaction list become `"[redacted]"`, and their dotted paths are noted. One
//! pass over the value, straight into the output: no JSON tree is built to be masked
//! and thrown away (the trace writer does this for every record).

use super::redact::REDACTED;
use regorus::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write;

/// What one masking pass shares: the fields to redact, where it is, what it masked.
/// The path is kept as segments and spelled out only for a masked field: most values
/// are written without one.
pub struct Masking<'a> {
    fields: &'a [String],
    root: &'a str,
    path: RefCell<Vec<Segment<'a>>>,
    masked: RefCell<Vec<String>>,
}

/// One step of the path below the root: an object's key or an array's index.
enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl<'a> Masking<'a> {
    /// A pass whose paths start with `root` (`input`).
    pub fn new(fields: &'a [String], root: &'a str) -> Masking<'a> {
        Masking {
            fields,
            root,
            path: RefCell::new(Vec::new()),
            masked: RefCell::new(Vec::new()),
        }
    }

    /// `value`, below `segments` of the root, ready to serialise.
    pub fn at(&'a self, value: &'a Value, segments: &[&'a str]) -> Masked<'a> {
        let mut path = self.path.borrow_mut();
        path.extend(segments.iter().map(|s| Segment::Key(Cow::Borrowed(*s))));
        Masked {
            value,
            masking: self,
        }
    }

    /// The dotted paths masked so far, in the order written.
    pub fn masked(&self) -> Vec<String> {
        self.masked.borrow().clone()
    }

    fn enter(&self, segment: Segment<'a>) {
        self.path.borrow_mut().push(segment);
    }

    fn leave(&self) {
        self.path.borrow_mut().pop();
    }

    /// Notes the current path (a field just masked) as `root.key.0.key`.
    fn note_masked(&self) {
        let mut dotted = self.root.to_string();
        for segment in self.path.borrow().iter() {
            dotted.push('.');
            match segment {
                Segment::Key(key) => dotted.push_str(key),
                Segment::Index(i) => {
                    let _ = write!(dotted, "{i}");
                }
            }
        }
        self.masked.borrow_mut().push(dotted);
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
                    let hidden = m.hides(&key);
                    m.enter(Segment::Key(key.clone()));
                    if hidden {
                        m.note_masked();
                        map.serialize_entry(&*key, REDACTED)?;
                    } else {
                        map.serialize_entry(&*key, &Masked { value, masking: m })?;
                    }
                    m.leave();
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
    m: &'v Masking<'v>,
    items: impl Iterator<Item = &'v Value>,
    len: usize,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(len))?;
    for (i, value) in items.enumerate() {
        m.enter(Segment::Index(i));
        seq.serialize_element(&Masked { value, masking: m })?;
        m.leave();
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
