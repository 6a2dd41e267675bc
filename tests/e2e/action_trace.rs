//! The full chain of one action in its trace: the user's words, the acting user and
//! scope, each tool call with its arguments and decision, the approval, each tool's
//! raw result, and the agent's reply, in order under the agent's trace id.

use crate::harness::approvals::{decide, AGENT_USER};
use crate::harness::config::TRACE_FILE;
use crate::harness::upstream::CREATED_BODY;
use crate::harness::{
    expect_status, jwt, Behaviour, Proxy, RouteSpec, Setup, Upstream, Workspace, INBOUND_PARENT_ID,
    INBOUND_TRACE_ID,
};
use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Names every call's tool; a paid invoice is denied; a large refund needs approval.
const POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"tool": tool, "deny": deny, "approval": approval, "add_headers": {"x-tenant": "acme"}}

tool := "get_invoice" if input.request.method == "GET"

tool := "create_refund" if input.request.method == "POST"

deny contains {"code": "invoice_paid", "message": "invoice INV-PAID is already paid"} if body.invoice == "INV-PAID"

approval contains {"code": "amount_over_limit", "message": "over 1000 needs a person"} if body.amount > 1000
"#;

const CARD: &str = "4111111111111111";
const AGENT_KEY: &str = "agent-secret-never-traced";

async fn start(upstream: &Upstream) -> Result<Proxy> {
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
        .eval_timeout_ms(5_000)
        .approvals("")
        .admin_token()
        .trace_setting("include_response_body", "true");
    Workspace::with_policy(POLICY)?.start(&setup).await
}

fn traceparent() -> String {
    format!("00-{INBOUND_TRACE_ID}-{INBOUND_PARENT_ID}-01")
}

async fn call(
    proxy: &Proxy,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Result<crate::harness::Reply> {
    let parent = traceparent();
    let auth = format!("Bearer {AGENT_KEY}");
    let mut headers = vec![
        ("x-lastmile-user", token),
        ("authorization", auth.as_str()),
        ("traceparent", parent.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    proxy.request(method, path, &headers, bytes).await
}

async fn annotate(proxy: &Proxy, token: &str, body: &Value) -> Result<crate::harness::Reply> {
    proxy
        .post_json(
            &format!("/_lastmile/traces/{INBOUND_TRACE_ID}/annotations"),
            &[("x-lastmile-user", token)],
            body,
        )
        .await
}

#[tokio::test]
async fn a_three_call_action_is_traced_from_the_users_words_to_the_agents_reply() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let token = jwt::token(AGENT_USER, "crm.read crm.write")?;
    let other = jwt::token("u_mallory", "crm.read crm.write")?;

    // Nothing to annotate yet: an annotation needs a call of the trace to vouch for it.
    let early = annotate(&proxy, &token, &json!({"user_input": "x"})).await?;
    expect_status(&early, 404)?;
    ensure!(early.json()?["error"]["code"] == "trace_not_found");

    // 1. Allowed, its raw result recorded; the user's words come with the first call.
    let words = "Refund%20INV-2%20for%20acme%2C%20please";
    let read = call(
        &proxy,
        &token,
        Method::GET,
        "/crm/v1/invoices/INV-2?expand=lines",
        None,
        &[("lastmile-user-input", words)],
    )
    .await?;
    expect_status(&read, 201)?;
    let first = upstream.only_request()?;
    ensure!(
        first.header("lastmile-user-input").is_none(),
        "the user's words were forwarded to the tool"
    );
    // 2. Denied by policy: nothing sent.
    let paid = json!({"invoice": "INV-PAID", "amount": 10});
    let denied = call(
        &proxy,
        &token,
        Method::POST,
        "/crm/v1/refunds",
        Some(paid),
        &[],
    )
    .await?;
    expect_status(&denied, 403)?;
    // 3. Parked, approved by a person, executed once.
    let refund = json!({"invoice": "INV-2", "amount": 5000, "card_number": CARD});
    let parked = call(
        &proxy,
        &token,
        Method::POST,
        "/crm/v1/refunds",
        Some(refund),
        &[],
    )
    .await?;
    expect_status(&parked, 202)?;
    let approval_id = parked.json()?["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    let approved = decide(&proxy, "alice", &approval_id, "approve", Some("ok")).await?;
    expect_status(&approved, 200)?;
    upstream.expect_requests(2)?;

    // Another user may not write into this user's action.
    let forged = annotate(&proxy, &other, &json!({"agent_reply": "all done"})).await?;
    expect_status(&forged, 403)?;
    ensure!(forged.json()?["error"]["code"] == "trace_forbidden");
    let bad = annotate(&proxy, &token, &json!({"agent_reply": 7})).await?;
    expect_status(&bad, 400)?;
    ensure!(bad.json()?["error"]["code"] == "invalid_annotation");
    let reply = json!({"user_input": "Refund INV-2 for acme, please",
        "agent_reply": "The refund of 5000 for INV-2 was approved and sent.",
        "model": "example-model-1", "attributes": {"turn": 3, "api_key": "k"}});
    expect_status(&annotate(&proxy, &token, &reply).await?, 201)?;

    let found = proxy
        .admin_operator_get(&format!("/traces/{INBOUND_TRACE_ID}"))
        .await?;
    expect_status(&found, 200)?;
    let records = found.json()?["records"].clone();
    let records = records.as_array().context("records")?;
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("?"),
                r["outcome"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    ensure!(
        kinds
            == [
                ("call", "allowed"),
                ("call", "denied"),
                ("call", "pending_approval"),
                ("approval", "approval_pending"),
                ("approval", "approval_approved"),
                ("approval", "approval_executing"),
                ("approval", "approval_succeeded"),
                ("annotation", "annotated"),
            ],
        "{kinds:?}"
    );
    for r in records.iter().filter(|r| r["kind"] == "call") {
        ensure!(r["parent_span_id"] == INBOUND_PARENT_ID, "{r}");
        ensure!(r["user_claims"]["sub"] == AGENT_USER, "{r}");
        ensure!(r["user_claims"]["scope"][0] == "crm.read", "{r}");
    }

    let read = &records[0];
    ensure!(read["tool"] == "get_invoice", "{read}");
    ensure!(
        read["user_input"] == "Refund INV-2 for acme, please",
        "{read}"
    );
    ensure!(read["arguments"]["query"]["expand"][0] == "lines", "{read}");
    let digest: String = Sha256::digest(CREATED_BODY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = &read["response"];
    ensure!(response["sha256"] == digest.as_str(), "{read}");
    ensure!(response["bytes"] == CREATED_BODY.len(), "{read}");
    ensure!(response["complete"] == true, "{read}");
    ensure!(response["body"]["id"] == "INV-00000007", "{read}");
    ensure!(
        read["decision"]["obligation_values"]["headers"]["x-tenant"] == "acme",
        "{read}"
    );

    let denied = &records[1];
    ensure!(denied["tool"] == "create_refund", "{denied}");
    ensure!(
        denied["decision"]["deny"][0]["code"] == "invoice_paid",
        "{denied}"
    );
    ensure!(denied.get("response").is_none(), "{denied}");

    let parked = &records[2];
    ensure!(
        parked["arguments"]["body"]["card_number"] == "[redacted]",
        "{parked}"
    );
    ensure!(parked["input"]["document"]["route"] == "crm", "{parked}");
    ensure!(
        parked["input"]["masked"] == json!(["input.request.body.card_number"]),
        "{parked}"
    );

    let executed = &records[6];
    ensure!(
        executed["approval"]["id"] == approval_id.as_str(),
        "{executed}"
    );
    ensure!(executed["tool"] == "create_refund", "{executed}");
    ensure!(executed["decision"]["verdict"] == "approval", "{executed}");
    ensure!(executed["upstream"]["status"] == 201, "{executed}");
    ensure!(
        executed["response"]["sha256"] == digest.as_str(),
        "{executed}"
    );

    let note = &records[7];
    ensure!(note["user"] == AGENT_USER, "{note}");
    ensure!(
        note["annotation"]["agent_reply"] == "The refund of 5000 for INV-2 was approved and sent.",
        "{note}"
    );
    ensure!(note["annotation"]["attributes"]["turn"] == 3, "{note}");
    ensure!(
        note["annotation"]["attributes"]["api_key"] == "[redacted]",
        "{note}"
    );

    // The trace file has the same records, and none of the secrets; `trace show` reads
    // the chain back from it.
    let workspace = proxy.stop().await?;
    let file = workspace.path(TRACE_FILE);
    let text = found.text() + &std::fs::read_to_string(&file)?;
    for secret in [
        CARD,
        AGENT_KEY,
        token.as_str(),
        crate::harness::UPSTREAM_TOKEN,
    ] {
        ensure!(!text.contains(secret), "a secret reached the trace");
    }
    let file = file.to_string_lossy();
    let shown = cli(&["trace", "show", &file, INBOUND_TRACE_ID])?;
    eprintln!("{shown}");
    let header = format!("trace {INBOUND_TRACE_ID}: 8 records");
    ensure!(shown.lines().next() == Some(header.as_str()), "{shown}");
    let expected = [
        "user said: \"Refund INV-2 for acme, please\"".to_string(),
        format!("{AGENT_USER} (scope crm.read crm.write) → get_invoice GET /crm/v1/invoices/INV-2 ?{{\"expand\":[\"lines\"]}}"),
        format!("tool result 201 (allowed), {} bytes", CREATED_BODY.len()),
        "decision: deny — invoice_paid: invoice INV-PAID is already paid".to_string(),
        "\"card_number\":\"[redacted]\"".to_string(),
        format!("approval {approval_id} pending → approved by alice (\"ok\")"),
        "decision: approval — amount_over_limit: over 1000 needs a person".to_string(),
        "re-evaluated: approval — amount_over_limit".to_string(),
        "agent replied (example-model-1): \"The refund of 5000 for INV-2 was approved and sent.\"".to_string(),
    ];
    for line in &expected {
        ensure!(
            shown.contains(line.as_str()),
            "missing {line:?} in:\n{shown}"
        );
    }
    let json: Value = serde_json::from_str(&cli(&[
        "trace",
        "show",
        &file,
        INBOUND_TRACE_ID,
        "--format",
        "json",
    ])?)?;
    ensure!(
        json["records"].as_array().map(Vec::len) == Some(8),
        "{json}"
    );
    let unknown = "1".repeat(32);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
        .args(["trace", "show", &file, &unknown])
        .output()?;
    ensure!(!missing.status.success(), "an unknown trace id must fail");
    // The file's hash chain holds.
    ensure!(cli(&["trace", "verify", &file])?.starts_with("ok: "));
    Ok(())
}

/// Runs the lastmile CLI; its standard output when it succeeds.
fn cli(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "lastmile {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn the_opa_format_writes_decision_log_events_that_opa_consumers_read() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
        .eval_timeout_ms(5_000)
        .trace_setting("format", "opa");
    let proxy = Workspace::with_policy(POLICY)?.start(&setup).await?;
    let token = jwt::token(AGENT_USER, "crm.read crm.write")?;
    let paid = json!({"invoice": "INV-PAID", "amount": 10, "password": "hunter2-never"});
    let denied = call(
        &proxy,
        &token,
        Method::POST,
        "/crm/v1/refunds",
        Some(paid),
        &[],
    )
    .await?;
    expect_status(&denied, 403)?;
    let read = call(
        &proxy,
        &token,
        Method::GET,
        "/crm/v1/invoices/INV-2",
        None,
        &[],
    )
    .await?;
    expect_status(&read, 201)?;

    let workspace = proxy.stop().await?;
    let file = workspace.path(TRACE_FILE);
    let text = std::fs::read_to_string(&file)?;
    ensure!(
        !text.contains("hunter2-never"),
        "a secret reached the trace"
    );
    let events: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(events.len() == 2, "{text}");
    for event in &events {
        let id = event["decision_id"].as_str().context("decision_id")?;
        ensure!(id.len() == 36 && id.matches('-').count() == 4, "{event}");
        ensure!(event["path"] == "lastmile/decision", "{event}");
        ensure!(event["input"]["route"] == "crm", "{event}");
        ensure!(
            event["bundles"]["lastmile"]["revision"]
                .as_str()
                .is_some_and(|r| r.starts_with("sha256:")),
            "{event}"
        );
        ensure!(event["labels"]["version"].is_string() && event["labels"]["id"].is_string());
        ensure!(event["timestamp"].is_string(), "{event}");
        ensure!(
            event["metrics"]["timer_rego_query_eval_ns"].is_u64(),
            "{event}"
        );
        ensure!(event["lastmile"]["trace_id"] == INBOUND_TRACE_ID, "{event}");
        ensure!(event["lastmile"].get("input").is_none(), "{event}");
    }
    let denied = &events[0];
    ensure!(
        denied["result"]["deny"][0]["code"] == "invoice_paid",
        "{denied}"
    );
    ensure!(denied["result"]["tool"] == "create_refund", "{denied}");
    ensure!(
        denied["input"]["request"]["body"]["password"] == "[redacted]",
        "{denied}"
    );
    ensure!(
        denied["masked"] == json!(["/input/request/body/password"]),
        "{denied}"
    );
    ensure!(events[1]["result"]["deny"] == json!([]), "{}", events[1]);
    // The same tools read it: the chain holds, and show finds lastmile's records.
    let file = file.to_string_lossy();
    ensure!(cli(&["trace", "verify", &file])?.starts_with("ok: 2 records"));
    let shown = cli(&["trace", "show", &file, INBOUND_TRACE_ID])?;
    ensure!(
        shown.contains("→ create_refund POST /crm/v1/refunds"),
        "{shown}"
    );
    let bundle = workspace.path("policies");
    let replayed: Value = serde_json::from_str(&cli(&[
        "policy",
        "replay",
        "--traces",
        &file,
        &bundle.to_string_lossy(),
        "--format",
        "json",
    ])?)?;
    ensure!(
        replayed["replayed"] == 2 && replayed["changed"] == json!([]),
        "{replayed}"
    );
    ensure!(replayed["not_exact"] == 1, "{replayed}");
    Ok(())
}
