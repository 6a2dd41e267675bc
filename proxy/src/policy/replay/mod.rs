//! Replaying a decision log on a candidate bundle: every input the log recorded with
//! its judgement is judged again, through [`decide`](super::decide) as the proxy judges
//! it, and the two compared, so a bundle change is checked against real traffic before
//! it serves.
//!
//! [`read`] turns lines into recorded inputs, [`compare`] names the difference between
//! two judgements; this module runs the one into the other and tallies the result.

pub mod compare;
mod lastmile;
pub mod read;

use super::decide;
use super::engine::PreparedPolicy;
use compare::{Change, Judged};
use read::{Entry, Inexact, Meta, Recorded};
use std::collections::BTreeMap;
use std::io::BufRead;

/// Every malformed line is counted, but only the first few are kept to be shown: a file
/// of garbage must not become a report of garbage.
const MALFORMED_KEPT: usize = 20;

/// A line that is not a usable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based.
    pub line: usize,
    pub error: String,
}

/// A decision the candidate makes differently.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The line of the log it is on (1-based).
    pub line: usize,
    pub meta: Meta,
    pub from: Judged,
    pub to: Judged,
    pub change: Change,
    pub inexact: Inexact,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Report {
    pub replayed: usize,
    pub skipped: usize,
    pub malformed: usize,
    /// The first [`MALFORMED_KEPT`] malformed lines.
    pub malformed_lines: Vec<Malformed>,
    /// Replayed records whose input was not recorded exactly.
    pub not_exact: usize,
    counts: BTreeMap<Change, usize>,
    pub changed: Vec<Changed>,
}

impl Report {
    /// How many replayed records fell in `class`.
    pub fn count(&self, class: Change) -> usize {
        self.counts.get(&class).copied().unwrap_or(0)
    }

    fn add(&mut self, line: usize, recorded: Recorded, to: Judged) {
        let change = Change::classify(&recorded.judged, &to);
        self.replayed += 1;
        *self.counts.entry(change).or_default() += 1;
        if !recorded.inexact.is_exact() {
            self.not_exact += 1;
        }
        if change != Change::Unchanged {
            self.changed.push(Changed {
                line,
                meta: recorded.meta,
                from: recorded.judged,
                to,
                change,
                inexact: recorded.inexact,
            });
        }
    }

    fn malformed(&mut self, line: usize, error: String) {
        self.malformed += 1;
        if self.malformed_lines.len() < MALFORMED_KEPT {
            self.malformed_lines.push(Malformed { line, error });
        }
    }
}

/// Replays every line of `log` on `policy`. Fails only when the log cannot be read; a
/// line that is not a usable record (not UTF-8, not JSON, not a known record) is counted
/// as malformed and passed over.
pub fn replay(policy: &PreparedPolicy, mut log: impl BufRead) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut bytes = Vec::new();
    let mut number = 0;
    loop {
        bytes.clear();
        if log.read_until(b'\n', &mut bytes)? == 0 {
            return Ok(report);
        }
        number += 1;
        let entry = std::str::from_utf8(&bytes)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(read::line);
        match entry {
            Ok(Entry::Blank) => {}
            Ok(Entry::Skipped) => report.skipped += 1,
            Ok(Entry::Replayable(recorded)) => {
                let to = Judged::of(&decide::decide(policy, recorded.input.clone()));
                report.add(number, *recorded, to);
            }
            Err(error) => report.malformed(number, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::{Bundle, RegoFile};
    use crate::policy::decision::Verdict;
    use std::time::Duration;

    fn policy(rego: &str) -> anyhow::Result<PreparedPolicy> {
        let bundle = Bundle {
            revision: "sha256:candidate".into(),
            policies: vec![RegoFile {
                name: "p.rego".into(),
                source: rego.into(),
            }],
            tests: vec![],
            data: vec![],
        };
        PreparedPolicy::compile(&bundle, "data.lastmile.decision", Duration::from_secs(5))
    }

    /// Denies `input.n == 1`, asks approval for `n == 2`, has no decision for `n == 3`.
    const CANDIDATE: &str = r#"package lastmile
decision := {"deny": [{"code": "one", "message": "m"} | input.n == 1],
             "approval": [{"code": "two", "message": "m"} | input.n == 2]} if input.n != 3
"#;

    fn line(n: u64, verdict: &str, masked: &[&str]) -> String {
        serde_json::json!({"kind": "call", "trace_id": format!("t{n}"), "span_id": "s",
            "method": "POST", "path": "/x", "input": {"document": {"n": n}, "masked": masked},
            "decision": {"verdict": verdict, "deny": [], "approval": []}})
        .to_string()
    }

    #[test]
    fn a_log_is_replayed_and_tallied() -> anyhow::Result<()> {
        let policy = policy(CANDIDATE)?;
        let log = [
            line(0, "allow", &[]),
            line(1, "allow", &["input.request.body.password"]),
            line(2, "approval", &[]),
            line(3, "allow", &[]),
            String::new(),
            r#"{"kind": "annotation", "trace_id": "t", "span_id": "s"}"#.into(),
            "not json".into(),
        ]
        .join("\n");
        let report = replay(&policy, log.as_bytes())?;
        assert_eq!((report.replayed, report.skipped), (4, 1));
        assert_eq!(report.not_exact, 1);
        assert_eq!(report.count(Change::Unchanged), 1);
        assert_eq!(report.count(Change::AllowToDeny), 1);
        assert_eq!(report.count(Change::ReasonsChanged), 1);
        assert_eq!(report.count(Change::NowPolicyError), 1);
        assert_eq!(report.malformed, 1);
        assert_eq!(report.malformed_lines[0].line, 7);
        let denied = &report.changed[0];
        assert_eq!(denied.meta.trace_id, "t1");
        assert_eq!(denied.line, 2);
        assert_eq!(denied.to, Judged::decided(Verdict::Deny, ["one"], []));
        assert!(!denied.inexact.is_exact());
        Ok(())
    }

    #[test]
    fn bytes_that_are_not_text_are_a_malformed_line() -> anyhow::Result<()> {
        let policy = policy(CANDIDATE)?;
        let mut log = line(0, "allow", &[]).into_bytes();
        log.extend_from_slice(b"\n\xff\xfe\n");
        let report = replay(&policy, log.as_slice())?;
        assert_eq!((report.replayed, report.malformed), (1, 1));
        assert_eq!(report.malformed_lines[0].error, "not UTF-8");
        Ok(())
    }
}
