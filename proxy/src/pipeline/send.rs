//! The send phase: the allowed request goes upstream once, under its dedup window when it
//! has one, and the upstream's real answer comes back.

use super::dedup::{self, Step};
use super::inbound::Inbound;
use super::outcome::{DedupResult, Outcome};
use super::{Forwarded, Proxy, Route};
use crate::config::Mode;
use crate::dedup::state::Attempt;
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::response::{replay, respond};
use crate::trace::context::TraceContext;
use crate::trace::record::{millis, DedupTrace, TraceRecord, UpstreamTrace};
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
    /// outcome is unknown (then a retry is not safe).
    pub(super) async fn send(
        &self,
        route: &Route,
        inbound: Inbound,
        decision: Option<Decision>,
        outcome: Outcome,
        trace: &TraceContext,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        let attempt = self.attempt(route, &inbound, decision.as_ref());
        let request =
            inbound.upstream_request(route, self.identity.as_ref(), decision.as_ref(), trace)?;
        let Some(attempt) = attempt else {
            return self.forward(route, request, outcome, record).await;
        };
        record.dedup = Some(DedupTrace {
            key: attempt.key.to_string(),
            result: DedupResult::First.label(),
        });
        let begun =
            crate::dedup::begin_or_wait(self.dedup.as_ref(), &attempt, route.config.dedup.wait)
                .await;
        let (result, refusal) = match begun.map(Step::from) {
            Ok(Step::Lead { token }) => {
                let exchange = self.exchange(route, &attempt, token, request);
                return self.lead(route, exchange, outcome, record).await;
            }
            Ok(Step::Replay(stored)) => {
                self.count_dedup(route, record, DedupResult::Replayed);
                return Ok(Forwarded {
                    response: replay(stored),
                    outcome: Outcome::Replayed,
                });
            }
            Ok(Step::Refuse { result, refusal }) => (result, refusal),
            Err(e) => {
                tracing::warn!(error = %e, route = %route.config.name, "dedup store unavailable");
                self.metrics
                    .dedup_store_errors
                    .with_label_values(&["begin"])
                    .inc();
                (DedupResult::StoreUnavailable, Refusal::DedupUnavailable)
            }
        };
        self.count_dedup(route, record, result);
        Err(refusal)
    }

    fn count_dedup(&self, route: &Route, record: &mut TraceRecord, result: DedupResult) {
        if let Some(trace) = record.dedup.as_mut() {
            trace.result = result.label();
        }
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
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        let sent_at = Instant::now();
        let result = upstream::send(&route.client, request, route.config.timeout).await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        self.record_upstream(route, record, status, sent_at.elapsed());
        match result {
            Ok(response) => Ok(Forwarded {
                response: respond(response),
                outcome,
            }),
            Err(failure) => Err(failure.into()),
        }
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
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        self.count_dedup(route, record, DedupResult::First);
        let led = tokio::spawn(exchange.run())
            .await
            .map_err(|_| Refusal::UpstreamFailed)?;
        self.record_upstream(route, record, led.upstream_status, led.upstream_time);
        if let Some(error) = led.store_error {
            tracing::error!(%error, route = %route.config.name, "recording a dedup outcome failed; duplicates will see the lease lapse");
            self.metrics
                .dedup_store_errors
                .with_label_values(&["finish"])
                .inc();
        }
        led.response.map(|response| Forwarded { response, outcome })
    }

    fn record_upstream(
        &self,
        route: &Route,
        record: &mut TraceRecord,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        route
            .metrics
            .upstream_duration
            .observe(elapsed.as_secs_f64());
        record.upstream = Some(UpstreamTrace {
            status,
            latency_ms: millis(elapsed),
        });
    }
}
