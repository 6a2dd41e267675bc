use super::parse;
use proptest::prelude::*;
use regorus::Value;

fn json(body: &str) -> Result<serde_json::Value, String> {
    let value = parse(body.as_bytes(), 32)?;
    serde_json::to_value(&value).map_err(|e| e.to_string())
}

#[test]
fn bracket_keys_become_objects_and_arrays_of_strings() {
    let cases = [
        ("", serde_json::json!({})),
        ("a=1&&b=", serde_json::json!({"a": "1", "b": ""})),
        ("flag", serde_json::json!({"flag": ""})),
        (
            "metadata[order]=7",
            serde_json::json!({"metadata": {"order": "7"}}),
        ),
        (
            "metadata%5Border%5D=7",
            serde_json::json!({"metadata": {"order": "7"}}),
        ),
        (
            "expand[]=a&expand[]=b",
            serde_json::json!({"expand": ["a", "b"]}),
        ),
        (
            "items[1][price]=q&items[0][price]=p&items[0][qty]=2",
            serde_json::json!({"items": [{"price": "p", "qty": "2"}, {"price": "q"}]}),
        ),
        (
            "a[b][c][0]=x",
            serde_json::json!({"a": {"b": {"c": ["x"]}}}),
        ),
        (
            "note=caf%C3%A9+au%2Blait",
            serde_json::json!({"note": "café au+lait"}),
        ),
        ("amount=007", serde_json::json!({"amount": "007"})),
    ];
    for (body, expected) in cases {
        assert_eq!(json(body), Ok(expected), "{body}");
    }
}

#[test]
fn forms_two_servers_could_read_differently_are_refused() {
    for bad in [
        "a=1&a=2",
        "a[b]=1&a[b]=2",
        "a=1&a[b]=2",
        "a[b]=2&a=1",
        "a[]=1&a[x]=2",
        "a[0]=1&a[]=2",
        "a[0]=1&a[0]=2",
        "a[1]=x",
        "a[0]=x&a[2]=y",
        "a[01]=x",
        "a[1234567]=x",
        "a[]=1&a[][b]=2",
        "a[][b]=1",
        "=x",
        "[a]=1",
        "a]=1",
        "a[b=1",
        "a[b]c=1",
        "a[b[c]]=1",
        "a=%zz",
        "a=%4",
        "a=%+f",
        "a=%ff",
        "%ff=1",
    ] {
        assert!(parse(bad.as_bytes(), 32).is_err(), "{bad}");
    }
}

#[test]
fn depth_is_bounded_like_json() {
    let key = |levels: usize| format!("a{}=x", "[b]".repeat(levels - 1));
    assert!(parse(key(32).as_bytes(), 32).is_ok());
    assert!(parse(key(33).as_bytes(), 32).is_err());
}

#[test]
fn errors_name_the_key_never_the_value() {
    let error = parse(b"amount=sk_live_secret&amount=2", 32)
        .err()
        .unwrap_or_default();
    assert!(
        error.contains("\"amount\"") && !error.contains("sk_live"),
        "{error}"
    );
}

/// Form documents as the Stripe SDK builds them: objects of strings, lists of strings
/// and lists of objects, a few levels deep.
fn document() -> impl Strategy<Value = serde_json::Value> {
    let leaf = "[a-zA-Z0-9 é&=%+\\[\\]_-]{0,8}".prop_map(serde_json::Value::from);
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,5}", inner, 1..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-z]{1,5}", value, 0..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// Encodes `value` under `key` as stripe-python's `_api_encode` does: indexed arrays.
fn encode(key: &str, value: &serde_json::Value, out: &mut form_urlencoded::Serializer<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let nested = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}[{k}]")
                };
                encode(&nested, v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                encode(&format!("{key}[{i}]"), v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.append_pair(key, s);
        }
        other => {
            out.append_pair(key, &other.to_string());
        }
    }
}

proptest! {
    #[test]
    fn an_encoded_document_reads_back_as_itself(doc in document()) {
        let mut out = form_urlencoded::Serializer::new(String::new());
        encode("", &doc, &mut out);
        let body = out.finish();
        let parsed = parse(body.as_bytes(), 32).map_err(TestCaseError::fail)?;
        prop_assert_eq!(serde_json::to_value(&parsed).ok(), Some(doc), "{}", body);
    }

    #[test]
    fn arbitrary_bytes_are_read_or_refused_never_a_crash(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = parse(&body, 4) {
            prop_assert!(matches!(value, Value::Object(_)));
        }
    }
}
