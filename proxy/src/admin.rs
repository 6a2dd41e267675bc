//! The admin port: metrics, health, readiness and recent traces. It is separate from the
//! data port so the agent's traffic and the operator's never share a listener.

use crate::metrics::Metrics;
use crate::pipeline::{json_response, ResponseBody};
use crate::policy::PolicyStore;
use crate::trace::TraceSink;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the admin endpoints read.
pub struct Admin {
    pub metrics: Metrics,
    pub traces: TraceSink,
    pub policy: Arc<PolicyStore>,
    /// Set once serving starts, cleared when draining, so orchestrators stop routing
    /// traffic here before the process exits.
    pub ready: AtomicBool,
}

impl Admin {
    pub fn handle<B>(&self, request: &Request<B>) -> Response<ResponseBody> {
        if request.method() != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the admin API only answers GET",
            );
        }
        match request.uri().path() {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => self.readyz(),
            path => match path.strip_prefix("/traces/") {
                Some(id) => self.trace(id),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
            },
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

fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
    )
}
