//! Decision logs to an OPA-compatible decision-log service: the records as OPA
//! decision-log events ([`crate::trace::opa`]), uploaded in gzipped JSON arrays as OPA's
//! own decision logger does (`POST` of `Content-Type: application/json`,
//! `Content-Encoding: gzip`), in batches, off the request path (through
//! [`crate::trace::export`]). Services built for OPA (its decision-log API, log
//! pipelines that ingest it) take lastmile's decisions unchanged.

pub mod config;
mod encode;

pub use config::{validate, DecisionLogConfig, RawDecisionLogs};

use crate::metrics::Metrics;
use crate::trace::export::{Counters, Exporter};
use anyhow::Result;

/// Starts uploading decision logs as `config` says; `entrypoint` names the decision.
pub fn start(config: &DecisionLogConfig, entrypoint: &str, metrics: &Metrics) -> Result<Exporter> {
    Exporter::start(
        config.endpoint.clone(),
        encode::WIRE,
        encode::Events::new(entrypoint),
        Counters {
            exported: metrics.decision_logs_exported.clone(),
            dropped: metrics.decision_logs_dropped.clone(),
        },
    )
}
