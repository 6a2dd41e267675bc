//! `trace:` as written: where decision records go, in which format, and what they
//! include.

use super::default_true;
use serde::Deserialize;

/// `trace.format`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawTraceFormat {
    #[default]
    Lastmile,
    Opa,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    #[serde(default = "default_trace_output")]
    pub output: String,
    #[serde(default)]
    pub format: RawTraceFormat,
    #[serde(default = "default_ring_size")]
    pub ring_size: usize,
    #[serde(default)]
    pub include_body: bool,
    #[serde(default = "default_true")]
    pub include_input: bool,
    #[serde(default)]
    pub include_response_body: bool,
    #[serde(default = "default_response_body_limit")]
    pub response_body_limit: usize,
    #[serde(default = "default_user_claims")]
    pub user_claims: Vec<String>,
    #[serde(default = "default_redact_fields")]
    pub redact_fields: Vec<String>,
    /// OpenTelemetry export; absent: off.
    #[serde(default)]
    pub otlp: Option<crate::trace::otlp::RawOtlp>,
    #[serde(default)]
    pub decision_logs: Option<crate::trace::decision_log::RawDecisionLogs>,
}

impl Default for RawTrace {
    fn default() -> Self {
        Self {
            output: default_trace_output(),
            format: RawTraceFormat::default(),
            ring_size: default_ring_size(),
            include_body: false,
            include_input: true,
            include_response_body: false,
            response_body_limit: default_response_body_limit(),
            user_claims: default_user_claims(),
            redact_fields: default_redact_fields(),
            otlp: None,
            decision_logs: None,
        }
    }
}

fn default_trace_output() -> String {
    "stdout".into()
}
fn default_ring_size() -> usize {
    1024
}
fn default_response_body_limit() -> usize {
    16 * 1024
}
fn default_user_claims() -> Vec<String> {
    ["sub", "scope", "roles"].map(String::from).to_vec()
}
fn default_redact_fields() -> Vec<String> {
    [
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "authorization",
        "card_number",
        "cvv",
        "iban",
        "ssn",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
