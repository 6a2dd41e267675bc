use super::*;
use crate::policy::decision::Reason;
use crate::trace::record::{ApprovalTrace, DecisionTrace, DedupTrace, Latency, UpstreamTrace};
use std::collections::BTreeMap;

/// A parked call with every part the span reads.
fn record() -> TraceRecord {
    TraceRecord {
        parent_span_id: Some("00f067aa0ba902b7".into()),
        tool: Some("create_invoice".into()),
        method: "POST".into(),
        path: "/crm/v1/invoices".into(),
        outcome: "pending_approval",
        status: 202,
        decision: Some(DecisionTrace {
            verdict: "approval",
            deny: Vec::new(),
            approval: vec![Reason {
                code: "amount_over_limit".into(),
                message: "amount 5000 is over the limit".into(),
            }],
            dedup: true,
            obligations: Vec::new(),
            obligation_values: Default::default(),
        }),
        upstream: Some(UpstreamTrace {
            status: Some(201),
            latency_ms: 1.0,
        }),
        dedup: Some(DedupTrace {
            key: "ab".repeat(32),
            result: "first",
        }),
        latency_ms: Latency {
            total: 1.5,
            policy: Some(0.1),
        },
        approval: Some(ApprovalTrace {
            id: "0123456789abcdef0123456789abcdef".into(),
            from: None,
            to: "pending",
            actor: None,
            comment: None,
            failure: None,
        }),
        ..crate::trace::record::sample::call()
    }
}

fn attributes(span: &Span) -> BTreeMap<&str, &Value> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?.value.as_ref()?)))
        .collect()
}

fn text(value: &str) -> Value {
    Value::StringValue(value.into())
}

#[test]
fn a_record_becomes_a_server_span_in_the_agents_trace() -> anyhow::Result<()> {
    let span = span_from(&record()).ok_or_else(|| anyhow::anyhow!("no span"))?;
    assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&span.span_id), "7c1d6a0e9b3f2a10");
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(span.name, "POST crm");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.flags, 0x301);
    let start = humantime::parse_rfc3339("2026-11-26T20:21:01.467055Z")?;
    let start = u64::try_from(start.duration_since(UNIX_EPOCH)?.as_nanos())?;
    assert_eq!(span.start_time_unix_nano, start);
    assert_eq!(span.end_time_unix_nano, start + 1_500_000);
    assert_eq!(span.status, None, "a 202 is no error");

    let expected = BTreeMap::from([
        ("http.request.method", text("POST")),
        ("url.path", text("/crm/v1/invoices")),
        ("http.response.status_code", Value::IntValue(202)),
        ("http.route", text("crm")),
        ("lastmile.route", text("crm")),
        ("lastmile.mode", text("enforce")),
        ("lastmile.outcome", text("pending_approval")),
        ("lastmile.verdict", text("approval")),
        (
            "lastmile.reasons",
            Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(text("amount_over_limit")),
                }],
            }),
        ),
        ("lastmile.policy_revision", text("sha256:826a49ad485c54b0")),
        ("lastmile.dedup.key", text(&"ab".repeat(32))),
        ("lastmile.dedup.result", text("first")),
        (
            "lastmile.approval.id",
            text("0123456789abcdef0123456789abcdef"),
        ),
        ("lastmile.approval.state", text("pending")),
        ("lastmile.user", text("u_bob")),
        ("lastmile.tool", text("create_invoice")),
        ("lastmile.upstream.status_code", Value::IntValue(201)),
    ]);
    let got = attributes(&span);
    let expected: BTreeMap<&str, &Value> = expected.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(got, expected);
    assert_eq!(
        span.attributes.len(),
        expected.len(),
        "an attribute set twice"
    );
    Ok(())
}

#[test]
fn server_errors_are_errors_and_absent_fields_are_left_out() -> anyhow::Result<()> {
    let mut r = record();
    r.status = 503;
    r.route = None;
    r.mode = None;
    r.parent_span_id = None;
    r.decision = None;
    r.dedup = None;
    r.approval = None;
    r.user = None;
    r.upstream = None;
    r.policy_revision = None;
    r.tool = None;
    r.method = "PURGE".into();
    let span = span_from(&r).ok_or_else(|| anyhow::anyhow!("no span"))?;
    assert_eq!(span.name, "PURGE");
    assert!(span.parent_span_id.is_empty());
    assert_eq!(span.flags, 0x101);
    assert_eq!(
        span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let got = attributes(&span);
    let keys: Vec<&str> = got.keys().copied().collect();
    assert_eq!(
        keys,
        [
            "error.type",
            "http.request.method",
            "http.request.method_original",
            "http.response.status_code",
            "lastmile.outcome",
            "url.path",
        ]
    );
    assert_eq!(got.get("http.request.method"), Some(&&text("_OTHER")));
    Ok(())
}

#[test]
fn unreadable_ids_or_times_give_no_span() {
    let cases: [fn(&mut TraceRecord); 5] = [
        |r| r.trace_id = "not hex".into(),
        |r| r.trace_id = "4bf92f3577b34da6a3ce929d0e0e473".into(),
        |r| r.span_id = "7c1d6a0e9b3f2a1g".into(),
        |r| r.parent_span_id = Some("é".repeat(8)),
        |r| r.time = "yesterday".into(),
    ];
    for change in cases {
        let mut r = record();
        change(&mut r);
        assert!(span_from(&r).is_none(), "{r:?}");
    }
    let mut r = record();
    r.latency_ms.total = f64::NAN;
    assert!(span_from(&r).is_some_and(|s| s.end_time_unix_nano == s.start_time_unix_nano));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
