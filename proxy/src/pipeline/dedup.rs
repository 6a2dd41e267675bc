//! The dedup step: which window a request falls under, the first request's exchange
//! under its lease, and replays of its response.

use super::outcome::DedupResult;
use crate::config::RouteConfig;
use crate::dedup::key::{self, Actor, ClientKey, Fingerprint, Intent, Key};
use crate::dedup::state::{Attempt, Begin, Finish, StoredHeader, StoredResponse};
use crate::dedup::store::DedupStore;
use crate::headers::{strip_hop_by_hop, NEVER_REPLAYED};
use crate::identity::User;
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::response::{respond, ResponseBody};
use crate::upstream::{self, UpstreamClient, UpstreamFailure};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Response header carrying the dedup key, for operators (`GET /dedup/{key}`).
pub const KEY_HEADER: &str = "lastmile-dedup-key";

/// The request facts the dedup step needs.
pub struct Facts<'a> {
    pub route: &'a RouteConfig,
    pub decision: Option<&'a Decision>,
    pub client_key: Option<&'a ClientKey>,
    /// The whole request's fingerprint, computed when the agent sent a key.
    pub request_fingerprint: Option<Fingerprint>,
    pub user: Option<&'a User>,
}

/// The window this request falls under, if any: the policy's intent, the agent's
/// `Idempotency-Key`, or both (then the agent's key names the window and the intent
/// must match on reuse).
pub fn attempt(facts: Facts<'_>) -> Option<Attempt> {
    let intent = facts.decision.and_then(|d| d.dedup.as_ref());
    let sub = facts.user.and_then(|u| u.sub.as_deref());
    let route = facts.route;
    let (key, fingerprint, window) = match (intent, facts.client_key) {
        (None, None) => return None,
        (Some(intent), None) => {
            let actor = if intent.shared {
                Actor::Anyone
            } else {
                Actor::User(sub)
            };
            let key = key::derive(&route.name, actor, Intent::Policy(&intent.key));
            (key, Fingerprint::of_intent(&intent.key), intent.window)
        }
        (intent, Some(client)) => {
            let key = key::derive(&route.name, Actor::User(sub), Intent::Client(client));
            let (fingerprint, window) = match intent {
                Some(intent) => (Fingerprint::of_intent(&intent.key), intent.window),
                None => (facts.request_fingerprint?, route.dedup.client_key_window),
            };
            (key, fingerprint, window)
        }
    };
    Some(Attempt {
        key,
        fingerprint,
        window,
        // The holder's whole exchange is bounded by connect + head + body timeouts.
        lease: route.connect_timeout + route.timeout * 2 + Duration::from_secs(5),
        retry_unknown: route.dedup.upstream_idempotency_header.is_some(),
    })
}

/// What a begun dedup attempt means for the request: go upstream holding the key, answer
/// with the stored response, or refuse it, counted in `lastmile_dedup_total` as `result`.
pub enum Step {
    Lead {
        token: u64,
    },
    Replay(StoredResponse),
    Refuse {
        result: DedupResult,
        refusal: Refusal,
    },
}

impl From<Begin> for Step {
    fn from(begin: Begin) -> Step {
        let (result, refusal) = match begin {
            Begin::Taken { token } => return Step::Lead { token },
            Begin::Completed(stored) => return Step::Replay(stored),
            Begin::InFlight => (DedupResult::InFlightConflict, Refusal::DuplicateInFlight),
            Begin::Unknown { reason } => (DedupResult::Unknown, Refusal::OutcomeUnknown(reason)),
            Begin::NotRetained { status } => (
                DedupResult::NotRetained,
                Refusal::CompletedNotRetained(status),
            ),
            Begin::Mismatch => (DedupResult::Mismatch, Refusal::IdempotencyKeyMismatch),
            Begin::Full => (DedupResult::StoreFull, Refusal::DedupFull),
        };
        Step::Refuse { result, refusal }
    }
}

/// What the first request's exchange produced.
pub struct Led {
    pub response: Result<Response<ResponseBody>, Refusal>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Duration,
    /// The outcome could not be recorded: duplicates will see the lease lapse.
    pub store_error: Option<String>,
}

/// Everything the exchange needs, owned, so it can run to completion on its own task
/// even if the agent hangs up: the outcome must be recorded either way.
pub struct Exchange {
    pub store: Arc<dyn DedupStore>,
    pub client: UpstreamClient,
    pub request: Request<Full<Bytes>>,
    pub timeout: Duration,
    pub key: Key,
    pub token: u64,
    pub max_stored_body_bytes: usize,
    pub unknown_hold: Option<Duration>,
}

impl Exchange {
    pub async fn run(self) -> Led {
        let sent_at = Instant::now();
        let result = upstream::send(&self.client, self.request, self.timeout).await;
        let upstream_time = sent_at.elapsed();
        let upstream_status = result.as_ref().ok().map(|r| r.status().as_u16());
        let unknown = |reason: String| Finish::Unknown {
            reason,
            hold: self.unknown_hold,
        };
        let (finish, response) = match result {
            // Nothing was sent: a retry is safe.
            Err(UpstreamFailure::Unreachable) => (
                Finish::Release,
                Err(Refusal::from(UpstreamFailure::Unreachable)),
            ),
            Err(failure) => {
                let refusal = Refusal::from(failure);
                (unknown(refusal.code().into()), Err(refusal))
            }
            // The upstream refused to act: a corrected retry may go through.
            Ok(response) if response.status().is_client_error() => {
                (Finish::Release, Ok(respond(response)))
            }
            Ok(response) if response.status().is_server_error() => (
                unknown(format!("upstream_status_{}", response.status().as_u16())),
                Ok(respond(response)),
            ),
            Ok(response) => keep(response, self.max_stored_body_bytes, self.timeout).await,
        };
        let store_error = self
            .store
            .finish(&self.key, self.token, finish)
            .await
            .err()
            .map(|e| e.to_string());
        Led {
            response,
            upstream_status,
            upstream_time,
            store_error,
        }
    }
}

/// Reads a successful response's body for replay, up to `limit` bytes. A larger body is
/// passed through as it streams and recorded by status only.
async fn keep(
    response: Response<Incoming>,
    limit: usize,
    timeout: Duration,
) -> (Finish, Result<Response<ResponseBody>, Refusal>) {
    let (mut parts, mut body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let status = parts.status.as_u16();
    let not_retained = Finish::NotRetained { status };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut kept = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not replayed
                };
                kept.extend_from_slice(&data);
                if kept.len() > limit {
                    let rest = Prefixed {
                        prefix: Some(kept.freeze()),
                        rest: body,
                    };
                    return (not_retained, Ok(Response::from_parts(parts, rest.boxed())));
                }
            }
            // The upstream acted (it sent a success status) but the body was lost.
            Ok(Some(Err(_))) | Err(_) => return (not_retained, Err(Refusal::UpstreamFailed)),
        }
    }
    let body = kept.freeze();
    let stored = StoredResponse {
        status,
        headers: replayable(&parts.headers),
        body: body.clone(),
    };
    let body = Full::new(body).map_err(|never| match never {}).boxed();
    (
        Finish::Completed(stored),
        Ok(Response::from_parts(parts, body)),
    )
}

/// Headers worth replaying: not `Set-Cookie` (a session must not be handed out twice)
/// nor `Date` (the replay is sent now); hop-by-hop ones are already gone.
fn replayable(headers: &HeaderMap) -> Vec<StoredHeader> {
    headers
        .iter()
        .filter(|(name, _)| !NEVER_REPLAYED.contains(name))
        .map(|(name, value)| StoredHeader {
            name: name.as_str().to_string(),
            value: Bytes::copy_from_slice(value.as_bytes()),
        })
        .collect()
}

/// The part of a body already read, then the rest as it arrives.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Incoming,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + prefix);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint
    }
}
