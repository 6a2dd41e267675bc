//! The shape of one decision trace line (documented in the README).

use crate::policy::decision::{Decision, Reason, Verdict};
use serde::Serialize;

/// One request, from arrival to response head.
#[derive(Debug, Clone, Serialize)]
pub struct TraceRecord {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<serde_json::Value>,
    /// Set on requests that were parked, and on every later transition of their approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalTrace>,
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
}

impl From<&Decision> for DecisionTrace {
    /// The decision as the trace records it: verdict, reasons, whether a dedup intent
    /// was named, and the obligations by name (never their values).
    fn from(decision: &Decision) -> DecisionTrace {
        DecisionTrace {
            verdict: match decision.verdict() {
                Verdict::Deny => "deny",
                Verdict::Approval => "approval",
                Verdict::Allow => "allow",
            },
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
