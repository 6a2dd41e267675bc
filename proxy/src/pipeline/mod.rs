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
use crate::trace::record::{millis, ErrorTrace, Latency, TraceRecord};
use crate::trace::{redact, TraceSink};
use crate::upstream::{self, credential::Credential, UpstreamClient};
use anyhow::Result;
use enforce::Enforced;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
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
        let trace = TraceContext::from_headers(request.headers());
        let mut record = TraceRecord {
            trace_id: trace.trace_id.clone(),
            span_id: trace.span_id.clone(),
            time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            route: None,
            mode: None,
            user: None,
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            outcome: "",
            status: 0,
            decision: None,
            policy_revision: None,
            error: None,
            upstream: None,
            dedup: None,
            latency_ms: Latency::default(),
            request_body: None,
            approval: None,
        };
        let processed = match self.in_flight.try_acquire() {
            Ok(_permit) => self.process(request, &trace, &mut record).await,
            Err(_) => Err(Refusal::Overloaded),
        };
        let (mut response, outcome) = match processed {
            Ok(forwarded) => (forwarded.response, forwarded.outcome),
            Err(refusal) => {
                record.error.get_or_insert_with(|| ErrorTrace {
                    code: refusal.code(),
                    message: refusal.to_string(),
                });
                (
                    refuse(&refusal, &trace.trace_id, record.policy_revision.as_deref()),
                    Outcome::from(&refusal),
                )
            }
        };
        let headers = response.headers_mut();
        headers.insert(DECISION_HEADER, HeaderValue::from_static(outcome.label()));
        if let Ok(id) = HeaderValue::from_str(&trace.trace_id) {
            headers.insert(TRACE_HEADER, id);
        }
        if let Some(key) = record
            .dedup
            .as_ref()
            .and_then(|d| HeaderValue::from_str(&d.key).ok())
        {
            headers.insert(dedup::KEY_HEADER, key);
        }
        self.record(record, outcome, response.status().as_u16(), started);
        response
    }

    /// The phases of a live request, in order.
    async fn process(
        &self,
        request: Request<Incoming>,
        trace: &TraceContext,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        let parsed = receive::parse(request)?;
        if let Some(id) = parsed.poll_id() {
            return self.poll(id, &parsed.parts, record).await;
        }
        let routed = self.route(&parsed, record)?;
        let route = routed.route;
        let effective = self.check_headers(route, &parsed.parts)?;
        let user = self.identify(route, &parsed.parts, record)?;
        let inbound = self
            .read(routed, parsed.parts, parsed.body, effective, user)
            .await?;
        if self.include_body {
            record.request_body = self.redacted_body(&inbound.view, inbound.body.len());
        }
        let decided = self.decide(route, &inbound, Value::Null);
        record.policy_revision = Some(decided.revision);
        record.latency_ms.policy = Some(millis(decided.elapsed));
        let parking = self.approvals.is_some();
        match enforce::enforce(route.config.mode, parking, decided.result, record)? {
            Enforced::Park(decision) => self.park(route, inbound, decision, trace, record).await,
            Enforced::Forward { decision, outcome } => {
                self.send(route, inbound, decision, outcome, trace, record)
                    .await
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

    /// Record: the request counted by route and outcome, timed, and its trace line
    /// written.
    fn record(&self, mut record: TraceRecord, outcome: Outcome, status: u16, started: Instant) {
        let elapsed = started.elapsed();
        let route = record.route.as_deref().unwrap_or("none");
        self.metrics
            .requests
            .with_label_values(&[route, outcome.label()])
            .inc();
        match self
            .routes
            .iter()
            .find(|r| Some(&r.config.name) == record.route.as_ref())
        {
            Some(r) => r.metrics.request_duration.observe(elapsed.as_secs_f64()),
            None => self
                .metrics
                .request_duration
                .with_label_values(&["none"])
                .observe(elapsed.as_secs_f64()),
        }
        record.outcome = outcome.label();
        record.status = status;
        record.latency_ms.total = millis(elapsed);
        self.traces.emit(record);
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
