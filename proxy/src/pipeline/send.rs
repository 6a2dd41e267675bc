//! The send phase: the allowed request goes upstream once, under its dedup window when it
//! has one, and the upstream's real answer comes back.

use super::dedup::{self, Step};
use super::inbound::Inbound;
use super::journal::Sending;
use super::outcome::{DedupResult, Outcome};
use super::{Forwarded, Proxy, Route};
use crate::config::Mode;
use crate::dedup::state::Attempt;
use crate::dedup::store::StoreError;
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::response::{replay, respond};
use crate::trace::context::TraceContext;
use crate::trace::record::{millis, DedupTrace, UpstreamTrace};
use crate::upstream;
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use std::time::{Duration, Instant};

impl Proxy {
    /// The dedup window a request falls under: on enforce routes, when the decision
    /// names an intent or the agent sent an `Idempotency-Key`. Dry-run routes observe;
    /// they change nothing, dedup included.
    pub(super) fn attempt(
        &self,
        route: &Route,
        inbound: &Inbound,
        decision: Option<&Decision>,
    ) -> Option<Attempt> {
        match route.config.mode {
            Mode::Enforce => dedup::attempt(dedup::Facts {
                route: &route.config,
                decision,
                client_key: inbound.client_key.as_ref(),
                request_fingerprint: inbound.fingerprint(),
                user: inbound.user.as_ref(),
            }),
            Mode::DryRun => None,
        }
    }

    /// Send: builds the upstream request and sends it, at most once per dedup intent. A
    /// refusal before sending (credential, dedup store) is lastmile's or the window's and
    /// a retry may succeed; after sending, the upstream's failure says whether the
    /// outcome is unknown (then a retry is not safe). Besides the answer, it tells what
    /// the window and the upstream did.
    pub(super) async fn send(
        &self,
        route: &Route,
        inbound: Inbound,
        decision: Option<Decision>,
        outcome: Outcome,
        trace: &TraceContext,
    ) -> (Result<Forwarded, Refusal>, Sending) {
        let mut sending = Sending::default();
        let attempt = self.attempt(route, &inbound, decision.as_ref());
        // Resolved before the dedup window opens: a call that cannot get its credential
        // is refused with nothing sent and nothing held in the window.
        let credential = match &route.credential {
            None => None,
            Some(c) => match c.value(inbound.user.as_ref()).await {
                Ok(value) => Some(value),
                Err(e) => return (Err(e.into()), sending),
            },
        };
        let identity = self.identity.as_ref();
        let request =
            match inbound.upstream_request(route, identity, credential, decision.as_ref(), trace) {
                Ok(request) => request,
                Err(refusal) => return (Err(refusal), sending),
            };
        let Some(attempt) = attempt else {
            let (answer, upstream) = self.forward(route, request, outcome).await;
            sending.upstream = Some(upstream);
            return (answer, sending);
        };
        self.send_once(route, &attempt, request, outcome).await
    }

    /// Sends under the dedup window: the first of an intent's requests leads and goes
    /// upstream; a duplicate gets the leader's stored answer replayed, or a refusal.
    async fn send_once(
        &self,
        route: &Route,
        attempt: &Attempt,
        request: Request<Full<Bytes>>,
        outcome: Outcome,
    ) -> (Result<Forwarded, Refusal>, Sending) {
        let mut sending = Sending::default();
        let key = attempt.key.to_string();
        let begun =
            crate::dedup::begin_or_wait(self.dedup.as_ref(), attempt, route.config.dedup.wait)
                .await;
        let (result, answer) = match begun.map(Step::from) {
            Ok(Step::Lead { token }) => {
                // Counted before the exchange: a duplicate arriving meanwhile sees it.
                self.count_dedup(route, DedupResult::First);
                let exchange = self.exchange(route, attempt, token, request);
                let (answer, upstream) = self.lead(route, exchange, outcome).await;
                sending.upstream = upstream;
                sending.dedup = Some(DedupTrace {
                    key,
                    result: DedupResult::First.label(),
                });
                return (answer, sending);
            }
            Ok(Step::Replay(stored)) => (
                DedupResult::Replayed,
                Ok(Forwarded {
                    response: replay(stored),
                    outcome: Outcome::Replayed,
                }),
            ),
            Ok(Step::Refuse { result, refusal }) => (result, Err(refusal)),
            Err(e) => self.dedup_unavailable(route, &e),
        };
        self.count_dedup(route, result);
        sending.dedup = Some(DedupTrace {
            key,
            result: result.label(),
        });
        (answer, sending)
    }

    /// Without the window's store, lastmile cannot tell a duplicate: it refuses rather
    /// than risk sending twice.
    fn dedup_unavailable(
        &self,
        route: &Route,
        error: &StoreError,
    ) -> (DedupResult, Result<Forwarded, Refusal>) {
        tracing::warn!(error = %error, route = %route.config.name, "dedup store unavailable");
        self.metrics
            .dedup_store_errors
            .with_label_values(&["begin"])
            .inc();
        (
            DedupResult::StoreUnavailable,
            Err(Refusal::DedupUnavailable),
        )
    }

    fn count_dedup(&self, route: &Route, result: DedupResult) {
        self.metrics
            .dedup
            .with_label_values(&[route.config.name.as_str(), result.label()])
            .inc();
    }

    /// Sends a request that no dedup window governs.
    async fn forward(
        &self,
        route: &Route,
        request: Request<Full<Bytes>>,
        outcome: Outcome,
    ) -> (Result<Forwarded, Refusal>, UpstreamTrace) {
        let sent_at = Instant::now();
        let result = upstream::send(&route.client, request, route.config.timeout).await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        let upstream = self.time_upstream(route, status, sent_at.elapsed());
        let answer = match result {
            Ok(response) => Ok(Forwarded {
                response: respond(response),
                outcome,
            }),
            Err(failure) => Err(failure.into()),
        };
        (answer, upstream)
    }

    /// The exchange of a key's holder: the route's client and limits, and the key sent
    /// to an upstream that deduplicates on it.
    pub(super) fn exchange(
        &self,
        route: &Route,
        attempt: &Attempt,
        token: u64,
        mut request: Request<Full<Bytes>>,
    ) -> dedup::Exchange {
        if let Some(name) = &route.config.dedup.upstream_idempotency_header {
            if let Ok(value) = HeaderValue::from_str(&attempt.key.to_string()) {
                request.headers_mut().insert(name.clone(), value);
            }
        }
        dedup::Exchange {
            store: self.dedup.clone(),
            client: route.client.clone(),
            request,
            timeout: route.config.timeout,
            key: attempt.key,
            token,
            max_stored_body_bytes: route.config.dedup.max_stored_body_bytes,
            unknown_hold: route.config.dedup.unknown_hold,
        }
    }

    /// Sends the first request of a dedup window. The exchange runs on its own task so
    /// that its outcome is recorded even when the agent disconnects mid-call.
    async fn lead(
        &self,
        route: &Route,
        exchange: dedup::Exchange,
        outcome: Outcome,
    ) -> (Result<Forwarded, Refusal>, Option<UpstreamTrace>) {
        let Ok(led) = tokio::spawn(exchange.run()).await else {
            return (Err(Refusal::UpstreamFailed), None);
        };
        let upstream = self.time_upstream(route, led.upstream_status, led.upstream_time);
        if let Some(error) = led.store_error {
            tracing::error!(%error, route = %route.config.name, "recording a dedup outcome failed; duplicates will see the lease lapse");
            self.metrics
                .dedup_store_errors
                .with_label_values(&["finish"])
                .inc();
        }
        let answer = led.response.map(|response| Forwarded { response, outcome });
        (answer, Some(upstream))
    }

    /// Counts the upstream's time and describes the exchange for the trace.
    fn time_upstream(
        &self,
        route: &Route,
        status: Option<u16>,
        elapsed: Duration,
    ) -> UpstreamTrace {
        route
            .metrics
            .upstream_duration
            .observe(elapsed.as_secs_f64());
        UpstreamTrace {
            status,
            latency_ms: millis(elapsed),
        }
    }
}
