//! The request pipeline, read top to bottom as phases:
//! parse → route → identify → read body → build input → decide → enforce → forward →
//! respond → record.
//!
//! Each phase returns either the value the next phase needs or a [`Refusal`]; every
//! refusal and every forwarded response is recorded (metrics and trace) in one place.

pub mod approved;
pub mod dedup;
pub mod form;
pub mod forward;
pub mod input;
mod park;
pub mod request;
pub mod strict_json;

use crate::approval::Approvals;
use crate::config::{Config, Mode, RouteConfig};
use crate::dedup::key::{self as dedup_key, ClientKey, Fingerprint};
use crate::dedup::state::Attempt;
use crate::dedup::store::DedupStore;
use crate::identity::Verifier;
use crate::metrics::{Metrics, RouteMetrics};
use crate::policy::decision::{self, Decision, Verdict};
use crate::policy::PolicyStore;
use crate::refusal::Refusal;
use crate::route::RouteTable;
use crate::trace::context::TraceContext;
use crate::trace::record::{
    millis, DecisionTrace, DedupTrace, ErrorTrace, Latency, TraceRecord, UpstreamTrace,
};
use crate::trace::{redact, TraceSink};
use crate::upstream::{
    self, credential::Credential, headers::strip_hop_by_hop, UpstreamClient, UpstreamFailure,
};
use anyhow::Result;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use request::BodyView;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The body type of every response lastmile sends.
pub type ResponseBody = BoxBody<Bytes, hyper::Error>;

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

/// The outcome of a request the policy sent for approval and lastmile parked.
const PARKED: &str = "pending_approval";

/// A response from upstream (or replayed), and how lastmile classified the request.
struct Forwarded {
    response: Response<ResponseBody>,
    outcome: &'static str,
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
                    refusal.code(),
                )
            }
        };
        let headers = response.headers_mut();
        headers.insert(DECISION_HEADER, HeaderValue::from_static(outcome));
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

    async fn process(
        &self,
        request: Request<Incoming>,
        trace: &TraceContext,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        if request.method() == Method::CONNECT {
            return Err(Refusal::Connect);
        }
        request::check_framing(request.headers())?;
        let (parts, body) = request.into_parts();
        let absolute_form =
            parts.version < http::Version::HTTP_2 && parts.uri.authority().is_some();
        if !absolute_form {
            if let Some(id) = parts.uri.path().strip_prefix(crate::approval::POLL_PATH) {
                return self.poll(id, &parts, record).await;
            }
        }
        let matched = self
            .table
            .find(&parts.uri, absolute_form)
            .ok_or(Refusal::NoRoute)?;
        let route = self.routes.get(matched.index).ok_or(Refusal::NoRoute)?;
        record.route = Some(route.config.name.clone());
        record.mode = Some(route.config.mode.as_str());
        let segments = request::path_segments(matched.path)?;
        let lastmile_headers: Vec<&http::HeaderName> = [
            self.identity.as_ref().map(Verifier::header),
            route.credential.as_ref().map(Credential::header),
        ]
        .into_iter()
        .flatten()
        .collect();
        request::check_connection(&parts.headers, &lastmile_headers)?;
        let singletons: Vec<&http::HeaderName> = lastmile_headers
            .iter()
            .copied()
            .chain(&route.config.dedup.upstream_idempotency_header)
            .collect();
        request::check_singletons(&parts.headers, &singletons)?;
        // What the policy judges and the fingerprint covers; the request line's method
        // and the override header still go upstream as sent.
        let method = request::effective_method(
            &parts.method,
            &parts.headers,
            route.config.allow_method_override,
        )?;

        let user = match &self.identity {
            Some(verifier) => verifier
                .identify(&parts.headers)
                .map_err(Refusal::Unauthenticated)?,
            None => None,
        };
        record.user = user.as_ref().and_then(|u| u.sub.clone());
        if route.config.require_user && user.is_none() {
            return Err(Refusal::UserRequired);
        }
        let client_key = ClientKey::from_headers(&parts.headers)
            .map_err(Refusal::InvalidIdempotencyKey)?
            .filter(|_| !method.is_safe());

        let body = tokio::time::timeout(
            self.body_read_timeout,
            request::read_body(&parts.headers, body, route.config.max_body_bytes),
        )
        .await
        .map_err(|_| Refusal::BodyTimeout)??;
        let view = request::view_body(&parts.headers, &body, &route.config)?;
        if self.include_body {
            record.request_body = self.redacted_body(&view, body.len());
        }

        let request_fingerprint = client_key.as_ref().map(|_| {
            let body = match view.document() {
                Some(value) => dedup_key::Body::Json(value),
                None => dedup_key::Body::Bytes(&body),
            };
            Fingerprint::of_request(method.as_str(), matched.path, parts.uri.query(), body)
        });

        let policy = self.policy.current();
        record.policy_revision = Some(policy.revision().to_string());
        let decided_at = Instant::now();
        let input = input::build(input::InputParts {
            route: &route.config.name,
            mode: route.config.mode.as_str(),
            method: &method,
            path: matched.path,
            segments,
            query: parts.uri.query(),
            headers: &parts.headers,
            hidden: [
                self.identity.as_ref().map(Verifier::header),
                route.credential.as_ref().map(Credential::header),
            ],
            body: view,
            body_bytes: body.len(),
            user: user.as_ref(),
            now_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        });
        let decision = policy
            .evaluate(input)
            .map_err(|e| format!("evaluation failed: {e}"))
            .and_then(|value| decision::parse(&value).map_err(|e| e.to_string()));
        let policy_time = decided_at.elapsed();
        route
            .metrics
            .policy_duration
            .observe(policy_time.as_secs_f64());
        record.latency_ms.policy = Some(millis(policy_time));
        let (decision, outcome) = enforce(
            route.config.mode,
            self.approvals.is_some(),
            decision,
            record,
        )?;

        let attempt = match route.config.mode {
            Mode::Enforce => dedup::attempt(dedup::Facts {
                route: &route.config,
                decision: decision.as_ref(),
                client_key: client_key.as_ref(),
                request_fingerprint,
                user: user.as_ref(),
            }),
            // Dry-run routes observe; they change nothing, dedup included.
            Mode::DryRun => None,
        };

        if outcome == PARKED {
            let decision = decision.ok_or(Refusal::PolicyError)?;
            return self
                .park(park::Parking {
                    route,
                    reasons: decision.approval,
                    dedup_key: attempt.as_ref().map(|a| a.key.to_string()),
                    method: &parts.method,
                    path: matched.path,
                    query: parts.uri.query(),
                    received_path: parts.uri.path(),
                    headers: &parts.headers,
                    body: &body,
                    user: user.as_ref(),
                    trace,
                    record,
                })
                .await;
        }

        let mut outbound = forward::Outbound {
            method: parts.method,
            path: matched.path,
            query: parts.uri.query(),
            headers: parts.headers,
            body,
        };
        // The agent's key is lastmile's input, and the upstream's idempotency header is
        // lastmile's to set: the agent's copies never cross.
        outbound.headers.remove(dedup_key::IDEMPOTENCY_KEY);
        if let Some(name) = &route.config.dedup.upstream_idempotency_header {
            outbound.headers.remove(name);
        }
        let upstream_request = forward::build(
            &route.config.upstream,
            outbound,
            self.identity.as_ref().map(Verifier::header),
            route.credential.as_ref(),
            decision.as_ref(),
            trace,
        )?;
        let Some(attempt) = attempt else {
            return self.forward(route, upstream_request, outcome, record).await;
        };
        record.dedup = Some(DedupTrace {
            key: attempt.key.to_string(),
            result: "first",
        });
        let begun =
            crate::dedup::begin_or_wait(self.dedup.as_ref(), &attempt, route.config.dedup.wait)
                .await;
        let (result, refusal) = match begun.map(dedup::Step::from) {
            Ok(dedup::Step::Lead { token }) => {
                let exchange = self.exchange(route, &attempt, token, upstream_request);
                return self.lead(route, exchange, outcome, record).await;
            }
            Ok(dedup::Step::Replay(stored)) => {
                self.count_dedup(route, record, "replayed");
                return Ok(Forwarded {
                    response: dedup::replay(stored),
                    outcome: "replayed",
                });
            }
            Ok(dedup::Step::Refuse { result, refusal }) => (result, refusal),
            Err(e) => {
                tracing::warn!(error = %e, route = %route.config.name, "dedup store unavailable");
                self.metrics
                    .dedup_store_errors
                    .with_label_values(&["begin"])
                    .inc();
                ("store_unavailable", Refusal::DedupUnavailable)
            }
        };
        self.count_dedup(route, record, result);
        Err(refusal)
    }

    fn count_dedup(&self, route: &Route, record: &mut TraceRecord, result: &'static str) {
        if let Some(trace) = record.dedup.as_mut() {
            trace.result = result;
        }
        self.metrics
            .dedup
            .with_label_values(&[route.config.name.as_str(), result])
            .inc();
    }

    /// Sends a request that no dedup window governs.
    async fn forward(
        &self,
        route: &Route,
        request: Request<http_body_util::Full<Bytes>>,
        outcome: &'static str,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        let sent_at = Instant::now();
        let result = upstream::send(&route.client, request, route.config.timeout).await;
        let upstream_time = sent_at.elapsed();
        self.record_upstream(
            route,
            record,
            result.as_ref().ok().map(|r| r.status().as_u16()),
            upstream_time,
        );
        match result {
            Ok(response) => Ok(Forwarded {
                response: respond(response),
                outcome,
            }),
            Err(UpstreamFailure::Unreachable) => Err(Refusal::UpstreamUnreachable),
            Err(UpstreamFailure::Timeout) => Err(Refusal::UpstreamTimeout),
            Err(UpstreamFailure::Broken) => Err(Refusal::UpstreamFailed),
        }
    }

    /// The exchange of a key's holder: the route's client and limits, and the key sent
    /// to an upstream that deduplicates on it.
    fn exchange(
        &self,
        route: &Route,
        attempt: &Attempt,
        token: u64,
        mut request: Request<http_body_util::Full<Bytes>>,
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
        outcome: &'static str,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        self.count_dedup(route, record, "first");
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
        elapsed: std::time::Duration,
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

    fn record(
        &self,
        mut record: TraceRecord,
        outcome: &'static str,
        status: u16,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        let route = record.route.as_deref().unwrap_or("none");
        self.metrics
            .requests
            .with_label_values(&[route, outcome])
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
        record.outcome = outcome;
        record.status = status;
        record.latency_ms.total = millis(elapsed);
        self.traces.emit(record);
    }
}

/// Applies precedence and the route's mode to the policy's result. In dry-run mode
/// every verdict is recorded and the request goes on; in enforce mode only an
/// unambiguous allow does, and an approval verdict is parked when `parking` (approvals
/// are configured).
fn enforce(
    mode: Mode,
    parking: bool,
    decision: Result<Decision, String>,
    record: &mut TraceRecord,
) -> Result<(Option<Decision>, &'static str), Refusal> {
    let decision = match decision {
        Ok(decision) => decision,
        Err(detail) => {
            record.error = Some(ErrorTrace {
                code: "policy_error",
                message: detail,
            });
            return match mode {
                Mode::Enforce => Err(Refusal::PolicyError),
                Mode::DryRun => Ok((None, "dry_run_policy_error")),
            };
        }
    };
    let verdict = decision.verdict();
    record.decision = Some(DecisionTrace {
        verdict: match verdict {
            Verdict::Deny => "deny",
            Verdict::Approval => "approval",
            Verdict::Allow => "allow",
        },
        deny: decision.deny.clone(),
        approval: decision.approval.clone(),
        dedup: decision.dedup.is_some(),
        obligations: decision
            .add_headers
            .iter()
            .map(|(name, _)| format!("header:{name}"))
            .chain(
                decision
                    .add_query
                    .iter()
                    .map(|(name, _)| format!("query:{name}")),
            )
            .collect(),
    });
    match (verdict, mode) {
        (Verdict::Allow, _) => Ok((Some(decision), "allowed")),
        (Verdict::Deny, Mode::Enforce) => Err(Refusal::Denied(decision.deny)),
        (Verdict::Approval, Mode::Enforce) if parking => Ok((Some(decision), PARKED)),
        // No approval queue is configured: fail closed rather than forward.
        (Verdict::Approval, Mode::Enforce) => Err(Refusal::ApprovalUnavailable(decision.approval)),
        (Verdict::Deny, Mode::DryRun) => Ok((Some(decision), "dry_run_denied")),
        (Verdict::Approval, Mode::DryRun) => Ok((Some(decision), "dry_run_approval")),
    }
}

/// The upstream's response as it came, minus hop-by-hop headers.
pub(crate) fn respond(response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
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

/// A JSON response with a complete body.
pub fn json_response(status: http::StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
