//! One trace record as one OTLP span. The span carries lastmile's own ids: the record's
//! trace and span id, and as parent the agent's span from its `traceparent`, so it sits
//! in the agent's trace as a child of the call the agent made.
//!
//! Kind `SERVER`: the span is the call lastmile received (it also makes the upstream call,
//! but that leg is not a span of its own; the upstream's span is this span's child).
//! Attributes follow the OpenTelemetry HTTP semantic conventions for server spans, plus
//! lastmile's own under `lastmile.*`; the status follows them too: ERROR for a 5xx answer,
//! unset otherwise (a 4xx, such as a policy denial, is the client's doing, not a failure of
//! the server).

use crate::trace::record::TraceRecord;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, SpanFlags, Status};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// lastmile exports every record, so its spans are sampled (W3C trace flag 01).
const SAMPLED: u32 = 0x01;

/// The methods the HTTP semantic conventions know; any other is reported as `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// The span of one record, or `None` when the record's ids or time cannot be read (they
/// are lastmile's own, so that is a bug, counted as a dropped span rather than a panic).
///
/// Every attribute is set here, from the record: a new record field is one more line.
pub fn span_from(record: &TraceRecord) -> Option<Span> {
    let trace_id = hex_bytes::<16>(&record.trace_id)?;
    let span_id = hex_bytes::<8>(&record.span_id)?;
    let parent_span_id = match &record.parent_span_id {
        Some(parent) => hex_bytes::<8>(parent)?.to_vec(),
        None => Vec::new(),
    };
    let start = unix_nanos(humantime::parse_rfc3339(&record.time).ok()?)?;
    let end = start.saturating_add(millis_to_nanos(record.latency_ms.total));

    let mut attributes = Attributes::default();
    let method = record.method.as_str();
    if KNOWN_METHODS.contains(&method) {
        attributes.text("http.request.method", method);
    } else {
        attributes.text("http.request.method", "_OTHER");
        attributes.text("http.request.method_original", method);
    }
    attributes.text("url.path", &record.path);
    // Records of approval transitions that sent no answer carry status 0.
    if record.status != 0 {
        attributes.int("http.response.status_code", record.status.into());
    }
    let server_error = record.status >= 500;
    if server_error {
        attributes.text("error.type", &record.status.to_string());
    }
    if let Some(route) = &record.route {
        // The route name, not a path template: it is what lastmile matched, and it is
        // of low cardinality, as `http.route` must be.
        attributes.text("http.route", route);
        attributes.text("lastmile.route", route);
    }
    attributes.optional_text("lastmile.mode", record.mode);
    attributes.text("lastmile.outcome", record.outcome);
    if let Some(decision) = &record.decision {
        attributes.text("lastmile.verdict", decision.verdict);
        let reasons = decision.deny.iter().chain(&decision.approval);
        attributes.texts("lastmile.reasons", reasons.map(|r| r.code.as_str()));
    }
    attributes.optional_text(
        "lastmile.policy_revision",
        record.policy_revision.as_deref(),
    );
    if let Some(dedup) = &record.dedup {
        attributes.text("lastmile.dedup.key", &dedup.key);
        attributes.text("lastmile.dedup.result", dedup.result);
    }
    if let Some(approval) = &record.approval {
        attributes.text("lastmile.approval.id", &approval.id);
        attributes.text("lastmile.approval.state", approval.to);
    }
    attributes.optional_text("lastmile.user", record.user.as_deref());
    attributes.optional_text("lastmile.tool", record.tool.as_deref());
    if let Some(status) = record.upstream.as_ref().and_then(|u| u.status) {
        attributes.int("lastmile.upstream.status_code", status.into());
    }

    let name = match &record.route {
        Some(route) => format!("{method} {route}"),
        // Without a route the conventions name the span by its method alone.
        None => method.to_string(),
    };
    let remote_parent = if parent_span_id.is_empty() {
        0
    } else {
        SpanFlags::ContextIsRemoteMask as u32
    };
    Some(Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id,
        flags: SAMPLED | SpanFlags::ContextHasIsRemoteMask as u32 | remote_parent,
        name,
        kind: SpanKind::Server.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes.0,
        status: server_error.then(|| Status {
            message: String::new(),
            code: StatusCode::Error.into(),
        }),
        ..Span::default()
    })
}

/// Who sends the spans: `service.name` and `service.version`.
pub fn resource(service_name: &str) -> Resource {
    let mut attributes = Attributes::default();
    attributes.text("service.name", service_name);
    attributes.text("service.version", env!("CARGO_PKG_VERSION"));
    Resource {
        attributes: attributes.0,
        ..Resource::default()
    }
}

/// One export request holding `spans`, all from `resource`.
pub fn request(resource: &Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lastmile".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// Span attributes, in the order they are set.
#[derive(Default)]
struct Attributes(Vec<KeyValue>);

impl Attributes {
    fn push(&mut self, key: &str, value: Value) {
        self.0.push(KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
    }

    fn text(&mut self, key: &str, value: &str) {
        self.push(key, Value::StringValue(value.to_string()));
    }

    fn optional_text(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(key, value);
        }
    }

    fn int(&mut self, key: &str, value: i64) {
        self.push(key, Value::IntValue(value));
    }

    fn texts<'a>(&mut self, key: &str, values: impl Iterator<Item = &'a str>) {
        let values = values
            .map(|v| AnyValue {
                value: Some(Value::StringValue(v.to_string())),
            })
            .collect();
        self.push(key, Value::ArrayValue(ArrayValue { values }));
    }
}

/// `N` bytes from exactly `2 * N` hex digits.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let digit = |d: u8| char::from(d).to_digit(16);
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = u8::try_from(digit(*high)? << 4 | digit(*low)?).ok()?;
    }
    Some(out)
}

fn unix_nanos(time: SystemTime) -> Option<u64> {
    u64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// Trace latencies are milliseconds as a float; a negative or non-finite one counts as 0.
fn millis_to_nanos(millis: f64) -> u64 {
    Duration::try_from_secs_f64(millis / 1000.0)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decision::Reason;
    use crate::trace::record::{
        ApprovalTrace, DecisionTrace, DedupTrace, Latency, RecordKind, UpstreamTrace,
    };
    use std::collections::BTreeMap;

    fn record() -> TraceRecord {
        TraceRecord {
            kind: RecordKind::Call,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "7c1d6a0e9b3f2a10".into(),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            time: "2026-11-26T20:21:01.467055Z".into(),
            route: Some("crm".into()),
            mode: Some("enforce"),
            user: Some("u_bob".into()),
            user_claims: None,
            user_input: None,
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
                obligation_values: serde_json::Value::Null,
            }),
            policy_revision: Some("sha256:826a49ad485c54b0".into()),
            error: None,
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
            request_body: None,
            call: None,
            response: None,
            annotation: None,
            approval: Some(ApprovalTrace {
                id: "0123456789abcdef0123456789abcdef".into(),
                from: None,
                to: "pending",
                actor: None,
                comment: None,
                failure: None,
            }),
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
}
