//! The `trace:` section: where decision records go, in which format, and what they
//! include.

use super::raw::{RawTrace, RawTraceFormat};
use super::resolve;
use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub output: TraceOutput,
    pub format: TraceFormat,
    pub ring_size: usize,
    pub include_body: bool,
    /// Record the policy's input document (redacted) with each call.
    pub include_input: bool,
    /// Record the upstream's JSON body (redacted) up to `response_body_limit`.
    pub include_response_body: bool,
    pub response_body_limit: usize,
    /// The acting user's claims each record names.
    pub user_claims: Vec<String>,
    pub redact_fields: Vec<String>,
    /// OpenTelemetry export of every record as a span; `None`: off.
    pub otlp: Option<crate::trace::otlp::OtlpConfig>,
    /// Upload of every record as an OPA decision-log event; `None`: off.
    pub decision_logs: Option<crate::trace::decision_log::DecisionLogConfig>,
}

/// How records are written: lastmile's own records, or OPA decision-log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    Lastmile,
    Opa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOutput {
    Stdout,
    Off,
    File(PathBuf),
}

pub(super) fn validate_trace(raw: RawTrace, base: &Path) -> Result<TraceConfig> {
    Ok(TraceConfig {
        output: match raw.output.as_str() {
            "stdout" => TraceOutput::Stdout,
            "off" => TraceOutput::Off,
            path => TraceOutput::File(resolve(base, Path::new(path))),
        },
        format: match raw.format {
            RawTraceFormat::Lastmile => TraceFormat::Lastmile,
            RawTraceFormat::Opa => TraceFormat::Opa,
        },
        ring_size: raw.ring_size,
        include_body: raw.include_body,
        include_input: raw.include_input,
        include_response_body: raw.include_response_body,
        response_body_limit: raw.response_body_limit,
        user_claims: raw.user_claims,
        // Field names are matched case-insensitively.
        redact_fields: raw
            .redact_fields
            .iter()
            .map(|f| f.to_ascii_lowercase())
            .collect(),
        otlp: raw.otlp.map(crate::trace::otlp::validate).transpose()?,
        decision_logs: raw
            .decision_logs
            .map(crate::trace::decision_log::validate)
            .transpose()?,
    })
}
