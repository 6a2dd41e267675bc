use super::*;

/// Parsed as request bodies are (serde_json into regorus values).
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Undefined)
}

fn key_of(route: &str, actor: Actor<'_>, text: &str) -> Key {
    derive(route, actor, Intent::Policy(&json(text)))
}

#[test]
fn key_order_whitespace_and_number_spelling_do_not_change_the_key() {
    let a = key_of(
        "crm",
        Actor::User(Some("u1")),
        r#"{"invoice": "INV-1", "amount": 10, "lines": [1, 2]}"#,
    );
    let b = key_of(
        "crm",
        Actor::User(Some("u1")),
        r#"{ "lines":[1,2],"amount":10.0,   "invoice":"INV-1" }"#,
    );
    assert_eq!(a, b);
    assert_eq!(
        canonical_json(&json(r#"{"b": 1e2, "a": [0.5, "x\u00e9"]}"#)),
        r#"{"a":[0.5,"xé"],"b":100}"#
    );
}

#[test]
fn canonical_numbers_are_a_fixed_point() {
    // Found by the dedup_key fuzz target: integers beyond 64 bits.
    for text in [
        "111111111111111111111111",
        "1e300",
        "1e-7",
        "-0.0",
        "0.1",
        "18446744073709551615",
    ] {
        let once = canonical_json(&json(text));
        assert_eq!(canonical_json(&json(&once)), once, "{text}");
    }
    assert_eq!(
        canonical_json(&json("1e21")),
        canonical_json(&json("1000000000000000000000"))
    );
}

#[test]
fn a_changed_field_route_or_user_changes_the_key() {
    let base = key_of("crm", Actor::User(Some("u1")), r#"{"amount": 10}"#);
    assert_ne!(
        base,
        key_of("crm", Actor::User(Some("u1")), r#"{"amount": 11}"#)
    );
    assert_ne!(
        base,
        key_of("erp", Actor::User(Some("u1")), r#"{"amount": 10}"#)
    );
    assert_ne!(
        base,
        key_of("crm", Actor::User(Some("u2")), r#"{"amount": 10}"#)
    );
    assert_ne!(base, key_of("crm", Actor::Anyone, r#"{"amount": 10}"#));
    assert_ne!(base, key_of("crm", Actor::User(None), r#"{"amount": 10}"#));
    // Array order is meaningful; only object keys are sorted.
    assert_ne!(
        key_of("crm", Actor::Anyone, "[1, 2]"),
        key_of("crm", Actor::Anyone, "[2, 1]")
    );
}

#[test]
fn a_client_key_is_scoped_by_route_and_user() -> Result<(), ClientKeyError> {
    let k: ClientKey = "order-7".parse()?;
    let a = derive("crm", Actor::User(Some("u1")), Intent::Client(&k));
    assert_ne!(
        a,
        derive("crm", Actor::User(Some("u2")), Intent::Client(&k))
    );
    assert_ne!(
        a,
        derive("erp", Actor::User(Some("u1")), Intent::Client(&k))
    );
    // The same text as a policy intent is a different key.
    let as_intent = json(r#""order-7""#);
    assert_ne!(
        a,
        derive("crm", Actor::User(Some("u1")), Intent::Policy(&as_intent))
    );
    Ok(())
}

#[test]
fn client_keys_are_validated() {
    assert!("a".parse::<ClientKey>().is_ok());
    assert!("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""
        .parse::<ClientKey>()
        .is_ok());
    assert!("A.b_c:d-9".repeat(28).parse::<ClientKey>().is_ok()); // 252 characters
    for bad in ["", "\"\"", "has space", "semi;colon", "new\nline", "é"] {
        assert_eq!(
            bad.parse::<ClientKey>(),
            Err(ClientKeyError::Malformed),
            "{bad:?}"
        );
    }
    assert!("k".repeat(256).parse::<ClientKey>().is_err());
    let mut headers = http::HeaderMap::new();
    headers.append(IDEMPOTENCY_KEY, http::HeaderValue::from_static("a"));
    headers.append(IDEMPOTENCY_KEY, http::HeaderValue::from_static("b"));
    assert_eq!(
        ClientKey::from_headers(&headers),
        Err(ClientKeyError::Repeated)
    );
}

#[test]
fn keys_round_trip_through_hex() {
    let key = key_of("crm", Actor::Anyone, "1");
    assert_eq!(key.to_string().parse::<Key>(), Ok(key));
    assert!("zz".repeat(32).parse::<Key>().is_err());
    assert!("ab".parse::<Key>().is_err());
}
