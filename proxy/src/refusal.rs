//! Every refusal lastmile makes itself, mapped to a status and a machine-readable body
//! in one place.
//!
//! Body: `{"error": {"code", "message", "reasons", "trace_id", "policy_revision"}}`, plus
//! `"outcome": "unknown"` when the request may have taken effect upstream.

use crate::dedup::key::ClientKeyError;
use crate::identity::IdentityError;
use crate::policy::decision::Reason;
use crate::upstream::UpstreamFailure;
use http::StatusCode;
use serde::Serialize;

/// Why lastmile answered a request itself instead of forwarding it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("no route matches this request")]
    NoRoute,
    #[error("CONNECT tunnels cannot be inspected and are refused")]
    Connect,
    #[error("{0}")]
    BadPath(&'static str),
    #[error("{0}")]
    Unauthenticated(IdentityError),
    #[error("this route requires an acting user token")]
    UserRequired,
    #[error("the request body exceeds this route's limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("denied by policy")]
    Denied(Vec<Reason>),
    #[error("the policy requires human approval, and approvals are not enabled on this proxy")]
    ApprovalUnavailable(Vec<Reason>),
    #[error("the policy did not produce a valid decision")]
    PolicyError,
    #[error("the route's upstream credential is unavailable")]
    CredentialUnavailable,
    /// A user credential mode found no credential for the acting user (no verified
    /// user, no file for them, or a claim value that cannot name one).
    #[error("the acting user has no credential for this route; lastmile does not fall back to a service credential")]
    NoUserCredential,
    /// The token exchange failed; the reason names the endpoint's answer, never a token.
    #[error("the upstream credential could not be obtained: {0}")]
    CredentialExchange(String),
    #[error("the upstream could not be reached; the request was not sent")]
    UpstreamUnreachable,
    #[error("the upstream did not answer in time; the outcome is unknown")]
    UpstreamTimeout,
    #[error("the upstream connection failed after the request was sent; the outcome is unknown")]
    UpstreamFailed,
    #[error("{0}")]
    InvalidIdempotencyKey(ClientKeyError),
    #[error("a compressed body cannot be inspected; send it uncompressed")]
    UnsupportedContentEncoding,
    /// A header whose value decides what is judged was sent more than once; it names
    /// the header, never a value.
    #[error("the {0} header was sent more than once; the policy and the upstream could read different values")]
    AmbiguousHeader(String),
    #[error("{0}")]
    MethodOverride(&'static str),
    #[error("the form body cannot be read unambiguously: {0}")]
    InvalidForm(String),
    #[error("the policy cannot read a body of this content type, and this route does not forward it unread; send JSON or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("the Connection header names {0}, which lastmile relies on; it may not be dropped in transit")]
    BadConnectionHeader(String),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("{0}")]
    BadFraming(&'static str),
    #[error("lastmile is at its limit of requests in progress; retry shortly")]
    Overloaded,
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyMismatch,
    #[error("an identical request is still in flight; retry after it completes")]
    DuplicateInFlight,
    #[error("an identical request may already have taken effect upstream ({0}); it will not be sent again until an operator releases it or its hold ends")]
    OutcomeUnknown(String),
    #[error("an identical request already completed with status {0}; its response was too large to keep for replay")]
    CompletedNotRetained(u16),
    #[error("the dedup store is full of entries that may not be evicted; retry later")]
    DedupFull,
    #[error("the dedup store is unavailable, so the request cannot be sent with its at-most-once guarantee; retry later")]
    DedupUnavailable,
    #[error("the approval store is unavailable; the request was not parked or read; retry later")]
    ApprovalStoreUnavailable,
    #[error("no approval has this id")]
    ApprovalNotFound,
    #[error("this approval belongs to another acting user")]
    ApprovalForbidden,
    #[error("{0}")]
    BadUserInput(&'static str),
    #[error("{0}")]
    InvalidAnnotation(String),
    #[error("no recent call has this trace id")]
    TraceNotFound,
    #[error("this trace's calls were made by another acting user")]
    TraceForbidden,
    #[error("too many annotations; retry shortly")]
    RateLimited,
}

impl From<UpstreamFailure> for Refusal {
    /// How lastmile answers for an upstream that did not answer: nothing was sent
    /// (unreachable), or the outcome is unknown (time-out, broken after sending).
    fn from(failure: UpstreamFailure) -> Refusal {
        match failure {
            UpstreamFailure::Unreachable => Refusal::UpstreamUnreachable,
            UpstreamFailure::Timeout => Refusal::UpstreamTimeout,
            UpstreamFailure::Broken => Refusal::UpstreamFailed,
        }
    }
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoRoute => StatusCode::NOT_FOUND,
            Refusal::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadPath(_) | Refusal::BodyUnreadable | Refusal::InvalidJson(_) => {
                StatusCode::BAD_REQUEST
            }
            Refusal::Unauthenticated(_) | Refusal::UserRequired => StatusCode::UNAUTHORIZED,
            Refusal::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Denied(_) | Refusal::ApprovalUnavailable(_) | Refusal::PolicyError => {
                StatusCode::FORBIDDEN
            }
            Refusal::CredentialUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::NoUserCredential => StatusCode::FORBIDDEN,
            Refusal::CredentialExchange(_) => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamUnreachable | Refusal::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            Refusal::UnsupportedContentEncoding | Refusal::UnsupportedMediaType => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Refusal::AmbiguousHeader(_) | Refusal::MethodOverride(_) | Refusal::InvalidForm(_) => {
                StatusCode::BAD_REQUEST
            }
            Refusal::BadConnectionHeader(_) | Refusal::BadFraming(_) => StatusCode::BAD_REQUEST,
            Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::IdempotencyKeyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::DuplicateInFlight
            | Refusal::OutcomeUnknown(_)
            | Refusal::CompletedNotRetained(_) => StatusCode::CONFLICT,
            Refusal::DedupFull | Refusal::DedupUnavailable | Refusal::ApprovalStoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::ApprovalNotFound => StatusCode::NOT_FOUND,
            Refusal::ApprovalForbidden => StatusCode::FORBIDDEN,
            Refusal::BadUserInput(_) | Refusal::InvalidAnnotation(_) => StatusCode::BAD_REQUEST,
            Refusal::TraceNotFound => StatusCode::NOT_FOUND,
            Refusal::TraceForbidden => StatusCode::FORBIDDEN,
            Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable machine-readable code; also the `outcome` label and trace field.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoRoute => "no_route",
            Refusal::Connect => "connect_refused",
            Refusal::BadPath(_) => "bad_path",
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::UserRequired => "user_required",
            Refusal::BodyTooLarge(_) => "body_too_large",
            Refusal::BodyUnreadable => "body_unreadable",
            Refusal::InvalidJson(_) => "invalid_json",
            Refusal::Denied(_) => "denied",
            Refusal::ApprovalUnavailable(_) => "approval_unavailable",
            Refusal::PolicyError => "policy_error",
            Refusal::CredentialUnavailable | Refusal::CredentialExchange(_) => {
                "credential_unavailable"
            }
            Refusal::NoUserCredential => "no_user_credential",
            Refusal::UpstreamUnreachable => "upstream_unreachable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::UpstreamFailed => "upstream_failed",
            Refusal::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Refusal::UnsupportedContentEncoding => "unsupported_content_encoding",
            Refusal::AmbiguousHeader(_) => "ambiguous_header",
            Refusal::MethodOverride(_) => "method_override",
            Refusal::InvalidForm(_) => "invalid_form",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::BadConnectionHeader(_) => "bad_connection_header",
            Refusal::BadFraming(_) => "bad_framing",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::Overloaded => "overloaded",
            Refusal::IdempotencyKeyMismatch => "idempotency_key_mismatch",
            Refusal::DuplicateInFlight => "duplicate_in_flight",
            Refusal::OutcomeUnknown(_) => "outcome_unknown",
            Refusal::CompletedNotRetained(_) => "completed_not_retained",
            Refusal::DedupFull => "dedup_store_full",
            Refusal::DedupUnavailable => "dedup_unavailable",
            Refusal::ApprovalStoreUnavailable => "approval_store_unavailable",
            Refusal::ApprovalNotFound => "approval_not_found",
            Refusal::ApprovalForbidden => "approval_forbidden",
            Refusal::BadUserInput(_) => "bad_user_input",
            Refusal::InvalidAnnotation(_) => "invalid_annotation",
            Refusal::TraceNotFound => "trace_not_found",
            Refusal::TraceForbidden => "trace_forbidden",
            Refusal::RateLimited => "rate_limited",
        }
    }

    /// Seconds the agent should wait before retrying, when a retry can succeed.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Refusal::DuplicateInFlight
            | Refusal::DedupFull
            | Refusal::DedupUnavailable
            | Refusal::Overloaded
            | Refusal::ApprovalStoreUnavailable
            | Refusal::RateLimited => Some(1),
            // A failed exchange is not retried for a moment (the backoff), then may work.
            Refusal::CredentialExchange(_) => Some(2),
            // The same request gets the same answer, or the outcome is the upstream's:
            // no wait makes a retry succeed.
            Refusal::NoRoute
            | Refusal::Connect
            | Refusal::BadPath(_)
            | Refusal::Unauthenticated(_)
            | Refusal::UserRequired
            | Refusal::BodyTooLarge(_)
            | Refusal::BodyUnreadable
            | Refusal::InvalidJson(_)
            | Refusal::Denied(_)
            | Refusal::ApprovalUnavailable(_)
            | Refusal::PolicyError
            | Refusal::CredentialUnavailable
            | Refusal::NoUserCredential
            | Refusal::UpstreamUnreachable
            | Refusal::UpstreamTimeout
            | Refusal::UpstreamFailed
            | Refusal::InvalidIdempotencyKey(_)
            | Refusal::UnsupportedContentEncoding
            | Refusal::AmbiguousHeader(_)
            | Refusal::MethodOverride(_)
            | Refusal::InvalidForm(_)
            | Refusal::UnsupportedMediaType
            | Refusal::BadConnectionHeader(_)
            | Refusal::BodyTimeout
            | Refusal::BadFraming(_)
            | Refusal::IdempotencyKeyMismatch
            | Refusal::OutcomeUnknown(_)
            | Refusal::CompletedNotRetained(_)
            | Refusal::ApprovalNotFound
            | Refusal::ApprovalForbidden
            | Refusal::BadUserInput(_)
            | Refusal::InvalidAnnotation(_)
            | Refusal::TraceNotFound
            | Refusal::TraceForbidden => None,
        }
    }

    /// The policy's reasons, for refusals the policy made.
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Refusal::Denied(reasons) | Refusal::ApprovalUnavailable(reasons) => reasons,
            _ => &[],
        }
    }

    /// Whether the request may have taken effect upstream.
    fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Refusal::UpstreamTimeout | Refusal::UpstreamFailed | Refusal::OutcomeUnknown(_)
        )
    }

    /// The JSON refusal body.
    pub fn body(&self, trace_id: &str, policy_revision: Option<&str>) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'static str,
            message: String,
            reasons: &'a [Reason],
            trace_id: &'a str,
            policy_revision: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            outcome: Option<&'static str>,
            /// The upstream's status for a completed request whose response was not kept.
            #[serde(skip_serializing_if = "Option::is_none")]
            original_status: Option<u16>,
        }
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                reasons: self.reasons(),
                trace_id,
                policy_revision,
                outcome: self.outcome_unknown().then_some("unknown"),
                original_status: match self {
                    Refusal::CompletedNotRetained(status) => Some(*status),
                    _ => None,
                },
            },
        };
        serde_json::to_string(&body)
            .unwrap_or_else(|_| format!("{{\"error\":{{\"code\":\"{}\"}}}}", self.code()))
    }
}
