//! `lastmile policy replay`: a trace written by the real proxy (an allowed call, a
//! denied one, one parked and approved, one with a redacted field, one the policy
//! failed on) judged again on a changed bundle, and on the bundle that wrote it.

use crate::harness::approvals::{decide, AGENT_USER};
use crate::harness::{
    eventually, expect_status, jwt, policies, Behaviour, Proxy, Reply, RouteSpec, Setup, Upstream,
    Workspace,
};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// The bundle that serves: a paid invoice is denied, a large refund needs approval, a
/// body with `set_host` makes the decision malformed (a reserved header).
const POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"tool": tool, "deny": deny, "approval": approval, "add_headers": add_headers}

tool := "get_invoice" if input.request.method == "GET"

tool := "create_refund" if {
	input.request.method == "POST"
	input.request.segments[1] == "refunds"
}

default tool := "other"

deny contains {"code": "invoice_paid", "message": "the invoice is already paid"} if body.invoice == "INV-PAID"

approval contains {"code": "amount_over_limit", "message": "over 1000 needs a person"} if body.amount > 1000

add_headers := {"host": "evil.example"} if body.set_host == true

default add_headers := {}
"#;

/// The candidate: INV-1 is locked, paid invoices are no longer denied, the approval
/// reason is renamed, a ticket carrying a password is denied, and no decision is
/// malformed.
const CANDIDATE: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"tool": tool, "deny": deny, "approval": approval}

tool := "get_invoice" if input.request.method == "GET"

tool := "create_refund" if {
	input.request.method == "POST"
	input.request.segments[1] == "refunds"
}

default tool := "other"

deny contains {"code": "invoice_locked", "message": "INV-1 is locked"} if {
	input.request.method == "GET"
	input.request.segments[2] == "INV-1"
}

deny contains {"code": "secret_in_ticket", "message": "tickets may not carry passwords"} if "password" in object.keys(body)

approval contains {"code": "amount_needs_review", "message": "over 1000 needs a person"} if body.amount > 1000
"#;

fn lastmile(args: &[&str]) -> Result<Output> {
    Ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
            .args(args)
            .output()?,
    )
}

fn trace_id(reply: &Reply) -> Result<String> {
    reply
        .header("lastmile-trace-id")
        .context("no lastmile-trace-id header")
}

/// `policy replay --format json`, with its exit code and report.
fn replay_json(traces: &Path, bundle: &Path, extra: &[&str]) -> Result<(Option<i32>, Value)> {
    let traces = traces.to_string_lossy();
    let bundle = bundle.to_string_lossy();
    let mut args = vec!["policy", "replay", "--traces", &traces, "--format", "json"];
    args.extend_from_slice(extra);
    args.push(&bundle);
    let out = lastmile(&args)?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the report is not JSON; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.code(), report))
}

/// Five calls, one of them approved and executed; returns the trace text once every
/// record with an input is written, and the calls' trace ids.
async fn record_traffic(proxy: &Proxy) -> Result<(String, [String; 5])> {
    let token = jwt::token(AGENT_USER, "crm.read crm.write")?;
    let user = [("x-lastmile-user", token.as_str())];
    let allowed = proxy.get("/crm/v1/invoices/INV-1", &user).await?;
    expect_status(&allowed, 201)?;
    let paid = json!({"invoice": "INV-PAID", "amount": 10});
    let denied = proxy.post_json("/crm/v1/refunds", &user, &paid).await?;
    expect_status(&denied, 403)?;
    let large = json!({"invoice": "INV-2", "amount": 5000});
    let parked = proxy.post_json("/crm/v1/refunds", &user, &large).await?;
    expect_status(&parked, 202)?;
    let id = parked.json()?["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    expect_status(&decide(proxy, "alice", &id, "approve", None).await?, 200)?;
    let secret = json!({"subject": "reset my login", "password": "hunter2-never-traced"});
    let masked = proxy.post_json("/crm/v1/tickets", &user, &secret).await?;
    expect_status(&masked, 201)?;
    let failing = proxy
        .post_json("/crm/v1/notes", &user, &json!({"set_host": true}))
        .await?;
    expect_status(&failing, 403)?;
    let ids = [
        trace_id(&allowed)?,
        trace_id(&denied)?,
        trace_id(&parked)?,
        trace_id(&masked)?,
        trace_id(&failing)?,
    ];
    // Six records carry an input: five calls and the approved execution.
    let text = eventually(
        "six records with an input",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let text = proxy.trace_text();
            std::future::ready(text.map(|t| {
                let complete = t.lines().filter(|l| l.contains(r#""input":"#)).count() == 6;
                complete.then_some(t)
            }))
        },
    )
    .await?;
    Ok((text, ids))
}

#[tokio::test]
async fn replay_lists_the_decisions_a_changed_bundle_makes_differently() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
        .eval_timeout_ms(5_000)
        .approvals("");
    let proxy = Workspace::with_policy(POLICY)?.start(&setup).await?;
    let (text, [allowed, denied, parked, masked, failing]) = record_traffic(&proxy).await?;
    ensure!(
        !text.contains("hunter2-never-traced"),
        "the password reached the trace"
    );
    // A snapshot: the proxy may go on writing while the replays run.
    let traces = proxy.workspace().path("replayed.jsonl");
    std::fs::write(&traces, &text)?;
    let skipped = text.lines().filter(|l| !l.contains(r#""input":"#)).count();
    let candidate = Workspace::with_policy(CANDIDATE)?;
    let candidate_dir = candidate.path("policies");

    let (code, report) = replay_json(&traces, &candidate_dir, &["--fail-on-change"])?;
    ensure!(
        code == Some(1),
        "--fail-on-change exited {code:?}: {report}"
    );
    ensure!(report["replayed"] == 6, "{report}");
    ensure!(report["skipped"] == skipped, "{report}");
    ensure!(report["malformed"] == 0, "{report}");
    ensure!(report["not_exact"] == 1, "{report}");
    let changed = report["changed"].as_array().context("changed")?;
    let mut found: Vec<(String, String, String)> = changed
        .iter()
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or("?").to_string();
            (text("trace_id"), text("kind"), text("change"))
        })
        .collect();
    found.sort();
    let entry = |id: &str, kind: &str, change: &str| (id.into(), kind.into(), change.into());
    let mut expected = vec![
        entry(&allowed, "call", "allow→deny"),
        entry(&denied, "call", "deny→allow"),
        entry(&parked, "call", "reasons_changed"),
        entry(&parked, "approval", "reasons_changed"),
        entry(&masked, "call", "allow→deny"),
        entry(&failing, "call", "was_policy_error"),
    ];
    expected.sort();
    ensure!(found == expected, "{found:?}\n{report}");
    let counts = &report["counts"];
    for (class, n) in [
        ("unchanged", 0),
        ("allow→deny", 2),
        ("deny→allow", 1),
        ("reasons_changed", 2),
        ("was_policy_error", 1),
        ("now_policy_error", 0),
        ("allow→approval", 0),
    ] {
        ensure!(counts[class] == n, "{class}: {counts}");
    }

    let of = |id: &str, kind: &str| {
        changed
            .iter()
            .find(|c| c["trace_id"] == id && c["kind"] == kind)
            .with_context(|| format!("no change for {id} {kind}"))
    };
    let locked = of(&allowed, "call")?;
    ensure!(
        locked["to"]["reasons"] == json!(["invoice_locked"]),
        "{locked}"
    );
    ensure!(
        locked["tool"] == "get_invoice" && locked["method"] == "GET",
        "{locked}"
    );
    ensure!(locked["path"] == "/crm/v1/invoices/INV-1", "{locked}");
    ensure!(locked["not_exact"] == false, "{locked}");
    let renamed = of(&parked, "approval")?;
    ensure!(
        renamed["from"] == json!({"verdict": "approval", "reasons": ["amount_over_limit"]}),
        "{renamed}"
    );
    ensure!(
        renamed["to"] == json!({"verdict": "approval", "reasons": ["amount_needs_review"]}),
        "{renamed}"
    );
    let secret = of(&masked, "call")?;
    ensure!(secret["not_exact"] == true, "{secret}");
    ensure!(
        secret["masked"] == json!(["input.request.body.password"]),
        "{secret}"
    );
    let fixed = of(&failing, "call")?;
    ensure!(fixed["from"]["verdict"] == "policy_error", "{fixed}");
    ensure!(fixed["to"]["verdict"] == "allow", "{fixed}");

    // The text report: a line per change, the masked one marked.
    let out = lastmile(&[
        "policy",
        "replay",
        "--traces",
        &traces.to_string_lossy(),
        &candidate_dir.to_string_lossy(),
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "without --fail-on-change: {stdout}");
    let line = format!(
        "{masked} {} crm other POST /crm/v1/tickets: allow → deny (+secret_in_ticket) \
         [not exact: masked input.request.body.password]",
        secret["span_id"].as_str().unwrap_or("?")
    );
    ensure!(
        stdout.lines().any(|l| l == line),
        "no line {line:?} in:\n{stdout}"
    );
    ensure!(
        stdout.contains("approval → approval (+amount_needs_review, -amount_over_limit)"),
        "{stdout}"
    );
    ensure!(stdout.contains("replayed 6 records on sha256:"), "{stdout}");

    // The bundle that wrote the trace decides every record as it did.
    let original = proxy.workspace().path("policies");
    let (code, report) = replay_json(&traces, &original, &["--fail-on-change"])?;
    ensure!(code == Some(0), "exited {code:?}: {report}");
    ensure!(report["changed"] == json!([]), "{report}");
    ensure!(report["counts"]["unchanged"] == 6, "{report}");

    // A line that is not a record is named, counted, and passed over.
    let mut damaged = text.clone();
    damaged.push_str("{\"kind\": \"call\", \"trace_id\"\n");
    damaged.push_str(&text);
    let damaged_path = proxy.workspace().path("damaged.jsonl");
    std::fs::write(&damaged_path, &damaged)?;
    let bad_line = text.lines().count() + 1;
    let out = lastmile(&[
        "policy",
        "replay",
        "--traces",
        &damaged_path.to_string_lossy(),
        "--format",
        "json",
        &original.to_string_lossy(),
    ])?;
    ensure!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        report["malformed"] == 1 && report["replayed"] == 12,
        "{report}"
    );
    ensure!(report["malformed_lines"][0]["line"] == bad_line, "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains(&format!("damaged.jsonl:{bad_line}: not replayed: not JSON")),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn replay_refuses_a_missing_trace_and_a_broken_bundle() -> Result<()> {
    let workspace = Workspace::with_policy(policies::ALLOW_ALL)?;
    let bundle = workspace.path("policies");
    let missing = workspace.path("no-such-trace.jsonl");
    let out = lastmile(&[
        "policy",
        "replay",
        "--traces",
        &missing.to_string_lossy(),
        &bundle.to_string_lossy(),
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a missing trace file replayed");
    ensure!(stderr.contains("no-such-trace.jsonl"), "{stderr}");

    workspace.write("empty.jsonl", "")?;
    let broken = Workspace::with_policy(policies::BROKEN)?;
    let out = lastmile(&[
        "policy",
        "replay",
        "--traces",
        &workspace.path("empty.jsonl").to_string_lossy(),
        &broken.path("policies").to_string_lossy(),
    ])?;
    ensure!(!out.status.success(), "a broken bundle replayed");
    ensure!(out.stdout.is_empty(), "a report for a broken bundle");
    Ok(())
}
