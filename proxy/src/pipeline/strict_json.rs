//! JSON strictness for bodies the policy inspects. The policy and the upstream must read
//! the same document, but JSON parsers disagree on inputs the grammar leaves open:
//! duplicate keys (first wins in some parsers, last in others), numbers beyond 2^53 (a
//! double-based parser rounds them), and nesting deep enough to exhaust a stack. Such
//! bodies are refused before the policy sees them. Invalid UTF-8 and lone surrogate
//! escapes are refused by serde_json itself.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Integers beyond this magnitude are not exact in an IEEE double.
const EXACT_LIMIT: u64 = 1 << 53;

/// Checks `body` against the rules above; the error says what is wrong and where.
pub fn check(body: &[u8], max_depth: usize) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // Our own depth limit applies; serde_json's (128) is a backstop.
    Strict { depth: max_depth }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
struct Strict {
    /// Levels of nesting still allowed below this value.
    depth: usize,
}

impl Strict {
    fn nested<E: serde::de::Error>(self) -> Result<Strict, E> {
        match self.depth.checked_sub(1) {
            Some(depth) => Ok(Strict { depth }),
            None => Err(E::custom("JSON nested too deeply")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        if v > EXACT_LIMIT {
            return Err(E::custom(format!(
                "the number {v} is too large to be exact in every JSON parser (over 2^53)"
            )));
        }
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        if v.unsigned_abs() > EXACT_LIMIT {
            return Err(E::custom(format!(
                "the number {v} is too large to be exact in every JSON parser (over 2^53)"
            )));
        }
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // An integer literal beyond u64 arrives here already rounded.
        if !v.is_finite() || v.abs() >= EXACT_LIMIT as f64 {
            return Err(E::custom(
                "a number too large to be exact in every JSON parser (over 2^53)",
            ));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(inner)?;
            if !seen.insert(key) {
                return Err(A::Error::custom("duplicate key in a JSON object"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn well_formed_documents_pass() {
        for ok in [
            r#"{"a": 1, "b": [1, 2.5, "x", null, true], "c": {"a": 1}}"#,
            "9007199254740992",
            "-9007199254740992",
            r#""caf\u00e9 \ud83d\ude00""#,
            "[[[[1]]]]",
        ] {
            assert_eq!(check(ok.as_bytes(), 32), Ok(()), "{ok}");
        }
    }

    #[test]
    fn ambiguous_documents_are_refused() {
        for bad in [
            r#"{"amount": 1, "amount": 1000000}"#,
            r#"{"a": {"x": 1, "x": 2}}"#,
            "9007199254740993",
            "-9007199254740993",
            "12345678901234567890123",
            "1e400",
            "1e16",
            r#""\ud800""#,
            r#"{"a": 1} {"b": 2}"#,
        ] {
            assert!(check(bad.as_bytes(), 32).is_err(), "{bad}");
        }
        assert!(check(b"\"\xff\"", 32).is_err(), "invalid UTF-8");
        assert!(check("[[[[1]]]]".as_bytes(), 3).is_err(), "too deep");
        assert!(check("[[[1]]]".as_bytes(), 3).is_ok());
    }
}
