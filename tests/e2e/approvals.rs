//! Human approval through the real binary: parking, the approver API, exactly-once
//! execution with re-evaluation, the agent's poll, expiry, restarts and refusals.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{
    assert_refusal, eventually, jwt, Behaviour, Proxy, Reply, RouteSpec, Setup, Upstream,
    Workspace, APPROVERS,
};
use anyhow::{bail, ensure, Context, Result};
use http::Method;
use lastmile::dedup::clock::ManualClock;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Over 1000 needs approval; a paid invoice (in `data.billing.paid`) is denied; an
/// approved execution tells the upstream who approved it (from `input.approval`); the
/// invoice and amount are the dedup intent.
pub const APPROVAL_POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := object.union({"deny": deny, "approval": approval, "add_headers": add_headers}, dedup)

deny contains {"code": "invoice_paid", "message": msg} if {
	body.invoice in data.billing.paid
	msg := sprintf("invoice %v is already paid", [body.invoice])
}

approval contains {"code": "amount_over_limit", "message": msg} if {
	body.amount > 1000
	msg := sprintf("amount %v is over the limit of 1000", [body.amount])
}

add_headers["x-approved-by"] := input.approval.approved_by if input.approval != null

add_headers["x-approval-id"] := input.approval.approval_id if input.approval != null

dedup := {"dedup": {"key": {"invoice": body.invoice, "amount": body.amount}, "window_seconds": 3600}} if {
	input.request.method == "POST"
	is_string(body.invoice)
}

default dedup := {}
"#;

const UNPAID: &str = r#"{"billing": {"paid": []}}"#;

pub const AGENT_USER: &str = "u_agent_user";

pub fn token(name: &str) -> Result<&'static str> {
    APPROVERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .with_context(|| format!("no approver {name}"))
}

pub fn workspace() -> Result<Workspace> {
    let workspace = Workspace::with_policy(APPROVAL_POLICY)?;
    workspace.write("policies/data.json", UNPAID)?;
    Ok(workspace)
}

pub fn setup(upstream: &Upstream, route: impl FnOnce(RouteSpec) -> RouteSpec) -> Setup {
    Setup::new(vec![route(RouteSpec::new("crm", "/crm", upstream.url()))]).approvals("")
}

pub async fn start(upstream: &Upstream) -> Result<Proxy> {
    workspace()?.start(&setup(upstream, |r| r)).await
}

/// The agent's refund request, as `user`.
pub async fn refund(proxy: &Proxy, user: &str, invoice: &str, amount: u64) -> Result<Reply> {
    let token = jwt::token(user, "crm.read crm.write")?;
    proxy
        .post_json(
            "/crm/v1/refunds",
            &[
                ("x-lastmile-user", &token),
                ("authorization", "Bearer agent-secret"),
            ],
            &json!({"invoice": invoice, "amount": amount, "note": "customer asked"}),
        )
        .await
}

/// Parks a refund and returns its approval id.
pub async fn park(proxy: &Proxy, invoice: &str) -> Result<String> {
    let reply = refund(proxy, AGENT_USER, invoice, 5000).await?;
    ensure!(
        reply.status == 202,
        "expected 202, got {}: {}",
        reply.status,
        reply.text()
    );
    let body = reply.json()?;
    body["approval_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no approval_id in {body}"))
}

pub async fn poll(proxy: &Proxy, user: &str, id: &str, wait: &str) -> Result<Reply> {
    let token = jwt::token(user, "crm.read crm.write")?;
    proxy
        .get(
            &format!("/_lastmile/approvals/{id}{wait}"),
            &[("x-lastmile-user", &token)],
        )
        .await
}

pub async fn decide(
    proxy: &Proxy,
    approver: &str,
    id: &str,
    action: &str,
    comment: Option<&str>,
) -> Result<Reply> {
    let body = comment.map(|c| json!({ "comment": c }));
    proxy
        .admin_call(
            Method::POST,
            &format!("/approvals/{id}/{action}"),
            Some(token(approver)?),
            body.as_ref(),
        )
        .await
}

pub async fn show(proxy: &Proxy, id: &str) -> Result<Value> {
    let reply = proxy
        .admin_call(
            Method::GET,
            &format!("/approvals/{id}"),
            Some(token("alice")?),
            None,
        )
        .await?;
    ensure!(
        reply.status == 200,
        "show: {} {}",
        reply.status,
        reply.text()
    );
    reply.json()
}

#[tokio::test]
async fn an_over_limit_refund_is_parked_approved_and_executed_exactly_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;

    let reply = refund(&proxy, AGENT_USER, "INV-00000001", 5000).await?;
    ensure!(reply.status == 202, "{}: {}", reply.status, reply.text());
    ensure!(reply.header("lastmile-decision").as_deref() == Some("pending_approval"));
    let parked = reply.json()?;
    let id = parked["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    ensure!(parked["status"] == "pending_approval", "{parked}");
    ensure!(
        parked["poll_url"] == format!("/_lastmile/approvals/{id}"),
        "{parked}"
    );
    ensure!(
        parked["reasons"][0]["code"] == "amount_over_limit",
        "{parked}"
    );
    ensure!(
        parked["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{parked}"
    );
    ensure!(
        upstream.received().is_empty(),
        "nothing may reach the upstream yet"
    );

    // The same intent while it is pending: the same approval, not a second one.
    let again = refund(&proxy, AGENT_USER, "INV-00000001", 5000).await?;
    ensure!(again.status == 202 && again.json()?["approval_id"] == id.as_str());

    let list = proxy
        .admin_call(
            Method::GET,
            "/approvals?state=pending",
            Some(token("alice")?),
            None,
        )
        .await?;
    ensure!(list.status == 200, "{}", list.text());
    let items = list.json()?["approvals"].clone();
    ensure!(items.as_array().map(Vec::len) == Some(1), "{items}");
    ensure!(
        items[0]["id"] == id.as_str() && items[0]["user"] == AGENT_USER,
        "{items}"
    );
    ensure!(items[0]["request"]["body"]["amount"] == 5000, "{items}");
    ensure!(items[0]["request"]["path"] == "/crm/v1/refunds", "{items}");
    ensure!(
        !list.text().contains("agent-secret") && !list.text().contains("eyJ"),
        "credentials or tokens leaked into the list: {}",
        list.text()
    );

    let pending = poll(&proxy, AGENT_USER, &id, "").await?;
    ensure!(pending.status == 202 && pending.json()?["status"] == "pending_approval");

    let approved = decide(
        &proxy,
        "alice",
        &id,
        "approve",
        Some("refund agreed with finance"),
    )
    .await?;
    ensure!(
        approved.status == 200,
        "{}: {}",
        approved.status,
        approved.text()
    );
    let approved = approved.json()?;
    ensure!(approved["state"] == "succeeded", "{approved}");
    ensure!(approved["upstream_status"] == 201 && approved["decided_by"] == "alice");

    let received = upstream.received();
    ensure!(
        received.len() == 1,
        "exactly one upstream call, got {}",
        received.len()
    );
    let sent = &received[0];
    ensure!(sent.path == "/v1/refunds" && sent.method == Method::POST);
    ensure!(
        sent.header("authorization").as_deref()
            == Some(format!("Bearer {}", crate::harness::UPSTREAM_TOKEN).as_str()),
        "the route's credential, not the agent's, goes upstream"
    );
    ensure!(sent.header("x-lastmile-user").is_none());
    ensure!(
        sent.header("x-approved-by").as_deref() == Some("alice"),
        "input.approval"
    );
    ensure!(sent.header("x-approval-id").as_deref() == Some(id.as_str()));
    let sent_body: Value = serde_json::from_slice(&sent.body)?;
    ensure!(sent_body["amount"] == 5000 && sent_body["invoice"] == "INV-00000001");

    let done = poll(&proxy, AGENT_USER, &id, "").await?;
    ensure!(
        done.status == 201,
        "the upstream's real status: {}",
        done.status
    );
    ensure!(
        done.text() == CREATED_BODY,
        "the upstream's real body: {}",
        done.text()
    );
    ensure!(done.header("x-upstream").as_deref() == Some("e2e"));
    ensure!(done.header("lastmile-approval-state").as_deref() == Some("succeeded"));

    let twice = decide(&proxy, "bob", &id, "approve", None).await?;
    ensure!(twice.status == 409, "{}", twice.text());
    ensure!(upstream.received().len() == 1);

    let shown = show(&proxy, &id).await?;
    let steps: Vec<(String, String)> = shown["history"]
        .as_array()
        .context("history")?
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("pending", AGENT_USER),
        ("approved", "alice"),
        ("executing", "lastmile"),
        ("succeeded", "lastmile"),
    ];
    ensure!(
        steps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .eq(expected.iter().copied()),
        "{steps:?}"
    );
    ensure!(shown["history"][1]["comment"] == "refund agreed with finance");

    let metrics = proxy.metrics().await?;
    for state in ["pending", "approved", "executing", "succeeded"] {
        ensure!(
            metrics.get(
                "lastmile_approval_transitions_total",
                &[("route", "crm"), ("state", state)]
            ) == Some(1.0),
            "transition counter for {state}"
        );
    }
    ensure!(metrics.get("lastmile_approvals_pending", &[]) == Some(0.0));
    ensure!(
        metrics.get(
            "lastmile_approval_decision_seconds_count",
            &[("route", "crm")]
        ) == Some(1.0)
    );

    // Each transition is in the trace under the parked request's trace id.
    let trace_id = parked["trace_id"].as_str().context("trace_id")?;
    let transitions = eventually(
        "all transitions traced",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let text = proxy.trace_text();
            async move {
                let text = text?;
                let records: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|r| r["trace_id"] == trace_id && r["approval"].is_object())
                    .collect();
                Ok((records.len() >= 5).then_some(records))
            }
        },
    )
    .await?;
    let outcomes: Vec<&str> = transitions
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    for outcome in [
        "pending_approval",
        "approval_pending",
        "approval_approved",
        "approval_executing",
        "approval_succeeded",
    ] {
        ensure!(
            outcomes.contains(&outcome),
            "{outcome} missing from {outcomes:?}"
        );
    }
    ensure!(!proxy.trace_text()?.contains("agent-secret"));
    Ok(())
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_approval_is_executed() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Arc::new(start(&upstream).await?);
    let id = park(&proxy, "INV-00000002").await?;
    let waiting = {
        let (proxy, id) = (proxy.clone(), id.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            poll(&proxy, AGENT_USER, &id, "?wait=10s")
                .await
                .map(|r| (r, started.elapsed()))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        !waiting.is_finished(),
        "the long poll returned before any decision"
    );
    let approved = decide(&proxy, "bob", &id, "approve", None).await?;
    ensure!(approved.status == 200, "{}", approved.text());
    let (reply, elapsed) = waiting.await??;
    ensure!(
        reply.status == 201 && reply.text() == CREATED_BODY,
        "{}",
        reply.text()
    );
    ensure!(
        elapsed < Duration::from_secs(5),
        "the long poll took {elapsed:?}"
    );
    // A wait that ends without a decision answers with the state.
    let other = park(&proxy, "INV-00000003").await?;
    let reply = poll(&proxy, AGENT_USER, &other, "?wait=200ms").await?;
    ensure!(reply.status == 202, "{}", reply.text());
    let bad = poll(&proxy, AGENT_USER, &other, "?wait=soon").await?;
    ensure!(bad.status == 400, "{}", bad.text());
    Ok(())
}

#[tokio::test]
async fn a_denied_request_never_reaches_the_upstream() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park(&proxy, "INV-00000004").await?;
    let denied = decide(
        &proxy,
        "alice",
        &id,
        "deny",
        Some("duplicate of ticket 4411"),
    )
    .await?;
    ensure!(denied.status == 200, "{}", denied.text());
    ensure!(denied.json()?["state"] == "denied");
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    ensure!(reply.status == 403, "{}: {}", reply.status, reply.text());
    let body = reply.json()?;
    ensure!(
        body["status"] == "denied" && body["error"]["code"] == "approval_denied",
        "{body}"
    );
    ensure!(body["comment"] == "duplicate of ticket 4411" && body["decided_by"] == "alice");
    let late = decide(&proxy, "bob", &id, "approve", None).await?;
    ensure!(late.status == 409, "{}", late.text());
    ensure!(upstream.received().is_empty());
    Ok(())
}

#[tokio::test]
async fn pending_approvals_expire_on_a_manual_clock() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let clock = ManualClock::new();
    let setup = setup(&upstream, |r| r.approval_expiry(3600));
    let proxy = workspace()?
        .start_in_process(&setup, Arc::new(clock.clone()))
        .await?;
    let id = park(&proxy, "INV-00000005").await?;
    clock.advance(Duration::from_secs(3599));
    ensure!(poll(&proxy, AGENT_USER, &id, "").await?.status == 202);
    clock.advance(Duration::from_secs(1));
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    ensure!(reply.status == 410, "{}: {}", reply.status, reply.text());
    ensure!(reply.json()?["error"]["code"] == "approval_expired");
    let late = decide(&proxy, "alice", &id, "approve", None).await?;
    ensure!(late.status == 409, "{}", late.text());
    // The sweeper expires approvals nobody looks at, too.
    let unseen = park(&proxy, "INV-00000006").await?;
    clock.advance(Duration::from_secs(7200));
    eventually(
        "the sweeper to expire it",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let list = proxy
                .admin_call(
                    Method::GET,
                    "/approvals?state=expired",
                    Some(token("alice")?),
                    None,
                )
                .await?;
            Ok(list.text().contains(&unseen).then_some(()))
        },
    )
    .await?;
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(
            "lastmile_approval_transitions_total",
            &[("route", "crm"), ("state", "expired")]
        ) == Some(2.0)
    );
    ensure!(metrics.get("lastmile_approvals_pending", &[]) == Some(0.0));
    ensure!(upstream.received().is_empty());
    Ok(())
}

#[tokio::test]
async fn racing_decisions_have_exactly_one_outcome_and_at_most_one_upstream_call() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Arc::new(start(&upstream).await?);
    for round in 0..4 {
        let id = park(&proxy, &format!("INV-1000000{round}")).await?;
        // Rounds alternate: two approvers approving, and an approve racing a deny.
        let second = if round % 2 == 0 { "approve" } else { "deny" };
        let (a, b) = tokio::join!(
            decide(&proxy, "alice", &id, "approve", None),
            decide(&proxy, "bob", &id, second, None)
        );
        let (a, b) = (a?, b?);
        let statuses = [a.status, b.status];
        ensure!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {statuses:?} {} {}",
            a.text(),
            b.text()
        );
        let shown = show(&proxy, &id).await?;
        let state = shown["state"].as_str().unwrap_or("");
        let sent = upstream
            .received()
            .iter()
            .filter(|r| r.header("x-approval-id").as_deref() == Some(id.as_str()))
            .count();
        match state {
            "succeeded" => ensure!(sent == 1, "round {round}: {sent} calls"),
            "denied" => ensure!(sent == 0, "round {round}: {sent} calls"),
            other => bail!("round {round}: unexpected state {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_policy_that_now_denies_fails_the_approval_and_sends_nothing() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park(&proxy, "INV-00000009").await?;
    let before = proxy.admin_get("/readyz").await?.json()?["policy_revision"].clone();
    // The invoice is paid meanwhile.
    proxy.workspace().write(
        "policies/data.json",
        r#"{"billing": {"paid": ["INV-00000009"]}}"#,
    )?;
    eventually(
        "the new bundle to load",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let now = proxy.admin_get("/readyz").await?.json()?["policy_revision"].clone();
            Ok((now != before).then_some(()))
        },
    )
    .await?;
    let approved = decide(&proxy, "alice", &id, "approve", None).await?;
    ensure!(approved.status == 200, "{}", approved.text());
    let approved = approved.json()?;
    ensure!(approved["state"] == "failed", "{approved}");
    ensure!(approved["failure"]["code"] == "denied", "{approved}");
    ensure!(
        approved["failure"]["reasons"][0]["code"] == "invoice_paid",
        "{approved}"
    );
    ensure!(upstream.received().is_empty(), "nothing may be sent");
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    ensure!(reply.status == 403, "{}: {}", reply.status, reply.text());
    ensure!(reply.json()?["error"]["reasons"][0]["code"] == "invoice_paid");
    Ok(())
}

#[tokio::test]
async fn a_restart_keeps_pending_approvals_and_never_resends_an_interrupted_one() -> Result<()> {
    // The upstream holds the executing request until the proxy is killed.
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_secs(60))).await?;
    let setup = setup(&upstream, |r| r.timeout_ms(120_000));
    let proxy = Arc::new(workspace()?.start(&setup).await?);
    let executing = park(&proxy, "INV-00000011").await?;
    let pending = park(&proxy, "INV-00000012").await?;
    let approving = {
        let (proxy, id) = (proxy.clone(), executing.clone());
        tokio::spawn(async move { decide(&proxy, "alice", &id, "approve", None).await })
    };
    eventually(
        "the approval to be executing",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((show(&proxy, &executing).await?["state"] == "executing").then_some(())) },
    )
    .await?;
    eventually(
        "the upstream to receive it",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((upstream.received().len() == 1).then_some(())) },
    )
    .await?;
    approving.abort();
    let _ = approving.await;
    let proxy = Arc::try_unwrap(proxy).map_err(|_| anyhow::anyhow!("proxy still shared"))?;
    let workspace = proxy.kill();
    let proxy = workspace.start(&setup).await?;

    let interrupted = show(&proxy, &executing).await?;
    ensure!(interrupted["state"] == "outcome_unknown", "{interrupted}");
    ensure!(
        interrupted["failure"]["code"] == "interrupted",
        "{interrupted}"
    );
    ensure!(show(&proxy, &pending).await?["state"] == "pending");
    let reply = poll(&proxy, AGENT_USER, &executing, "").await?;
    ensure!(reply.status == 504, "{}: {}", reply.status, reply.text());
    ensure!(reply.json()?["error"]["outcome"] == "unknown");
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(upstream.received().len() == 1, "never re-sent");
    Ok(())
}

#[tokio::test]
async fn approvers_must_authenticate_and_may_not_approve_their_own_requests() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park(&proxy, "INV-00000013").await?;

    let own = decide(&proxy, AGENT_USER, &id, "approve", None).await?;
    ensure!(
        own.status == 403 && own.json()?["error"]["code"] == "self_approval",
        "{}",
        own.text()
    );

    let path = format!("/approvals/{id}/approve");
    let anonymous = proxy.admin_call(Method::POST, &path, None, None).await?;
    ensure!(anonymous.status == 401, "{}", anonymous.text());
    let forged = proxy
        .admin_call(Method::POST, &path, Some("not-a-token"), None)
        .await?;
    ensure!(forged.status == 401, "{}", forged.text());
    let list = proxy
        .admin_call(Method::GET, "/approvals", None, None)
        .await?;
    ensure!(list.status == 401, "the queue itself needs a credential");

    // JWTs from the identity key set: with the approver role, and without.
    let mut claims = jwt::claims("carol", "");
    claims["roles"] = json!(["approver"]);
    let carol = jwt::sign(&claims, jwt::SECRET)?;
    let mut claims = jwt::claims("dave", "");
    claims["roles"] = json!(["viewer"]);
    let dave = jwt::sign(&claims, jwt::SECRET)?;
    let no_role = proxy
        .admin_call(Method::POST, &path, Some(&dave), None)
        .await?;
    ensure!(no_role.status == 403 && no_role.json()?["error"]["code"] == "not_an_approver");
    let forged_jwt = jwt::sign(&claims, "not-the-proxy-secret-but-just-as-long-0123")?;
    ensure!(
        proxy
            .admin_call(Method::GET, "/approvals", Some(&forged_jwt), None)
            .await?
            .status
            == 401
    );
    ensure!(upstream.received().is_empty());

    // Another user may not poll it; neither may a request without a token.
    let other = poll(&proxy, "u_someone_else", &id, "").await?;
    assert_refusal(&other, 403, "approval_forbidden")?;
    let anonymous = proxy
        .get(&format!("/_lastmile/approvals/{id}"), &[])
        .await?;
    assert_refusal(&anonymous, 403, "approval_forbidden")?;
    let unknown = poll(&proxy, AGENT_USER, "0123456789abcdef0123456789abcdef", "").await?;
    assert_refusal(&unknown, 404, "approval_not_found")?;

    let approved = proxy
        .admin_call(Method::POST, &path, Some(&carol), None)
        .await?;
    ensure!(approved.status == 200, "{}", approved.text());
    ensure!(approved.json()?["decided_by"] == "carol");
    ensure!(upstream.received().len() == 1);
    Ok(())
}

#[tokio::test]
async fn a_webhook_announces_new_approvals_without_delaying_the_agent() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let hook = Upstream::start(Behaviour::Reply {
        status: 204,
        body: "",
    })
    .await?;
    let proxy = workspace()?
        .start(&Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())]).approvals(&format!(
            "public_url: \"http://approvals.example\", webhook: {{url: \"{}/hook\", timeout_ms: 500}}",
            hook.url()
        )))
        .await?;
    let id = park(&proxy, "INV-00000014").await?;
    let received = eventually(
        "the webhook call",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let calls = hook.received();
            async move { Ok((!calls.is_empty()).then_some(calls)) }
        },
    )
    .await?;
    let payload: Value = serde_json::from_slice(&received[0].body)?;
    ensure!(
        payload["approval_id"] == id.as_str() && payload["event"] == "approval_pending",
        "{payload}"
    );
    ensure!(
        payload["links"]["page"] == "http://approvals.example/ui/approvals",
        "{payload}"
    );
    ensure!(payload["summary"]["body"]["amount"] == 5000, "{payload}");

    // A webhook that never answers does not hold the agent's 202 back.
    let slow = Upstream::start(Behaviour::Sleep(Duration::from_secs(30))).await?;
    let proxy = workspace()?
        .start(
            &Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())]).approvals(&format!(
                "webhook: {{url: \"{}/hook\", timeout_ms: 10000}}",
                slow.url()
            )),
        )
        .await?;
    let started = std::time::Instant::now();
    park(&proxy, "INV-00000015").await?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "the agent waited {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn an_approval_approved_before_a_stop_but_never_started_runs_after_the_restart() -> Result<()>
{
    use lastmile::approval::sqlite::SqliteStore;
    use lastmile::approval::store::{ApprovalStore, State, Transition, Transitioned};
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = setup(&upstream, |r| r);
    let proxy = workspace()?.start(&setup).await?;
    let id = park(&proxy, "INV-00000021").await?;
    let workspace = proxy.kill();
    // As if the process stopped right after the approval was recorded: nothing was sent.
    {
        let store = SqliteStore::open(&workspace.path("state/approvals.db"))?;
        let approve = Transition {
            from: State::Pending,
            to: State::Approved,
            at_ms: lastmile::approval::system_now_ms(),
            actor: "alice".into(),
            comment: None,
            response: None,
            failure: None,
        };
        ensure!(matches!(
            store.transition(&id, &approve)?,
            Transitioned::Done(_)
        ));
    }
    let proxy = workspace.start(&setup).await?;
    eventually(
        "the resumed execution",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((show(&proxy, &id).await?["state"] == "succeeded").then_some(())) },
    )
    .await?;
    ensure!(upstream.received().len() == 1);
    ensure!(upstream.received()[0].header("x-approved-by").as_deref() == Some("alice"));
    Ok(())
}
