//! The journal of one request: what its phases found out, noted by
//! [`Proxy::process`](super::Proxy) from the values each phase returns. No phase writes
//! into it; the record phase builds the trace line from it, last.

use super::decide::Decided;
use super::TRACE_BODY_LIMIT;
use crate::trace::record::{DecisionTrace, DedupTrace, UpstreamTrace};
use regorus::Value;
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

/// The input document as the trace keeps it: a body over [`TRACE_BODY_LIMIT`] is
/// replaced by its size, which keeps the ring of recent records bounded (the document
/// shares the request's parsed body otherwise: no copy on the request path).
pub(super) fn trace_input(mut input: Value, body_len: usize) -> Value {
    if body_len <= TRACE_BODY_LIMIT {
        return input;
    }
    let omitted = Value::from(
        [(Value::from("omitted_bytes"), Value::from(body_len))]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let mut request = input["request"].clone();
    if let Ok(fields) = request.as_object_mut() {
        fields.insert(Value::from("body"), omitted);
    }
    if let Ok(fields) = input.as_object_mut() {
        fields.insert(Value::from("request"), request);
    }
    input
}

/// Notes what the policy was asked and what it answered, for the record phase. The
/// input document moves into the journal: nothing after deciding reads it.
pub(super) fn note_decision(journal: &mut Journal, decided: &mut Decided, body_len: usize) {
    journal.policy = Some((decided.revision.clone(), decided.elapsed));
    let input = std::mem::replace(&mut decided.input, Value::Null);
    journal.input = Some(trace_input(input, body_len));
    match &decided.result {
        Ok(decision) => {
            journal.decision = Some(DecisionTrace::from(decision));
            journal.tool = decision.tool.clone();
        }
        Err(failure) => journal.policy_failure = Some(failure.to_string()),
    }
}
