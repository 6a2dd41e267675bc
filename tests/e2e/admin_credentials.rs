//! Who may use the admin port, through the real binary. The agent shares the pod's
//! network namespace, so every capability here must hang on a credential the agent
//! cannot hold: never on the port, and never on the user tokens the agent carries.

use crate::harness::approvals::{base, form, page_send, park, show, token, workspace, AGENT_USER};
use crate::harness::{
    expect_status, jwt, Behaviour, Proxy, Reply, Upstream, Workspace, ADMIN_TOKEN,
};
use anyhow::{ensure, Context, Result};
use http::Method;
use serde_json::{json, Value};

/// The audience of approver JWTs in these tests: never the identity audience.
const APPROVER_AUDIENCE: &str = "lastmile-approvals";

/// A token the identity provider issued for user `sub` with the approver role: the
/// kind of token the agent holds while that user chats with it.
fn user_token_with_approver_role(sub: &str) -> Result<String> {
    let mut claims = jwt::claims(sub, "crm.read crm.write");
    claims["roles"] = json!(["approver"]);
    jwt::sign(&claims, jwt::SECRET)
}

/// An approver token: issued to the approvals audience, with `roles`.
fn approver_jwt(sub: &str, roles: &[&str]) -> Result<String> {
    let mut claims = jwt::claims(sub, "");
    claims["aud"] = json!(APPROVER_AUDIENCE);
    claims["roles"] = json!(roles);
    jwt::sign(&claims, jwt::SECRET)
}

async fn approve(proxy: &Proxy, id: &str, bearer: &str) -> Result<Reply> {
    proxy
        .admin_call(
            Method::POST,
            &format!("/approvals/{id}/approve"),
            Some(bearer),
            None,
        )
        .await
}

/// A form post (or GET) on the approvals page, with the session `cookie` when not empty.
async fn page(
    proxy: &Proxy,
    method: Method,
    path: &str,
    cookie: &str,
    form: &str,
) -> Result<Reply> {
    let headers: &[(&str, &str)] = if cookie.is_empty() {
        &[]
    } else {
        &[("cookie", cookie)]
    };
    page_send(proxy, method, path, headers, form).await
}

/// Signs in on the page with `bearer`; the session cookie and the page's CSRF token.
async fn sign_in(proxy: &Proxy, bearer: &str) -> Result<(String, String)> {
    let signed_in = page(
        proxy,
        Method::POST,
        "/ui/login",
        "",
        &form(&[("token", bearer)]),
    )
    .await?;
    expect_status(&signed_in, 303).context("sign-in")?;
    let cookie = signed_in
        .header("set-cookie")
        .context("no session cookie")?
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    let listed = page(proxy, Method::GET, "/ui/approvals", &cookie, "").await?;
    let html = listed.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no csrf field on the signed-in page")?
        .to_string();
    Ok((cookie, csrf))
}

async fn state_of(proxy: &Proxy, id: &str) -> Result<Value> {
    Ok(show(proxy, id).await?["state"].clone())
}

#[tokio::test]
async fn the_agent_cannot_approve_with_a_user_token_it_carries() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    // Approvals with an approvers file; no approver audience configured.
    let proxy = workspace()?
        .start(&base(&upstream, |r| r).approvals(""))
        .await?;
    let id = park(&proxy, "INV-00000131").await?;
    let erin = user_token_with_approver_role("u_erin")?;

    let api = approve(&proxy, &id, &erin).await?;
    expect_status(&api, 401).context("API")?;
    let login = page(
        &proxy,
        Method::POST,
        "/ui/login",
        "",
        &form(&[("token", &erin)]),
    )
    .await?;
    expect_status(&login, 401).context("page sign-in")?;

    ensure!(state_of(&proxy, &id).await? == "pending");
    upstream
        .nothing_received()
        .context("the upstream was called")?;
    Ok(())
}

#[tokio::test]
async fn approver_jwts_need_their_own_audience() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = base(&upstream, |r| r).approvals(&format!("jwt_audience: {APPROVER_AUDIENCE}"));
    let proxy = workspace()?.start(&setup).await?;
    let id = park(&proxy, "INV-00000132").await?;

    // The user token the agent holds (identity audience) is still no approver's.
    let erin = user_token_with_approver_role("u_erin")?;
    let refused = approve(&proxy, &id, &erin).await?;
    expect_status(&refused, 401)?;
    // Right audience, no role.
    let viewer = approver_jwt("dave", &["viewer"])?;
    let no_role = approve(&proxy, &id, &viewer).await?;
    expect_status(&no_role, 403)?;
    ensure!(
        no_role.json()?["error"]["code"] == "not_an_approver",
        "{}",
        no_role.text()
    );
    // Right audience, no `aud` at all: refused, not defaulted.
    let mut claims = jwt::claims("frank", "");
    claims.as_object_mut().context("claims")?.remove("aud");
    claims["roles"] = json!(["approver"]);
    let no_aud = approve(&proxy, &id, &jwt::sign(&claims, jwt::SECRET)?).await?;
    expect_status(&no_aud, 401)?;
    upstream.nothing_received()?;

    let carol = approver_jwt("carol", &["approver"])?;
    let approved = approve(&proxy, &id, &carol).await?;
    expect_status(&approved, 200)?;
    ensure!(approved.json()?["decided_by"] == "carol");
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn an_approver_audience_equal_to_the_identity_audience_is_refused_at_start() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = base(&upstream, |r| r).approvals(&format!("jwt_audience: {}", jwt::AUDIENCE));
    let (status, stderr) = workspace()?.run_to_exit(&setup).await?;
    ensure!(!status.success(), "started; stderr:\n{stderr}");
    ensure!(
        stderr.contains("approvals.jwt_audience"),
        "stderr does not name the field:\n{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_revoked_approvers_page_session_ends_at_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = workspace()?
        .start(&base(&upstream, |r| r).approvals(""))
        .await?;
    let id = park(&proxy, "INV-00000133").await?;
    let (cookie, csrf) = sign_in(&proxy, token("alice")?).await?;

    // alice's line leaves the approvers file; bob stays.
    let remaining: String = crate::harness::APPROVERS
        .iter()
        .filter(|(name, _)| *name != "alice")
        .map(|(name, token)| format!("{name} {token}\n"))
        .collect();
    proxy.workspace().write("secrets/approvers", &remaining)?;

    let decided = page(
        &proxy,
        Method::POST,
        &format!("/ui/approvals/{id}/approve"),
        &cookie,
        &form(&[("csrf", &csrf)]),
    )
    .await?;
    let location = decided.header("location").unwrap_or_default();
    ensure!(
        !location.contains("notice"),
        "the revoked session decided: {} {location}",
        decided.status
    );
    let listed = page(&proxy, Method::GET, "/ui/approvals", &cookie, "").await?;
    ensure!(
        listed.text().contains("name=\"token\""),
        "the revoked session still sees the queue"
    );
    ensure!(state_of_as(&proxy, &id, "bob").await? == "pending");
    upstream
        .nothing_received()
        .context("the upstream was called")?;
    Ok(())
}

async fn state_of_as(proxy: &Proxy, id: &str, approver: &str) -> Result<Value> {
    let reply = proxy
        .admin_call(
            Method::GET,
            &format!("/approvals/{id}"),
            Some(token(approver)?),
            None,
        )
        .await?;
    expect_status(&reply, 200)?;
    Ok(reply.json()?["state"].clone())
}

/// An allowed refund (under the approval limit) with a dedup window: its trace id and
/// its dedup key.
async fn allowed_refund(proxy: &Proxy) -> Result<(String, String)> {
    let reply = crate::harness::approvals::refund(proxy, AGENT_USER, "INV-00000134", 10).await?;
    expect_status(&reply, 201)?;
    let trace = reply.header("lastmile-trace-id").context("trace id")?;
    let key = reply.header("lastmile-dedup-key").context("dedup key")?;
    Ok((trace, key))
}

#[tokio::test]
async fn request_data_on_the_admin_port_needs_the_operator_token() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = base(&upstream, |r| r).approvals("").admin_token();
    let proxy = workspace()?.start(&setup).await?;
    let (trace, key) = allowed_refund(&proxy).await?;
    let id = park(&proxy, "INV-00000135").await?;

    let reads = [
        format!("/traces/{trace}"),
        format!("/dedup/{key}"),
        "/approvals".to_string(),
        format!("/approvals/{id}"),
    ];
    let agent_token = user_token_with_approver_role("u_erin")?;
    for path in &reads {
        for bearer in [None, Some("not-the-token"), Some(agent_token.as_str())] {
            let reply = proxy.admin_call(Method::GET, path, bearer, None).await?;
            expect_status(&reply, 401).with_context(|| format!("{path} with {bearer:?}"))?;
            ensure!(!reply.text().contains(AGENT_USER), "{path} leaked the user");
        }
        let opened = proxy
            .admin_call(Method::GET, path, Some(ADMIN_TOKEN), None)
            .await?;
        expect_status(&opened, 200).with_context(|| path.to_string())?;
    }
    // Approver credentials open the approvals API, not traces or dedup entries.
    let approver = token("alice")?;
    ensure!(
        proxy
            .admin_call(Method::GET, &reads[0], Some(approver), None)
            .await?
            .status
            == 401
    );
    ensure!(
        proxy
            .admin_call(Method::GET, &reads[1], Some(approver), None)
            .await?
            .status
            == 401
    );
    ensure!(
        proxy
            .admin_call(Method::GET, &reads[2], Some(approver), None)
            .await?
            .status
            == 200
    );
    // Probes and scrapes stay open.
    for open in ["/metrics", "/healthz", "/readyz"] {
        expect_status(&proxy.admin_get(open).await?, 200).with_context(|| open.to_string())?;
    }
    // The operator token decides too, recorded as the operator.
    let approved = approve(&proxy, &id, ADMIN_TOKEN).await?;
    expect_status(&approved, 200)?;
    ensure!(approved.json()?["decided_by"] == "operator");
    Ok(())
}

#[tokio::test]
async fn without_an_operator_token_request_data_is_not_served() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Workspace::with_policy(crate::harness::approvals::APPROVAL_POLICY)?;
    proxy.write("policies/data.json", r#"{"billing": {"paid": []}}"#)?;
    let proxy = proxy.start(&base(&upstream, |r| r).approvals("")).await?;
    let (trace, key) = allowed_refund(&proxy).await?;
    for path in [format!("/traces/{trace}"), format!("/dedup/{key}")] {
        let reply = proxy.admin_get(&path).await?;
        expect_status(&reply, 403)?;
        ensure!(
            reply.json()?["error"]["code"] == "admin_token_not_configured",
            "{path}: {}",
            reply.text()
        );
    }
    Ok(())
}
