//! `lastmile trace show FILE TRACE_ID`: one action's records from a trace file, read as
//! the chain of what happened: the user's words, the acting user and scope, each tool
//! call with its arguments, the decision, the approval, the tool's result, the agent's
//! reply.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt::Write;
use std::io::BufRead;
use std::path::Path;

/// The records of `trace_id` in `file`, ordered by when each event began (stably: in
/// the order written, for equal times). Lines in the
/// OPA decision-log format carry lastmile's record under `lastmile`; a line that is not
/// JSON is skipped (`trace verify` is the tool that reports it).
pub fn records(file: &Path, trace_id: &str) -> Result<Vec<Value>> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut found = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if !line.contains(trace_id) {
            continue;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(own) = value.get_mut("lastmile").map(Value::take) {
            value = own;
        }
        if value["trace_id"] == trace_id {
            found.push(value);
        }
    }
    found.sort_by_key(|r| crate::trace::event_time(r["time"].as_str().unwrap_or("")));
    Ok(found)
}

/// Prints the chain; `Ok(false)` when the file holds no record of the trace.
pub fn show(file: &Path, trace_id: &str, json: bool) -> Result<bool> {
    let records = records(file, trace_id)?;
    if json {
        let out = serde_json::json!({"trace_id": trace_id, "records": records});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if records.is_empty() {
        eprintln!("no record of trace {trace_id} in {}", file.display());
    } else {
        print!("{}", render(trace_id, &records));
    }
    Ok(!records.is_empty())
}

/// The chain as text, one block per record.
pub fn render(trace_id: &str, records: &[Value]) -> String {
    let mut out = format!("trace {trace_id}: {} records\n", records.len());
    for record in records {
        let time = clock(record["time"].as_str().unwrap_or(""));
        let _ = match record["kind"].as_str() {
            Some("annotation") => annotation(&mut out, time, record),
            Some("approval") => approval(&mut out, time, record),
            _ => call(&mut out, time, record),
        };
    }
    out
}

/// `HH:MM:SS.mmm` of an RFC 3339 time.
fn clock(time: &str) -> &str {
    time.get(11..23).unwrap_or(time)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn annotation(out: &mut String, time: &str, r: &Value) -> std::fmt::Result {
    let a = &r["annotation"];
    if let Some(words) = a["user_input"].as_str() {
        writeln!(out, "{time}  user said: {words:?}")?;
    }
    if let Some(reply) = a["agent_reply"].as_str() {
        let model = a["model"]
            .as_str()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        writeln!(out, "{time}  agent replied{model}: {reply:?}")?;
    }
    if let Some(attributes) = a["attributes"].as_object() {
        writeln!(
            out,
            "{time}  agent noted: {}",
            Value::from(attributes.clone())
        )?;
    }
    Ok(())
}

fn call(out: &mut String, time: &str, r: &Value) -> std::fmt::Result {
    if let Some(words) = r["user_input"].as_str() {
        writeln!(out, "{time}  user said: {words:?}")?;
    }
    writeln!(
        out,
        "{time}  {} → {} {} {}{}",
        acting_user(r),
        r["tool"].as_str().unwrap_or("(no tool)"),
        text(&r["method"]),
        text(&r["path"]),
        arguments(&r["arguments"]),
    )?;
    decision(out, "decision", r)?;
    if let Some(id) = r["approval"]["id"].as_str() {
        writeln!(out, "              parked for approval {id}")?;
    }
    result(out, r)
}

/// `u_alice (scope a b, roles r)`.
fn acting_user(r: &Value) -> String {
    let user = r["user"].as_str().unwrap_or("(no user)");
    let claims = &r["user_claims"];
    let named: Vec<String> = ["scope", "roles"]
        .iter()
        .filter_map(|name| {
            let value = &claims[name];
            let list: Vec<String> = match value {
                Value::Array(items) => items.iter().map(text).collect(),
                Value::Null => return None,
                other => vec![text(other)],
            };
            Some(format!("{name} {}", list.join(" ")))
        })
        .collect();
    if named.is_empty() {
        user.to_string()
    } else {
        format!("{user} ({})", named.join(", "))
    }
}

fn arguments(arguments: &Value) -> String {
    let mut out = String::new();
    if let Some(query) = arguments["query"].as_object().filter(|q| !q.is_empty()) {
        let _ = write!(out, " ?{}", Value::from(query.clone()));
    }
    if !arguments["body"].is_null() {
        let _ = write!(out, " {}", arguments["body"]);
    }
    out
}

fn decision(out: &mut String, label: &str, r: &Value) -> std::fmt::Result {
    let d = &r["decision"];
    let revision = r["policy_revision"].as_str().unwrap_or("?");
    if d.is_null() {
        if let Some(code) = r["error"]["code"].as_str() {
            writeln!(
                out,
                "              refused by lastmile: {code} ({})",
                text(&r["error"]["message"])
            )?;
        }
        return Ok(());
    }
    let reasons: Vec<String> = ["deny", "approval"]
        .iter()
        .flat_map(|k| d[k].as_array().cloned().unwrap_or_default())
        .map(|reason| format!("{}: {}", text(&reason["code"]), text(&reason["message"])))
        .collect();
    let because = if reasons.is_empty() {
        String::new()
    } else {
        format!(" — {}", reasons.join("; "))
    };
    writeln!(
        out,
        "              {label}: {}{because} (policy {revision})",
        text(&d["verdict"])
    )
}

fn result(out: &mut String, r: &Value) -> std::fmt::Result {
    let status = text(&r["status"]);
    let outcome = text(&r["outcome"]);
    let response = &r["response"];
    if response.is_null() {
        return writeln!(out, "              answered {status} ({outcome})");
    }
    let digest = response["sha256"].as_str().unwrap_or("");
    let short = digest.get(..12).unwrap_or(digest);
    let body = if response["body"].is_null() {
        String::new()
    } else {
        format!(": {}", response["body"])
    };
    writeln!(
        out,
        "              tool result {status} ({outcome}), {} bytes, sha256 {short}…{body}",
        text(&response["bytes"])
    )
}

fn approval(out: &mut String, time: &str, r: &Value) -> std::fmt::Result {
    let a = &r["approval"];
    let by = a["actor"]
        .as_str()
        .map(|actor| format!(" by {actor}"))
        .unwrap_or_default();
    let comment = a["comment"]
        .as_str()
        .map(|c| format!(" ({c:?})"))
        .unwrap_or_default();
    let failure = a["failure"]
        .as_str()
        .map(|f| format!(": {f}"))
        .unwrap_or_default();
    writeln!(
        out,
        "{time}  approval {} {} → {}{by}{comment}{failure}",
        text(&a["id"]),
        a["from"].as_str().unwrap_or("new"),
        text(&a["to"]),
    )?;
    if !r["decision"].is_null() {
        decision(out, "re-evaluated", r)?;
        result(out, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_chain_in_the_order_of_the_file() {
        let records = [
            json!({"kind": "call", "time": "2026-12-02T13:14:40.123456Z", "user": "u_a",
                "user_claims": {"sub": "u_a", "scope": ["crm.read"]}, "user_input": "refund it",
                "tool": "get_invoice", "method": "GET", "path": "/crm/v1/invoices/INV-2",
                "arguments": {"query": {"expand": ["lines"]}, "body": null},
                "decision": {"verdict": "allow", "deny": [], "approval": []},
                "policy_revision": "sha256:1", "status": 200, "outcome": "allowed",
                "response": {"bytes": 12, "sha256": "abcdef0123456789", "body": {"id": 7}}}),
            json!({"kind": "approval", "time": "2026-12-02T13:14:41.000Z",
                "approval": {"id": "9f", "from": "pending", "to": "approved", "actor": "alice"}}),
            json!({"kind": "annotation", "time": "2026-12-02T13:14:42.000Z",
                "annotation": {"agent_reply": "done", "model": "m"}}),
        ];
        let text = render("t", &records);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "trace t: 3 records");
        assert_eq!(lines[1], "13:14:40.123  user said: \"refund it\"");
        assert_eq!(
            lines[2],
            "13:14:40.123  u_a (scope crm.read) → get_invoice GET /crm/v1/invoices/INV-2 ?{\"expand\":[\"lines\"]}"
        );
        assert_eq!(lines[3], "              decision: allow (policy sha256:1)");
        assert_eq!(
            lines[4],
            "              tool result 200 (allowed), 12 bytes, sha256 abcdef012345…: {\"id\":7}"
        );
        assert_eq!(
            lines[5],
            "13:14:41.000  approval 9f pending → approved by alice"
        );
        assert_eq!(lines[6], "13:14:42.000  agent replied (m): \"done\"");
    }
}
