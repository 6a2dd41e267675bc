//! Property tests over generated documents: the invariants the dedup key, JSON
//! strictness and the decision parser promise for every input, not just the examples.

use crate::dedup::key::{canonical_json, derive, Actor, ClientKey, Intent};
use crate::pipeline::strict_json;
use crate::policy::decision;
use proptest::prelude::*;
use regorus::Value;

/// JSON documents: scalars (numbers within ±2^53), arrays and objects, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(serde_json::Value::from),
        (-1.0e15f64..1.0e15).prop_map(serde_json::Value::from),
        "[a-zA-Z0-9 é\"\\\\/_-]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The same document written another way: objects' keys in reverse order, pretty-printed.
fn rewritten(value: &serde_json::Value) -> String {
    fn reverse(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::Object(map) => {
                let fields: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| {
                        format!(
                            "\n  {} :  {}",
                            serde_json::Value::from(k.as_str()),
                            reverse(v)
                        )
                    })
                    .collect();
                format!("{{{}\n}}", fields.join(" ,"))
            }
            serde_json::Value::Array(items) => {
                format!(
                    "[ {} ]",
                    items.iter().map(reverse).collect::<Vec<_>>().join(" , ")
                )
            }
            other => other.to_string(),
        }
    }
    reverse(value)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Undefined)
}

proptest! {
    #[test]
    fn key_order_and_whitespace_never_change_the_key(doc in json()) {
        let compact = parse(&doc.to_string());
        let other = parse(&rewritten(&doc));
        prop_assert_eq!(canonical_json(&compact), canonical_json(&other));
        prop_assert_eq!(
            derive("crm", Actor::User(Some("u1")), Intent::Policy(&compact)),
            derive("crm", Actor::User(Some("u1")), Intent::Policy(&other))
        );
    }

    #[test]
    fn canonical_json_is_a_fixed_point(doc in json()) {
        let value = parse(&doc.to_string());
        let canonical = canonical_json(&value);
        prop_assert_eq!(canonical_json(&parse(&canonical)), canonical);
    }

    #[test]
    fn strictness_accepts_well_formed_documents_and_refuses_a_duplicated_key(
        doc in json(),
        key in "[a-z]{1,6}",
    ) {
        let text = doc.to_string();
        prop_assert!(strict_json::check(text.as_bytes(), 64).is_ok(), "{}", text);
        let duplicated = format!("{{\"{key}\": 1, \"{key}\": {text}}}");
        prop_assert!(strict_json::check(duplicated.as_bytes(), 64).is_err());
    }

    #[test]
    fn any_document_read_as_a_decision_is_a_decision_or_an_error(doc in json()) {
        let _ = decision::parse(&parse(&doc.to_string()));
    }

    #[test]
    fn client_keys_are_exactly_the_documented_alphabet(text in "\\PC{0,300}") {
        let valid = !text.is_empty()
            && text.len() <= 255
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b));
        prop_assert_eq!(text.parse::<ClientKey>().is_ok(), valid || is_quoted_valid(&text));
    }
}

fn is_quoted_valid(text: &str) -> bool {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .is_some_and(|t| {
            !t.is_empty()
                && t.len() <= 255
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
        })
}
