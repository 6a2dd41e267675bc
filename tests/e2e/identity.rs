//! Identity tokens are checked as the README promises: `iss` and `aud` required when
//! configured, time claims only as numbers, and key sets that rotate without a restart
//! (a keys file on disk, a JWKS endpoint over real HTTPS).

use crate::harness::jwks::JwksServer;
use crate::harness::jwt::{self, EsKey};
use crate::harness::{
    assert_refusal, eventually, expect_status, policies, Behaviour, Proxy, Reply, RouteSpec, Setup,
    Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

const KEYS_FILE: &str = "secrets/idp-keys.json";
const CA_FILE: &str = "secrets/idp-ca.pem";
/// Long enough that a poll converging proves the change was picked up by design (file
/// check, unknown-`kid` refresh), not by a lucky schedule; short enough to bound a failure.
const CONVERGE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

/// A route that needs an acting user, behind a proxy configured by `setup` in `workspace`.
async fn start(
    workspace: Workspace,
    setup: impl FnOnce(Setup) -> Setup,
) -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let route = RouteSpec::new("crm", "/crm", upstream.url()).require_user();
    let proxy = workspace.start(&setup(Setup::new(vec![route]))).await?;
    Ok((upstream, proxy))
}

fn workspace() -> Result<Workspace> {
    Workspace::with_policy(policies::TEST_POLICY)
}

async fn send(proxy: &Proxy, token: &str) -> Result<Reply> {
    proxy
        .post_json(
            "/crm/v1/invoices",
            &[("x-lastmile-user", token)],
            &json!({"amount": 10}),
        )
        .await
}

/// Refused as unauthenticated, with a message that does not echo the token.
fn refused(reply: &Reply, token: &str, what: &str) -> Result<Value> {
    let body =
        assert_refusal(reply, 401, "unauthenticated").map_err(|e| e.context(what.to_string()))?;
    ensure!(
        !reply.text().contains(token),
        "{what}: the refusal echoes the token"
    );
    Ok(body)
}

fn claims() -> Value {
    jwt::claims("alice", "crm.read crm.write")
}

/// Polls until `token` is accepted (the upstream answers 201).
async fn until_accepted(proxy: &Proxy, token: &str, what: &str) -> Result<()> {
    eventually(what, CONVERGE, POLL, || async {
        Ok((send(proxy, token).await?.status == 201).then_some(()))
    })
    .await
}

#[tokio::test]
async fn correctly_signed_tokens_without_the_configured_iss_or_aud_are_401() -> Result<()> {
    let (upstream, proxy) = start(workspace()?, |s| s).await?;
    let good = jwt::sign(&claims(), jwt::SECRET)?;
    expect_status(&send(&proxy, &good).await?, 201).context("the control token is accepted")?;
    for claim in ["iss", "aud"] {
        let mut without = claims();
        without.as_object_mut().map(|c| c.remove(claim));
        let token = jwt::sign(&without, jwt::SECRET)?;
        refused(&send(&proxy, &token).await?, &token, &format!("no {claim}"))?;
    }
    upstream
        .only_request()
        .context("only the control reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn string_typed_time_claims_are_401() -> Result<()> {
    let (upstream, proxy) = start(workspace()?, |s| s).await?;
    let now = claims()["iat"].as_u64().unwrap_or_default();
    let cases = [
        (
            "nbf far in the future, as a string",
            "nbf",
            json!("99999999999"),
        ),
        ("exp as a string", "exp", json!((now + 600).to_string())),
        ("iat as a string", "iat", json!(now.to_string())),
        ("exp as an object", "exp", json!({"$date": now + 600})),
    ];
    for (what, claim, value) in cases {
        let mut claims = claims();
        claims[claim] = value;
        let token = jwt::sign(&claims, jwt::SECRET)?;
        refused(&send(&proxy, &token).await?, &token, what)?;
    }
    upstream
        .nothing_received()
        .context("nothing reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn a_keys_file_rotated_on_disk_is_used_without_a_restart() -> Result<()> {
    let (old, new) = (EsKey::generate("old")?, EsKey::generate("new")?);
    let workspace = workspace()?;
    workspace.write(KEYS_FILE, &jwt::jwks(&[&old])?)?;
    let (_upstream, proxy) =
        start(workspace, |s| s.identity_setting("keys_file", KEYS_FILE)).await?;
    let (old_token, new_token) = (old.sign(&claims())?, new.sign(&claims())?);
    expect_status(&send(&proxy, &old_token).await?, 201).context("the old key works at first")?;
    refused(
        &send(&proxy, &new_token).await?,
        &new_token,
        "new key before rotation",
    )?;

    // The IdP rotates: the new key in, the old one out, by an atomic rename.
    proxy.workspace().write(KEYS_FILE, &jwt::jwks(&[&new])?)?;
    until_accepted(&proxy, &new_token, "the new key to be accepted").await?;
    refused(
        &send(&proxy, &old_token).await?,
        &old_token,
        "old key after rotation",
    )?;

    // A broken file is reported and the last good keys stay in force. The file is
    // checked when tokens arrive, so the poll keeps sending one.
    proxy.workspace().write(KEYS_FILE, "{ not a key set")?;
    eventually(
        "the broken keys file to be reported",
        CONVERGE,
        POLL,
        || async {
            let status = send(&proxy, &new_token).await?.status;
            ensure!(
                status == 201,
                "the last good keys must keep verifying, got {status}"
            );
            Ok(proxy
                .stderr()
                .contains("keeping the last good keys")
                .then_some(()))
        },
    )
    .await?;
    expect_status(&send(&proxy, &new_token).await?, 201)
        .context("the last good keys still verify")?;
    Ok(())
}

/// A proxy verifying against `server`, refreshing on schedule only once an hour, so
/// anything faster is the unknown-`kid` refresh.
async fn jwks_proxy(url: &str, ca_pem: &str) -> Result<(Upstream, Proxy)> {
    let workspace = workspace()?;
    workspace.write(CA_FILE, ca_pem)?;
    start(workspace, |s| {
        s.identity_setting("jwks_url", &json!(url).to_string())
            .identity_setting("jwks_ca_file", CA_FILE)
            .identity_setting("jwks_refresh_seconds", "3600")
            .identity_setting("jwks_min_refresh_seconds", "1")
    })
    .await
}

#[tokio::test]
async fn jwks_keys_are_fetched_over_https_rotated_by_kid_and_kept_when_the_idp_is_down(
) -> Result<()> {
    let (first, second) = (EsKey::generate("2026-a")?, EsKey::generate("2026-b")?);
    let server = JwksServer::start(jwt::jwks(&[&first])?).await?;
    let (_upstream, proxy) = jwks_proxy(&server.url(), &server.ca_pem).await?;
    let first_token = first.sign(&claims())?;
    until_accepted(&proxy, &first_token, "a token under the fetched key set").await?;

    // Rotation at the IdP under a new kid: the first token naming it triggers a refresh.
    server.set(jwt::jwks(&[&second])?);
    let second_token = second.sign(&claims())?;
    until_accepted(
        &proxy,
        &second_token,
        "the rotated key after an unknown-kid refresh",
    )
    .await?;
    ensure!(server.fetches() >= 2, "fetched {} times", server.fetches());
    refused(
        &send(&proxy, &first_token).await?,
        &first_token,
        "the retired key",
    )?;

    // The IdP goes down: a refresh fails (an unknown kid asks for one), the set stays.
    server.stop();
    let stranger = EsKey::generate("2026-c")?.sign(&claims())?;
    refused(&send(&proxy, &stranger).await?, &stranger, "an unknown key")?;
    eventually(
        "the failed refresh to be logged",
        CONVERGE,
        POLL,
        || async { Ok(proxy.stderr().contains("JWKS fetch failed").then_some(())) },
    )
    .await?;
    expect_status(&send(&proxy, &second_token).await?, 201)
        .context("the last good set still verifies")?;
    Ok(())
}

#[tokio::test]
async fn a_jwks_endpoint_never_reached_fails_closed_but_the_proxy_serves() -> Result<()> {
    // A port nothing listens on: the proxy starts (an IdP outage must not crash-loop
    // every pod), refuses what only the key set could verify, and keeps its other keys.
    let dead = crate::harness::upstream::dead_url()?.replace("http://", "https://");
    let server = JwksServer::start(String::new()).await?;
    let (_upstream, proxy) = jwks_proxy(&format!("{dead}/jwks.json"), &server.ca_pem).await?;
    let token = EsKey::generate("2026-a")?.sign(&claims())?;
    let body = refused(&send(&proxy, &token).await?, &token, "no key set fetched")?;
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("key set")),
        "the message says why: {body}"
    );
    let hs256 = jwt::sign(&claims(), jwt::SECRET)?;
    expect_status(&send(&proxy, &hs256).await?, 201).context("the HS256 secret still verifies")?;
    Ok(())
}

#[tokio::test]
async fn a_jwks_url_that_is_not_https_is_refused_at_start_up() -> Result<()> {
    let workspace = workspace()?;
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", "http://127.0.0.1:9")])
        .identity_setting("jwks_url", "\"http://idp.example/jwks.json\"");
    let (status, stderr) = workspace.run_to_exit(&setup).await?;
    ensure!(
        !status.success(),
        "the proxy must not start; stderr:\n{stderr}"
    );
    ensure!(
        stderr.contains("identity.jwks_url") && stderr.contains("https"),
        "the error names the field and the rule:\n{stderr}"
    );
    Ok(())
}
