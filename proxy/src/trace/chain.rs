//! Tamper evidence for the decision trace file: every line carries the digest of the
//! line before it and its own, a hash chain that `lastmile trace verify` checks.
//!
//! The format is byte-exact, so checking a line needs no re-serialisation. A record is
//! serialised to its JSON object as ever (`{...}`, call those bytes `record`); then
//!
//! ```text
//! digest = SHA-256(prev || "\n" || record)
//! line   = record without its closing "}" || ,"chain":{"prev":"<prev>","digest":"<digest>"}}
//! ```
//!
//! where `prev` is the digest of the line before, as 64 lower-case hex digits, and 64
//! zeros at the start of a chain (a new file, or a file whose last line could not be
//! continued). The chain field always has the same length and shape and is the last
//! thing on the line, so a reader cuts it off, puts the `}` back and has `record` again.
//!
//! A chain without an external anchor shows edits, removals and reordering inside the
//! file; it cannot show that the tail was cut off or that the whole file was rewritten
//! (nothing here is secret: anyone can compute the digests).

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// One link of the chain: a SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The `prev` of the first record of a chain.
    pub const ZERO: Digest = Digest([0; 32]);

    /// The digest of `record` (the serialised object, closing brace included) chained
    /// after `prev`. The brace is passed apart so a verifier can hash a line's bytes in
    /// place, without first copying them back together.
    fn of(prev: &Digest, record_head: &[u8], closing: &[u8]) -> Digest {
        let digest = Sha256::new()
            .chain_update(prev.hex())
            .chain_update(b"\n")
            .chain_update(record_head)
            .chain_update(closing)
            .finalize();
        Digest(digest.into())
    }

    /// 64 lower-case hex digits.
    fn hex(&self) -> [u8; HEX_LEN] {
        let mut out = [0u8; HEX_LEN];
        crate::hex::encode_to(&self.0, &mut out);
        out
    }

    /// Reads 64 lower-case hex digits, as [`Digest::hex`] writes them (and nothing else:
    /// upper case is not what lastmile writes, so it is not a chain field).
    fn parse(hex: &[u8]) -> Option<Digest> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        if hex.len() != HEX_LEN {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.hex()))
    }
}

const HEX_LEN: usize = 64;
const FIELD_START: &[u8] = b",\"chain\":{\"prev\":\"";
const FIELD_MIDDLE: &[u8] = b"\",\"digest\":\"";
const FIELD_END: &[u8] = b"\"}}";
/// The chain field's length, closing brace of the record included: it never varies.
const FIELD_LEN: usize =
    FIELD_START.len() + HEX_LEN + FIELD_MIDDLE.len() + HEX_LEN + FIELD_END.len();

/// A record the sealer cannot chain: it is not a JSON object with at least one member
/// (an empty `{}` would become `{,"chain":...}`, which is not JSON).
#[derive(Debug, thiserror::Error)]
#[error("a trace record to chain must be a JSON object with at least one member")]
pub struct NotAnObject;

/// Chains records as they are written, one after the other.
#[derive(Debug)]
pub struct Sealer {
    prev: Digest,
}

impl Sealer {
    /// A sealer whose first record follows `prev` ([`Digest::ZERO`] for a new chain).
    pub fn new(prev: Digest) -> Sealer {
        Sealer { prev }
    }

    /// Turns `record` (one serialised JSON object) into its chained line, in place and
    /// without the newline, and makes it the record the next one follows. On an error
    /// `record` and the chain are unchanged.
    pub fn seal(&mut self, record: &mut Vec<u8>) -> Result<(), NotAnObject> {
        let is_object = record.len() > 2 && record.first() == Some(&b'{');
        if !is_object || record.pop_if(|b| *b == b'}').is_none() {
            return Err(NotAnObject);
        }
        let digest = Digest::of(&self.prev, record, b"}");
        record.reserve(FIELD_LEN);
        record.extend_from_slice(FIELD_START);
        record.extend_from_slice(&self.prev.hex());
        record.extend_from_slice(FIELD_MIDDLE);
        record.extend_from_slice(&digest.hex());
        record.extend_from_slice(FIELD_END);
        self.prev = digest;
        Ok(())
    }
}

/// A line's chain field, taken apart.
struct Sealed<'a> {
    /// The record's bytes before its closing brace.
    head: &'a [u8],
    prev: Digest,
    digest: Digest,
}

impl Sealed<'_> {
    /// Whether the stated digest is the digest of the record as it stands.
    fn intact(&self) -> bool {
        Digest::of(&self.prev, self.head, b"}") == self.digest
    }
}

/// Finds the chain field at the end of `line` (no newline), if it has one as lastmile
/// writes it.
fn split(line: &[u8]) -> Option<Sealed<'_>> {
    let cut = line.len().checked_sub(FIELD_LEN)?;
    let (head, field) = line.split_at(cut);
    let rest = field.strip_prefix(FIELD_START)?;
    let (prev, rest) = rest.split_at_checked(HEX_LEN)?;
    let rest = rest.strip_prefix(FIELD_MIDDLE)?;
    let (digest, rest) = rest.split_at_checked(HEX_LEN)?;
    (rest == FIELD_END && head.first() == Some(&b'{')).then_some(())?;
    Some(Sealed {
        head,
        prev: Digest::parse(prev)?,
        digest: Digest::parse(digest)?,
    })
}

/// Where a record is: its number among the file's records (non-empty lines) and its
/// line number, both from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub record: u64,
    pub line: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} (line {})", self.record, self.line)
    }
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Its digest does not match its content (or its `prev`).
    Edited,
    /// Its `prev` is not the digest of the record before it.
    RemovedOrReordered,
    /// A JSON object without a chain field (written before chaining, or by hand).
    Unchained,
    /// Not JSON, not an object, or a chain field not as lastmile writes it.
    Malformed,
}

impl Kind {
    /// The name `trace verify --format json` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Edited => "edited",
            Kind::RemovedOrReordered => "removed_or_reordered",
            Kind::Unchained => "unchained",
            Kind::Malformed => "malformed",
        }
    }
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: Place,
    pub kind: Kind,
    /// What is wrong, without the place.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.detail)
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records whose chain checked out (all of them when there is no problem; those
    /// before the problem otherwise).
    pub records: u64,
    /// Records after the first whose `prev` is zeros: a new chain starts there, as
    /// lastmile does when it starts on a file whose last line it cannot continue. Not
    /// a problem: faking one means rewriting every record after it, which a chain
    /// without an external anchor cannot show anyway.
    pub restarts: Vec<Place>,
    /// The digest of the last record checked.
    pub last: Option<Digest>,
    pub problem: Option<Problem>,
}

/// Checks every line of a trace file and stops at the first problem. Empty lines are
/// skipped (they hold no record); every other line must be a chained record that
/// follows the one before it. Errors are I/O errors only: what is wrong with the
/// content is in the report.
pub fn verify(mut input: impl BufRead) -> io::Result<Report> {
    let mut report = Report::default();
    let mut buf = Vec::new();
    let mut line_number = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(report);
        }
        line_number += 1;
        let cut_short = buf.pop_if(|b| *b == b'\n').is_none();
        if buf.is_empty() {
            continue;
        }
        let at = Place {
            record: report.records + 1,
            line: line_number,
        };
        match check(&buf, report.last, at, cut_short) {
            Ok(sealed) => {
                if sealed.prev == Digest::ZERO && report.last.is_some() {
                    report.restarts.push(at);
                }
                report.records += 1;
                report.last = Some(sealed.digest);
            }
            Err((kind, detail)) => {
                report.problem = Some(Problem { at, kind, detail });
                return Ok(report);
            }
        }
    }
}

/// Checks the line of the record at `at` against the digest of the record before it
/// (`None` for the first).
fn check(
    line: &[u8],
    last: Option<Digest>,
    at: Place,
    cut_short: bool,
) -> Result<Sealed<'_>, (Kind, String)> {
    let Some(sealed) = split(line) else {
        return Err(unsealed(line, cut_short));
    };
    if !sealed.intact() {
        return Err((
            Kind::Edited,
            "edited (digest does not match its content)".into(),
        ));
    }
    match last {
        _ if sealed.prev == Digest::ZERO => Ok(sealed),
        Some(last) if sealed.prev == last => Ok(sealed),
        Some(_) => Err((
            Kind::RemovedOrReordered,
            format!(
                "the previous record was removed or the records were reordered (prev does not match record {})",
                at.record.saturating_sub(1)
            ),
        )),
        None => Err((
            Kind::RemovedOrReordered,
            "records before it were removed (it is the first record, but its prev is not the start of a chain)"
                .into(),
        )),
    }
}

/// Why a line without a chain field is not a chained record.
fn unsealed(line: &[u8], cut_short: bool) -> (Kind, String) {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) if map.contains_key("chain") => (
            Kind::Malformed,
            "not a chained record (its chain field is not as lastmile writes it)".into(),
        ),
        Ok(serde_json::Value::Object(_)) => (
            Kind::Unchained,
            "not a chained record (a JSON object without a chain field)".into(),
        ),
        Ok(_) => (
            Kind::Malformed,
            "not a chained record (JSON, but not an object)".into(),
        ),
        Err(_) if cut_short => (
            Kind::Malformed,
            "not a chained record (cut short: the file ends inside this line)".into(),
        ),
        Err(_) => (Kind::Malformed, "not a chained record (not JSON)".into()),
    }
}

/// How much of a file's end [`resume`] reads to find its last line. Records are far
/// smaller (bodies over 16 KiB are not traced), so a longer last line is not a record.
const TAIL_LIMIT: u64 = 1024 * 1024;

/// Where writing into an existing file picks up.
#[derive(Debug, PartialEq, Eq)]
pub struct Tail {
    /// The `prev` of the next record written.
    pub prev: Digest,
    /// The file does not end with a newline (a write cut short): one must be written
    /// before the next record, or that record would be glued to the broken line.
    pub newline_first: bool,
    /// Why the chain starts again rather than continuing (for a warning).
    pub restart: Option<&'static str>,
}

/// Reads the end of a trace file about to be appended to and says how to continue its
/// chain: from its last line's digest, or from zeros (with the reason) when that line
/// is not a chained record. An empty file (or one of empty lines) starts a chain.
/// The last line's digest is taken as written, not checked: an edited last line stays
/// an edit that `trace verify` reports, rather than being hidden behind a restart.
pub fn resume(file: &mut (impl Read + Seek)) -> io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(TAIL_LIMIT);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(len - start).read_to_end(&mut tail)?;
    let newline_first = tail.last().is_some_and(|b| *b != b'\n');
    let fresh = |restart| Tail {
        prev: Digest::ZERO,
        newline_first,
        restart,
    };
    let Some(end) = tail.iter().rposition(|b| *b != b'\n') else {
        return Ok(fresh(None));
    };
    let body = &tail[..=end];
    let line = match body.iter().rposition(|b| *b == b'\n') {
        Some(newline) => &body[newline + 1..],
        None if start == 0 => body,
        None => return Ok(fresh(Some("its last line is longer than any trace record"))),
    };
    // A whole chained line missing only its newline (a write cut just before it) is
    // still a record to continue from.
    Ok(match split(line) {
        Some(sealed) => Tail {
            prev: sealed.digest,
            newline_first,
            restart: None,
        },
        None if newline_first => {
            fresh(Some("it ends inside a line (its last write was cut short)"))
        }
        None => fresh(Some("its last line is not a chained record")),
    })
}

#[cfg(test)]
mod tests;
