//! OpenTelemetry export of the decision trace: one span per trace record, sent to an
//! OpenTelemetry Collector (or any OTLP/HTTP endpoint) as binary protobuf, in batches,
//! off the request path.
//!
//! - [`config`]: the `trace.otlp` settings and their validation;
//! - [`span`]: a record as a span (`span_from`) and the export request around spans;
//! - `export`: the bounded queue and the batching task;
//! - `send`: one batch's delivery, with retries.
//!
//! Records hold no credentials, so neither do spans; the export headers (a collector's
//! API key) are the only secret here, and they never reach a log, an error or a metric.

pub mod config;
mod export;
mod send;
pub mod span;

pub use config::{validate, OtlpConfig, RawOtlp};
pub use export::Exporter;
pub use span::span_from;
