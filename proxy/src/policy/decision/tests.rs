use super::*;

fn value(json: &str) -> Value {
    Value::from_json_str(json).unwrap_or(Value::Undefined)
}

#[test]
fn well_formed_decisions_parse() -> Result<(), DecisionError> {
    let d = parse(&value(r#"{"deny": [], "approval": []}"#))?;
    assert_eq!(d.verdict(), Verdict::Allow);
    let d = parse(&value(r#"{}"#))?;
    assert_eq!(d.verdict(), Verdict::Allow);
    let d = parse(&value(
        r#"{"deny": [{"code": "x", "message": "m"}], "approval": [{"code": "y", "message": "n"}]}"#,
    ))?;
    assert_eq!(d.verdict(), Verdict::Deny);
    let d = parse(&value(r#"{"approval": [{"code": "y", "message": "n"}]}"#))?;
    assert_eq!(d.verdict(), Verdict::Approval);
    let d = parse(&value(
        r#"{"dedup": {"key": ["acme", 1], "window_seconds": 60, "shared": true},
            "add_headers": {"x-scope": "acme"}, "add_query": {"account": ["acme", "b"], "v": "1"}}"#,
    ))?;
    let dedup = d.dedup.ok_or(DecisionError("no dedup".into()))?;
    assert_eq!(dedup.window, Duration::from_secs(60));
    assert!(dedup.shared);
    assert_eq!(d.add_headers.len(), 1);
    assert_eq!(
        d.add_query,
        vec![
            ("account".into(), vec!["acme".into(), "b".into()]),
            ("v".into(), vec!["1".into()])
        ]
    );
    Ok(())
}

#[test]
fn sets_are_accepted_for_reasons() -> anyhow::Result<()> {
    let mut reason = std::collections::BTreeMap::new();
    reason.insert(Value::from("code"), Value::from("c"));
    reason.insert(Value::from("message"), Value::from("m"));
    let mut set = std::collections::BTreeSet::new();
    set.insert(Value::from(reason));
    let mut top = std::collections::BTreeMap::new();
    top.insert(Value::from("deny"), Value::from(set));
    let d = parse(&Value::from(top))?;
    assert_eq!(
        d.deny,
        vec![Reason {
            code: "c".into(),
            message: "m".into()
        }]
    );
    Ok(())
}

#[test]
fn every_malformed_shape_is_an_error() {
    let cases = [
        ("undefined", Value::Undefined),
        ("null", value("null")),
        ("boolean", value("true")),
        ("array", value("[]")),
        ("unknown key", value(r#"{"allow": true}"#)),
        ("deny not a list", value(r#"{"deny": "no"}"#)),
        ("deny reason not an object", value(r#"{"deny": ["no"]}"#)),
        (
            "deny reason without code",
            value(r#"{"deny": [{"message": "m"}]}"#),
        ),
        (
            "deny reason with empty code",
            value(r#"{"deny": [{"code": "", "message": "m"}]}"#),
        ),
        (
            "deny reason with numeric message",
            value(r#"{"deny": [{"code": "c", "message": 1}]}"#),
        ),
        ("approval not a list", value(r#"{"approval": {}}"#)),
        ("dedup not an object", value(r#"{"dedup": ["k"]}"#)),
        (
            "dedup without key",
            value(r#"{"dedup": {"window_seconds": 5}}"#),
        ),
        (
            "dedup zero window",
            value(r#"{"dedup": {"key": "k", "window_seconds": 0}}"#),
        ),
        (
            "dedup fractional window",
            value(r#"{"dedup": {"key": "k", "window_seconds": 1.5}}"#),
        ),
        (
            "dedup unknown key",
            value(r#"{"dedup": {"key": "k", "window_seconds": 5, "ttl": 1}}"#),
        ),
        (
            "dedup shared not bool",
            value(r#"{"dedup": {"key": "k", "window_seconds": 5, "shared": "yes"}}"#),
        ),
        (
            "add_headers not an object",
            value(r#"{"add_headers": ["x"]}"#),
        ),
        (
            "add_headers bad name",
            value(r#"{"add_headers": {"bad name": "v"}}"#),
        ),
        (
            "add_headers reserved",
            value(r#"{"add_headers": {"Host": "evil"}}"#),
        ),
        (
            "add_headers numeric value",
            value(r#"{"add_headers": {"x-a": 1}}"#),
        ),
        (
            "add_headers newline",
            value(r#"{"add_headers": {"x-a": "a\nb"}}"#),
        ),
        ("add_query not an object", value(r#"{"add_query": "a=b"}"#)),
        ("add_query numeric", value(r#"{"add_query": {"a": 1}}"#)),
        (
            "add_query list of numbers",
            value(r#"{"add_query": {"a": [1]}}"#),
        ),
    ];
    for (name, case) in cases {
        assert!(parse(&case).is_err(), "{name} should be refused");
    }
}

#[test]
fn the_tool_is_a_name_or_absent() -> Result<(), DecisionError> {
    let d = parse(&value(r#"{"tool": "send_reminder"}"#))?;
    assert_eq!(d.tool.as_deref(), Some("send_reminder"));
    assert_eq!(parse(&value(r#"{"tool": null}"#))?.tool, None);
    for bad in [r#"{"tool": 3}"#, r#"{"tool": ""}"#, r#"{"tool": ["a"]}"#] {
        assert!(parse(&value(bad)).is_err(), "{bad}");
    }
    let long = format!(r#"{{"tool": "{}"}}"#, "t".repeat(129));
    assert!(parse(&value(&long)).is_err());
    Ok(())
}
