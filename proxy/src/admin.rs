//! The admin port: metrics, health, readiness, recent traces and dedup entries, and the
//! approvers' side. It is separate from the data port so the agent's traffic and the
//! operator's never share a listener, but the agent shares the pod's network namespace:
//! the port is no boundary. Only `/metrics`, `/healthz` and `/readyz` are open; every
//! endpoint that reveals request data or changes state needs the operator's token (or,
//! on the approvals API and page, an approver's credential).

use crate::admin_token::{bearer, OperatorCheck, OperatorToken};
use crate::approval::api::ApproverSide;
use crate::dedup::key::Key;
use crate::dedup::state::{Entry, Released, State};
use crate::dedup::store::DedupStore;
use crate::metrics::Metrics;
use crate::pipeline::{json_response, ResponseBody};
use crate::policy::PolicyStore;
use crate::trace::TraceSink;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// What the admin endpoints read.
pub struct Admin {
    pub metrics: Metrics,
    pub traces: TraceSink,
    pub policy: Arc<PolicyStore>,
    /// Set once serving starts, cleared when draining, so orchestrators stop routing
    /// traffic here before the process exits.
    pub ready: AtomicBool,
    pub dedup: Arc<dyn DedupStore>,
    /// The operator's token: opens traces, dedup entries and releases; without one
    /// they are disabled.
    pub operator: OperatorToken,
    /// The approvers' API and page, when approvals are configured.
    pub approvers: Option<ApproverSide>,
}

impl Admin {
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let request = match &self.approvers {
            Some(approvers) => match approvers.handle(request).await {
                Ok(response) => return response,
                Err(request) => request,
            },
            None => request,
        };
        self.handle_operator(&request).await
    }

    async fn handle_operator<B>(&self, request: &Request<B>) -> Response<ResponseBody> {
        let path = request.uri().path();
        if request.method() == Method::POST {
            return match path
                .strip_prefix("/dedup/")
                .and_then(|rest| rest.strip_suffix("/release"))
            {
                Some(key) => match self.unauthorized(request) {
                    None => self.release(key).await,
                    Some(refused) => refused,
                },
                None => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
            };
        }
        if request.method() != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the admin API answers GET, and POST on /dedup/{key}/release",
            );
        }
        match path {
            "/metrics" => self.metrics().await,
            "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => self.readyz(),
            path => {
                if let Some(id) = path.strip_prefix("/traces/") {
                    match self.unauthorized(request) {
                        None => self.trace(id),
                        Some(refused) => refused,
                    }
                } else if let Some(key) = path.strip_prefix("/dedup/") {
                    match self.unauthorized(request) {
                        None => self.dedup_entry(key).await,
                        Some(refused) => refused,
                    }
                } else {
                    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
                }
            }
        }
    }

    async fn metrics(&self) -> Response<ResponseBody> {
        if let Some(approvers) = &self.approvers {
            approvers.approvals.refresh_pending().await;
        }
        match self.dedup.entries().await {
            Ok(entries) => self
                .metrics
                .dedup_entries
                .set(i64::try_from(entries).unwrap_or(i64::MAX)),
            Err(_) => self
                .metrics
                .dedup_store_errors
                .with_label_values(&["len"])
                .inc(),
        }
        text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            self.metrics.render(),
        )
    }

    /// Checks `Authorization: Bearer <token>` against the operator's token; the
    /// refusal if it fails.
    fn unauthorized<B>(&self, request: &Request<B>) -> Option<Response<ResponseBody>> {
        match self.operator.check(bearer(request.headers())) {
            OperatorCheck::Accepted => None,
            OperatorCheck::NotConfigured => Some(error(
                StatusCode::FORBIDDEN,
                "admin_token_not_configured",
                "admin endpoints that reveal request data or change state are disabled: set admin.token_file",
            )),
            OperatorCheck::Unavailable => Some(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "admin_token_unavailable",
                "the admin token could not be read",
            )),
            OperatorCheck::Rejected => {
                let mut refused = error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send the admin token as Authorization: Bearer <token>",
                );
                refused
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Some(refused)
            }
        }
    }

    async fn dedup_entry(&self, key: &str) -> Response<ResponseBody> {
        let Ok(key) = key.parse::<Key>() else {
            return bad_key();
        };
        match self.dedup.get(&key).await {
            Ok(Some(entry)) => json_response(StatusCode::OK, describe(&key, &entry).to_string()),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "dedup_key_not_found",
                "no live dedup entry has this key",
            ),
            Err(e) => store_unavailable(&e),
        }
    }

    async fn release(&self, key: &str) -> Response<ResponseBody> {
        let Ok(key) = key.parse::<Key>() else {
            return bad_key();
        };
        match self.dedup.release(&key).await {
            Ok(Released::Released) => {
                tracing::info!(%key, "dedup key released by an operator");
                json_response(
                    StatusCode::OK,
                    serde_json::json!({"key": key.to_string(), "released": true}).to_string(),
                )
            }
            Ok(Released::NotFound) => error(
                StatusCode::NOT_FOUND,
                "dedup_key_not_found",
                "no live dedup entry has this key",
            ),
            Ok(Released::InFlight) => error(
                StatusCode::CONFLICT,
                "dedup_key_in_flight",
                "a request holding this key is still upstream; releasing it now could allow a second call",
            ),
            Err(e) => store_unavailable(&e),
        }
    }

    fn readyz(&self) -> Response<ResponseBody> {
        let ready = self.ready.load(Ordering::Relaxed);
        let body = serde_json::json!({"ready": ready, "policy_revision": self.policy.current().revision()});
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, body.to_string())
    }

    fn trace(&self, id: &str) -> Response<ResponseBody> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_trace_id",
                "a trace id is 32 hex digits",
            );
        }
        let records = self.traces.find(id);
        if records.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                "trace_not_found",
                "no recent trace has this id",
            );
        }
        json_response(
            StatusCode::OK,
            format!(
                "{{\"trace_id\":\"{id}\",\"records\":[{}]}}",
                records.join(",")
            ),
        )
    }
}

/// An entry as operators see it: state and times, never the stored body.
fn describe(key: &Key, entry: &Entry) -> serde_json::Value {
    let time = |ms: u64| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    };
    let mut out = serde_json::json!({
        "key": key.to_string(),
        "state": entry.state.name(),
        "created_at": time(entry.created_ms),
        "expires_at": time(entry.expires_ms),
    });
    match &entry.state {
        State::InFlight { lease_until_ms } => out["lease_until"] = time(*lease_until_ms).into(),
        State::Completed {
            response,
            completed_ms,
        } => {
            out["status"] = response.status.into();
            out["completed_at"] = time(*completed_ms).into();
        }
        State::NotRetained {
            status,
            completed_ms,
        } => {
            out["status"] = (*status).into();
            out["completed_at"] = time(*completed_ms).into();
        }
        State::Unknown {
            reason,
            hold_until_ms,
        } => {
            out["reason"] = reason.as_str().into();
            out["hold_until"] = time(*hold_until_ms).into();
        }
    }
    out
}

fn bad_key() -> Response<ResponseBody> {
    error(
        StatusCode::BAD_REQUEST,
        "bad_dedup_key",
        "a dedup key is 64 hex digits (the lastmile-dedup-key response header)",
    )
}

fn store_unavailable(e: &crate::dedup::store::StoreError) -> Response<ResponseBody> {
    tracing::warn!(error = %e, "dedup store unavailable for an admin request");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "dedup_unavailable",
        "the dedup store is unavailable",
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON error body: `{"error": {"code", "message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
    )
}
