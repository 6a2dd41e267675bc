//! Records as OTLP/HTTP export requests: spans in binary protobuf, and what a collector's
//! answer says it rejected.

use super::span::{request, resource, span_from};
use crate::trace::export::{Encode, Encoded, Wire};
use crate::trace::record::TraceRecord;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::sync::Arc;

/// OTLP/HTTP with binary protobuf. Retried, as the OTLP/HTTP specification says: 429,
/// 502, 503 and 504.
pub const WIRE: Wire = Wire {
    name: "trace spans over OTLP",
    content_type: "application/x-protobuf",
    content_encoding: None,
    retry: |status| {
        matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        )
    },
    rejected,
};

/// Encodes batches as `ExportTraceServiceRequest`s from one resource.
pub struct Spans {
    pub resource: Resource,
}

impl Spans {
    pub fn new(service_name: &str) -> Spans {
        Spans {
            resource: resource(service_name),
        }
    }
}

impl Encode for Spans {
    fn encode(&mut self, records: &[Arc<TraceRecord>]) -> Encoded {
        let spans: Vec<_> = records.iter().filter_map(|r| span_from(r)).collect();
        let invalid = records.len() - spans.len();
        let items = spans.len();
        Encoded {
            body: request(&self.resource, spans).encode_to_vec().into(),
            items,
            invalid,
        }
    }
}

/// The spans a collector's (partial success) answer says it rejected, logged with its
/// explanation.
fn rejected(body: &[u8]) -> u64 {
    let Some(partial) = ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
    else {
        return 0;
    };
    let rejected = u64::try_from(partial.rejected_spans).unwrap_or(0);
    if rejected > 0 || !partial.error_message.is_empty() {
        let message: String = partial.error_message.chars().take(200).collect();
        tracing::warn!(rejected, %message, "the OTLP collector rejected spans");
    }
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn partial_success_counts_rejected_spans() {
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(rejected(&answer.encode_to_vec()), 2);
        assert_eq!(
            rejected(&ExportTraceServiceResponse::default().encode_to_vec()),
            0
        );
        assert_eq!(rejected(b"\xff\xff not protobuf"), 0);
    }
}
