//! Acting for the user upstream: `per_user` credentials from a directory of files, and
//! RFC 8693 token exchange at a real token endpoint. The upstream must receive the
//! acting user's own credential and nothing else; without one, nothing is forwarded.

use crate::harness::approvals;
use crate::harness::token_endpoint::{self, TokenEndpoint};
use crate::harness::upstream::{dead_url, Received};
use crate::harness::{
    assert_refusal, eventually, expect_status, jwt, Behaviour, Proxy, Reply, RouteSpec, Setup,
    Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// Tells the upstream, through headers the policy adds, who acts and in which credential
/// mode; refuses a call whose credential acts for someone else.
const POLICY: &str = r#"package lastmile

decision := {"deny": deny, "add_headers": add_headers}

deny contains {"code": "not_the_users_credential", "message": "the credential acts for another user"} if {
	input.credential.subject != input.user.sub
}

add_headers := {"x-acting-user": input.user.sub, "x-credential-mode": input.credential.mode}
"#;

const SECRET_FILE: &str = "secrets/exchange-client-secret";
const USERS_DIR: &str = "secrets/users";

/// The route's credential block for a token endpoint at `url`.
fn exchange_credential(url: &str, ca_file: Option<&str>) -> String {
    let ca = ca_file
        .map(|f| format!(", ca_file: {f}"))
        .unwrap_or_default();
    format!(
        "{{mode: token_exchange, token_endpoint: \"{url}\", client_id: {}, \
         client_secret_file: {SECRET_FILE}, audience: {}, scope: \"crm.read\"{ca}}}",
        token_endpoint::CLIENT_ID,
        token_endpoint::UPSTREAM_AUDIENCE
    )
}

/// A proxy whose `crm` route uses `credential` (YAML), in `workspace`.
async fn start(workspace: Workspace, credential: &str) -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let route = RouteSpec::new("crm", "/crm", upstream.url())
        .require_user()
        .credential(credential);
    let proxy = workspace.start(&Setup::new(vec![route])).await?;
    Ok((upstream, proxy))
}

fn workspace(client_secret: &str) -> Result<Workspace> {
    let workspace = Workspace::with_policy(POLICY)?;
    workspace.write(SECRET_FILE, &format!("{client_secret}\n"))?;
    Ok(workspace)
}

async fn exchange_proxy(endpoint: &TokenEndpoint) -> Result<(Upstream, Proxy)> {
    start(
        workspace(token_endpoint::CLIENT_SECRET)?,
        &exchange_credential(&endpoint.url(), None),
    )
    .await
}

async fn call(proxy: &Proxy, user: &str) -> Result<Reply> {
    let token = jwt::token(user, "crm.read crm.write")?;
    proxy
        .get("/crm/v1/accounts", &[("x-lastmile-user", token.as_str())])
        .await
}

/// The bearer token an upstream request carried.
fn bearer(received: &Received) -> Result<String> {
    let authorization = received
        .header("authorization")
        .context("no authorization")?;
    authorization
        .strip_prefix("Bearer ")
        .map(str::to_string)
        .with_context(|| format!("not a bearer credential: {authorization}"))
}

/// Every upstream request carried a token the endpoint issued to its acting user for the
/// upstream's audience.
fn each_carried_its_users_token(upstream: &Upstream, endpoint: &TokenEndpoint) -> Result<()> {
    for received in upstream.received() {
        let user = received.header("x-acting-user").context("no acting user")?;
        let token = bearer(&received)?;
        let issued = endpoint
            .issued_to(&token)
            .with_context(|| format!("{user}'s call carried a token the endpoint never issued"))?;
        ensure!(
            issued.sub == user && issued.audience == token_endpoint::UPSTREAM_AUDIENCE,
            "{user}'s call carried a token issued to {issued:?}"
        );
        ensure!(
            received.header("x-credential-mode").as_deref() == Some("token_exchange"),
            "input.credential.mode: {:?}",
            received.header("x-credential-mode")
        );
    }
    Ok(())
}

#[tokio::test]
async fn each_users_call_carries_the_token_exchanged_for_that_user() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (upstream, proxy) = exchange_proxy(&endpoint).await?;
    for user in ["alice", "bob", "alice", "bob"] {
        expect_status(&call(&proxy, user).await?, 201).with_context(|| format!("{user}'s call"))?;
    }
    let received = upstream.expect_requests(4)?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    let (alice, bob) = (bearer(&received[0])?, bearer(&received[1])?);
    ensure!(alice != bob, "alice and bob were sent the same token");
    ensure!(
        bearer(&received[2])? == alice && bearer(&received[3])? == bob,
        "a user's second call was sent another token"
    );
    ensure!(
        endpoint.exchanges() == 2,
        "exchanges: {}",
        endpoint.exchanges()
    );
    let reply = call(&proxy, "alice").await?;
    let trace_id = reply.header("lastmile-trace-id").context("no trace id")?;
    let record = proxy.trace_record(&trace_id).await?;
    ensure!(
        record["credential"] == serde_json::json!({"mode": "token_exchange", "subject": "alice"}),
        "trace credential: {}",
        record["credential"]
    );
    Ok(())
}

#[tokio::test]
async fn a_hundred_calls_by_one_user_make_one_exchange() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (upstream, proxy) = exchange_proxy(&endpoint).await?;
    for i in 0..100 {
        expect_status(&call(&proxy, "alice").await?, 201).with_context(|| format!("call {i}"))?;
    }
    upstream.expect_requests(100)?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    ensure!(
        endpoint.exchanges() == 1,
        "exchanges: {}",
        endpoint.exchanges()
    );
    let metrics = proxy.metrics().await?;
    let outcome = |o| {
        metrics
            .get(
                "lastmile_credential_exchanges_total",
                &[("route", "crm"), ("outcome", o)],
            )
            .unwrap_or_default()
    };
    ensure!(
        outcome("exchanged") == 1.0 && outcome("cached") == 99.0,
        "exchanged {}, cached {}",
        outcome("exchanged"),
        outcome("cached")
    );
    ensure!(
        metrics.get("lastmile_credential_cache_entries", &[("route", "crm")]) == Some(1.0),
        "cache entries: {:?}",
        metrics.get("lastmile_credential_cache_entries", &[("route", "crm")])
    );
    Ok(())
}

#[tokio::test]
async fn fifty_concurrent_first_calls_make_one_exchange() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    // Every first call arrives while the first exchange is still being answered.
    endpoint.delay(Duration::from_millis(500));
    let (upstream, proxy) = exchange_proxy(&endpoint).await?;
    let proxy = Arc::new(proxy);
    let token = jwt::token("alice", "crm.read")?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (proxy, token) = (proxy.clone(), token.clone());
        tasks.spawn(async move {
            proxy
                .get("/crm/v1/accounts", &[("x-lastmile-user", token.as_str())])
                .await
        });
    }
    while let Some(reply) = tasks.join_next().await {
        expect_status(&reply??, 201)?;
    }
    upstream.expect_requests(50)?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    ensure!(
        endpoint.requests() == 1,
        "the endpoint was asked {} times",
        endpoint.requests()
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_token_is_exchanged_again() -> Result<()> {
    let endpoint = TokenEndpoint::start(1).await?;
    let (upstream, proxy) = exchange_proxy(&endpoint).await?;
    expect_status(&call(&proxy, "alice").await?, 201)?;
    eventually(
        "a second exchange after the first token expired",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            expect_status(&call(&proxy, "alice").await?, 201)?;
            Ok((endpoint.exchanges() >= 2).then_some(()))
        },
    )
    .await?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    let received = upstream.received();
    let (first, last) = (
        bearer(received.first().context("no first call")?)?,
        bearer(received.last().context("no last call")?)?,
    );
    ensure!(
        first != last,
        "the call after expiry reused the expired token"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_502_and_nothing_is_forwarded() -> Result<()> {
    let url = format!("{}{}", dead_url()?, token_endpoint::PATH);
    let (upstream, proxy) = start(
        workspace(token_endpoint::CLIENT_SECRET)?,
        &exchange_credential(&url, None),
    )
    .await?;
    for (user, what) in [
        ("alice", "first"),
        ("alice", "during backoff"),
        ("bob", "other user"),
    ] {
        let reply = call(&proxy, user).await?;
        let body = assert_refusal(&reply, 502, "credential_unavailable").context(what)?;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        ensure!(
            message.contains("token endpoint"),
            "{what}: the refusal gives no reason: {message}"
        );
    }
    upstream
        .nothing_received()
        .context("nothing is forwarded without the user's token")?;
    let metrics = proxy.metrics().await?;
    let unreachable = metrics.get(
        "lastmile_credential_exchanges_total",
        &[("route", "crm"), ("outcome", "unreachable")],
    );
    ensure!(unreachable == Some(2.0), "unreachable: {unreachable:?}");
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_refusing_the_client_is_502_and_nothing_is_forwarded() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (upstream, proxy) = start(
        workspace("not-the-client-secret")?,
        &exchange_credential(&endpoint.url(), None),
    )
    .await?;
    let reply = call(&proxy, "alice").await?;
    let body = assert_refusal(&reply, 502, "credential_unavailable")?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("invalid_client"), "reason: {message}");
    ensure!(endpoint.exchanges() == 0, "the endpoint issued a token");
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_slower_than_the_timeout_is_502_and_nothing_is_forwarded() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    endpoint.delay(Duration::from_secs(5));
    let credential = exchange_credential(&endpoint.url(), None).replace('}', ", timeout_ms: 200}");
    let (upstream, proxy) = start(workspace(token_endpoint::CLIENT_SECRET)?, &credential).await?;
    let body = assert_refusal(&call(&proxy, "alice").await?, 502, "credential_unavailable")?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("in time"), "reason: {message}");
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn token_exchange_over_https_trusts_the_configured_ca() -> Result<()> {
    let endpoint = TokenEndpoint::start_https(300).await?;
    let workspace = workspace(token_endpoint::CLIENT_SECRET)?;
    workspace.write(
        "secrets/idp-ca.pem",
        endpoint.ca_pem.as_deref().context("no CA")?,
    )?;
    let credential = exchange_credential(&endpoint.url(), Some("secrets/idp-ca.pem"));
    let (upstream, proxy) = start(workspace, &credential).await?;
    expect_status(&call(&proxy, "alice").await?, 201)?;
    upstream.only_request()?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    Ok(())
}

#[tokio::test]
async fn no_minted_token_or_client_secret_appears_in_traces_logs_or_metrics() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (upstream, proxy) = exchange_proxy(&endpoint).await?;
    for user in ["alice", "bob", "carol"] {
        expect_status(&call(&proxy, user).await?, 201)?;
    }
    let reply = call(&proxy, "alice").await?;
    let trace_id = reply.header("lastmile-trace-id").context("no trace id")?;
    proxy.trace_record(&trace_id).await?;
    let metrics = proxy.admin_get("/metrics").await?.text();
    let tokens = endpoint.tokens();
    ensure!(tokens.len() == 3, "tokens issued: {}", tokens.len());
    let places = [
        ("trace", proxy.trace_text()?),
        ("logs", proxy.stderr()),
        ("stdout", proxy.stdout()),
        ("metrics", metrics),
    ];
    for (place, text) in &places {
        for token in &tokens {
            ensure!(
                !text.contains(token.as_str()),
                "a minted token appears in the {place}"
            );
        }
        ensure!(
            !text.contains(token_endpoint::CLIENT_SECRET),
            "the client secret appears in the {place}"
        );
    }
    upstream.expect_requests(4)?;
    Ok(())
}

/// A proxy whose route reads each user's credential from `secrets/users/<sub>`.
async fn per_user_proxy(files: &[(&str, &str)]) -> Result<(Upstream, Proxy)> {
    let workspace = Workspace::with_policy(POLICY)?;
    std::fs::create_dir_all(workspace.path(USERS_DIR))?;
    for (user, value) in files {
        workspace.write(&format!("{USERS_DIR}/{user}"), &format!("{value}\n"))?;
    }
    start(workspace, &format!("{{mode: per_user, dir: {USERS_DIR}}}")).await
}

#[tokio::test]
async fn per_user_credentials_are_each_users_own() -> Result<()> {
    let (upstream, proxy) =
        per_user_proxy(&[("alice", "alice-crm-key-1"), ("bob", "bob-crm-key-1")]).await?;
    for user in ["alice", "bob"] {
        expect_status(&call(&proxy, user).await?, 201)?;
    }
    let received = upstream.expect_requests(2)?;
    ensure!(
        bearer(&received[0])? == "alice-crm-key-1" && bearer(&received[1])? == "bob-crm-key-1",
        "credentials sent: {:?}",
        received.iter().map(bearer).collect::<Vec<_>>()
    );
    ensure!(
        received[0].header("x-credential-mode").as_deref() == Some("per_user"),
        "input.credential.mode: {:?}",
        received[0].header("x-credential-mode")
    );
    Ok(())
}

#[tokio::test]
async fn a_user_without_a_credential_file_is_403_and_nothing_is_forwarded() -> Result<()> {
    let (upstream, proxy) = per_user_proxy(&[("alice", "alice-crm-key-1")]).await?;
    for user in ["bob", "..", ".hidden"] {
        let reply = call(&proxy, user).await?;
        assert_refusal(&reply, 403, "no_user_credential")
            .with_context(|| format!("user {user:?}"))?;
        ensure!(
            !reply.text().contains("alice-crm-key-1"),
            "the refusal names a credential"
        );
    }
    upstream.nothing_received()?;
    let log = proxy.stderr();
    ensure!(
        !log.contains("alice-crm-key-1"),
        "a credential appears in the logs"
    );
    Ok(())
}

#[tokio::test]
async fn a_changed_credential_file_is_used_on_the_next_call() -> Result<()> {
    let (upstream, proxy) = per_user_proxy(&[("alice", "alice-crm-key-1")]).await?;
    expect_status(&call(&proxy, "alice").await?, 201)?;
    proxy
        .workspace()
        .write(&format!("{USERS_DIR}/alice"), "alice-crm-key-rotated-2\n")?;
    expect_status(&call(&proxy, "alice").await?, 201)?;
    let received = upstream.expect_requests(2)?;
    ensure!(
        bearer(&received[0])? == "alice-crm-key-1",
        "first: {:?}",
        bearer(&received[0])
    );
    ensure!(
        bearer(&received[1])? == "alice-crm-key-rotated-2",
        "after the change: {:?}",
        bearer(&received[1])
    );
    std::fs::remove_file(proxy.workspace().path(&format!("{USERS_DIR}/alice")))?;
    assert_refusal(&call(&proxy, "alice").await?, 403, "no_user_credential")
        .context("after the file was removed")?;
    upstream.expect_requests(2)?;
    Ok(())
}

/// A proxy with the approval queue on, whose `crm` route uses `credential` (YAML).
async fn approvals_proxy(workspace: Workspace, credential: &str) -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = approvals::setup(&upstream, |r| r.require_user().credential(credential));
    let proxy = workspace.start(&setup).await?;
    Ok((upstream, proxy))
}

#[tokio::test]
async fn an_approved_per_user_request_uses_the_users_file_as_it_is_at_execution() -> Result<()> {
    let workspace = approvals::workspace()?;
    let file = format!("{USERS_DIR}/{}", approvals::AGENT_USER);
    workspace.write(&file, "agent-user-key-1\n")?;
    let credential = format!("{{mode: per_user, dir: {USERS_DIR}}}");
    let (upstream, proxy) = approvals_proxy(workspace, &credential).await?;
    let id = approvals::park(&proxy, "INV-00000031").await?;
    upstream.nothing_received()?;
    proxy
        .workspace()
        .write(&file, "agent-user-key-rotated-2\n")?;
    let approved = approvals::decide(&proxy, "alice", &id, "approve", None).await?;
    expect_status(&approved, 200)?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "succeeded", "{approved}");
    let sent = upstream.only_request()?;
    ensure!(
        bearer(&sent)? == "agent-user-key-rotated-2",
        "executed with {:?}",
        bearer(&sent)
    );

    // Without the user's file at execution, the approval fails and nothing is sent.
    let id = approvals::park(&proxy, "INV-00000032").await?;
    std::fs::remove_file(proxy.workspace().path(&file))?;
    let approved = approvals::decide(&proxy, "alice", &id, "approve", None).await?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "failed", "{approved}");
    ensure!(
        approved["failure"]["code"] == "no_user_credential",
        "{approved}"
    );
    upstream.expect_requests(1)?;
    Ok(())
}

#[tokio::test]
async fn an_approved_token_exchange_request_runs_only_with_a_cached_token_of_the_user() -> Result<()>
{
    let endpoint = TokenEndpoint::start(300).await?;
    let workspace = approvals::workspace()?;
    workspace.write(SECRET_FILE, &format!("{}\n", token_endpoint::CLIENT_SECRET))?;
    let credential = exchange_credential(&endpoint.url(), None);
    let (upstream, proxy) = approvals_proxy(workspace, &credential).await?;

    // Parked before the user's token was ever exchanged: nothing to execute with.
    let id = approvals::park(&proxy, "INV-00000041").await?;
    let approved = approvals::decide(&proxy, "alice", &id, "approve", None).await?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "failed", "{approved}");
    ensure!(
        approved["failure"]["code"] == "credential_unavailable",
        "{approved}"
    );
    let reply = approvals::poll(&proxy, approvals::AGENT_USER, &id, "").await?;
    expect_status(&reply, 502)?;
    upstream.nothing_received()?;
    ensure!(endpoint.requests() == 0, "an approval exchanged a token");

    // A call within the limit exchanges the user's token; an approval then runs with it.
    let small = approvals::refund(&proxy, approvals::AGENT_USER, "INV-00000042", 10).await?;
    expect_status(&small, 201)?;
    let id = approvals::park(&proxy, "INV-00000043").await?;
    let approved = approvals::decide(&proxy, "alice", &id, "approve", None).await?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "succeeded", "{approved}");
    let received = upstream.expect_requests(2)?;
    for sent in &received {
        let token = bearer(sent)?;
        let issued = endpoint.issued_to(&token).context("a token never issued")?;
        ensure!(
            issued.sub == approvals::AGENT_USER,
            "sent a token of {issued:?}"
        );
    }
    ensure!(
        endpoint.exchanges() == 1,
        "exchanges: {}",
        endpoint.exchanges()
    );

    // The approval store holds neither minted tokens nor the client secret.
    let mut store = Vec::new();
    for file in ["state/approvals.db", "state/approvals.db-wal"] {
        if let Ok(bytes) = std::fs::read(proxy.workspace().path(file)) {
            store.extend(bytes);
        }
    }
    ensure!(!store.is_empty(), "no approval store written");
    let store = String::from_utf8_lossy(&store);
    for token in endpoint.tokens() {
        ensure!(
            !store.contains(token.as_str()),
            "a minted token is in the approval store"
        );
    }
    ensure!(
        !store.contains(token_endpoint::CLIENT_SECRET),
        "the client secret is stored"
    );
    Ok(())
}

const ASSERTION_KEY_FILE: &str = "secrets/exchange-client-key.pem";
const RSA_KEY: &str = include_str!("../fixtures/client-assertion/rsa-test-only.key");
const RSA_PUBLIC: &str = include_str!("../fixtures/client-assertion/rsa-test-only.pub");
const RSA_WRONG_KEY: &str = include_str!("../fixtures/client-assertion/rsa-wrong-test-only.key");

/// The route's credential block authenticating the client with `private_key_jwt`.
fn assertion_credential(url: &str, alg: &str) -> String {
    format!(
        "{{mode: token_exchange, token_endpoint: \"{url}\", client_id: {}, \
         client_assertion_key_file: {ASSERTION_KEY_FILE}, client_assertion_alg: {alg}, \
         client_assertion_kid: k1, audience: {}, scope: \"crm.read\"}}",
        token_endpoint::CLIENT_ID,
        token_endpoint::UPSTREAM_AUDIENCE
    )
}

/// A proxy signing its client assertions with `private_pem`, against an endpoint that
/// accepts only assertions verifying with `public_pem`.
async fn assertion_proxy(
    endpoint: &TokenEndpoint,
    alg: jsonwebtoken::Algorithm,
    private_pem: &str,
    public_pem: &str,
) -> Result<(Upstream, Proxy)> {
    endpoint.accept_assertions(public_pem, alg)?;
    let workspace = Workspace::with_policy(POLICY)?;
    workspace.write(ASSERTION_KEY_FILE, private_pem)?;
    let name = if alg == jsonwebtoken::Algorithm::ES256 {
        "ES256"
    } else {
        "RS256"
    };
    start(workspace, &assertion_credential(&endpoint.url(), name)).await
}

fn p256_key() -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

#[tokio::test]
async fn private_key_jwt_with_rs256_exchanges_the_users_token() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let alg = jsonwebtoken::Algorithm::RS256;
    let (upstream, proxy) = assertion_proxy(&endpoint, alg, RSA_KEY, RSA_PUBLIC).await?;
    for user in ["alice", "bob"] {
        expect_status(&call(&proxy, user).await?, 201)?;
    }
    upstream.expect_requests(2)?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    ensure!(
        endpoint.assertion_ids().len() == 2,
        "one assertion per exchange"
    );
    Ok(())
}

#[tokio::test]
async fn private_key_jwt_with_es256_exchanges_the_users_token() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (private, public) = p256_key()?;
    let alg = jsonwebtoken::Algorithm::ES256;
    let (upstream, proxy) = assertion_proxy(&endpoint, alg, &private, &public).await?;
    for user in ["alice", "bob", "alice"] {
        expect_status(&call(&proxy, user).await?, 201)?;
    }
    upstream.expect_requests(3)?;
    each_carried_its_users_token(&upstream, &endpoint)?;
    ensure!(
        endpoint.exchanges() == 2,
        "exchanges: {}",
        endpoint.exchanges()
    );
    Ok(())
}

#[tokio::test]
async fn an_assertion_signed_with_the_wrong_key_is_502_and_nothing_is_forwarded() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let alg = jsonwebtoken::Algorithm::RS256;
    let (upstream, proxy) = assertion_proxy(&endpoint, alg, RSA_WRONG_KEY, RSA_PUBLIC).await?;
    let body = assert_refusal(&call(&proxy, "alice").await?, 502, "credential_unavailable")?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("invalid_client"), "reason: {message}");
    ensure!(endpoint.exchanges() == 0, "the endpoint issued a token");
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn no_assertion_or_private_key_appears_in_traces_logs_or_metrics() -> Result<()> {
    let endpoint = TokenEndpoint::start(300).await?;
    let (private, public) = p256_key()?;
    let alg = jsonwebtoken::Algorithm::ES256;
    let (upstream, proxy) = assertion_proxy(&endpoint, alg, &private, &public).await?;
    for user in ["alice", "bob"] {
        expect_status(&call(&proxy, user).await?, 201)?;
    }
    let reply = call(&proxy, "alice").await?;
    let trace_id = reply.header("lastmile-trace-id").context("no trace id")?;
    proxy.trace_record(&trace_id).await?;
    let metrics = proxy.admin_get("/metrics").await?.text();
    let jtis = endpoint.assertion_ids();
    ensure!(jtis.len() == 2, "assertions: {}", jtis.len());
    // A line of each key's base64 body stands for the key.
    let key_lines: Vec<&str> = [private.as_str(), RSA_KEY]
        .iter()
        .filter_map(|pem| pem.lines().nth(1))
        .collect();
    let places = [
        ("trace", proxy.trace_text()?),
        ("logs", proxy.stderr()),
        ("stdout", proxy.stdout()),
        ("metrics", metrics),
    ];
    for (place, text) in &places {
        ensure!(
            !text.contains("client_assertion=") && !text.contains("eyJ0eXAiOiJKV1Qi"),
            "an assertion appears in the {place}"
        );
        for jti in &jtis {
            ensure!(
                !text.contains(jti.as_str()),
                "an assertion id appears in the {place}"
            );
        }
        for line in &key_lines {
            ensure!(
                !text.contains(line),
                "private key material appears in the {place}"
            );
        }
        for token in endpoint.tokens() {
            ensure!(
                !text.contains(&token),
                "a minted token appears in the {place}"
            );
        }
    }
    upstream.expect_requests(3)?;
    Ok(())
}

#[tokio::test]
async fn an_unusable_assertion_key_is_a_startup_error() -> Result<()> {
    let workspace = Workspace::with_policy(POLICY)?;
    workspace.write(
        ASSERTION_KEY_FILE,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )?;
    let route = RouteSpec::new("crm", "/crm", dead_url()?)
        .require_user()
        .credential(&assertion_credential(
            "http://127.0.0.1:9/oauth2/token",
            "ES256",
        ));
    let (status, failure) = workspace.run_to_exit(&Setup::new(vec![route])).await?;
    ensure!(!status.success(), "lastmile started with an unusable key");
    ensure!(
        failure.contains("client_assertion_key_file") && !failure.contains("AAAA"),
        "startup error: {failure}"
    );
    Ok(())
}
