//! `lastmile trace ...`: tools for decision trace files.

use super::{Format, TraceCommand};
use crate::trace::chain::{self, Report};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::BufReader;
use std::path::Path;

/// Runs one trace command; `Ok(false)` means it ran and found a problem (exit 1).
pub fn run(command: TraceCommand) -> Result<bool> {
    match command {
        TraceCommand::Verify { file, format } => verify(&file, format),
        TraceCommand::Show {
            file,
            trace_id,
            format,
        } => super::trace_show::show(&file, &trace_id, format == Format::Json),
    }
}

fn verify(path: &Path, format: Format) -> Result<bool> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening trace file {}", path.display()))?;
    let report = chain::verify(BufReader::with_capacity(256 * 1024, file))
        .with_context(|| format!("reading trace file {}", path.display()))?;
    match format {
        Format::Text => print!("{}", text(&report)),
        Format::Json => println!("{}", json(&report)),
    }
    Ok(report.problem.is_none())
}

/// Restarts as notes, then the verdict: `ok: N records, chain intact` or the problem.
fn text(report: &Report) -> String {
    let mut out: String = report
        .restarts
        .iter()
        .map(|at| format!("note: {at}: a new chain starts here (prev is zeros)\n"))
        .collect();
    match &report.problem {
        None => out.push_str(&format!("ok: {} records, chain intact\n", report.records)),
        Some(problem) => out.push_str(&format!(
            "{problem}\n({} records before it are intact)\n",
            report.records
        )),
    }
    out
}

fn json(report: &Report) -> serde_json::Value {
    let place = |at: &chain::Place| json!({"record": at.record, "line": at.line});
    json!({
        "ok": report.problem.is_none(),
        "records": report.records,
        "problem": report.problem.as_ref().map(|p| json!({
            "record": p.at.record,
            "line": p.at.line,
            "kind": p.kind.as_str(),
            "message": p.to_string(),
        })),
        "restarts": report.restarts.iter().map(place).collect::<Vec<_>>(),
        "last_digest": report.last.map(|d| d.to_string()),
    })
}
