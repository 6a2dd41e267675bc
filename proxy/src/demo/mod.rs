//! `lastmile demo`: the sample CRM, the proxy in front of it with the shipped demo
//! policy, fresh demo secrets, and signed tokens for two demo users, with curl commands
//! to paste.

pub mod upstream;

use crate::config::Config;
use crate::pipeline::ResponseBody;
use anyhow::{Context, Result};
use http::Response;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use upstream::SampleCrm;

const DEMO_CONFIG: &str = include_str!("lastmile.yaml");
const DEMO_POLICY: &str = include_str!("../../../policies/demo/lastmile.rego");
const DEMO_POLICY_TEST: &str = include_str!("../../../policies/demo/lastmile_test.rego");
const DEMO_DATA: &str = include_str!("../../../policies/demo/data.json");
const SAMPLE_CRM_ADDR: &str = "127.0.0.1:15080";
const ISSUER: &str = "https://idp.demo.lastmile";

/// Runs the demo until `shutdown` completes.
pub async fn run(
    policies: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("lastmile-demo-")
        .tempdir()?;
    let crm_token = random_hex(24)?;
    let identity_secret = random_hex(32)?;
    std::fs::create_dir(scratch.path().join("secrets"))?;
    std::fs::write(scratch.path().join("secrets/crm-token"), &crm_token)?;
    std::fs::write(
        scratch.path().join("secrets/identity-hs256"),
        &identity_secret,
    )?;

    let mut config = Config::from_yaml(DEMO_CONFIG, scratch.path())?;
    config.policies.dir = policy_dir(policies, scratch.path())?;

    let crm_listener = TcpListener::bind(SAMPLE_CRM_ADDR)
        .await
        .with_context(|| format!("binding the sample CRM on {SAMPLE_CRM_ADDR}"))?;
    let (stop_crm, crm_stopped) = watch::channel(false);
    let crm = Arc::new(SampleCrm::new(crm_token));
    let crm_server = tokio::spawn(crate::server::serve(
        crm_listener,
        move |request| -> std::pin::Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>> {
            Box::pin(crm.clone().handle(request))
        },
        config.server.clone(),
        crm_stopped,
    ));

    let alice = sign(&identity_secret, "u_alice", "account:acme")?;
    let bob = sign(&identity_secret, "u_bob", "account:globex")?;
    print_banner(&config, &alice, &bob);
    let result = crate::run(config, shutdown).await;
    let _ = stop_crm.send(true);
    let _ = crm_server.await;
    result
}

/// The policy directory to serve: the one given, `./policies/demo` when run from the
/// repository, else the copy built into the binary, written to the scratch folder.
fn policy_dir(given: Option<PathBuf>, scratch: &Path) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let in_repo = PathBuf::from("policies/demo");
    if in_repo.join("lastmile.rego").is_file() {
        return Ok(std::path::absolute(in_repo)?);
    }
    let dir = scratch.join("policies");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("lastmile.rego"), DEMO_POLICY)?;
    std::fs::write(dir.join("lastmile_test.rego"), DEMO_POLICY_TEST)?;
    std::fs::write(dir.join("data.json"), DEMO_DATA)?;
    Ok(dir)
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| anyhow::anyhow!("no randomness for demo secrets: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A demo identity token, valid for 12 hours.
fn sign(secret: &str, sub: &str, scope: &str) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let claims = serde_json::json!({
        "sub": sub, "scope": scope, "roles": ["agent-operator"],
        "iss": ISSUER, "aud": "lastmile", "iat": now, "exp": now + Duration::from_secs(12 * 3600).as_secs(),
    });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

fn print_banner(config: &Config, alice: &str, bob: &str) {
    let data = format!("http://{}", config.listen);
    let admin = format!("http://{}", config.admin_listen);
    let json = "-H 'content-type: application/json'";
    println!(
        r#"
lastmile demo
  proxy        {data}/crm/...  ->  sample CRM on http://{SAMPLE_CRM_ADDR}
  admin        {admin}/metrics  {admin}/healthz  {admin}/readyz  {admin}/traces/<trace-id>
  policies     {policies}  (edit them: changes are live within a second)

Two demo users (tokens valid 12 h): alice may act on account acme, bob on globex.
  export ALICE='{alice}'
  export BOB='{bob}'

Allowed: alice sends a reminder for an acme invoice (the CRM answers 201):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing"}}'

Allowed, and scoped: alice lists invoices; lastmile adds account=acme, so globex's never show:
  curl -s {data}/crm/v1/invoices -H "x-lastmile-user: $ALICE"

Denied, field not allowed and a raw address (403 with the reasons; the CRM sees nothing):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing","email":"cfo@acme.example"}}'

Denied, out of scope: bob asks for an acme invoice:
  curl -si {data}/crm/v1/invoices/INV-00038122 -H "x-lastmile-user: $BOB"

Refused, no token (401):
  curl -si {data}/crm/v1/invoices

Every response carries lastmile-trace-id; look the decision up with:
  curl -s {admin}/traces/<lastmile-trace-id>
Decision trace lines follow below, one JSON object per request.
"#,
        policies = config.policies.dir.display(),
    );
}
