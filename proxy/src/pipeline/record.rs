//! The record phase, last: the request counted by route and outcome, timed, and its
//! trace record built from the journal. An answer that came from the upstream (sent on,
//! or replayed) is recorded when its body has been sent: the record holds the body's
//! size and digest (and, when configured, the body) as the agent got it.

mod tap;

use super::journal::Journal;
use super::outcome::Outcome;
use super::Proxy;
use crate::refusal::Refusal;
use crate::response::ResponseBody;
use crate::trace::context::TraceContext;
use crate::trace::record::{millis, ApprovalTrace, ErrorTrace, Latency, RecordKind, TraceRecord};
use crate::trace::recorded::RecordedInput;
use http::Response;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tap::Tapped;

/// What the agent asked for, as the trace names it: the method and the path as
/// received, without the query (queries can carry secrets).
pub(super) struct Asked {
    pub method: String,
    pub path: String,
}

/// How the request ended.
pub(super) struct Ended {
    pub outcome: Outcome,
    pub status: u16,
    pub refusal: Option<Refusal>,
    pub elapsed: Duration,
}

/// What the trace keeps of each call (from `trace.*`).
pub(super) struct TraceSettings {
    pub include_body: bool,
    pub include_input: bool,
    pub include_response_body: bool,
    pub response_body_limit: usize,
    pub redact_fields: Arc<[String]>,
    pub user_claims: Vec<String>,
}

impl TraceSettings {
    pub fn new(config: &crate::config::TraceConfig) -> TraceSettings {
        TraceSettings {
            include_body: config.include_body,
            include_input: config.include_input,
            include_response_body: config.include_response_body,
            response_body_limit: config.response_body_limit,
            redact_fields: Arc::from(config.redact_fields.clone()),
            user_claims: config.user_claims.clone(),
        }
    }
}

impl Proxy {
    /// Record: counts and times the request, builds its trace record, and emits it, now
    /// or (for an upstream's answer) once its body has been sent.
    pub(super) fn record(
        &self,
        trace: &TraceContext,
        arrived: SystemTime,
        asked: Asked,
        journal: Journal,
        ended: Ended,
        response: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        self.count(&journal, &ended);
        if let Some(mut annotation) = journal.annotation {
            annotation.latency_ms.total = millis(ended.elapsed);
            self.traces.emit(annotation);
            return response;
        }
        let from_upstream = matches!(
            ended.outcome,
            Outcome::Allowed
                | Outcome::Replayed
                | Outcome::DryRunDenied
                | Outcome::DryRunApproval
                | Outcome::DryRunPolicyError
        );
        let record = self.trace_record(trace, arrived, asked, journal, ended);
        if !from_upstream {
            self.traces.emit(record);
            return response;
        }
        let capture = self
            .trace
            .include_response_body
            .then_some(self.trace.response_body_limit);
        let (parts, body) = response.into_parts();
        let tapped = Tapped::new(
            body,
            capture,
            record,
            self.traces.clone(),
            self.trace.redact_fields.clone(),
        );
        Response::from_parts(parts, tapped.boxed())
    }

    fn count(&self, journal: &Journal, ended: &Ended) {
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
    }

    fn trace_record(
        &self,
        trace: &TraceContext,
        arrived: SystemTime,
        asked: Asked,
        journal: Journal,
        ended: Ended,
    ) -> TraceRecord {
        let route = journal.route.and_then(|i| self.routes.get(i));
        let error = error_trace(&journal, &ended);
        let mut decision = journal.decision;
        if let Some(d) = decision.as_mut() {
            d.obligation_values.redact(&self.trace.redact_fields);
        }
        let (policy_revision, policy_time) = journal.policy.unzip();
        TraceRecord {
            kind: RecordKind::Call,
            trace_id: trace.trace_id.clone(),
            span_id: trace.span_id.clone(),
            parent_span_id: trace.parent_span_id.clone(),
            time: humantime::format_rfc3339_micros(arrived).to_string(),
            route: route.map(|r| r.config.name.clone()),
            mode: route.map(|r| r.config.mode.as_str()),
            credential: route
                .and_then(|r| r.credential.as_ref())
                .map(|c| c.acting(journal.user.as_deref(), journal.claims.as_ref())),
            user: journal.user,
            user_claims: journal.claims.as_ref().map(|c| self.named_claims(c)),
            user_input: journal.user_input,
            tool: journal.tool,
            method: asked.method,
            path: asked.path,
            outcome: ended.outcome.label(),
            status: ended.status,
            decision,
            policy_revision,
            error,
            upstream: journal.upstream,
            dedup: journal.dedup,
            latency_ms: Latency {
                total: millis(ended.elapsed),
                policy: policy_time.map(millis),
            },
            call: journal.input.map(|document| RecordedInput {
                document,
                redact: self.trace.redact_fields.clone(),
                include_input: self.trace.include_input,
                include_body: self.trace.include_body,
            }),
            response: None,
            annotation: None,
            approval: journal.parked.map(parked),
        }
    }

    /// The claims `trace.user_claims` names, as JSON (absent ones left out).
    fn named_claims(&self, claims: &regorus::Value) -> serde_json::Value {
        let named = self
            .trace
            .user_claims
            .iter()
            .filter_map(|name| {
                let value = &claims[name.as_str()];
                if matches!(value, regorus::Value::Undefined) {
                    return None;
                }
                let json = serde_json::to_value(value).ok()?;
                Some((name.clone(), json))
            })
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(named)
    }
}

/// A policy failure is the policy's error even on a dry-run route, which forwards
/// regardless; otherwise the refusal lastmile answered with.
fn error_trace(journal: &Journal, ended: &Ended) -> Option<ErrorTrace> {
    match (&journal.policy_failure, &ended.refusal) {
        (Some(message), _) => Some(ErrorTrace {
            code: Refusal::PolicyError.code(),
            message: message.clone(),
        }),
        (None, Some(refusal)) => Some(ErrorTrace {
            code: refusal.code(),
            message: refusal.to_string(),
        }),
        (None, None) => None,
    }
}

/// A parked request's record names its approval, now pending.
fn parked(id: String) -> ApprovalTrace {
    ApprovalTrace {
        id,
        from: None,
        to: "pending",
        actor: None,
        comment: None,
        failure: None,
    }
}
