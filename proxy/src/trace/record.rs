//! The shape of one decision trace line (documented in the README).

use super::recorded::{RecordedInput, RecordedResponse};
use crate::policy::decision::{Decision, Reason};
use serde::Serialize;

/// What a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A call the agent made through the data port.
    Call,
    /// A transition of a parked request's approval (its execution included).
    Approval,
    /// What the agent added to the action: the user's words, its reply.
    Annotation,
}

/// One request, from arrival to response head (and, for an upstream's answer, to the
/// last byte of its body).
#[derive(Debug, Clone, Serialize)]
pub struct TraceRecord {
    pub kind: RecordKind,
    pub trace_id: String,
    pub span_id: String,
    /// The agent's span this call was made under (from its `traceparent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// RFC 3339 time the request arrived.
    pub time: String,
    pub route: Option<String>,
    pub mode: Option<&'static str>,
    /// The acting user's `sub`, when a verified token named one.
    pub user: Option<String>,
    /// The route's credential mode and whom it acted for (never the credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<crate::upstream::credential::Acting>,
    /// The acting user's claims named by `trace.user_claims`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_claims: Option<serde_json::Value>,
    /// The user's words that led to this call, when the agent sent them
    /// (`lastmile-user-input`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_input: Option<String>,
    /// The tool the call was, as the policy named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub method: String,
    /// The request path as received, without the query (queries can carry secrets).
    pub path: String,
    /// What lastmile did (`allowed`, `denied`, `dry_run_denied`, a refusal code, ...).
    pub outcome: &'static str,
    /// The status sent to the agent.
    pub status: u16,
    pub decision: Option<DecisionTrace>,
    pub policy_revision: Option<String>,
    pub error: Option<ErrorTrace>,
    pub upstream: Option<UpstreamTrace>,
    /// The dedup window the request fell under, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupTrace>,
    pub latency_ms: Latency,
    /// `arguments` (the query and body the tool got) and `input` (the policy's input
    /// document), redacted when written.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub call: Option<RecordedInput>,
    /// The upstream's answer as the agent was sent it (the raw tool result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
    /// An annotation's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation: Option<AnnotationTrace>,
    /// Set on requests that were parked, and on every later transition of their approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalTrace>,
}

impl TraceRecord {
    /// A record of `kind` in a trace, with every part it may hold left empty: the
    /// makers of records fill in what they know (`..TraceRecord::new(...)`).
    pub fn new(kind: RecordKind, trace_id: String, span_id: String, time: String) -> TraceRecord {
        TraceRecord {
            kind,
            trace_id,
            span_id,
            parent_span_id: None,
            time,
            route: None,
            mode: None,
            user: None,
            credential: None,
            user_claims: None,
            user_input: None,
            tool: None,
            method: String::new(),
            path: String::new(),
            outcome: "",
            status: 0,
            decision: None,
            policy_revision: None,
            error: None,
            upstream: None,
            dedup: None,
            latency_ms: Latency::default(),
            call: None,
            response: None,
            annotation: None,
            approval: None,
        }
    }
}

/// What an approved request's execution adds to its final transition's record: the
/// decision of the re-evaluation, the upstream exchange, and what it answered.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub tool: Option<String>,
    /// The revision that judged the request again.
    pub policy_revision: Option<String>,
    pub decision: Option<DecisionTrace>,
    pub upstream: Option<UpstreamTrace>,
    pub call: Option<RecordedInput>,
    pub response: Option<RecordedResponse>,
    pub latency_ms: Latency,
}

/// What an agent said about an action.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnnotationTrace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Scalars the agent chose to attach, redacted like bodies.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub attributes: serde_json::Value,
}

/// One approval transition (or the parking of a request).
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalTrace {
    pub id: String,
    pub from: Option<&'static str>,
    pub to: &'static str,
    /// The approver, `lastmile` for the proxy's own moves, absent when parking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The failure code when the approval ended without success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The policy's decision as parsed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecisionTrace {
    pub verdict: &'static str,
    pub deny: Vec<Reason>,
    pub approval: Vec<Reason>,
    pub dedup: bool,
    pub obligations: Vec<String>,
    /// The obligations with their values: `{"headers": {name: value}, "query": {name:
    /// [values]}}`, redacted like bodies.
    pub obligation_values: ObligationValues,
}

/// The obligations a decision set, with their values. Kept as lists (empty ones cost no
/// allocation: most decisions set none) and written as maps.
#[derive(Debug, Clone, Default)]
pub struct ObligationValues {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, Vec<String>)>,
}

impl ObligationValues {
    /// Replaces the value of every obligation whose name is in `fields` (lower-case).
    pub fn redact(&mut self, fields: &[String]) {
        let hidden = |name: &str| fields.iter().any(|f| f.eq_ignore_ascii_case(name));
        for (name, value) in &mut self.headers {
            if hidden(name) {
                *value = super::redact::REDACTED.to_string();
            }
        }
        for (name, values) in &mut self.query {
            if hidden(name) {
                *values = vec![super::redact::REDACTED.to_string()];
            }
        }
    }

    /// `add_headers` as a map.
    pub fn headers(&self) -> Pairs<'_, String> {
        Pairs(&self.headers)
    }

    /// `add_query` as a map.
    pub fn query(&self) -> Pairs<'_, Vec<String>> {
        Pairs(&self.query)
    }
}

impl Serialize for ObligationValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("headers", &self.headers())?;
        map.serialize_entry("query", &self.query())?;
        map.end()
    }
}

/// Name-value pairs written as a JSON object.
pub struct Pairs<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for Pairs<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl From<&Decision> for DecisionTrace {
    /// The decision as the trace records it: verdict, reasons, whether a dedup intent
    /// was named, and the obligations by name (never their values).
    fn from(decision: &Decision) -> DecisionTrace {
        DecisionTrace {
            verdict: decision.verdict().name(),
            deny: decision.deny.clone(),
            approval: decision.approval.clone(),
            dedup: decision.dedup.is_some(),
            obligations: decision
                .add_headers
                .iter()
                .map(|(name, _)| format!("header:{name}"))
                .chain(
                    decision
                        .add_query
                        .iter()
                        .map(|(name, _)| format!("query:{name}")),
                )
                .collect(),
            obligation_values: ObligationValues {
                headers: decision
                    .add_headers
                    .iter()
                    .map(|(name, value)| {
                        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_string(), text)
                    })
                    .collect(),
                query: decision.add_query.clone(),
            },
        }
    }
}

/// The request's dedup key (hex SHA-256) and what the window did with it.
#[derive(Debug, Clone, Serialize)]
pub struct DedupTrace {
    pub key: String,
    pub result: &'static str,
}

/// A refusal lastmile made itself.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorTrace {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamTrace {
    pub status: Option<u16>,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub total: f64,
    pub policy: Option<f64>,
}

/// Milliseconds, with microsecond resolution, for trace fields.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// A record for unit tests of what consumes records.
#[cfg(test)]
pub mod sample {
    use super::*;

    /// A denied call, with no optional part.
    pub fn call() -> TraceRecord {
        TraceRecord {
            route: Some("crm".into()),
            mode: Some("enforce"),
            user: Some("u_bob".into()),
            tool: Some("get_invoice".into()),
            method: "GET".into(),
            path: "/crm/v1/invoices/INV-1".into(),
            outcome: "denied",
            status: 403,
            policy_revision: Some("sha256:826a49ad485c54b0".into()),
            ..TraceRecord::new(
                RecordKind::Call,
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "7c1d6a0e9b3f2a10".into(),
                "2026-11-26T20:21:01.467055Z".into(),
            )
        }
    }
}
