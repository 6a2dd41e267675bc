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
/// Every attribute is set from the record, in [`http_attributes`] and
/// [`lastmile_attributes`]: a new record field is one more line there.
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
    http_attributes(&mut attributes, record);
    lastmile_attributes(&mut attributes, record);
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
        name: span_name(record),
        kind: SpanKind::Server.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes.0,
        status: (record.status >= 500).then(|| Status {
            message: String::new(),
            code: StatusCode::Error.into(),
        }),
        ..Span::default()
    })
}

/// The HTTP semantic conventions' server-span attributes, so generic tracing tools
/// read lastmile's spans like any other server's.
fn http_attributes(attributes: &mut Attributes, record: &TraceRecord) {
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
    if record.status >= 500 {
        attributes.text("error.type", &record.status.to_string());
    }
    if let Some(route) = &record.route {
        // The route name, not a path template: it is what lastmile matched, and it is
        // of low cardinality, as `http.route` must be.
        attributes.text("http.route", route);
        attributes.text("lastmile.route", route);
    }
}

/// lastmile's own attributes (`lastmile.*`): what the policy, dedup and approval queue
/// made of the call.
fn lastmile_attributes(attributes: &mut Attributes, record: &TraceRecord) {
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
}

/// `{method} {route}`, as the conventions name server spans (the route standing in for
/// the path template); without a route, the method alone.
fn span_name(record: &TraceRecord) -> String {
    match &record.route {
        Some(route) => format!("{} {route}", record.method),
        None => record.method.clone(),
    }
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
mod tests;
