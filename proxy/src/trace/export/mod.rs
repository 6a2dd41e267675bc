//! Exporting trace records over HTTP, off the request path: to an OpenTelemetry
//! Collector ([`crate::trace::otlp`]) or an OPA decision-log service
//! ([`crate::trace::decision_log`]).
//!
//! - [`endpoint`]: the URL and headers (secrets) of an export, validated;
//! - [`batch`]: the bounded queue, the batching task, what it counts;
//! - [`deliver`]: one batch's delivery, with retries.

pub mod batch;
pub mod deliver;
pub mod endpoint;

pub use batch::{Counters, Encode, Encoded, Exporter};
pub use deliver::Wire;
pub use endpoint::Endpoint;
