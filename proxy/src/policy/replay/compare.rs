//! Comparing two judgements of one input (the one a trace recorded and the candidate
//! bundle's) and naming the difference.

use crate::policy::decide::PolicyFailure;
use crate::policy::decision::{Decision, Reason, Verdict};
use std::collections::BTreeSet;

/// What a policy made of one input, as far as a replay compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// A decision: its verdict and the codes of the reasons for that verdict.
    Decided {
        verdict: Verdict,
        reasons: BTreeSet<String>,
    },
    /// No usable decision. `kind` is the failure's kind when it is known: a trace
    /// records a policy error's message only.
    Failed {
        kind: Option<&'static str>,
        message: String,
    },
}

impl Judged {
    /// A decision reduced to its verdict and the reasons behind it. A deny's approval
    /// reasons reach no one (the deny wins), and an allow has no reasons, so only the
    /// verdict's own reasons can change what the proxy does.
    pub fn decided<'a>(
        verdict: Verdict,
        deny: impl IntoIterator<Item = &'a str>,
        approval: impl IntoIterator<Item = &'a str>,
    ) -> Judged {
        let reasons = match verdict {
            Verdict::Deny => deny.into_iter().map(str::to_string).collect(),
            Verdict::Approval => approval.into_iter().map(str::to_string).collect(),
            Verdict::Allow => BTreeSet::new(),
        };
        Judged::Decided { verdict, reasons }
    }

    /// The candidate's answer, as [`crate::policy::decide::decide`] gave it.
    pub fn of(result: &Result<Decision, PolicyFailure>) -> Judged {
        match result {
            Ok(decision) => Judged::decided(
                decision.verdict(),
                codes(&decision.deny),
                codes(&decision.approval),
            ),
            Err(failure) => Judged::Failed {
                kind: Some(failure.kind()),
                message: failure.to_string(),
            },
        }
    }

    /// The verdict's name, `policy_error` for a failure.
    pub fn verdict_name(&self) -> &'static str {
        match self {
            Judged::Decided { verdict, .. } => verdict.name(),
            Judged::Failed { .. } => "policy_error",
        }
    }

    /// The reason codes, none for a failure.
    pub fn reasons(&self) -> impl Iterator<Item = &str> {
        let reasons = match self {
            Judged::Decided { reasons, .. } => Some(reasons),
            Judged::Failed { .. } => None,
        };
        reasons.into_iter().flatten().map(String::as_str)
    }
}

fn codes(reasons: &[Reason]) -> impl Iterator<Item = &str> {
    reasons.iter().map(|r| r.code.as_str())
}

/// How a decision changed between the recorded judgement and the candidate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Unchanged,
    AllowToDeny,
    DenyToAllow,
    AllowToApproval,
    ApprovalToAllow,
    DenyToApproval,
    ApprovalToDeny,
    /// The same verdict for a different set of reasons.
    ReasonsChanged,
    /// The candidate gives no usable decision where the recorded policy gave one.
    NowPolicyError,
    /// The recorded policy gave no usable decision; the candidate does.
    WasPolicyError,
}

impl Change {
    /// Every class, in the order reports list them.
    pub const ALL: [Change; 10] = [
        Change::Unchanged,
        Change::AllowToDeny,
        Change::DenyToAllow,
        Change::AllowToApproval,
        Change::ApprovalToAllow,
        Change::DenyToApproval,
        Change::ApprovalToDeny,
        Change::ReasonsChanged,
        Change::NowPolicyError,
        Change::WasPolicyError,
    ];

    /// The class's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Change::Unchanged => "unchanged",
            Change::AllowToDeny => "allow→deny",
            Change::DenyToAllow => "deny→allow",
            Change::AllowToApproval => "allow→approval",
            Change::ApprovalToAllow => "approval→allow",
            Change::DenyToApproval => "deny→approval",
            Change::ApprovalToDeny => "approval→deny",
            Change::ReasonsChanged => "reasons_changed",
            Change::NowPolicyError => "now_policy_error",
            Change::WasPolicyError => "was_policy_error",
        }
    }

    /// Classifies the step from `from` (recorded) to `to` (candidate). Two failures are
    /// unchanged: the request is refused either way.
    pub fn classify(from: &Judged, to: &Judged) -> Change {
        let (
            Judged::Decided {
                verdict: a,
                reasons: was,
            },
            Judged::Decided {
                verdict: b,
                reasons: now,
            },
        ) = (from, to)
        else {
            return match (from, to) {
                (Judged::Failed { .. }, Judged::Failed { .. }) => Change::Unchanged,
                (Judged::Failed { .. }, _) => Change::WasPolicyError,
                _ => Change::NowPolicyError,
            };
        };
        use Verdict::{Allow, Approval, Deny};
        match (a, b) {
            (Allow, Deny) => Change::AllowToDeny,
            (Deny, Allow) => Change::DenyToAllow,
            (Allow, Approval) => Change::AllowToApproval,
            (Approval, Allow) => Change::ApprovalToAllow,
            (Deny, Approval) => Change::DenyToApproval,
            (Approval, Deny) => Change::ApprovalToDeny,
            (Allow, Allow) | (Deny, Deny) | (Approval, Approval) if was == now => Change::Unchanged,
            (Allow, Allow) | (Deny, Deny) | (Approval, Approval) => Change::ReasonsChanged,
        }
    }
}

/// The reason codes `to` gives that `from` did not, and those it no longer gives.
pub fn reason_diff<'a>(from: &'a Judged, to: &'a Judged) -> (Vec<&'a str>, Vec<&'a str>) {
    let was: BTreeSet<&str> = from.reasons().collect();
    let now: BTreeSet<&str> = to.reasons().collect();
    (
        now.difference(&was).copied().collect(),
        was.difference(&now).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Judged {
        Judged::decided(Verdict::Allow, [], [])
    }

    fn deny(codes: &[&'static str]) -> Judged {
        Judged::decided(Verdict::Deny, codes.iter().copied(), [])
    }

    fn approval(codes: &[&'static str]) -> Judged {
        Judged::decided(Verdict::Approval, [], codes.iter().copied())
    }

    fn failed() -> Judged {
        Judged::Failed {
            kind: None,
            message: "x".into(),
        }
    }

    #[test]
    fn each_verdict_step_has_its_class() {
        let cases = [
            (allow(), allow(), Change::Unchanged),
            (allow(), deny(&["a"]), Change::AllowToDeny),
            (deny(&["a"]), allow(), Change::DenyToAllow),
            (allow(), approval(&["a"]), Change::AllowToApproval),
            (approval(&["a"]), allow(), Change::ApprovalToAllow),
            (deny(&["a"]), approval(&["a"]), Change::DenyToApproval),
            (approval(&["a"]), deny(&["a"]), Change::ApprovalToDeny),
        ];
        for (from, to, class) in cases {
            assert_eq!(Change::classify(&from, &to), class, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn the_same_verdict_compares_its_reasons_as_a_set() {
        assert_eq!(
            Change::classify(&deny(&["a", "b"]), &deny(&["b", "a", "a"])),
            Change::Unchanged
        );
        assert_eq!(
            Change::classify(&deny(&["a"]), &deny(&["a", "b"])),
            Change::ReasonsChanged
        );
        assert_eq!(
            Change::classify(&approval(&["over_limit"]), &approval(&["needs_review"])),
            Change::ReasonsChanged
        );
    }

    #[test]
    fn a_denys_approval_reasons_do_not_count() {
        let from = Judged::decided(Verdict::Deny, ["paid"], ["over_limit"]);
        let to = Judged::decided(Verdict::Deny, ["paid"], []);
        assert_eq!(Change::classify(&from, &to), Change::Unchanged);
    }

    #[test]
    fn failures_on_either_side() {
        assert_eq!(
            Change::classify(&allow(), &failed()),
            Change::NowPolicyError
        );
        assert_eq!(
            Change::classify(&deny(&["a"]), &failed()),
            Change::NowPolicyError
        );
        assert_eq!(
            Change::classify(&failed(), &allow()),
            Change::WasPolicyError
        );
        assert_eq!(Change::classify(&failed(), &failed()), Change::Unchanged);
    }

    #[test]
    fn the_diff_names_added_and_removed_codes() {
        let (from, to) = (deny(&["a", "b"]), deny(&["b", "c"]));
        assert_eq!(reason_diff(&from, &to), (vec!["c"], vec!["a"]));
        let (from, to) = (allow(), failed());
        let (added, removed) = reason_diff(&from, &to);
        assert!(added.is_empty() && removed.is_empty());
    }

    #[test]
    fn a_candidate_failure_keeps_its_kind() {
        let judged = Judged::of(&Err(PolicyFailure::Undefined));
        assert_eq!(judged.verdict_name(), "policy_error");
        assert!(matches!(
            judged,
            Judged::Failed {
                kind: Some("undefined"),
                ..
            }
        ));
    }

    #[test]
    fn class_names_are_distinct() {
        let names: BTreeSet<&str> = Change::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Change::ALL.len());
    }
}
