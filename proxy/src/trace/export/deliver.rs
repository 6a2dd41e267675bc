//! Delivering one encoded batch to an endpoint, with retries: the statuses its
//! [`Wire`] names (waiting at least the `Retry-After` the server gives), a failed
//! connection and a timed-out attempt; any other answer is final. Nothing here names a
//! header value: the export headers are secrets (and are marked sensitive, so hyper never
//! indexes them in HPACK).

use super::endpoint::Endpoint;
use crate::upstream::{client_with, UpstreamClient};
use anyhow::Result;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;
use tokio::time::Instant;

/// Attempts per batch (the first and three retries).
const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a retry, whatever `Retry-After` asks: a collector asking for
/// more has the batch dropped instead, so newer spans are not held up behind it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The server's answer is a small message; a larger body is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How a kind of export speaks HTTP.
pub struct Wire {
    /// What is exported, for logs (`trace spans over OTLP`, `decision logs`).
    pub name: &'static str,
    pub content_type: &'static str,
    /// Set when the encoder compresses the body.
    pub content_encoding: Option<&'static str>,
    /// The statuses worth another attempt.
    pub retry: fn(StatusCode) -> bool,
    /// How many of a batch's items an accepted answer says were rejected.
    pub rejected: fn(&[u8]) -> u64,
}

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted; the collector may still have rejected some spans (partial success).
    Accepted { rejected: u64 },
    /// Not accepted after the attempts allowed, or refused for good.
    Failed,
}

/// The endpoint, with the client and headers to reach it.
pub struct Collector {
    client: UpstreamClient,
    endpoint: Endpoint,
    wire: Wire,
}

impl Collector {
    pub fn new(endpoint: Endpoint, wire: Wire) -> Result<Collector> {
        Ok(Collector {
            client: client_with(None, endpoint.timeout)?,
            endpoint,
            wire,
        })
    }

    /// Sends `body` (an encoded batch of `items` items), retrying as allowed; no attempt
    /// or wait runs past `deadline`.
    pub async fn deliver(&self, body: Bytes, items: usize, deadline: Instant) -> Delivered {
        let what = self.wire.name;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let problem = match self
                .attempt(body.clone(), self.endpoint.timeout.min(left))
                .await
            {
                Ok(rejected) => return Delivered::Accepted { rejected },
                Err(Attempt::Final(problem)) => {
                    tracing::warn!(items, %problem, "exporting {what} refused; dropped");
                    return Delivered::Failed;
                }
                Err(Attempt::Retry { problem, after }) => {
                    backoff = backoff.max(after.unwrap_or_default());
                    problem
                }
            };
            let wait = backoff;
            if attempt == MAX_ATTEMPTS || wait > MAX_BACKOFF || Instant::now() + wait >= deadline {
                tracing::warn!(items, attempts = attempt, %problem, "exporting {what} failed; dropped");
                break;
            }
            tracing::debug!(items, attempt, %problem, "exporting {what} failed; retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Delivered::Failed
    }

    /// One POST; `Ok` holds how many items the server rejected.
    async fn attempt(&self, body: Bytes, timeout: Duration) -> Result<u64, Attempt> {
        let mut request = Request::post(self.endpoint.url.clone())
            .body(Full::new(body))
            .map_err(|e| Attempt::Final(e.to_string()))?;
        let headers = request.headers_mut();
        headers.extend(self.endpoint.headers.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.wire.content_type),
        );
        if let Some(encoding) = self.wire.content_encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
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
                let problem = format!("the server answered {status}");
                return Err(if (self.wire.retry)(status) {
                    Attempt::Retry { problem, after }
                } else {
                    Attempt::Final(problem)
                });
            }
            // The items were taken; an unreadable answer does not make them lost.
            Ok(body.map_or(0, |body| (self.wire.rejected)(&body)))
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
