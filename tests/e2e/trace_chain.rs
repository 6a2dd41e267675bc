//! Tamper evidence of the trace file: the proxy writes it as a hash chain, continued
//! across restarts, and `lastmile trace verify` passes it as written and names the line
//! of an edit, a removal or a swap.

use crate::harness::config::TRACE_FILE;
use crate::harness::{
    expect_status, policies, Behaviour, Proxy, RouteSpec, Setup, Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use serde_json::json;
use std::path::Path;

/// Records each round of [`requests`] writes.
const PER_ROUND: usize = 5;

fn setup(upstream: &Upstream) -> Setup {
    Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
}

/// Requests of every kind of outcome (allowed, denied, no route): one record each.
async fn requests(proxy: &Proxy, round: &str) -> Result<()> {
    for n in 0..3 {
        let reply = proxy
            .get(&format!("/crm/v1/invoices/INV-{round}-{n}"), &[])
            .await?;
        expect_status(&reply, 201).context("allowed")?;
    }
    let denied = proxy
        .post_json("/crm/v1/tickets", &[], &json!({"forbidden": round}))
        .await?;
    expect_status(&denied, 403).context("denied")?;
    let lost = proxy.get("/nowhere", &[]).await?;
    expect_status(&lost, 404).context("no route")
}

/// `lastmile trace verify [--format json] FILE`: whether it exited 0, and its stdout.
fn verify(file: &Path, json: bool) -> Result<(bool, String)> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"));
    command.args(["trace", "verify"]);
    if json {
        command.args(["--format", "json"]);
    }
    let out = command.arg(file).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success() || out.status.code() == Some(1),
        "trace verify exited with {}:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), stdout))
}

/// Verifies `lines` written as `name` in the workspace, expecting a problem of `kind` at
/// `line` whose text report starts with `message`.
fn expect_problem(
    workspace: &Workspace,
    name: &str,
    lines: &[&str],
    (line, kind, message): (u64, &str, &str),
) -> Result<()> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    workspace.write(name, &text)?;
    let path = workspace.path(name);
    let (ok, stdout) = verify(&path, false)?;
    ensure!(!ok, "{name}: verify passed:\n{stdout}");
    ensure!(stdout.starts_with(message), "{name}: {stdout}");
    let (ok, stdout) = verify(&path, true)?;
    let report: serde_json::Value = serde_json::from_str(&stdout).context(stdout.clone())?;
    ensure!(!ok && report["ok"] == false, "{name}: {report}");
    ensure!(
        report["problem"]["line"] == line && report["problem"]["kind"] == kind,
        "{name}: {report}"
    );
    ensure!(
        report["problem"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message)),
        "{name}: {report}"
    );
    Ok(())
}

fn chain_field(line: &str, field: &str) -> Result<String> {
    let record: serde_json::Value = serde_json::from_str(line)?;
    record["chain"][field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no chain.{field} in {line}"))
}

#[tokio::test]
async fn verify_passes_the_file_as_written_and_names_each_kind_of_tampering() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(&setup(&upstream)).await?;
    requests(&proxy, "a").await?;
    let workspace = proxy.stop().await?;

    let text = std::fs::read_to_string(workspace.path(TRACE_FILE))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == PER_ROUND, "{} records:\n{text}", lines.len());
    ensure!(
        chain_field(lines[0], "prev")? == "0".repeat(64),
        "a new file's chain starts at zeros: {}",
        lines[0]
    );
    let (ok, stdout) = verify(&workspace.path(TRACE_FILE), false)?;
    ensure!(
        ok && stdout == format!("ok: {PER_ROUND} records, chain intact\n"),
        "{stdout}"
    );
    let (ok, stdout) = verify(&workspace.path(TRACE_FILE), true)?;
    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    ensure!(
        ok && report["ok"] == true && report["records"] == PER_ROUND && report["problem"].is_null(),
        "{report}"
    );

    // One field of the third record changed.
    let edited_line = lines[2].replacen(r#""method":"GET""#, r#""method":"PUT""#, 1);
    ensure!(edited_line != lines[2], "no method field in {}", lines[2]);
    let mut edited = lines.clone();
    edited[2] = &edited_line;
    expect_problem(
        &workspace,
        "edited.jsonl",
        &edited,
        (
            3,
            "edited",
            "record 3 (line 3): edited (digest does not match its content)",
        ),
    )?;

    let mut removed = lines.clone();
    removed.remove(2);
    expect_problem(
        &workspace,
        "removed.jsonl",
        &removed,
        (
            3,
            "removed_or_reordered",
            "record 3 (line 3): the previous record was removed or the records were \
             reordered (prev does not match record 2)",
        ),
    )?;

    let mut swapped = lines.clone();
    swapped.swap(1, 3);
    expect_problem(
        &workspace,
        "swapped.jsonl",
        &swapped,
        (
            2,
            "removed_or_reordered",
            "record 2 (line 2): the previous record was removed",
        ),
    )?;

    let mut garbled = lines.clone();
    garbled.insert(4, "not a record");
    expect_problem(
        &workspace,
        "garbled.jsonl",
        &garbled,
        (5, "malformed", "record 5 (line 5): not a chained record"),
    )
}

#[tokio::test]
async fn the_chain_continues_across_restarts() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(&setup(&upstream)).await?;
    requests(&proxy, "a").await?;
    let workspace = proxy.stop().await?;

    let proxy = workspace.start(&setup(&upstream)).await?;
    requests(&proxy, "b").await?;
    let stderr = proxy.stderr();
    ensure!(
        !stderr.contains("chain starts again"),
        "a restart on a chained file restarted the chain:\n{stderr}"
    );
    let workspace = proxy.stop().await?;

    let text = std::fs::read_to_string(workspace.path(TRACE_FILE))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(
        lines.len() == 2 * PER_ROUND,
        "{} records:\n{text}",
        lines.len()
    );
    ensure!(
        chain_field(lines[PER_ROUND], "prev")? == chain_field(lines[PER_ROUND - 1], "digest")?,
        "the first record after the restart does not follow the last before it"
    );
    let (ok, stdout) = verify(&workspace.path(TRACE_FILE), false)?;
    ensure!(
        ok && stdout == format!("ok: {} records, chain intact\n", 2 * PER_ROUND),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test]
async fn a_file_from_before_chaining_is_reported_and_a_new_chain_follows_it() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let workspace = Workspace::with_policy(policies::TEST_POLICY)?;
    let legacy = r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","outcome":"allowed"}"#;
    workspace.write(TRACE_FILE, &format!("{legacy}\n"))?;
    let proxy = workspace.start(&setup(&upstream)).await?;
    let stderr = proxy.stderr();
    ensure!(
        stderr.contains("chain starts again") && stderr.contains(TRACE_FILE),
        "no warning that the chain starts again:\n{stderr}"
    );
    requests(&proxy, "a").await?;
    let workspace = proxy.stop().await?;

    let text = std::fs::read_to_string(workspace.path(TRACE_FILE))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == 1 + PER_ROUND, "{text}");
    // The old line is not protected, and verify says so rather than passing the file.
    expect_problem(
        &workspace,
        "as-written.jsonl",
        &lines,
        (1, "unchained", "record 1 (line 1): not a chained record"),
    )?;
    // What the proxy wrote after it is a chain of its own.
    workspace.write(
        "chained-part.jsonl",
        &format!("{}\n", lines[1..].join("\n")),
    )?;
    let (ok, stdout) = verify(&workspace.path("chained-part.jsonl"), false)?;
    ensure!(
        ok && stdout == format!("ok: {PER_ROUND} records, chain intact\n"),
        "{stdout}"
    );
    Ok(())
}
