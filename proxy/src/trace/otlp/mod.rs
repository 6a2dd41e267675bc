//! OpenTelemetry export of the decision trace: one span per trace record, sent to an
//! OpenTelemetry Collector (or any OTLP/HTTP endpoint) as binary protobuf, in batches,
//! off the request path (through [`crate::trace::export`]).
//!
//! - [`config`]: the `trace.otlp` settings and their validation;
//! - [`span`]: a record as a span (`span_from`) and the export request around spans;
//! - [`encode`]: batches as export requests, and the collector's answers.
//!
//! Records hold no credentials, so neither do spans; the export headers (a collector's
//! API key) are the only secret here, and they never reach a log, an error or a metric.

pub mod config;
pub mod encode;
pub mod span;

pub use config::{validate, OtlpConfig, RawOtlp};
pub use span::span_from;

use crate::metrics::Metrics;
use crate::trace::export::{Counters, Exporter};
use anyhow::Result;

/// Starts exporting spans as `config` says.
pub fn start(config: &OtlpConfig, metrics: &Metrics) -> Result<Exporter> {
    Exporter::start(
        config.endpoint.clone(),
        encode::WIRE,
        encode::Spans::new(&config.service_name),
        Counters {
            exported: metrics.trace_spans_exported.clone(),
            dropped: metrics.trace_spans_dropped.clone(),
        },
    )
}
