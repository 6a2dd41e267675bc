//! The journal of one request: what its phases found out, noted by
//! [`Proxy::process`](super::Proxy) from the values each phase returns. No phase writes
//! into it; the record phase builds the trace line from it, last.

use crate::trace::record::{DecisionTrace, DedupTrace, UpstreamTrace};
use std::time::Duration;

#[derive(Debug, Default)]
pub(super) struct Journal {
    /// The matched route, as an index into the proxy's routes.
    pub route: Option<usize>,
    /// The acting user's `sub`.
    pub user: Option<String>,
    /// The acting user's verified claims (the policy's `input.user`).
    pub claims: Option<regorus::Value>,
    /// The user's words, from `lastmile-user-input`.
    pub user_input: Option<String>,
    /// The policy input document, for the trace's `arguments` and `input`.
    pub input: Option<regorus::Value>,
    /// The request body as the trace shows it (redacted), when configured.
    pub request_body: Option<serde_json::Value>,
    /// The bundle revision that judged the request, and how long judging took.
    pub policy: Option<(String, Duration)>,
    pub decision: Option<DecisionTrace>,
    /// The tool the decision named.
    pub tool: Option<String>,
    /// Why the policy gave no usable decision.
    pub policy_failure: Option<String>,
    pub dedup: Option<DedupTrace>,
    pub upstream: Option<UpstreamTrace>,
    /// The approval a parked request waits in.
    pub parked: Option<String>,
    /// The record of an annotation, which stands in for the call's own.
    pub annotation: Option<crate::trace::record::TraceRecord>,
}

impl Journal {
    pub fn policy_revision(&self) -> Option<&str> {
        self.policy.as_ref().map(|(revision, _)| revision.as_str())
    }
}

/// What the send phase did besides answering: the dedup window's verdict and the
/// upstream exchange, known whether the answer is a response or a refusal.
#[derive(Debug, Default)]
pub(super) struct Sending {
    pub dedup: Option<DedupTrace>,
    pub upstream: Option<UpstreamTrace>,
}
