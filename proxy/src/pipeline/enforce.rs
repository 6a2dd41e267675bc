//! The enforce phase: the decision's precedence (deny, then approval, then allow) under
//! the route's mode. Enforce routes forward only an unambiguous allow; dry-run routes
//! forward everything and record what enforcing would have done.

use super::outcome::Outcome;
use crate::config::Mode;
use crate::policy::decide::PolicyFailure;
use crate::policy::decision::{Decision, Verdict};
use crate::refusal::Refusal;

/// What happens to a request the policy has judged.
pub(super) enum Enforced {
    /// Goes upstream, with the decision's obligations when there is a decision (a
    /// dry-run policy failure forwards without any).
    Forward {
        decision: Option<Decision>,
        outcome: Outcome,
    },
    /// Waits for a person: the policy asked for approval and the queue is configured.
    Park(Decision),
}

/// Applies precedence and `mode` to the policy's result; `parking` says whether an
/// approval queue is configured (without one, an approval verdict is refused: fail
/// closed). A refusal here is the policy's doing; retrying the same request gets the
/// same answer until the policy or its data change.
pub(super) fn enforce(
    mode: Mode,
    parking: bool,
    decided: Result<Decision, PolicyFailure>,
) -> Result<Enforced, Refusal> {
    let decision = match decided {
        Ok(decision) => decision,
        Err(_) => {
            return match mode {
                Mode::Enforce => Err(Refusal::PolicyError),
                Mode::DryRun => Ok(Enforced::Forward {
                    decision: None,
                    outcome: Outcome::DryRunPolicyError,
                }),
            };
        }
    };
    let verdict = decision.verdict();
    let forward = |decision, outcome| {
        Ok(Enforced::Forward {
            decision: Some(decision),
            outcome,
        })
    };
    match (verdict, mode) {
        (Verdict::Allow, _) => forward(decision, Outcome::Allowed),
        (Verdict::Deny, Mode::Enforce) => Err(Refusal::Denied(decision.deny)),
        (Verdict::Approval, Mode::Enforce) if parking => Ok(Enforced::Park(decision)),
        (Verdict::Approval, Mode::Enforce) => Err(Refusal::ApprovalUnavailable(decision.approval)),
        (Verdict::Deny, Mode::DryRun) => forward(decision, Outcome::DryRunDenied),
        (Verdict::Approval, Mode::DryRun) => forward(decision, Outcome::DryRunApproval),
    }
}
