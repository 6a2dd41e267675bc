//! lastmile's decision trace (`trace.output`), one JSON record a line.
//!
//! A record is replayed when it carries the policy's input (`input.document`, with
//! `input.masked` naming what redaction replaced) and what the policy made of it: its
//! `decision`, or an `error` coded `policy_error`. The trace's other records (refusals
//! before the policy ran, annotations, approval transitions without an execution) are
//! skipped. Fields this reader does not use (`chain`, later additions) are ignored.

use super::compare::Judged;
use super::read::{Entry, Inexact, Meta, Recorded};
use crate::policy::decision::Verdict;
use crate::refusal::Refusal;
use regorus::Value;
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    kind: String,
    trace_id: String,
    span_id: String,
    time: Option<String>,
    route: Option<String>,
    tool: Option<String>,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    policy_revision: Option<String>,
    input: Option<Input>,
    decision: Option<RecordedDecision>,
    error: Option<RecordedError>,
}

#[derive(Deserialize)]
struct Input {
    document: Value,
    #[serde(default)]
    masked: Vec<String>,
}

#[derive(Deserialize)]
struct RecordedDecision {
    verdict: String,
    #[serde(default)]
    deny: Vec<Code>,
    #[serde(default)]
    approval: Vec<Code>,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

#[derive(Deserialize)]
struct RecordedError {
    code: String,
    #[serde(default)]
    message: String,
}

/// Reads one record (a JSON object with `kind` and `trace_id`).
pub(super) fn entry(value: serde_json::Value) -> Result<Entry, String> {
    let line: Line =
        serde_json::from_value(value).map_err(|e| format!("not a lastmile trace record: {e}"))?;
    let Some(input) = line.input else {
        return Ok(Entry::Skipped);
    };
    let Some(judged) = judgement(line.decision.as_ref(), line.error.as_ref())? else {
        return Ok(Entry::Skipped);
    };
    if !matches!(input.document, Value::Object(_)) {
        return Err("input.document is not an object".into());
    }
    let inexact = Inexact {
        omitted_body: omitted_body(&input.document),
        masked: input.masked,
    };
    Ok(Entry::Replayable(Box::new(Recorded {
        meta: Meta {
            kind: line.kind,
            trace_id: line.trace_id,
            span_id: line.span_id,
            time: line.time,
            route: line.route,
            tool: line.tool,
            method: line.method,
            path: line.path,
            policy_revision: line.policy_revision,
        },
        input: input.document,
        judged,
        inexact,
    })))
}

/// What the recorded policy made of the input: a policy error, a decision, or nothing
/// to compare with (`None`).
fn judgement(
    decision: Option<&RecordedDecision>,
    error: Option<&RecordedError>,
) -> Result<Option<Judged>, String> {
    if let Some(error) = error.filter(|e| e.code == Refusal::PolicyError.code()) {
        return Ok(Some(Judged::Failed {
            kind: None,
            message: error.message.clone(),
        }));
    }
    let Some(decision) = decision else {
        return Ok(None);
    };
    let verdict = Verdict::from_name(&decision.verdict)
        .ok_or_else(|| format!("unknown decision.verdict {:?}", decision.verdict))?;
    Ok(Some(Judged::decided(
        verdict,
        codes(&decision.deny),
        codes(&decision.approval),
    )))
}

fn codes(reasons: &[Code]) -> impl Iterator<Item = &str> {
    reasons.iter().map(|r| r.code.as_str())
}

/// The size of the body the trace left out: a body over the trace's limit is recorded
/// as `{"omitted_bytes": N}`, N being the body's size (`request.body_bytes`).
fn omitted_body(document: &Value) -> Option<u64> {
    let request = &document["request"];
    let Value::Object(body) = &request["body"] else {
        return None;
    };
    let omitted = body.get(&Value::from("omitted_bytes"))?.as_u64().ok()?;
    let size = request["body_bytes"].as_u64().ok()?;
    let over_limit = usize::try_from(size).map_or(true, |s| s > crate::pipeline::TRACE_BODY_LIMIT);
    (body.len() == 1 && omitted == size && over_limit).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::replay::read;
    use serde_json::json;

    fn replayable(record: serde_json::Value) -> Result<Recorded, String> {
        match read::line(&record.to_string())? {
            Entry::Replayable(recorded) => Ok(*recorded),
            other => Err(format!("not replayable: {other:?}")),
        }
    }

    fn call(extra: serde_json::Value) -> serde_json::Value {
        let mut record = json!({"kind": "call", "trace_id": "t", "span_id": "s",
            "time": "2025-01-01T00:00:00Z", "route": "crm", "method": "POST", "path": "/crm/x",
            "outcome": "denied", "policy_revision": "sha256:a",
            "chain": {"prev": "00", "hash": "11"},
            "input": {"document": {"route": "crm", "request": {"body": {"card_number": "[redacted]"}}},
                "masked": ["input.request.body.card_number"]}});
        if let (Some(record), Some(extra)) = (record.as_object_mut(), extra.as_object()) {
            record.extend(extra.clone());
        }
        record
    }

    #[test]
    fn a_judged_call_is_replayable() -> Result<(), String> {
        let recorded = replayable(call(json!({"decision": {"verdict": "deny",
            "deny": [{"code": "paid", "message": "m"}], "approval": [{"code": "big", "message": "m"}],
            "dedup": false, "obligations": [], "obligation_values": {}}})))?;
        assert_eq!(
            recorded.judged,
            Judged::decided(Verdict::Deny, ["paid"], [])
        );
        assert_eq!(recorded.meta.route.as_deref(), Some("crm"));
        assert_eq!(recorded.inexact.masked, ["input.request.body.card_number"]);
        assert_eq!(recorded.input["route"], Value::from("crm"));
        Ok(())
    }

    #[test]
    fn a_policy_error_is_a_recorded_failure() -> Result<(), String> {
        let recorded = replayable(call(json!({"decision": null,
            "error": {"code": "policy_error", "message": "undefined"}})))?;
        assert_eq!(
            recorded.judged,
            Judged::Failed {
                kind: None,
                message: "undefined".into()
            }
        );
        Ok(())
    }

    #[test]
    fn records_without_input_or_judgement_are_skipped() {
        let no_input =
            json!({"kind": "approval", "trace_id": "t", "span_id": "s", "decision": null});
        assert!(matches!(
            read::line(&no_input.to_string()),
            Ok(Entry::Skipped)
        ));
        let refused =
            call(json!({"decision": null, "error": {"code": "dedup_conflict", "message": "m"}}));
        assert!(matches!(
            read::line(&refused.to_string()),
            Ok(Entry::Skipped)
        ));
    }

    #[test]
    fn bad_records_are_errors() {
        let verdict = call(json!({"decision": {"verdict": "maybe"}}));
        assert!(read::line(&verdict.to_string()).is_err());
        let document =
            call(json!({"input": {"document": 7, "masked": []}, "decision": {"verdict": "allow"}}));
        assert!(read::line(&document.to_string()).is_err());
        let span = json!({"kind": "call", "trace_id": "t", "decision": {"verdict": "allow"}});
        assert!(read::line(&span.to_string()).is_err());
    }

    #[test]
    fn an_omitted_body_is_inexact() -> Result<(), String> {
        let size = crate::pipeline::TRACE_BODY_LIMIT + 1;
        let omitted = replayable(call(json!({"decision": {"verdict": "allow"},
            "input": {"document": {"request": {"body": {"omitted_bytes": size}, "body_bytes": size}},
                "masked": []}})))?;
        assert_eq!(omitted.inexact.omitted_body, Some(size as u64));
        // A small body that happens to look like the placeholder is the body.
        let small = replayable(call(json!({"decision": {"verdict": "allow"},
            "input": {"document": {"request": {"body": {"omitted_bytes": 20}, "body_bytes": 20}},
                "masked": []}})))?;
        assert!(small.inexact.is_exact());
        Ok(())
    }
}
