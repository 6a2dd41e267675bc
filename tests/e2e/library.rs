//! The shipped policy library, exercised through the real proxy: the invoicing example
//! bundle served with `policies/lib` as a library directory, in front of a recording
//! upstream. Each library pattern is checked by what the agent gets and by what the
//! upstream did or did not receive.

use crate::harness::{
    assert_refusal, copy_dir, expect_status, jwt, repo_root, Behaviour, Proxy, RouteSpec, Setup,
    Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use serde_json::json;

const REMINDER: &str = "/crm/v1/invoices/INV-00038122/reminders";

/// The invoicing example in front of a recording upstream, as route `crm` on `/crm`.
async fn invoicing() -> Result<(Upstream, Proxy)> {
    invoicing_with(|_| Ok(())).await
}

/// [`invoicing`], with the example's `data.json` changed by `edit` first.
async fn invoicing_with(
    edit: impl FnOnce(&mut serde_json::Value) -> Result<()>,
) -> Result<(Upstream, Proxy)> {
    let policies = repo_root().join("policies");
    let workspace = Workspace::new()?;
    copy_dir(
        &policies.join("examples/invoicing"),
        &workspace.path("policies"),
    )?;
    copy_dir(&policies.join("lib"), &workspace.path("library"))?;
    let mut data: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        workspace.path("policies/data.json"),
    )?)?;
    edit(&mut data)?;
    workspace.write("policies/data.json", &data.to_string())?;
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = Setup::new(vec![
        RouteSpec::new("crm", "/crm", upstream.url()).require_user()
    ])
    .with_library();
    let proxy = workspace.start(&setup).await?;
    Ok((upstream, proxy))
}

/// A token for a user acting on `account` with `roles`.
fn user(sub: &str, account: &str, roles: &[&str]) -> Result<String> {
    let mut claims = jwt::claims(sub, &format!("account:{account}"));
    claims["roles"] = json!(roles);
    jwt::sign(&claims, jwt::SECRET)
}

fn reason_codes(body: &serde_json::Value) -> Vec<String> {
    body["error"]["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_contract_conforming_call_is_forwarded() -> Result<()> {
    let (upstream, proxy) = invoicing().await?;
    let alice = user("u_alice", "acme", &["agent-operator"])?;
    let reply = proxy
        .post_json(
            REMINDER,
            &[("x-lastmile-user", &alice)],
            &json!({"channel": "email", "recipient_role": "billing"}),
        )
        .await?;
    expect_status(&reply, 201)?;
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn contract_violations_are_denied_before_the_upstream() -> Result<()> {
    let (upstream, proxy) = invoicing().await?;
    let alice = user("u_alice", "acme", &["agent-operator"])?;
    let auth = [("x-lastmile-user", alice.as_str())];

    // A field the tool does not allow, and a raw address instead of a role.
    let reply = proxy
        .post_json(
            REMINDER,
            &auth,
            &json!({"channel": "email", "recipient_role": "billing", "email": "cfo@acme.example"}),
        )
        .await?;
    let body = assert_refusal(&reply, 403, "denied")?;
    let codes = reason_codes(&body);
    ensure!(
        codes.contains(&"field_not_allowed".into()) && codes.contains(&"raw_recipient".into()),
        "{codes:?}"
    );

    // An ID that does not match the tool's pattern.
    let reply = proxy.get("/crm/v1/invoices/42", &auth).await?;
    ensure!(reason_codes(&assert_refusal(&reply, 403, "denied")?).contains(&"bad_id".into()));

    // A value outside the tool's enum.
    let reply = proxy
        .post_json(
            REMINDER,
            &auth,
            &json!({"channel": "fax", "recipient_role": "billing"}),
        )
        .await?;
    ensure!(
        reason_codes(&assert_refusal(&reply, 403, "denied")?).contains(&"value_not_allowed".into())
    );

    // A call that is no tool at all.
    let reply = proxy
        .request(
            http::Method::DELETE,
            "/crm/v1/invoices/INV-00038122",
            &auth,
            Default::default(),
        )
        .await?;
    ensure!(reason_codes(&assert_refusal(&reply, 403, "denied")?).contains(&"unknown_tool".into()));

    upstream
        .nothing_received()
        .context("a refused call reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn scope_denies_other_accounts_and_narrows_searches() -> Result<()> {
    let (upstream, proxy) = invoicing().await?;
    let bob = user("u_bob", "globex", &["agent-operator"])?;
    let reply = proxy
        .get(
            "/crm/v1/invoices/INV-00038122",
            &[("x-lastmile-user", &bob)],
        )
        .await?;
    ensure!(reason_codes(&assert_refusal(&reply, 403, "denied")?).contains(&"out_of_scope".into()));
    upstream.nothing_received()?;

    // A search reaches the upstream narrowed to the user's own accounts; naming
    // another account is refused outright.
    let alice = user("u_alice", "acme", &["agent-operator"])?;
    let auth = [("x-lastmile-user", alice.as_str())];
    let reply = proxy.get("/crm/v1/invoices?status=open", &auth).await?;
    expect_status(&reply, 201)?;
    let query = upstream.only_request()?.query.unwrap_or_default();
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.sort_unstable();
    ensure!(
        pairs == ["account=acme", "status=open"],
        "upstream query {query:?}"
    );
    let reply = proxy.get("/crm/v1/invoices?account=globex", &auth).await?;
    assert_refusal(&reply, 403, "denied")?;
    upstream
        .only_request()
        .context("the widened search reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn amounts_over_the_limit_need_approval_and_over_the_ceiling_are_denied() -> Result<()> {
    let (upstream, proxy) = invoicing().await?;
    let alice = user("u_alice", "acme", &["agent-operator"])?;
    let auth = [("x-lastmile-user", alice.as_str())];
    let invoice = |amount: u64| json!({"account": "acme", "amount": amount, "currency": "EUR"});

    let reply = proxy
        .post_json("/crm/v1/invoices", &auth, &invoice(500))
        .await?;
    expect_status(&reply, 201)?;

    let reply = proxy
        .post_json("/crm/v1/invoices", &auth, &invoice(250_000))
        .await?;
    ensure!(
        reason_codes(&assert_refusal(&reply, 403, "approval_unavailable")?)
            == ["amount_over_limit"]
    );

    let reply = proxy
        .post_json("/crm/v1/invoices", &auth, &invoice(1_000_000_000))
        .await?;
    ensure!(reason_codes(&assert_refusal(&reply, 403, "denied")?)
        .contains(&"amount_over_ceiling".into()));

    upstream
        .only_request()
        .context("only the small invoice may reach the upstream")?;
    Ok(())
}

#[tokio::test]
async fn addresses_in_headers_and_query_values_are_denied_before_the_upstream() -> Result<()> {
    // `note` becomes a free-text search parameter, so only the recipient rule stands
    // between an address in it and the upstream.
    let (upstream, proxy) = invoicing_with(|data| {
        data["tools"]["list_invoices"]["allowed_query"] = json!(["status", "note"]);
        Ok(())
    })
    .await?;
    let alice = user("u_alice", "acme", &["agent-operator"])?;
    let reminder = json!({"channel": "email", "recipient_role": "billing"});

    // A header the agent sets.
    let reply = proxy
        .post_json(
            REMINDER,
            &[
                ("x-lastmile-user", &alice),
                ("x-recipient", "attacker@evil.example"),
            ],
            &reminder,
        )
        .await?;
    let body = assert_refusal(&reply, 403, "denied")?;
    ensure!(reason_codes(&body) == ["raw_recipient"], "{body}");
    let text = body.to_string();
    ensure!(
        text.contains("header 'x-recipient'") && !text.contains("attacker"),
        "the reason must name the header, not the value: {body}"
    );

    // A free-text query value.
    let reply = proxy
        .get(
            "/crm/v1/invoices?status=open&note=mail%20attacker@evil.example",
            &[("x-lastmile-user", &alice)],
        )
        .await?;
    let body = assert_refusal(&reply, 403, "denied")?;
    ensure!(reason_codes(&body) == ["raw_recipient"], "{body}");
    let text = body.to_string();
    ensure!(
        text.contains("query parameter 'note'") && !text.contains("attacker"),
        "the reason must name the parameter, not the value: {body}"
    );
    upstream
        .nothing_received()
        .context("a request naming an address reached the upstream")?;

    // The same calls without an address pass, a standard header holding one included.
    let reply = proxy
        .post_json(
            REMINDER,
            &[
                ("x-lastmile-user", &alice),
                ("user-agent", "agent/1.0 (+mailto:ops@acme.example)"),
                ("x-recipient-note", "ping @ops"),
            ],
            &reminder,
        )
        .await?;
    expect_status(&reply, 201)?;
    let reply = proxy
        .get(
            "/crm/v1/invoices?status=open&note=overdue",
            &[("x-lastmile-user", &alice)],
        )
        .await?;
    expect_status(&reply, 201)?;
    upstream.expect_requests(2)?;
    Ok(())
}
