//! What lastmile did with a request, and what a dedup window did with it, as types. Each
//! has one exhaustive table to its label: the `outcome` of `lastmile_requests_total`, the
//! `lastmile-decision` header and the trace record; the `result` of
//! `lastmile_dedup_total` and of the trace's `dedup` object. Control flow matches on the
//! variants, never on the strings.

use crate::refusal::Refusal;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded under an allow; the upstream's answer passed on.
    Allowed,
    /// Parked for a person: 202 with the approval's id and poll URL.
    PendingApproval,
    /// The response of an earlier identical request, replayed from its dedup window.
    Replayed,
    /// A poll for an approval's state or result.
    ApprovalStatus,
    /// An annotation of an action's trace was recorded.
    Annotated,
    /// A dry-run route forwarded a request that enforcing would have denied.
    DryRunDenied,
    /// A dry-run route forwarded a request that enforcing would have parked.
    DryRunApproval,
    /// A dry-run route forwarded a request the policy gave no usable decision for.
    DryRunPolicyError,
    /// Refused by lastmile itself; the label is the refusal's code.
    Refused(&'static str),
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::PendingApproval => "pending_approval",
            Outcome::Replayed => "replayed",
            Outcome::ApprovalStatus => "approval_status",
            Outcome::Annotated => "annotated",
            Outcome::DryRunDenied => "dry_run_denied",
            Outcome::DryRunApproval => "dry_run_approval",
            Outcome::DryRunPolicyError => "dry_run_policy_error",
            Outcome::Refused(code) => code,
        }
    }
}

impl From<&Refusal> for Outcome {
    fn from(refusal: &Refusal) -> Outcome {
        Outcome::Refused(refusal.code())
    }
}

/// What a dedup window did with a request under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupResult {
    /// It took the key and went upstream.
    First,
    /// It got the first request's stored response.
    Replayed,
    /// Refused: an identical request was still upstream after the wait.
    InFlightConflict,
    /// Refused: an identical request may have taken effect.
    Unknown,
    /// Refused: the agent's `Idempotency-Key` was used for another request.
    Mismatch,
    /// Refused: an identical request completed, its response too large to keep.
    NotRetained,
    /// Refused: the store holds nothing it may evict.
    StoreFull,
    /// Refused: the store could not be reached.
    StoreUnavailable,
}

impl DedupResult {
    pub fn label(self) -> &'static str {
        match self {
            DedupResult::First => "first",
            DedupResult::Replayed => "replayed",
            DedupResult::InFlightConflict => "in_flight_conflict",
            DedupResult::Unknown => "unknown",
            DedupResult::Mismatch => "mismatch",
            DedupResult::NotRetained => "not_retained",
            DedupResult::StoreFull => "store_full",
            DedupResult::StoreUnavailable => "store_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_documented_strings() {
        assert_eq!(Outcome::from(&Refusal::NoRoute).label(), "no_route");
        assert_eq!(Outcome::PendingApproval.label(), "pending_approval");
        assert_eq!(DedupResult::InFlightConflict.label(), "in_flight_conflict");
    }
}
