//! Records as OPA decision-log events: the format OPA's decision logger writes and its
//! decision-log service API takes, so consumers built for OPA read lastmile's decisions.
//! lastmile's own record (without the input, which is the event's) rides along under
//! [`EXTENSION`].

use super::masked::Masking;
use super::record::{RecordKind, TraceRecord};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

/// The key of lastmile's record in an event.
pub const EXTENSION: &str = "lastmile";

/// What every event says about the decider (`labels`): which lastmile instance.
#[derive(Debug, Clone)]
pub struct Labels {
    pub id: String,
    pub version: &'static str,
}

impl Labels {
    /// This process: a random id, like OPA's per-instance `labels.id`.
    pub fn for_this_process() -> Labels {
        let id = super::context::TraceContext::new_span_id()
            + &super::context::TraceContext::new_span_id();
        Labels {
            id: uuid_shaped(&id),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The decision's path in events: the entry point without `data.`, dots as slashes
/// (`data.lastmile.decision` → `lastmile/decision`), as OPA writes it.
pub fn decision_path(entrypoint: &str) -> String {
    entrypoint
        .strip_prefix("data.")
        .unwrap_or(entrypoint)
        .replace('.', "/")
}

/// One record as an event.
pub struct OpaEvent<'a> {
    pub record: &'a TraceRecord,
    pub labels: &'a Labels,
    /// The decision's path: the entry point without `data.`, dots as slashes.
    pub path: &'a str,
}

impl Serialize for OpaEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("decision_id", &decision_id(r))?;
        let path = match r.kind {
            RecordKind::Call => self.path,
            RecordKind::Approval => "lastmile/approval",
            RecordKind::Annotation => "lastmile/annotation",
        };
        map.serialize_entry("path", path)?;
        // The input is masked as it is written; the paths it masked come later.
        let masking = r
            .call
            .as_ref()
            .map(|c| (c, Masking::new(&c.redact, "input")));
        if let Some((call, masking)) = &masking {
            map.serialize_entry("input", &masking.at(&call.document, &[]))?;
        }
        if let Some(decision) = &r.decision {
            map.serialize_entry("result", &result(r.tool.as_deref(), decision))?;
        }
        if let Some(revision) = &r.policy_revision {
            map.serialize_entry("bundles", &json!({"lastmile": {"revision": revision}}))?;
        }
        map.serialize_entry(
            "labels",
            &json!({"id": self.labels.id, "version": self.labels.version}),
        )?;
        map.serialize_entry("timestamp", &r.time)?;
        map.serialize_entry("metrics", &metrics(r))?;
        if let Some((_, masking)) = &masking {
            let pointers: Vec<String> = masking.masked().iter().map(|p| pointer(p)).collect();
            map.serialize_entry("masked", &pointers)?;
        }
        map.serialize_entry(EXTENSION, &Extension(r))?;
        map.end()
    }
}

/// lastmile's record without its input document (the event's `input` has it).
struct Extension<'a>(&'a TraceRecord);

impl Serialize for Extension<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = self.0.clone();
        if let Some(call) = record.call.as_mut() {
            call.include_input = false;
        }
        record.serialize(serializer)
    }
}

/// The decision as the policy returned it (its parsed form: reasons, obligations).
fn result(tool: Option<&str>, d: &super::record::DecisionTrace) -> Value {
    let mut result = json!({
        "deny": d.deny,
        "approval": d.approval,
        "add_headers": d.obligation_values.headers(),
        "add_query": d.obligation_values.query(),
    });
    if let (Some(tool), Some(fields)) = (tool, result.as_object_mut()) {
        fields.insert("tool".into(), Value::from(tool));
    }
    result
}

/// OPA's timers, in nanoseconds.
fn metrics(r: &TraceRecord) -> Value {
    let ns = |ms: f64| (ms * 1_000_000.0).round() as u64;
    let mut metrics = json!({"timer_server_handler_ns": ns(r.latency_ms.total)});
    if let (Some(policy), Some(fields)) = (r.latency_ms.policy, metrics.as_object_mut()) {
        fields.insert("timer_rego_query_eval_ns".into(), Value::from(ns(policy)));
    }
    metrics
}

/// A unique id per record, in the UUID shape OPA's `decision_id` has: the record's span
/// id and the low half of its trace id.
fn decision_id(r: &TraceRecord) -> String {
    let low = r.trace_id.get(16..).unwrap_or("0000000000000000");
    uuid_shaped(&format!("{}{low}", r.span_id))
}

/// 32 hex digits as `8-4-4-4-12`.
fn uuid_shaped(hex: &str) -> String {
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// `input.request.body.card_number` as OPA writes masked paths: `/input/request/body/card_number`.
fn pointer(dotted: &str) -> String {
    dotted
        .split('.')
        .map(|segment| segment.replace('~', "~0").replace('/', "~1"))
        .fold(String::new(), |out, segment| out + "/" + &segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_paths_become_json_pointers() {
        assert_eq!(
            pointer("input.request.body.card_number"),
            "/input/request/body/card_number"
        );
        assert_eq!(pointer("input.a/b.c~d"), "/input/a~1b/c~0d");
    }

    #[test]
    fn the_path_is_the_entry_point_as_opa_writes_it() {
        assert_eq!(decision_path("data.lastmile.decision"), "lastmile/decision");
    }

    #[test]
    fn ids_have_the_uuid_shape() {
        let id = uuid_shaped("0123456789abcdef0123456789abcdef");
        assert_eq!(id, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(Labels::for_this_process().id.len(), 36);
    }
}
