//! Deciding on a parked request, and executing an approved one exactly once.
//!
//! Approving is the atomic move `pending → approved`, so of two approvers (or an
//! approver and a denier) exactly one wins. The winner re-evaluates the policy against
//! the current bundle with `input.approval` set; if it now denies, the approval fails
//! and nothing is sent. Otherwise `approved → executing` (again atomic), the request
//! goes upstream once through the same credential injection and dedup windows as any
//! request, and the upstream's answer is stored for the agent.

use super::dedup::{self as dedup_step, Exchange};
use super::{forward, input, request, Proxy, ResponseBody, Route};
use crate::approval::auth::Approver;
use crate::approval::rfc3339;
use crate::approval::store::{Approval, Failure, State, StoreError, Transition, Transitioned};
use crate::config::Mode;
use crate::dedup::key::{self as dedup_key, ClientKey, Fingerprint};
use crate::dedup::state::{Begin, StoredHeader, StoredResponse};
use crate::identity::User;
use crate::policy::decision::{self, Verdict};
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use crate::upstream::{self, UpstreamFailure};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use regorus::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// Why a decision was not applied.
#[derive(Debug)]
pub enum DecideError {
    /// Approvals are not configured.
    Disabled,
    NotFound,
    /// The approver is the acting user of the request.
    SelfApproval,
    /// The approval is no longer pending (decided, expired); as it is now.
    Conflict(Box<Approval>),
    Store(StoreError),
}

impl From<StoreError> for DecideError {
    fn from(e: StoreError) -> Self {
        DecideError::Store(e)
    }
}

/// An approved request ready to send.
struct Ready {
    route: usize,
    request: Request<Full<Bytes>>,
    attempt: Option<crate::dedup::state::Attempt>,
}

/// What sending produced.
struct Sent {
    state: State,
    response: Option<StoredResponse>,
    failure: Option<Failure>,
}

fn failure(code: &str, message: impl Into<String>) -> Failure {
    Failure {
        code: code.into(),
        message: message.into(),
        reasons: Vec::new(),
    }
}

impl Proxy {
    /// Approves and executes; returns the approval as it ended (or as it is, if another
    /// replica is executing it).
    pub async fn approve(
        self: &Arc<Self>,
        id: &str,
        approver: &Approver,
        comment: Option<String>,
    ) -> Result<Approval, DecideError> {
        let approved = self.decide(id, approver, comment, State::Approved).await?;
        // Executed on its own task so it completes, and records its outcome, even if the
        // approver's connection goes away mid-call.
        let proxy = self.clone();
        let running = tokio::spawn(async move { proxy.execute(approved).await });
        running
            .await
            .map_err(|e| DecideError::Store(StoreError(format!("execution task failed: {e}"))))
    }

    pub async fn deny(
        &self,
        id: &str,
        approver: &Approver,
        comment: Option<String>,
    ) -> Result<Approval, DecideError> {
        self.decide(id, approver, comment, State::Denied).await
    }

    async fn decide(
        &self,
        id: &str,
        approver: &Approver,
        comment: Option<String>,
        to: State,
    ) -> Result<Approval, DecideError> {
        let approvals = self.approvals.as_ref().ok_or(DecideError::Disabled)?;
        let current = approvals.get(id).await?.ok_or(DecideError::NotFound)?;
        if current.user.as_deref() == Some(approver.name.as_str()) {
            return Err(DecideError::SelfApproval);
        }
        let transition = Transition {
            from: State::Pending,
            to,
            at_ms: approvals.now_ms(),
            actor: approver.name.clone(),
            comment: comment.filter(|c| !c.trim().is_empty()),
            response: None,
            failure: None,
        };
        match approvals.transition(id, transition).await? {
            Transitioned::Done(approval) => Ok(approval),
            Transitioned::Conflict(approval) => Err(DecideError::Conflict(Box::new(approval))),
            Transitioned::NotFound => Err(DecideError::NotFound),
        }
    }

    /// Executes an approved request: re-evaluation, then at most one upstream call.
    pub async fn execute(&self, approval: Approval) -> Approval {
        let Some(approvals) = self.approvals.as_ref() else {
            return approval;
        };
        let ready = match self.prepare(&approval) {
            Ok(ready) => ready,
            Err(failed) => {
                return self
                    .finish(
                        &approval,
                        State::Approved,
                        State::Failed,
                        None,
                        Some(failed),
                    )
                    .await
            }
        };
        let executing = Transition::system(State::Approved, State::Executing, approvals.now_ms());
        match approvals.transition(&approval.id, executing).await {
            Ok(Transitioned::Done(_)) => {}
            // Someone else is executing it (or it is gone): never send twice.
            Ok(Transitioned::Conflict(current)) => return current,
            Ok(Transitioned::NotFound) => return approval,
            Err(e) => {
                tracing::error!(error = %e, id = %approval.id, "starting an approved execution");
                return approval;
            }
        }
        let sent = self.send_approved(ready).await;
        self.finish(
            &approval,
            State::Executing,
            sent.state,
            sent.response,
            sent.failure,
        )
        .await
    }

    async fn finish(
        &self,
        approval: &Approval,
        from: State,
        to: State,
        response: Option<StoredResponse>,
        failure: Option<Failure>,
    ) -> Approval {
        let Some(approvals) = self.approvals.as_ref() else {
            return approval.clone();
        };
        let mut t = Transition::system(from, to, approvals.now_ms());
        t.response = response;
        t.failure = failure;
        match approvals.transition(&approval.id, t).await {
            Ok(Transitioned::Done(a) | Transitioned::Conflict(a)) => a,
            Ok(Transitioned::NotFound) => approval.clone(),
            Err(e) => {
                // The row stays `executing`; the next start marks it outcome_unknown.
                tracing::error!(error = %e, id = %approval.id, "recording an approval's outcome");
                approval.clone()
            }
        }
    }

    /// Re-evaluates the policy and builds the upstream request, or says why not.
    fn prepare(&self, a: &Approval) -> Result<Ready, Failure> {
        let index = self
            .routes
            .iter()
            .position(|r| r.config.name == a.route)
            .ok_or_else(|| failure("route_gone", "the request's route is no longer configured"))?;
        let route = &self.routes[index];
        let bad = |r: Refusal| Failure {
            code: r.code().into(),
            message: r.to_string(),
            reasons: Vec::new(),
        };
        let method = Method::from_bytes(a.request.method.as_bytes())
            .map_err(|_| failure("bad_request", "the stored method is invalid"))?;
        let headers = stored_headers(&a.request.headers);
        let segments = request::path_segments(&a.request.path).map_err(bad)?;
        let view = request::view_body(&headers, &a.body).map_err(bad)?;
        let user = a.user_claims.clone().map(|claims| User {
            sub: a.user.clone(),
            claims: Value::from(claims),
        });
        let body = Bytes::from(a.body.clone());
        let client_key = ClientKey::from_headers(&headers)
            .map_err(|e| bad(Refusal::InvalidIdempotencyKey(e)))?
            .filter(|_| !method.is_safe());
        let fingerprint = client_key.as_ref().map(|_| {
            let b = match &view {
                request::BodyView::Json(value) => dedup_key::Body::Json(value),
                _ => dedup_key::Body::Bytes(&body),
            };
            Fingerprint::of_request(
                method.as_str(),
                &a.request.path,
                a.request.query.as_deref(),
                b,
            )
        });
        let decision =
            self.reevaluate(route, a, &method, segments, &headers, view, user.as_ref())?;
        let attempt = match route.config.mode {
            Mode::Enforce => dedup_step::attempt(dedup_step::Facts {
                route: &route.config,
                decision: Some(&decision),
                client_key: client_key.as_ref(),
                request_fingerprint: fingerprint,
                user: user.as_ref(),
            }),
            Mode::DryRun => None,
        };
        let mut headers = headers;
        if attempt.is_some() {
            headers.remove(dedup_key::IDEMPOTENCY_KEY);
        }
        let outbound = forward::Outbound {
            method,
            path: &a.request.path,
            query: a.request.query.as_deref(),
            headers,
            body,
        };
        let request = forward::build(
            &route.config.upstream,
            outbound,
            self.identity
                .as_ref()
                .map(crate::identity::Verifier::header),
            route.credential.as_ref(),
            Some(&decision),
            &TraceContext::within(&a.trace_id),
        )
        .map_err(bad)?;
        Ok(Ready {
            route: index,
            request,
            attempt,
        })
    }

    /// The policy again, on the current bundle, with `input.approval` set. Its approval
    /// reasons no longer park (this is the approved execution); a deny still refuses.
    #[allow(clippy::too_many_arguments)]
    fn reevaluate(
        &self,
        route: &Route,
        a: &Approval,
        method: &Method,
        segments: Vec<String>,
        headers: &HeaderMap,
        view: request::BodyView,
        user: Option<&User>,
    ) -> Result<decision::Decision, Failure> {
        let mut approval = BTreeMap::new();
        approval.insert(
            Value::from("approved_by"),
            Value::from(a.decided_by.clone().unwrap_or_default()),
        );
        approval.insert(
            Value::from("approved_at"),
            Value::from(a.decided_ms.map(rfc3339).unwrap_or_default()),
        );
        approval.insert(Value::from("approval_id"), Value::from(a.id.as_str()));
        let parts = input::InputParts {
            route: &route.config.name,
            mode: route.config.mode.as_str(),
            method,
            path: &a.request.path,
            segments,
            query: a.request.query.as_deref(),
            headers,
            hidden: [
                self.identity
                    .as_ref()
                    .map(crate::identity::Verifier::header),
                route.credential.as_ref().map(|c| c.header()),
            ],
            body: view,
            body_bytes: a.body.len(),
            user,
            now_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        };
        let input = input::build_with_approval(parts, Value::from(approval));
        let policy = self.policy.current();
        let decision = policy
            .evaluate(input)
            .map_err(|e| format!("evaluation failed: {e}"))
            .and_then(|value| decision::parse(&value).map_err(|e| e.to_string()))
            .map_err(|detail| {
                failure(
                    "policy_error",
                    format!(
                        "the policy did not produce a valid decision on re-evaluation: {detail}"
                    ),
                )
            })?;
        if decision.verdict() == Verdict::Deny {
            return Err(Failure {
                code: "denied".into(),
                message: format!(
                    "the policy ({}) now denies this request; it was not sent",
                    policy.revision()
                ),
                reasons: decision.deny,
            });
        }
        Ok(decision)
    }

    /// Sends the request once, under its dedup window when it has one.
    async fn send_approved(&self, ready: Ready) -> Sent {
        let Some(route) = self.routes.get(ready.route) else {
            return Sent {
                state: State::Failed,
                response: None,
                failure: Some(failure("route_gone", "the route is no longer configured")),
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
                .map(super::respond)
                .map_err(|f| match f {
                    UpstreamFailure::Unreachable => Refusal::UpstreamUnreachable,
                    UpstreamFailure::Timeout => Refusal::UpstreamTimeout,
                    UpstreamFailure::Broken => Refusal::UpstreamFailed,
                }),
            Some(attempt) => self.send_under_window(route, &attempt, ready.request).await,
        };
        route
            .metrics
            .upstream_duration
            .observe(sent_at.elapsed().as_secs_f64());
        match result {
            Ok(response) => keep(response, limit, route.config.timeout).await,
            Err(refusal) => {
                let state = match refusal {
                    Refusal::UpstreamTimeout | Refusal::UpstreamFailed => State::OutcomeUnknown,
                    _ => State::Failed,
                };
                Sent {
                    state,
                    response: None,
                    failure: Some(failure(refusal.code(), refusal.to_string())),
                }
            }
        }
    }

    async fn send_under_window(
        &self,
        route: &Route,
        attempt: &crate::dedup::state::Attempt,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseBody>, Refusal> {
        let begun =
            crate::dedup::begin_or_wait(self.dedup.as_ref(), attempt, route.config.dedup.wait)
                .await;
        match begun {
            Ok(Begin::Taken { token }) => {
                if let Some(name) = &route.config.dedup.upstream_idempotency_header {
                    if let Ok(value) = HeaderValue::from_str(&attempt.key.to_string()) {
                        request.headers_mut().insert(name.clone(), value);
                    }
                }
                let exchange = Exchange {
                    store: self.dedup.clone(),
                    client: route.client.clone(),
                    request,
                    timeout: route.config.timeout,
                    key: attempt.key,
                    token,
                    max_stored_body_bytes: route.config.dedup.max_stored_body_bytes,
                    unknown_hold: route.config.dedup.unknown_hold,
                };
                exchange.run().await.response
            }
            Ok(Begin::Completed(stored)) => Ok(dedup_step::replay(stored)),
            Ok(Begin::InFlight) => Err(Refusal::DuplicateInFlight),
            Ok(Begin::Unknown { reason }) => Err(Refusal::OutcomeUnknown(reason)),
            Ok(Begin::NotRetained { status }) => Err(Refusal::CompletedNotRetained(status)),
            Ok(Begin::Mismatch) => Err(Refusal::IdempotencyKeyMismatch),
            Ok(Begin::Full) => Err(Refusal::DedupFull),
            Err(_) => Err(Refusal::DedupUnavailable),
        }
    }
}

fn stored_headers(stored: &[StoredHeader]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in stored {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(name, value);
        }
    }
    headers
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
    let mut headers: Vec<StoredHeader> = parts
        .headers
        .iter()
        .filter(|(name, _)| **name != http::header::SET_COOKIE && **name != http::header::DATE)
        .filter(|(name, _)| name.as_str() != dedup_step::REPLAYED_HEADER)
        .map(|(name, value)| StoredHeader {
            name: name.as_str().to_string(),
            value: Bytes::copy_from_slice(value.as_bytes()),
        })
        .collect();
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
    let failure = match state {
        State::Failed => Some(failure(
            "upstream_refused",
            format!("the upstream answered {}", status.as_u16()),
        )),
        State::OutcomeUnknown => Some(failure(
            "upstream_error",
            format!(
                "the upstream answered {}; the outcome is unknown",
                status.as_u16()
            ),
        )),
        _ => None,
    };
    Sent {
        state,
        response: Some(StoredResponse {
            status: status.as_u16(),
            headers,
            body,
        }),
        failure,
    }
}
