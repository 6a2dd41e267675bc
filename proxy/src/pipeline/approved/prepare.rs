//! An approved request, read again from the store and judged again, through the same
//! phases as a live request: [`Inbound::stored`] (the front phases' checks), decide with
//! `input.approval` set, the dedup attempt, and the upstream request.

use super::super::inbound::Inbound;
use super::super::Proxy;
use super::{route_gone, Ready};
use crate::approval::rfc3339;
use crate::approval::store::{Approval, Failure};
use crate::policy::decision::{Decision, Verdict};
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use crate::trace::record::{millis, DecisionTrace, Executed, Latency};
use crate::trace::recorded::RecordedInput;
use regorus::Value;
use std::collections::BTreeMap;

impl Proxy {
    /// Re-reads and re-evaluates the stored request and builds the upstream request, or
    /// says why not (the approval then fails, with the status the data path would give).
    pub(super) fn prepare(&self, a: &Approval) -> Result<Ready, Failure> {
        let index = self
            .routes
            .iter()
            .position(|r| r.config.name == a.route)
            .ok_or_else(route_gone)?;
        let route = &self.routes[index];
        let inbound = Inbound::stored(route, a).map_err(|r| Failure::from_refusal(&r))?;
        let (decision, judged) = self.reevaluate(route, a, &inbound)?;
        let attempt = self.attempt(route, &inbound, Some(&decision));
        let trace = TraceContext::within(&a.trace_id);
        // The user's token is not stored with the request: per_user reads the user's
        // file now, token_exchange uses only a cached token of that user (fail closed).
        let credential = route
            .credential
            .as_ref()
            .map(|c| c.stored_value(inbound.user.as_ref()))
            .transpose()
            .map_err(|e| Failure::from_refusal(&e.into()))?;
        let request = inbound
            .upstream_request(
                route,
                self.identity.as_ref(),
                credential,
                Some(&decision),
                &trace,
            )
            .map_err(|r| Failure::from_refusal(&r))?;
        Ok(Ready {
            route: index,
            request,
            attempt,
            judged,
        })
    }

    /// The policy again, on the current bundle, with `input.approval` set. Its approval
    /// reasons no longer park (this is the approved execution); a deny still refuses.
    /// With the decision comes what the trace keeps of the re-evaluation.
    fn reevaluate(
        &self,
        route: &super::super::Route,
        a: &Approval,
        inbound: &Inbound,
    ) -> Result<(Decision, Executed), Failure> {
        let decided = self.decide(route, inbound, approval_input(a));
        let judged = Executed {
            tool: decided.result.as_ref().ok().and_then(|d| d.tool.clone()),
            policy_revision: Some(decided.revision.clone()),
            decision: decided.result.as_ref().ok().map(DecisionTrace::from),
            call: Some(RecordedInput {
                document: super::super::journal::trace_input(
                    decided.input.clone(),
                    inbound.body.len(),
                ),
                redact: self.trace.redact_fields.clone(),
                include_input: self.trace.include_input,
                include_body: false,
            }),
            latency_ms: Latency {
                total: 0.0,
                policy: Some(millis(decided.elapsed)),
            },
            ..Executed::default()
        };
        let decision = decided.result.map_err(|detail| {
            Failure::new(
                Refusal::PolicyError.code(),
                format!("the policy did not produce a valid decision on re-evaluation: {detail}"),
                Refusal::PolicyError.status(),
            )
        })?;
        if decision.verdict() == Verdict::Deny {
            let denied = Refusal::Denied(decision.deny);
            return Err(Failure {
                message: format!(
                    "the policy ({}) now denies this request; it was not sent",
                    decided.revision
                ),
                ..Failure::from_refusal(&denied)
            });
        }
        Ok((decision, judged))
    }
}

/// `input.approval`: who approved, when, and which approval.
fn approval_input(a: &Approval) -> Value {
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
    Value::from(approval)
}
