//! What the approval store keeps, and the interface every store offers.
//!
//! ```text
//! pending ──approve──▶ approved ──▶ executing ──▶ succeeded │ failed │ outcome_unknown
//!    │                    └──(policy now denies, route gone)──▶ failed
//!    ├──deny──▶ denied
//!    └──expiry──▶ expired
//! ```
//!
//! Every transition is one atomic update guarded by the current state: two approvers
//! clicking at once, or two replicas on one file, can never both move an approval out
//! of `pending` or into `executing`.

use crate::dedup::state::{StoredHeader, StoredResponse};
use crate::policy::decision::Reason;
use serde::{Deserialize, Serialize};

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Executing,
    Succeeded,
    Failed,
    OutcomeUnknown,
    Denied,
    Expired,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Approved,
        State::Executing,
        State::Succeeded,
        State::Failed,
        State::OutcomeUnknown,
        State::Denied,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Executing => "executing",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::OutcomeUnknown => "outcome_unknown",
            State::Denied => "denied",
            State::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more will happen to the approval.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded
                | State::Failed
                | State::OutcomeUnknown
                | State::Denied
                | State::Expired
        )
    }
}

/// The parked request, as it will be executed: the path after the route prefix, the
/// agent's headers minus credentials and the identity token, and the exact body bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub method: String,
    /// The path the upstream sees (route prefix stripped), without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<StoredHeader>,
    /// The path as the agent sent it, for people reading the approval.
    pub received_path: String,
}

/// Why an approval ended without an upstream response (or with one that is not a
/// success): a refusal code, its message, any policy reasons, and the status the agent's
/// poll answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// Absent in failures stored before lastmile kept it; the poll then maps the code.
    #[serde(default)]
    pub status: Option<u16>,
}

impl Failure {
    /// A failure lastmile itself decided, answered with `status`.
    pub fn new(code: &str, message: impl Into<String>, status: http::StatusCode) -> Failure {
        Failure {
            code: code.into(),
            message: message.into(),
            reasons: Vec::new(),
            status: Some(status.as_u16()),
        }
    }

    /// A refusal of the approved request (before or while sending), answered as the data
    /// path would answer it.
    pub fn from_refusal(refusal: &crate::refusal::Refusal) -> Failure {
        Failure {
            code: refusal.code().into(),
            message: refusal.to_string(),
            reasons: refusal.reasons().to_vec(),
            status: Some(refusal.status().as_u16()),
        }
    }
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// 32 hex digits, random: the id is also what lets an agent poll.
    pub id: String,
    pub state: State,
    pub route: String,
    /// The acting user's `sub`.
    pub user: Option<String>,
    /// The acting user's verified claims when parked (`input.user` on re-evaluation).
    pub user_claims: Option<serde_json::Value>,
    pub dedup_key: Option<String>,
    pub trace_id: String,
    pub policy_revision: String,
    pub reasons: Vec<Reason>,
    pub request: StoredRequest,
    pub body: Vec<u8>,
    /// What approvers see: method, path, query and body, redacted.
    pub summary: serde_json::Value,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub decided_by: Option<String>,
    pub decided_ms: Option<u64>,
    pub comment: Option<String>,
    pub finished_ms: Option<u64>,
    pub response: Option<StoredResponse>,
    pub failure: Option<Failure>,
}

/// A request to park.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub id: String,
    pub route: String,
    pub user: Option<String>,
    pub user_claims: Option<serde_json::Value>,
    pub dedup_key: Option<String>,
    pub trace_id: String,
    pub policy_revision: String,
    pub reasons: Vec<Reason>,
    pub request: StoredRequest,
    pub body: Vec<u8>,
    pub summary: serde_json::Value,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// What parking did.
#[derive(Debug, Clone)]
pub struct Parked {
    pub approval: Approval,
    /// False when a pending approval with the same dedup key was returned instead.
    pub created: bool,
}

/// One recorded action: who moved the approval, when, from where to where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub actor: String,
    pub from: Option<State>,
    pub to: State,
    pub comment: Option<String>,
}

/// A state change to apply, only if the approval is still in `from`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at_ms: u64,
    /// The approver's name, or `lastmile` for the proxy's own moves.
    pub actor: String,
    pub comment: Option<String>,
    pub response: Option<StoredResponse>,
    pub failure: Option<Failure>,
}

impl Transition {
    /// A move the proxy makes itself, with nothing to record but the new state.
    pub fn system(from: State, to: State, at_ms: u64) -> Transition {
        Transition {
            from,
            to,
            at_ms,
            actor: SYSTEM_ACTOR.into(),
            comment: None,
            response: None,
            failure: None,
        }
    }
}

/// The actor recorded for transitions lastmile makes itself.
pub const SYSTEM_ACTOR: &str = "lastmile";

/// What a transition found.
#[derive(Debug, Clone)]
pub enum Transitioned {
    /// Applied; the approval as it is now.
    Done(Approval),
    /// The approval was not in the expected state (someone else moved it first, or a
    /// pending one expired); it is returned as it is.
    Conflict(Approval),
    NotFound,
}

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<State>,
    pub route: Option<String>,
    pub user: Option<String>,
    pub limit: usize,
}

/// The store could not answer; callers fail closed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("approval store unavailable: {0}")]
pub struct StoreError(pub String);

/// A durable approval store. Methods block (a file database); async callers run them
/// on the blocking pool.
pub trait ApprovalStore: Send + Sync + 'static {
    /// Stores a new pending approval, or returns the live pending one with the same
    /// dedup key, durably, before the agent is answered.
    fn park(&self, new: &NewApproval) -> Result<Parked, StoreError>;

    fn get(&self, id: &str) -> Result<Option<Approval>, StoreError>;

    /// Newest first.
    fn list(&self, filter: &Filter) -> Result<Vec<Approval>, StoreError>;

    /// Applies `transition` only if the approval is in `transition.from` (and, for
    /// leaving `pending`, only before it expires; for expiring, only after).
    fn transition(&self, id: &str, transition: &Transition) -> Result<Transitioned, StoreError>;

    /// Every recorded action on one approval, oldest first.
    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError>;

    /// Ids of pending approvals whose time ran out at `now_ms`.
    fn expired(&self, now_ms: u64) -> Result<Vec<String>, StoreError>;

    /// Ids in `state`.
    fn ids_in(&self, state: State) -> Result<Vec<String>, StoreError>;

    /// How many approvals are pending.
    fn pending(&self) -> Result<u64, StoreError>;
}
