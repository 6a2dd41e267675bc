//! Delivering one encoded batch to the collector (OTLP/HTTP, binary protobuf), with
//! retries. Retried, as the OTLP/HTTP specification says: 429, 502, 503 and 504 (waiting
//! at least the `Retry-After` the collector gives), a failed connection and a timed-out
//! attempt; any other answer is final. Nothing here names a header value: the export
//! headers are secrets (and are marked sensitive, so hyper never indexes them in HPACK).

use super::OtlpConfig;
use crate::upstream::{client_with, UpstreamClient};
use anyhow::Result;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::time::Duration;
use tokio::time::Instant;

/// Attempts per batch (the first and three retries).
const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a retry, whatever `Retry-After` asks: a collector asking for
/// more has the batch dropped instead, so newer spans are not held up behind it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The collector's answer is a small protobuf message; a larger body is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted; the collector may still have rejected some spans (partial success).
    Accepted { rejected: u64 },
    /// Not accepted after the attempts allowed, or refused for good.
    Failed,
}

/// The collector's endpoint, with the client and headers to reach it.
pub struct Collector {
    client: UpstreamClient,
    config: OtlpConfig,
}

impl Collector {
    pub fn new(config: OtlpConfig) -> Result<Collector> {
        Ok(Collector {
            client: client_with(None, config.timeout)?,
            config,
        })
    }

    /// Sends `body` (an encoded `ExportTraceServiceRequest` of `spans` spans), retrying
    /// as allowed; no attempt or wait runs past `deadline`.
    pub async fn deliver(&self, body: Bytes, spans: usize, deadline: Instant) -> Delivered {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let problem = match self
                .attempt(body.clone(), self.config.timeout.min(left))
                .await
            {
                Ok(rejected) => return Delivered::Accepted { rejected },
                Err(Attempt::Final(problem)) => {
                    tracing::warn!(spans, %problem, "OTLP export refused; spans dropped");
                    return Delivered::Failed;
                }
                Err(Attempt::Retry { problem, after }) => {
                    backoff = backoff.max(after.unwrap_or_default());
                    problem
                }
            };
            let wait = backoff;
            if attempt == MAX_ATTEMPTS || wait > MAX_BACKOFF || Instant::now() + wait >= deadline {
                tracing::warn!(spans, attempts = attempt, %problem, "OTLP export failed; spans dropped");
                break;
            }
            tracing::debug!(spans, attempt, %problem, "OTLP export failed; retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Delivered::Failed
    }

    /// One POST; `Ok` holds how many spans the collector rejected.
    async fn attempt(&self, body: Bytes, timeout: Duration) -> Result<u64, Attempt> {
        let mut request = Request::post(self.config.endpoint.clone())
            .body(Full::new(body))
            .map_err(|e| Attempt::Final(e.to_string()))?;
        let headers = request.headers_mut();
        headers.extend(self.config.headers.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Attempt::Retry {
                    problem: chain(&e),
                    after: None,
                })?;
            let status = response.status();
            let after = retry_after(response.headers());
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes());
            if !status.is_success() {
                let problem = format!("the collector answered {status}");
                return Err(match status {
                    StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT => Attempt::Retry { problem, after },
                    _ => Attempt::Final(problem),
                });
            }
            // The spans were taken; an unreadable answer does not make them lost.
            Ok(body.map_or(0, |body| rejected(&body)))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Attempt::Retry {
                    problem: format!("no answer within {timeout:?}"),
                    after: None,
                })
            })
    }
}

/// Why an attempt failed.
enum Attempt {
    Retry {
        problem: String,
        after: Option<Duration>,
    },
    Final(String),
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

/// `Retry-After` in seconds (the HTTP-date form is not used by collectors).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse().ok().map(Duration::from_secs)
}

/// An error with its causes: hyper's own message alone says little ("client error").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(" 3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
