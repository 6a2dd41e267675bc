//! The request pipeline, read top to bottom as phases. A live request:
//!
//! parse → route → check headers → identify → read body ([`receive`]) → decide
//! ([`decide`]) → enforce ([`enforce`]) → park ([`park`]) | send ([`send`]: replay or
//! forward) → respond → record.
//!
//! The front phases build one [`inbound::Inbound`]: the request as the policy judges it.
//! An approved execution builds the same value from the stored request and goes through
//! the same decide and send phases ([`approved`]). Each phase returns the value the next
//! needs or a [`Refusal`]; every answer is recorded (metrics and trace) in one place,
//! last.

mod annotate;
pub mod approved;
pub mod decide;
pub mod dedup;
mod enforce;
pub mod form;
pub mod forward;
mod inbound;
pub mod input;
mod journal;
pub mod outcome;
mod own;
mod park;
mod poll;
mod receive;
mod record;
pub mod request;
mod send;
pub mod strict_json;

use crate::approval::Approvals;
use crate::config::Config;
use crate::dedup::store::DedupStore;
use crate::identity::Verifier;
use crate::metrics::Metrics;
use crate::policy::PolicyStore;
use crate::ready::{Ready, Route};
use crate::refusal::Refusal;
use crate::response::{json_response, ResponseBody};
use crate::route::RouteTable;
use crate::trace::context::TraceContext;
use crate::trace::TraceSink;
use anyhow::Result;
use enforce::Enforced;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use journal::{note_decision, Journal};
use outcome::Outcome;
use record::{Asked, Ended, TraceSettings};
use regorus::Value;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Response header naming what lastmile did with the request.
pub const DECISION_HEADER: &str = "lastmile-decision";
/// Request bodies larger than this are not copied into traces.
pub(crate) const TRACE_BODY_LIMIT: usize = 16 * 1024;

/// Response header carrying the trace id, for looking the request up later.
pub const TRACE_HEADER: &str = "lastmile-trace-id";

/// The proxy: everything a request needs, shared by all connections.
pub struct Proxy {
    routes: Vec<Route>,
    table: RouteTable,
    policy: Arc<PolicyStore>,
    identity: Option<Verifier>,
    metrics: Metrics,
    traces: TraceSink,
    trace: TraceSettings,
    dedup: Arc<dyn DedupStore>,
    body_read_timeout: std::time::Duration,
    /// Requests in progress; when none is left, new requests are shed (503).
    in_flight: tokio::sync::Semaphore,
    /// The approval queue, when configured; without it approvals fail closed.
    approvals: Option<Arc<Approvals>>,
    annotations: annotate::AnnotationLimiter,
}

/// A response from upstream (or replayed, or a parked request's 202), and how lastmile
/// classified the request.
struct Forwarded {
    response: Response<ResponseBody>,
    outcome: Outcome,
}

impl Proxy {
    pub fn new(
        config: &Config,
        ready: Ready,
        policy: Arc<PolicyStore>,
        metrics: Metrics,
        traces: TraceSink,
        dedup: Arc<dyn DedupStore>,
        approvals: Option<Arc<Approvals>>,
    ) -> Result<Proxy> {
        let Ready {
            routes,
            table,
            identity,
        } = ready;
        Ok(Proxy {
            routes,
            table,
            policy,
            identity,
            metrics,
            traces,
            trace: TraceSettings::new(&config.trace),
            dedup,
            body_read_timeout: config.server.body_read_timeout,
            in_flight: tokio::sync::Semaphore::new(config.server.max_in_flight),
            approvals,
            annotations: annotate::AnnotationLimiter::default(),
        })
    }

    /// The acting user's verifier, when identity is configured.
    pub fn identity(&self) -> Option<&Verifier> {
        self.identity.as_ref()
    }

    /// Handles one agent request; never fails: every problem becomes a refusal.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let started = Instant::now();
        let arrived = SystemTime::now();
        let trace = TraceContext::from_headers(request.headers());
        let asked = Asked {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
        };
        let mut journal = Journal::default();
        let processed = match self.in_flight.try_acquire() {
            Ok(_permit) => self.process(request, &trace, &mut journal).await,
            Err(_) => Err(Refusal::Overloaded),
        };
        let (mut response, outcome, refusal) = match processed {
            Ok(forwarded) => (forwarded.response, forwarded.outcome, None),
            Err(refusal) => (
                refuse(&refusal, &trace.trace_id, journal.policy_revision()),
                Outcome::from(&refusal),
                Some(refusal),
            ),
        };
        let headers = response.headers_mut();
        headers.insert(DECISION_HEADER, HeaderValue::from_static(outcome.label()));
        if let Ok(id) = HeaderValue::from_str(&trace.trace_id) {
            headers.insert(TRACE_HEADER, id);
        }
        if let Some(key) = journal
            .dedup
            .as_ref()
            .and_then(|d| HeaderValue::from_str(&d.key).ok())
        {
            headers.insert(dedup::KEY_HEADER, key);
        }
        let ended = Ended {
            outcome,
            status: response.status().as_u16(),
            refusal,
            elapsed: started.elapsed(),
        };
        self.record(&trace, arrived, asked, journal, ended, response)
    }

    /// The phases of a live request, in order. What each phase finds out is noted in
    /// the journal as it returns, for the record phase.
    async fn process(
        &self,
        request: Request<Incoming>,
        trace: &TraceContext,
        journal: &mut Journal,
    ) -> Result<Forwarded, Refusal> {
        let parsed = match self
            .serve_own_endpoint(receive::parse(request)?, trace, journal)
            .await
        {
            ControlFlow::Break(answer) => return answer,
            ControlFlow::Continue(parsed) => parsed,
        };
        let routed = self.route(&parsed)?;
        journal.route = Some(routed.index);
        let route = routed.route;
        let effective = self.check_headers(route, &parsed.parts)?;
        journal.user_input = user_input(&parsed.parts.headers)?;
        let user = self.identify(route, &parsed.parts);
        if let Ok(Some(u)) = &user {
            journal.user = u.sub.clone();
            journal.claims = Some(u.claims.clone());
        }
        let inbound = self
            .read(routed, parsed.parts, parsed.body, effective, user?)
            .await?;
        let mut decided = self.decide(route, &inbound, Value::Null);
        note_decision(journal, &mut decided, inbound.body.len());
        self.act(route, inbound, decided, trace, journal).await
    }

    /// Enforces the decision: parks the request for approval, or sends it (or replays
    /// a duplicate's answer); a refusal returns as `Err`.
    async fn act(
        &self,
        route: &Route,
        inbound: inbound::Inbound,
        decided: decide::Decided,
        trace: &TraceContext,
        journal: &mut Journal,
    ) -> Result<Forwarded, Refusal> {
        let parking = self.approvals.is_some();
        match enforce::enforce(route.config.mode, parking, decided.result)? {
            Enforced::Park(decision) => {
                let (parked, id) = self
                    .park(route, inbound, decision, &decided.revision, trace)
                    .await?;
                journal.parked = Some(id);
                Ok(parked)
            }
            Enforced::Forward { decision, outcome } => {
                let (answer, sending) = self.send(route, inbound, decision, outcome, trace).await;
                journal.dedup = sending.dedup;
                journal.upstream = sending.upstream;
                answer
            }
        }
    }
}

/// A refusal lastmile makes itself.
fn refuse(
    refusal: &Refusal,
    trace_id: &str,
    policy_revision: Option<&str>,
) -> Response<ResponseBody> {
    let mut response = json_response(refusal.status(), refusal.body(trace_id, policy_revision));
    if let Some(seconds) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The agent names the user's words behind a call in this header, percent-encoded; it
/// is recorded, never forwarded.
pub const USER_INPUT_HEADER: &str = "lastmile-user-input";
/// The longest user input a call may carry (decoded).
const MAX_USER_INPUT_BYTES: usize = 8 * 1024;

/// The user's words from [`USER_INPUT_HEADER`], when sent: once, percent-encoded UTF-8,
/// within [`MAX_USER_INPUT_BYTES`].
fn user_input(headers: &http::HeaderMap) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(USER_INPUT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::BadUserInput(
            "lastmile-user-input was sent more than once",
        ));
    }
    if value.len() > MAX_USER_INPUT_BYTES * 3 {
        return Err(Refusal::BadUserInput("lastmile-user-input is too long"));
    }
    let decoded = percent_encoding::percent_decode(value.as_bytes())
        .decode_utf8()
        .map_err(|_| Refusal::BadUserInput("lastmile-user-input is not percent-encoded UTF-8"))?;
    if decoded.len() > MAX_USER_INPUT_BYTES {
        return Err(Refusal::BadUserInput("lastmile-user-input is too long"));
    }
    Ok(Some(decoded.into_owned()))
}
