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
mod park;
mod poll;
mod receive;
pub mod request;
mod send;
pub mod strict_json;

use crate::approval::Approvals;
use crate::config::{Config, RouteConfig};
use crate::dedup::store::DedupStore;
use crate::identity::Verifier;
use crate::metrics::{Metrics, RouteMetrics};
use crate::policy::PolicyStore;
use crate::refusal::Refusal;
use crate::response::{json_response, ResponseBody};
use crate::route::RouteTable;
use crate::trace::context::TraceContext;
use crate::trace::record::{
    millis, ApprovalTrace, DecisionTrace, ErrorTrace, Latency, TraceRecord,
};
use crate::trace::{redact, TraceSink};
use crate::upstream::{self, credential::Credential, UpstreamClient};
use anyhow::Result;
use enforce::Enforced;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use journal::Journal;
use outcome::Outcome;
use regorus::Value;
use request::BodyView;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Response header naming what lastmile did with the request.
pub const DECISION_HEADER: &str = "lastmile-decision";
/// Request bodies larger than this are not copied into traces.
const TRACE_BODY_LIMIT: usize = 16 * 1024;

/// Response header carrying the trace id, for looking the request up later.
pub const TRACE_HEADER: &str = "lastmile-trace-id";

/// A configured route with its ready objects.
struct Route {
    config: RouteConfig,
    client: UpstreamClient,
    credential: Option<Credential>,
    metrics: RouteMetrics,
}

/// The proxy: everything a request needs, shared by all connections.
pub struct Proxy {
    routes: Vec<Route>,
    table: RouteTable,
    policy: Arc<PolicyStore>,
    identity: Option<Verifier>,
    metrics: Metrics,
    traces: TraceSink,
    include_body: bool,
    redact_fields: Vec<String>,
    dedup: Arc<dyn DedupStore>,
    body_read_timeout: std::time::Duration,
    /// Requests in progress; when none is left, new requests are shed (503).
    in_flight: tokio::sync::Semaphore,
    /// The approval queue, when configured; without it approvals fail closed.
    approvals: Option<Arc<Approvals>>,
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
        policy: Arc<PolicyStore>,
        metrics: Metrics,
        traces: TraceSink,
        dedup: Arc<dyn DedupStore>,
        approvals: Option<Arc<Approvals>>,
    ) -> Result<Proxy> {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Ok(Route {
                    client: upstream::client(r)?,
                    credential: r.credential.as_ref().map(Credential::new),
                    metrics: metrics.for_route(&r.name),
                    config: r.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let table = RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| (r.prefix.as_deref(), r.hosts.as_slice())),
        );
        let identity = config.identity.as_ref().map(Verifier::new).transpose()?;
        Ok(Proxy {
            routes,
            table,
            policy,
            identity,
            metrics,
            traces,
            include_body: config.trace.include_body,
            redact_fields: config.trace.redact_fields.clone(),
            dedup,
            body_read_timeout: config.server.body_read_timeout,
            in_flight: tokio::sync::Semaphore::new(config.server.max_in_flight),
            approvals,
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
        self.record(&trace, arrived, asked, journal, ended);
        response
    }

    /// The phases of a live request, in order. What each phase finds out is noted in
    /// the journal as it returns, for the record phase.
    async fn process(
        &self,
        request: Request<Incoming>,
        trace: &TraceContext,
        journal: &mut Journal,
    ) -> Result<Forwarded, Refusal> {
        let parsed = receive::parse(request)?;
        if let Some(id) = parsed.poll_id() {
            let user = self.verify_user(&parsed.parts)?;
            journal.user = user.and_then(|u| u.sub);
            return self.poll(id, &parsed.parts, journal.user.as_deref()).await;
        }
        let routed = self.route(&parsed)?;
        journal.route = Some(routed.index);
        let route = routed.route;
        let effective = self.check_headers(route, &parsed.parts)?;
        let user = self.identify(route, &parsed.parts);
        journal.user = user.as_ref().ok().and_then(|u| u.as_ref()?.sub.clone());
        let inbound = self
            .read(routed, parsed.parts, parsed.body, effective, user?)
            .await?;
        if self.include_body {
            journal.request_body = self.redacted_body(&inbound.view, inbound.body.len());
        }
        let decided = self.decide(route, &inbound, Value::Null);
        journal.policy = Some((decided.revision.clone(), decided.elapsed));
        match &decided.result {
            Ok(decision) => journal.decision = Some(DecisionTrace::from(decision)),
            Err(failure) => journal.policy_failure = Some(failure.to_string()),
        }
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

    /// The body for the trace, redacted; bodies over [`TRACE_BODY_LIMIT`] are replaced
    /// by their size, which keeps the in-memory ring of recent traces bounded.
    fn redacted_body(&self, view: &BodyView, len: usize) -> Option<serde_json::Value> {
        let value = view.document()?;
        if len > TRACE_BODY_LIMIT {
            return Some(serde_json::json!({"omitted_bytes": len}));
        }
        let mut json = serde_json::to_value(value).ok()?;
        redact::redact(&mut json, &self.redact_fields);
        Some(json)
    }

    /// Record, last: the request counted by route and outcome, timed, and its trace
    /// line built from the journal and written.
    fn record(
        &self,
        trace: &TraceContext,
        arrived: SystemTime,
        asked: Asked,
        journal: Journal,
        ended: Ended,
    ) {
        let route = journal.route.and_then(|i| self.routes.get(i));
        let route_name = route.map_or("none", |r| r.config.name.as_str());
        self.metrics
            .requests
            .with_label_values(&[route_name, ended.outcome.label()])
            .inc();
        let seconds = ended.elapsed.as_secs_f64();
        match route {
            Some(r) => r.metrics.request_duration.observe(seconds),
            None => self
                .metrics
                .request_duration
                .with_label_values(&["none"])
                .observe(seconds),
        }
        // A policy failure is the policy's error even on a dry-run route, which
        // forwards regardless; otherwise the refusal lastmile answered with.
        let error = match (&journal.policy_failure, &ended.refusal) {
            (Some(message), _) => Some(ErrorTrace {
                code: Refusal::PolicyError.code(),
                message: message.clone(),
            }),
            (None, Some(refusal)) => Some(ErrorTrace {
                code: refusal.code(),
                message: refusal.to_string(),
            }),
            (None, None) => None,
        };
        let (policy_revision, policy_time) = journal.policy.unzip();
        self.traces.emit(TraceRecord {
            trace_id: trace.trace_id.clone(),
            span_id: trace.span_id.clone(),
            parent_span_id: trace.parent_span_id.clone(),
            time: humantime::format_rfc3339_micros(arrived).to_string(),
            route: route.map(|r| r.config.name.clone()),
            mode: route.map(|r| r.config.mode.as_str()),
            user: journal.user,
            method: asked.method,
            path: asked.path,
            outcome: ended.outcome.label(),
            status: ended.status,
            decision: journal.decision,
            policy_revision,
            error,
            upstream: journal.upstream,
            dedup: journal.dedup,
            latency_ms: Latency {
                total: millis(ended.elapsed),
                policy: policy_time.map(millis),
            },
            request_body: journal.request_body,
            approval: journal.parked.map(|id| ApprovalTrace {
                id,
                from: None,
                to: "pending",
                actor: None,
                comment: None,
                failure: None,
            }),
        });
    }
}

/// What the agent asked for, as the trace names it: the method and the path as
/// received, without the query (queries can carry secrets).
struct Asked {
    method: String,
    path: String,
}

/// How the request ended.
struct Ended {
    outcome: Outcome,
    status: u16,
    refusal: Option<Refusal>,
    elapsed: std::time::Duration,
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
