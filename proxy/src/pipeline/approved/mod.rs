//! Deciding on a parked request, and executing an approved one exactly once.
//!
//! Approving is the atomic move `pending → approved`, so of two approvers (or an
//! approver and a denier) exactly one wins. The winner re-evaluates the policy against
//! the current bundle with `input.approval` set; if it now denies, the approval fails
//! and nothing is sent. Otherwise `approved → executing` (again atomic), the request
//! goes upstream once through the same credential injection and dedup windows as any
//! request, and the upstream's answer is stored for the agent.

mod prepare;
mod send;

use super::Proxy;
use crate::approval::auth::Approver;
use crate::approval::store::{Approval, Failure, State, StoreError, Transition, Transitioned};
use crate::dedup::state::StoredResponse;
use crate::trace::record::{millis, Executed, UpstreamTrace};
use crate::trace::recorded::RecordedResponse;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::sync::Arc;

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
    /// The re-evaluation, for the trace.
    judged: Executed,
}

/// What sending produced.
struct Sent {
    state: State,
    response: Option<StoredResponse>,
    failure: Option<Failure>,
    upstream: Option<UpstreamTrace>,
}

/// The approved request's route was removed from the config since it was parked.
fn route_gone() -> Failure {
    Failure::new(
        "route_gone",
        "the request's route is no longer configured",
        http::StatusCode::INTERNAL_SERVER_ERROR,
    )
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
        let approved = self
            .record_decision(id, approver, comment, State::Approved)
            .await?;
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
        self.record_decision(id, approver, comment, State::Denied)
            .await
    }

    /// Moves `pending` to the approver's decision, atomically: of two deciders, one wins.
    async fn record_decision(
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
                let sent = Sent {
                    state: State::Failed,
                    response: None,
                    failure: Some(failed),
                    upstream: None,
                };
                return self
                    .finish(&approval, State::Approved, sent, Executed::default())
                    .await;
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
        let started = std::time::Instant::now();
        let mut executed = ready.judged.clone();
        let sent = self.send_approved(ready).await;
        executed.latency_ms.total = millis(started.elapsed());
        self.finish(&approval, State::Executing, sent, executed)
            .await
    }

    /// Records how the approval ended, with what its execution did in the trace.
    async fn finish(
        &self,
        approval: &Approval,
        from: State,
        sent: Sent,
        mut executed: Executed,
    ) -> Approval {
        let Some(approvals) = self.approvals.as_ref() else {
            return approval.clone();
        };
        executed.upstream = sent.upstream;
        executed.response = sent.response.as_ref().map(|r| self.recorded_response(r));
        let mut t = Transition::system(from, sent.state, approvals.now_ms());
        t.response = sent.response;
        t.failure = sent.failure;
        match approvals
            .transition_traced(&approval.id, t, Some(executed))
            .await
        {
            Ok(Transitioned::Done(a) | Transitioned::Conflict(a)) => a,
            Ok(Transitioned::NotFound) => approval.clone(),
            Err(e) => {
                // The row stays `executing`; the next start marks it outcome_unknown.
                tracing::error!(error = %e, id = %approval.id, "recording an approval's outcome");
                approval.clone()
            }
        }
    }
}

impl Proxy {
    /// The stored answer of an execution as the trace keeps a tool's result.
    fn recorded_response(&self, stored: &StoredResponse) -> RecordedResponse {
        let body = &stored.body;
        let keep = self.trace.include_response_body && body.len() <= self.trace.response_body_limit;
        let omitted = stored
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("lastmile-body-omitted"));
        RecordedResponse {
            bytes: body.len() as u64,
            sha256: crate::trace::recorded::sha256_hex(body),
            complete: !omitted,
            body: keep.then(|| body.clone()),
            redact: self.trace.redact_fields.clone(),
        }
    }
}
