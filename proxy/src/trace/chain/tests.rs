use super::*;
use anyhow::Result;
use std::io::Cursor;

/// Three small records, as the writer serialises them.
const RECORDS: [&str; 3] = [
    r#"{"trace_id":"a","status":201}"#,
    r#"{"trace_id":"b","status":403}"#,
    r#"{"trace_id":"c","status":404}"#,
];

/// The chained lines of `records`, a chain starting after `prev`.
fn seal_all_after(prev: Digest, records: &[&str]) -> Result<Vec<String>> {
    let mut sealer = Sealer::new(prev);
    records
        .iter()
        .map(|record| {
            let mut bytes = record.as_bytes().to_vec();
            sealer.seal(&mut bytes)?;
            Ok(String::from_utf8(bytes)?)
        })
        .collect()
}

fn seal_all(records: &[&str]) -> Result<Vec<String>> {
    seal_all_after(Digest::ZERO, records)
}

/// A file of `lines`, each ending with a newline.
fn file(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn report(text: &str) -> Result<Report> {
    Ok(verify(Cursor::new(text.as_bytes()))?)
}

fn first_problem(text: &str) -> Result<Problem> {
    report(text)?
        .problem
        .ok_or_else(|| anyhow::anyhow!("no problem found in:\n{text}"))
}

fn place(record: u64, line: u64) -> Place {
    Place { record, line }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_line_is_the_record_with_the_documented_chain_field() -> Result<()> {
    let lines = seal_all(&RECORDS[..2])?;
    let zeros = "0".repeat(64);
    let first = sha256_hex(format!("{zeros}\n{}", RECORDS[0]).as_bytes());
    let second = sha256_hex(format!("{first}\n{}", RECORDS[1]).as_bytes());
    assert_eq!(
        lines[0],
        format!(
            r#"{{"trace_id":"a","status":201,"chain":{{"prev":"{zeros}","digest":"{first}"}}}}"#
        )
    );
    assert_eq!(
        lines[1],
        format!(
            r#"{{"trace_id":"b","status":403,"chain":{{"prev":"{first}","digest":"{second}"}}}}"#
        )
    );
    // Still one JSON object, the record's fields untouched.
    let value: serde_json::Value = serde_json::from_str(&lines[1])?;
    assert_eq!(value["status"], 403);
    assert_eq!(value["chain"]["digest"], second.as_str());
    Ok(())
}

#[test]
fn an_intact_file_verifies() -> Result<()> {
    let lines = seal_all(&RECORDS)?;
    let report = report(&file(&lines))?;
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 3);
    assert!(report.restarts.is_empty());
    let last: serde_json::Value = serde_json::from_str(&lines[2])?;
    assert_eq!(
        report.last.map(|d| d.to_string()).as_deref(),
        last["chain"]["digest"].as_str()
    );
    Ok(())
}

#[test]
fn an_empty_file_is_an_intact_chain_of_no_records() -> Result<()> {
    assert_eq!(report("")?, Report::default());
    Ok(())
}

#[test]
fn an_edited_field_is_reported_at_its_line() -> Result<()> {
    let mut lines = seal_all(&RECORDS)?;
    lines[1] = lines[1].replace(r#""status":403"#, r#""status":201"#);
    let problem = first_problem(&file(&lines))?;
    assert_eq!((problem.at, problem.kind), (place(2, 2), Kind::Edited));
    assert_eq!(
        problem.to_string(),
        "record 2 (line 2): edited (digest does not match its content)"
    );
    Ok(())
}

/// Flips the hex digit at byte `at` of `line` to another hex digit.
fn flip_hex_digit(line: &mut String, at: usize) {
    let flipped = if line.as_bytes().get(at) == Some(&b'a') {
        "b"
    } else {
        "a"
    };
    line.replace_range(at..=at, flipped);
}

#[test]
fn an_edited_prev_or_digest_is_an_edit() -> Result<()> {
    // The first digit of the second record's prev.
    let mut lines = seal_all(&RECORDS)?;
    let prev = lines[1].len() - FIELD_LEN + FIELD_START.len();
    flip_hex_digit(&mut lines[1], prev);
    let problem = first_problem(&file(&lines))?;
    assert_eq!((problem.at, problem.kind), (place(2, 2), Kind::Edited));
    // The last digit of the last record's own digest.
    let mut lines = seal_all(&RECORDS)?;
    let digest = lines[2].len() - FIELD_END.len() - 1;
    flip_hex_digit(&mut lines[2], digest);
    let problem = first_problem(&file(&lines))?;
    assert_eq!((problem.at, problem.kind), (place(3, 3), Kind::Edited));
    Ok(())
}

#[test]
fn a_removed_record_is_reported_at_the_one_after_it() -> Result<()> {
    let mut lines = seal_all(&RECORDS)?;
    lines.remove(1);
    let problem = first_problem(&file(&lines))?;
    assert_eq!(
        (problem.at, problem.kind),
        (place(2, 2), Kind::RemovedOrReordered)
    );
    assert_eq!(
        problem.to_string(),
        "record 2 (line 2): the previous record was removed or the records were reordered \
         (prev does not match record 1)"
    );
    Ok(())
}

#[test]
fn a_removed_first_record_is_reported() -> Result<()> {
    let mut lines = seal_all(&RECORDS)?;
    lines.remove(0);
    let problem = first_problem(&file(&lines))?;
    assert_eq!(
        (problem.at, problem.kind),
        (place(1, 1), Kind::RemovedOrReordered)
    );
    assert!(problem.detail.contains("records before it were removed"));
    Ok(())
}

#[test]
fn reordered_records_are_reported_at_the_first_out_of_place() -> Result<()> {
    let mut lines = seal_all(&RECORDS)?;
    lines.swap(1, 2);
    let report = report(&file(&lines))?;
    assert_eq!(report.records, 1);
    let problem = report
        .problem
        .ok_or_else(|| anyhow::anyhow!("no problem"))?;
    assert_eq!(
        (problem.at, problem.kind),
        (place(2, 2), Kind::RemovedOrReordered)
    );
    Ok(())
}

#[test]
fn a_truncated_last_line_is_malformed() -> Result<()> {
    let lines = seal_all(&RECORDS)?;
    let text = file(&lines);
    let torn = &text[..text.len() - 40];
    let problem = first_problem(torn)?;
    assert_eq!((problem.at, problem.kind), (place(3, 3), Kind::Malformed));
    assert!(problem.detail.contains("cut short"), "{problem}");
    // Cut exactly before its newline, the last record is whole and verifies.
    let report = report(&text[..text.len() - 1])?;
    assert_eq!((report.records, report.problem), (3, None));
    Ok(())
}

#[test]
fn lines_that_are_not_chained_records_are_named() -> Result<()> {
    let chained = seal_all(&RECORDS[..1])?;
    let digest = chained[0].len() - FIELD_END.len() - HEX_LEN;
    let upper_case_digest = format!(
        "{}{}",
        &chained[0][..digest],
        chained[0][digest..].to_uppercase()
    );
    let cases = [
        ("not json at all", Kind::Malformed, "not JSON"),
        ("[1, 2]", Kind::Malformed, "not an object"),
        (
            r#"{"trace_id":"x"}"#,
            Kind::Unchained,
            "without a chain field",
        ),
        (
            &chained[0].replace(r#""prev":"0"#, r#""prev":"O"#),
            Kind::Malformed,
            "chain field",
        ),
        (&upper_case_digest, Kind::Malformed, "chain field"),
    ];
    for (line, kind, detail) in cases {
        let text = format!("{}\n{line}\n", chained[0]);
        let problem = first_problem(&text)?;
        assert_eq!((problem.at, problem.kind), (place(2, 2), kind), "{line}");
        assert!(problem.detail.contains(detail), "{line}: {problem}");
    }
    Ok(())
}

#[test]
fn bytes_that_are_not_text_are_malformed_not_a_panic() -> Result<()> {
    let bytes = b"\xff\xfe{\"chain\x00\n".to_vec();
    let report = verify(Cursor::new(bytes))?;
    assert_eq!(report.problem.map(|p| p.kind), Some(Kind::Malformed));
    Ok(())
}

#[test]
fn every_single_byte_change_is_detected() -> Result<()> {
    let text = file(&seal_all(&RECORDS)?);
    for at in 0..text.len() {
        for replacement in [b'0', b'a', b'}', b'\n', b' '] {
            let mut bytes = text.as_bytes().to_vec();
            if bytes[at] == replacement {
                continue;
            }
            bytes[at] = replacement;
            let report = verify(Cursor::new(&bytes))?;
            assert!(
                report.problem.is_some(),
                "byte {at} set to {replacement:?} went unnoticed"
            );
        }
    }
    Ok(())
}

#[test]
fn empty_lines_are_skipped_so_record_and_line_numbers_can_differ() -> Result<()> {
    let mut lines = seal_all(&RECORDS)?;
    lines.insert(1, String::new());
    lines[2] = lines[2].replace("403", "500");
    let problem = first_problem(&file(&lines))?;
    assert_eq!((problem.at, problem.kind), (place(2, 3), Kind::Edited));
    Ok(())
}

#[test]
fn a_chain_that_starts_again_is_noted_not_failed() -> Result<()> {
    let mut lines = seal_all(&RECORDS[..2])?;
    lines.extend(seal_all(&RECORDS[2..])?);
    let report = report(&file(&lines))?;
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 3);
    assert_eq!(report.restarts, vec![place(3, 3)]);
    Ok(())
}

#[test]
fn a_record_mentioning_a_chain_field_in_its_content_round_trips() -> Result<()> {
    let sneaky = seal_all(&RECORDS[..1])?[0].replace('"', "\\\"");
    let record = format!(r#"{{"path":"{sneaky}"}}"#);
    let text = file(&seal_all(&[&record, RECORDS[1]])?);
    assert_eq!(report(&text)?.problem, None);
    Ok(())
}

#[test]
fn only_non_empty_objects_are_sealed_and_a_refusal_changes_nothing() {
    let mut sealer = Sealer::new(Digest::ZERO);
    for bad in ["{}", "[1,2]", "\"x\"", "", "{\"a\":1"] {
        let mut bytes = bad.as_bytes().to_vec();
        assert!(sealer.seal(&mut bytes).is_err(), "{bad}");
        assert_eq!(bytes, bad.as_bytes());
    }
    assert_eq!(sealer.prev, Digest::ZERO);
}

fn tail_of(text: &str) -> Result<Tail> {
    Ok(resume(&mut Cursor::new(text.as_bytes()))?)
}

#[test]
fn resuming_continues_from_the_last_chained_line() -> Result<()> {
    let first = seal_all(&RECORDS[..2])?;
    let tail = tail_of(&file(&first))?;
    assert_eq!(tail.restart, None);
    assert!(!tail.newline_first);
    // What is written next continues the chain: the whole file verifies.
    let mut all = first;
    all.extend(seal_all_after(tail.prev, &RECORDS[2..])?);
    let report = report(&file(&all))?;
    assert_eq!((report.records, report.problem), (3, None));
    assert!(report.restarts.is_empty());
    // Trailing empty lines are not a last line.
    assert_eq!(tail_of(&format!("{}\n\n", file(&all[..2])))?, tail);
    Ok(())
}

#[test]
fn resuming_an_empty_file_starts_a_chain() -> Result<()> {
    let fresh = Tail {
        prev: Digest::ZERO,
        newline_first: false,
        restart: None,
    };
    assert_eq!(tail_of("")?, fresh);
    assert_eq!(tail_of("\n\n")?, fresh);
    Ok(())
}

#[test]
fn resuming_after_a_line_that_is_not_chained_starts_again() -> Result<()> {
    let chained = file(&seal_all(&RECORDS[..1])?);
    let unchained = tail_of(&format!("{chained}{{\"old\":true}}\n"))?;
    assert_eq!(unchained.prev, Digest::ZERO);
    assert!(!unchained.newline_first);
    assert!(unchained.restart.is_some());

    let torn = tail_of(&chained[..chained.len() - 30])?;
    assert_eq!(torn.prev, Digest::ZERO);
    assert!(torn.newline_first);
    assert!(torn.restart.is_some_and(|r| r.contains("cut short")));

    // A whole chained line that lacks only its newline is continued, after one.
    let whole = tail_of(chained.trim_end())?;
    assert!(whole.newline_first && whole.restart.is_none());
    assert_ne!(whole.prev, Digest::ZERO);
    Ok(())
}

#[test]
fn resuming_after_a_line_longer_than_any_record_starts_again() -> Result<()> {
    let long = format!(
        "{}\n{}\n",
        file(&seal_all(&RECORDS[..1])?).trim_end(),
        "x".repeat(usize::try_from(TAIL_LIMIT)? + 10)
    );
    let tail = tail_of(&long)?;
    assert_eq!(tail.prev, Digest::ZERO);
    assert!(tail.restart.is_some_and(|r| r.contains("longer")));
    Ok(())
}
