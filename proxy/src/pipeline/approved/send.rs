//! Sending an approved request once, under its dedup window, and keeping the answer.

use super::super::dedup as dedup_step;
use super::super::{Proxy, Route};
use super::{route_gone, Ready, Sent};
use crate::approval::store::{Failure, State};
use crate::dedup::state::{StoredHeader, StoredResponse};
use crate::headers::NEVER_REPLAYED;
use crate::refusal::Refusal;
use crate::response::{replay, ResponseBody, REPLAYED_HEADER};
use crate::trace::record::{millis, UpstreamTrace};
use crate::upstream;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};

impl Proxy {
    /// Sends the request once, under its dedup window when it has one.
    pub(super) async fn send_approved(&self, ready: Ready) -> Sent {
        let Some(route) = self.routes.get(ready.route) else {
            return Sent {
                state: State::Failed,
                response: None,
                failure: Some(route_gone()),
                upstream: None,
            };
        };
        let limit = self
            .approvals
            .as_ref()
            .map_or(0, |a| a.config.max_response_bytes);
        let sent_at = std::time::Instant::now();
        let result = match ready.attempt {
            None => upstream::send(&route.client, ready.request, route.config.timeout)
                .await
                .map(crate::response::respond)
                .map_err(Refusal::from),
            Some(attempt) => self.send_under_window(route, &attempt, ready.request).await,
        };
        let elapsed = sent_at.elapsed();
        route
            .metrics
            .upstream_duration
            .observe(elapsed.as_secs_f64());
        let upstream = |status| {
            Some(UpstreamTrace {
                status,
                latency_ms: millis(elapsed),
            })
        };
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let mut sent = keep(response, limit, route.config.timeout).await;
                sent.upstream = upstream(Some(status));
                sent
            }
            Err(refusal) => {
                let state = match refusal {
                    Refusal::UpstreamTimeout | Refusal::UpstreamFailed => State::OutcomeUnknown,
                    _ => State::Failed,
                };
                Sent {
                    state,
                    response: None,
                    failure: Some(Failure::from_refusal(&refusal)),
                    upstream: upstream(None),
                }
            }
        }
    }

    async fn send_under_window(
        &self,
        route: &Route,
        attempt: &crate::dedup::state::Attempt,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseBody>, Refusal> {
        let begun =
            crate::dedup::begin_or_wait(self.dedup.as_ref(), attempt, route.config.dedup.wait)
                .await;
        match begun.map(dedup_step::Step::from) {
            Ok(dedup_step::Step::Lead { token }) => {
                self.exchange(route, attempt, token, request)
                    .run()
                    .await
                    .response
            }
            Ok(dedup_step::Step::Replay(stored)) => Ok(replay(stored)),
            Ok(dedup_step::Step::Refuse { refusal, .. }) => Err(refusal),
            Err(_) => Err(Refusal::DedupUnavailable),
        }
    }
}

/// Reads the upstream's answer for keeping: 2xx/3xx succeeded, 4xx failed (the
/// upstream refused to act), 5xx outcome unknown. A body over `limit` is not kept; the
/// status is, with a header saying so.
async fn keep(
    response: Response<ResponseBody>,
    limit: usize,
    timeout: std::time::Duration,
) -> Sent {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let state = if status.is_server_error() {
        State::OutcomeUnknown
    } else if status.is_client_error() {
        State::Failed
    } else {
        State::Succeeded
    };
    let mut headers = kept_headers(&parts.headers);
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let body = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            headers.retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
            headers.push(StoredHeader {
                name: "lastmile-body-omitted".into(),
                value: Bytes::from_static(b"the upstream's body was too large or broke off"),
            });
            Bytes::new()
        }
    };
    Sent {
        state,
        response: Some(StoredResponse {
            status: status.as_u16(),
            headers,
            body,
        }),
        failure: failure(state, status),
        upstream: None,
    }
}

/// The headers an approval's stored answer keeps: not those a replay must not repeat.
fn kept_headers(headers: &http::HeaderMap) -> Vec<StoredHeader> {
    headers
        .iter()
        .filter(|(name, _)| !NEVER_REPLAYED.contains(name))
        .filter(|(name, _)| name.as_str() != REPLAYED_HEADER)
        .map(|(name, value)| StoredHeader {
            name: name.as_str().to_string(),
            value: Bytes::copy_from_slice(value.as_bytes()),
        })
        .collect()
}

/// Why an execution the upstream answered did not succeed. The agent gets the
/// upstream's own answer, so its status is the failure's.
fn failure(state: State, status: http::StatusCode) -> Option<Failure> {
    match state {
        State::Failed => Some(Failure::new(
            "upstream_refused",
            format!("the upstream answered {}", status.as_u16()),
            status,
        )),
        State::OutcomeUnknown => Some(Failure::new(
            "upstream_error",
            format!(
                "the upstream answered {}; the outcome is unknown",
                status.as_u16()
            ),
            status,
        )),
        _ => None,
    }
}
