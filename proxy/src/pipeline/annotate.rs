//! Annotations on the data port: the agent attaches what lastmile cannot see on the
//! wire (the user's words, its own reply, the model) to an action's trace, as a record
//! of its own under the action's trace id.

use super::outcome::Outcome;
use super::request;
use super::{Forwarded, Proxy};
use crate::refusal::Refusal;
use crate::response::json_response;
use crate::trace::context::TraceContext;
use crate::trace::record::{AnnotationTrace, RecordKind, TraceRecord};
use crate::trace::redact;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// The largest annotation body.
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;
/// At most this many `attributes`.
const MAX_ATTRIBUTES: usize = 64;
/// Annotations one acting user may make per second.
const PER_SECOND: u32 = 20;

/// Per acting user, annotations made in the current second.
#[derive(Default)]
pub(super) struct AnnotationLimiter {
    counts: Mutex<(u64, HashMap<String, u32>)>,
}

impl AnnotationLimiter {
    /// Whether `user` may annotate now; counts the attempt.
    fn admit(&self, user: &str) -> bool {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.admit_at(user, second)
    }

    fn admit_at(&self, user: &str, second: u64) -> bool {
        let Ok(mut guard) = self.counts.lock() else {
            return false;
        };
        let (current, counts) = &mut *guard;
        if *current != second {
            *current = second;
            counts.clear();
        }
        let count = counts.entry(user.to_string()).or_insert(0);
        *count += 1;
        *count <= PER_SECOND
    }
}

impl Proxy {
    /// Annotate: `POST /_lastmile/traces/{trace_id}/annotations` with `{"user_input",
    /// "agent_reply", "model", "attributes"}` (each optional, at least one). Only the
    /// acting user whose calls the trace holds may annotate it (fail closed: a trace
    /// with no recent call cannot be annotated); bounded in size, and rate-limited per
    /// user. The agent's fault when refused; nothing goes upstream.
    pub(super) async fn annotate(
        &self,
        trace_id: &str,
        parts: http::request::Parts,
        body: Incoming,
        user: Option<&str>,
        journal_trace: &TraceContext,
    ) -> Result<(Forwarded, TraceRecord), Refusal> {
        self.check_may_annotate(&parts.method, trace_id, user)?;
        let bytes = tokio::time::timeout(
            self.body_read_timeout,
            request::read_body(&parts.headers, body, MAX_ANNOTATION_BYTES),
        )
        .await
        .map_err(|_| Refusal::BodyTimeout)??;
        let mut annotation = parse(&bytes)?;
        redact::redact(&mut annotation.attributes, &self.trace.redact_fields);
        let span_id = TraceContext::new_span_id();
        let record = annotation_record(
            trace_id,
            span_id.clone(),
            journal_trace.parent_span_id.clone(),
            user,
            &parts,
            annotation,
        );
        let answer = serde_json::json!({"trace_id": trace_id, "span_id": span_id});
        let forwarded = Forwarded {
            response: json_response(StatusCode::CREATED, answer.to_string()),
            outcome: Outcome::Annotated,
        };
        Ok((forwarded, record))
    }

    /// The checks before the body is read, cheapest first: the method, the id's shape,
    /// the user's rate, then whether the trace holds this user's calls only.
    fn check_may_annotate(
        &self,
        method: &Method,
        trace_id: &str,
        user: Option<&str>,
    ) -> Result<(), Refusal> {
        if method != Method::POST {
            return Err(Refusal::BadPath("annotations are posted with POST"));
        }
        if !crate::trace::context::is_trace_id(trace_id) {
            return Err(Refusal::BadPath("a trace id is 32 lower-case hex digits"));
        }
        if !self.annotations.admit(user.unwrap_or("")) {
            return Err(Refusal::RateLimited);
        }
        let users = self.traces.callers(trace_id);
        if users.is_empty() {
            return Err(Refusal::TraceNotFound);
        }
        if users.iter().any(|u| u.as_deref() != user) {
            return Err(Refusal::TraceForbidden);
        }
        Ok(())
    }
}

/// The annotation's own record under the action's trace id: an annotation is no call,
/// so it has no route, decision or upstream.
fn annotation_record(
    trace_id: &str,
    span_id: String,
    parent_span_id: Option<String>,
    user: Option<&str>,
    parts: &http::request::Parts,
    annotation: AnnotationTrace,
) -> TraceRecord {
    let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    TraceRecord {
        parent_span_id,
        user: user.map(str::to_string),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        outcome: Outcome::Annotated.label(),
        status: StatusCode::CREATED.as_u16(),
        annotation: Some(annotation),
        ..TraceRecord::new(RecordKind::Annotation, trace_id.to_string(), span_id, time)
    }
}

/// Parses an annotation body: a JSON object of the four known fields, strings where
/// text is expected, `attributes` an object of at most [`MAX_ATTRIBUTES`] scalars.
fn parse(bytes: &[u8]) -> Result<AnnotationTrace, Refusal> {
    let invalid = |m: &str| Refusal::InvalidAnnotation(m.to_string());
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Refusal::InvalidJson(e.to_string()))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(invalid("an annotation is a JSON object"));
    };
    let mut annotation = AnnotationTrace::default();
    for (key, value) in fields {
        let text = || match &value {
            serde_json::Value::String(s) => Ok(Some(s.clone())),
            serde_json::Value::Null => Ok(None),
            _ => Err(invalid(&format!("{key} must be a string"))),
        };
        match key.as_str() {
            "user_input" => annotation.user_input = text()?,
            "agent_reply" => annotation.agent_reply = text()?,
            "model" => annotation.model = text()?,
            "attributes" => annotation.attributes = attributes(value)?,
            other => return Err(invalid(&format!("unknown annotation field {other:?}"))),
        }
    }
    let empty = annotation.user_input.is_none()
        && annotation.agent_reply.is_none()
        && annotation.model.is_none()
        && annotation.attributes.is_null();
    if empty {
        return Err(invalid(
            "an annotation needs user_input, agent_reply, model or attributes",
        ));
    }
    Ok(annotation)
}

fn attributes(value: serde_json::Value) -> Result<serde_json::Value, Refusal> {
    let invalid = |m: &str| Refusal::InvalidAnnotation(m.to_string());
    match &value {
        serde_json::Value::Null => Ok(value),
        serde_json::Value::Object(map) if map.len() > MAX_ATTRIBUTES => {
            Err(invalid(&format!("at most {MAX_ATTRIBUTES} attributes")))
        }
        serde_json::Value::Object(map) => {
            let scalar = |v: &serde_json::Value| {
                matches!(
                    v,
                    serde_json::Value::String(_)
                        | serde_json::Value::Number(_)
                        | serde_json::Value::Bool(_)
                )
            };
            if map.values().all(scalar) {
                Ok(value)
            } else {
                Err(invalid("attribute values are strings, numbers or booleans"))
            }
        }
        _ => Err(invalid("attributes must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_known_fields_and_refuses_the_rest() -> anyhow::Result<()> {
        let a = parse(br#"{"user_input": "email acme", "agent_reply": "done", "model": "m", "attributes": {"turn": 3}}"#)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(a.user_input.as_deref(), Some("email acme"));
        assert_eq!(a.attributes["turn"], 3);
        for bad in [
            &br#"{"user_input": 3}"#[..],
            br#"{"other": "x"}"#,
            br#"{}"#,
            br#"[]"#,
            br#"{"attributes": {"a": {"nested": 1}}}"#,
            br#"{"attributes": "x"}"#,
            b"not json",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        Ok(())
    }

    #[test]
    fn the_limiter_admits_a_bounded_number_per_user_and_second() {
        let limiter = AnnotationLimiter::default();
        let admitted = (0..PER_SECOND * 2)
            .filter(|_| limiter.admit_at("u", 7))
            .count();
        assert_eq!(admitted, PER_SECOND as usize);
        assert!(limiter.admit_at("someone-else", 7));
        assert!(limiter.admit_at("u", 8));
    }
}
