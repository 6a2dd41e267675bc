//! One line of a decision log, read into what a replay needs: the recorded input
//! document, what the policy made of it, and where the line came from.
//!
//! [`line`] tells the formats apart by their keys: lastmile's records, and the OPA
//! decision-log events lastmile writes with `trace.format: opa` (`decision_id`, `input`,
//! `masked`, and lastmile's record under `lastmile`), read back into a record.

use super::compare::Judged;
use super::lastmile;

/// What a line holds.
#[derive(Debug)]
pub enum Entry {
    /// Nothing (an empty line).
    Blank,
    /// A record without an input and a judgement to compare (a refusal before the
    /// policy ran, an annotation, an approval transition without an execution).
    Skipped,
    /// A judged input.
    Replayable(Box<Recorded>),
}

/// A recorded input and its judgement.
#[derive(Debug)]
pub struct Recorded {
    pub meta: Meta,
    /// The input document as recorded (redacted values replaced by `"[redacted]"`).
    pub input: regorus::Value,
    pub judged: Judged,
    pub inexact: Inexact,
}

/// Where a record came from, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The record's kind (`call`, `approval`).
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub time: Option<String>,
    pub route: Option<String>,
    pub tool: Option<String>,
    pub method: String,
    pub path: String,
    /// The bundle revision that judged the input.
    pub policy_revision: Option<String>,
}

/// How the recorded input differs from the one the policy saw: the candidate is then
/// judging something else, and its answer may differ for that reason alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inexact {
    /// The dotted paths redaction replaced (`input.request.body.card_number`).
    pub masked: Vec<String>,
    /// The size of a body the trace left out (too large to record), when it did.
    pub omitted_body: Option<u64>,
}

impl Inexact {
    pub fn is_exact(&self) -> bool {
        self.masked.is_empty() && self.omitted_body.is_none()
    }
}

/// The formats a line can be in.
enum Format {
    /// lastmile's own trace (`trace.output`).
    Lastmile,
    /// OPA decision-log events as lastmile writes them.
    OpaDecisionLog,
}

fn detect(object: &serde_json::Map<String, serde_json::Value>) -> Option<Format> {
    if object.contains_key("kind") && object.contains_key("trace_id") {
        Some(Format::Lastmile)
    } else if object.contains_key("decision_id") {
        Some(Format::OpaDecisionLog)
    } else {
        None
    }
}

/// Reads one line; `Err` says why it is not a usable record.
pub fn line(text: &str) -> Result<Entry, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Entry::Blank);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let format = match &value {
        serde_json::Value::Object(object) => detect(object),
        _ => return Err("not a JSON object".into()),
    };
    match format {
        Some(Format::Lastmile) => lastmile::entry(value),
        Some(Format::OpaDecisionLog) => lastmile::entry(record_of_event(value)?),
        None => Err("neither a lastmile trace record nor an OPA decision-log record".into()),
    }
}

/// lastmile's record inside an OPA-format event, with the event's input (and its
/// masked paths, JSON pointers there) put back where the record keeps them.
fn record_of_event(mut event: serde_json::Value) -> Result<serde_json::Value, String> {
    let mut record = match event
        .get_mut(crate::trace::opa::EXTENSION)
        .map(serde_json::Value::take)
    {
        Some(record @ serde_json::Value::Object(_)) => record,
        _ => return Err("an OPA decision-log event without lastmile's record".into()),
    };
    if let Some(input) = event.get_mut("input").map(serde_json::Value::take) {
        let masked: Vec<String> = event["masked"]
            .as_array()
            .map(|pointers| {
                pointers
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .map(dotted)
                    .collect()
            })
            .unwrap_or_default();
        record["input"] = serde_json::json!({"document": input, "masked": masked});
    }
    Ok(record)
}

/// `/input/request/body/card_number` → `input.request.body.card_number`.
fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_foreign_lines() {
        assert!(matches!(line("  \r"), Ok(Entry::Blank)));
        for bad in ["{", "[1]", "7", r#"{"a": 1}"#, r#"{"decision_id": "x"}"#] {
            assert!(line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_opa_event_reads_as_its_record_with_the_events_input() -> Result<(), String> {
        let event = r#"{"decision_id": "d", "path": "lastmile/decision",
            "input": {"request": {"body": {"card_number": "[redacted]"}}},
            "masked": ["/input/request/body/card_number"],
            "lastmile": {"kind": "call", "trace_id": "t", "span_id": "s", "method": "POST",
                "path": "/p", "decision": {"verdict": "allow"}}}"#;
        let Entry::Replayable(recorded) = line(event)? else {
            return Err("not replayable".into());
        };
        assert_eq!(recorded.inexact.masked, ["input.request.body.card_number"]);
        assert_eq!(recorded.meta.trace_id, "t");
        Ok(())
    }
}
