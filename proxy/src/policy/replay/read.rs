//! One line of a decision log, read into what a replay needs: the recorded input
//! document, what the policy made of it, and where the line came from.
//!
//! Each log format has a module of its own; [`line`] tells the formats apart by their
//! keys, so reading another log (OPA's decision log: `decision_id`, `input`, `result`)
//! is one more module and one more arm here.

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
    /// OPA's decision log, not read yet.
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
        Some(Format::OpaDecisionLog) => {
            Err("an OPA decision-log record: that format is not read yet".into())
        }
        None => Err("neither a lastmile trace record nor an OPA decision-log record".into()),
    }
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
}
