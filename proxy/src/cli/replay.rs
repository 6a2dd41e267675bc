//! `lastmile policy replay`: a candidate bundle judges the inputs a decision trace
//! recorded, and the decisions that change are printed as text or JSON.

use crate::policy::replay::compare::{reason_diff, Change, Judged};
use crate::policy::replay::read::Inexact;
use crate::policy::replay::{self, Changed, Report};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per changed decision, then a summary.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The candidate bundle.
    #[arg(value_name = "BUNDLE_DIR")]
    pub dir: PathBuf,
    /// The decision trace (`trace.output`, JSON lines); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub traces: PathBuf,
    /// Library directories loaded with the bundle.
    #[arg(long = "lib")]
    pub libraries: Vec<PathBuf>,
    #[arg(long, default_value = "data.lastmile.decision")]
    pub entrypoint: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with status 1 when any decision changed (for CI).
    #[arg(long)]
    pub fail_on_change: bool,
}

/// Runs the replay; `Ok(false)` when `--fail-on-change` is given and a decision
/// changed. A trace that cannot be read or a bundle that does not compile is an error.
pub fn run(args: &ReplayArgs) -> Result<bool> {
    let (bundle, policy) = super::policy::load(&args.dir, &args.libraries, &args.entrypoint)?;
    let report = replay::replay(&policy, open(&args.traces)?)
        .with_context(|| format!("reading {}", args.traces.display()))?;
    warn_malformed(&args.traces, &report);
    match args.format {
        Format::Text => print!("{}", text(&report, &bundle.revision)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&document(&report, &bundle.revision))?
        ),
    }
    let failed = args.fail_on_change && !report.changed.is_empty();
    Ok(!failed)
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// Malformed lines go to standard error, so standard output stays the report alone.
fn warn_malformed(path: &Path, report: &Report) {
    for m in &report.malformed_lines {
        eprintln!(
            "lastmile: {}:{}: not replayed: {}",
            path.display(),
            m.line,
            m.error
        );
    }
    let unshown = report.malformed - report.malformed_lines.len();
    if unshown > 0 {
        eprintln!("lastmile: … and {unshown} more malformed lines");
    }
}

/// The text report: a line per changed decision, then the summary.
fn text(report: &Report, revision: &str) -> String {
    let mut out = String::new();
    for changed in &report.changed {
        out.push_str(&change_line(changed));
        out.push('\n');
    }
    if report.changed.is_empty() {
        out.push_str("no decision changed\n");
    }
    out.push_str(&format!(
        "replayed {} records on {revision}: {} changed; {} skipped, {} malformed, {} not exact\n",
        report.replayed,
        report.changed.len(),
        report.skipped,
        report.malformed,
        report.not_exact
    ));
    for class in Change::ALL {
        let n = report.count(class);
        if n > 0 || class == Change::Unchanged {
            out.push_str(&format!("  {:<16} {n}\n", class.name()));
        }
    }
    out
}

/// `trace_id span_id route tool METHOD path: allow → deny (+code, -code) [not exact: …]`
fn change_line(c: &Changed) -> String {
    let m = &c.meta;
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{} {} {} {} {} {}: {} → {}",
        m.trace_id,
        m.span_id,
        or_dash(&m.route),
        or_dash(&m.tool),
        m.method,
        m.path,
        c.from.verdict_name(),
        c.to.verdict_name()
    );
    let (added, removed) = reason_diff(&c.from, &c.to);
    let diff: Vec<String> = added
        .iter()
        .map(|code| format!("+{code}"))
        .chain(removed.iter().map(|code| format!("-{code}")))
        .collect();
    if !diff.is_empty() {
        line.push_str(&format!(" ({})", diff.join(", ")));
    }
    if let Judged::Failed { kind, message } = &c.to {
        line.push_str(&format!(" [{}: {message}]", kind.unwrap_or("error")));
    }
    if let Judged::Failed { message, .. } = &c.from {
        line.push_str(&format!(" [was: {message}]"));
    }
    if let Some(note) = inexact_note(&c.inexact) {
        line.push_str(&format!(" [not exact: {note}]"));
    }
    line
}

fn inexact_note(inexact: &Inexact) -> Option<String> {
    let mut notes = Vec::new();
    if !inexact.masked.is_empty() {
        notes.push(format!("masked {}", inexact.masked.join(", ")));
    }
    if let Some(bytes) = inexact.omitted_body {
        notes.push(format!("body of {bytes} bytes not recorded"));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// The JSON report (`--format json`).
fn document(report: &Report, revision: &str) -> Value {
    let counts: serde_json::Map<String, Value> = Change::ALL
        .iter()
        .map(|class| (class.name().to_string(), Value::from(report.count(*class))))
        .collect();
    let malformed: Vec<Value> = report
        .malformed_lines
        .iter()
        .map(|m| json!({"line": m.line, "error": m.error}))
        .collect();
    json!({
        "revision": revision,
        "replayed": report.replayed,
        "skipped": report.skipped,
        "malformed": report.malformed,
        "malformed_lines": malformed,
        "not_exact": report.not_exact,
        "changed": report.changed.iter().map(changed_json).collect::<Vec<_>>(),
        "counts": counts,
    })
}

fn changed_json(c: &Changed) -> Value {
    let m = &c.meta;
    json!({
        "line": c.line,
        "kind": m.kind,
        "trace_id": m.trace_id,
        "span_id": m.span_id,
        "time": m.time,
        "route": m.route,
        "tool": m.tool,
        "method": m.method,
        "path": m.path,
        "policy_revision": m.policy_revision,
        "from": judged_json(&c.from),
        "to": judged_json(&c.to),
        "change": c.change.name(),
        "not_exact": !c.inexact.is_exact(),
        "masked": c.inexact.masked,
        "omitted_body_bytes": c.inexact.omitted_body,
    })
}

fn judged_json(judged: &Judged) -> Value {
    let mut value = json!({
        "verdict": judged.verdict_name(),
        "reasons": judged.reasons().collect::<Vec<_>>(),
    });
    if let (Judged::Failed { kind, message }, Some(object)) = (judged, value.as_object_mut()) {
        object.insert("error".into(), Value::from(message.as_str()));
        object.insert("kind".into(), json!(kind));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decision::Verdict;
    use crate::policy::replay::read::Meta;

    fn changed(from: Judged, to: Judged, masked: &[&str]) -> Changed {
        Changed {
            line: 3,
            meta: Meta {
                kind: "call".into(),
                trace_id: "t1".into(),
                span_id: "s1".into(),
                route: Some("crm".into()),
                method: "POST".into(),
                path: "/crm/v1/refunds".into(),
                ..Meta::default()
            },
            change: Change::classify(&from, &to),
            from,
            to,
            inexact: Inexact {
                masked: masked.iter().map(|s| s.to_string()).collect(),
                omitted_body: None,
            },
        }
    }

    #[test]
    fn a_change_line_names_the_step_the_reasons_and_the_masking() {
        let c = changed(
            Judged::decided(Verdict::Allow, [], []),
            Judged::decided(Verdict::Deny, ["paid"], []),
            &["input.request.body.card_number"],
        );
        assert_eq!(
            change_line(&c),
            "t1 s1 crm - POST /crm/v1/refunds: allow → deny (+paid) \
             [not exact: masked input.request.body.card_number]"
        );
        let renamed = changed(
            Judged::decided(Verdict::Approval, [], ["old"]),
            Judged::decided(Verdict::Approval, [], ["new"]),
            &[],
        );
        assert_eq!(
            change_line(&renamed),
            "t1 s1 crm - POST /crm/v1/refunds: approval → approval (+new, -old)"
        );
    }

    #[test]
    fn a_failure_is_shown_with_its_kind() -> anyhow::Result<()> {
        let c = changed(
            Judged::decided(Verdict::Allow, [], []),
            Judged::Failed {
                kind: Some("undefined"),
                message: "no decision".into(),
            },
            &[],
        );
        anyhow::ensure!(change_line(&c).ends_with("allow → policy_error [undefined: no decision]"));
        let json = changed_json(&c);
        anyhow::ensure!(json["change"] == "now_policy_error", "{json}");
        anyhow::ensure!(json["to"]["kind"] == "undefined", "{json}");
        anyhow::ensure!(json["from"]["verdict"] == "allow", "{json}");
        Ok(())
    }

    #[test]
    fn the_json_report_counts_every_class() -> anyhow::Result<()> {
        let json = document(&Report::default(), "sha256:x");
        let counts = json["counts"].as_object().map_or(0, |c| c.len());
        anyhow::ensure!(counts == Change::ALL.len(), "{json}");
        anyhow::ensure!(json["changed"] == json!([]), "{json}");
        Ok(())
    }
}
