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
}

/// What sending produced.
struct Sent {
    state: State,
    response: Option<StoredResponse>,
    failure: Option<Failure>,
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
}
