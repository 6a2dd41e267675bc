//! `lastmile demo`: the sample CRM, the proxy in front of it with the shipped demo
//! policy, fresh demo secrets, and signed tokens for two demo users, with curl commands
//! to paste.

pub mod upstream;

use crate::config::Config;
use crate::response::ResponseBody;
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

/// The invoicing example bundle and the policy library, built into the binary so the
/// demo also runs outside the repository.
const EXAMPLE_FILES: [(&str, &str); 3] = [
    (
        "lastmile.rego",
        include_str!("../../../policies/examples/invoicing/lastmile.rego"),
    ),
    (
        "lastmile_test.rego",
        include_str!("../../../policies/examples/invoicing/lastmile_test.rego"),
    ),
    (
        "data.json",
        include_str!("../../../policies/examples/invoicing/data.json"),
    ),
];
const LIBRARY_FILES: [(&str, &str); 5] = [
    (
        "amounts.rego",
        include_str!("../../../policies/lib/amounts.rego"),
    ),
    (
        "contracts.rego",
        include_str!("../../../policies/lib/contracts.rego"),
    ),
    (
        "dedup.rego",
        include_str!("../../../policies/lib/dedup.rego"),
    ),
    (
        "recipients.rego",
        include_str!("../../../policies/lib/recipients.rego"),
    ),
    (
        "scope.rego",
        include_str!("../../../policies/lib/scope.rego"),
    ),
];
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
    // The approver is not one of the demo users: nobody approves their own request.
    let approver_token = random_hex(24)?;
    std::fs::write(
        scratch.path().join("secrets/approvers"),
        format!("carol {approver_token}\n"),
    )?;

    let admin_token = random_hex(24)?;
    std::fs::write(scratch.path().join("secrets/admin-token"), &admin_token)?;

    let mut config = Config::from_yaml(DEMO_CONFIG, scratch.path())?;
    let (dir, library) = policy_dirs(policies, scratch.path())?;
    config.policies.dir = dir;
    config.policies.library_dirs = vec![library];

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
    print_banner(
        &config,
        &Tokens {
            alice: &alice,
            bob: &bob,
            approver: &approver_token,
            admin: &admin_token,
        },
    );
    let result = crate::run(config, shutdown).await;
    let _ = stop_crm.send(true);
    let _ = crm_server.await;
    result
}

/// The bundle and library to serve: the bundle given (or the invoicing example) and
/// `policies/lib` when run from the repository, else the copies built into the binary,
/// written to the scratch folder.
fn policy_dirs(given: Option<PathBuf>, scratch: &Path) -> Result<(PathBuf, PathBuf)> {
    let repo_library = PathBuf::from("policies/lib");
    let repo_example = PathBuf::from("policies/examples/invoicing");
    if repo_library.join("contracts.rego").is_file() {
        let dir = given.unwrap_or(repo_example);
        return Ok((
            std::path::absolute(dir)?,
            std::path::absolute(repo_library)?,
        ));
    }
    let library = write_files(&scratch.join("library"), &LIBRARY_FILES)?;
    let dir = match given {
        Some(dir) => dir,
        None => write_files(&scratch.join("policies"), &EXAMPLE_FILES)?,
    };
    Ok((dir, library))
}

fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents)?;
    }
    Ok(dir.to_path_buf())
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
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

/// The demo's printed credentials.
struct Tokens<'a> {
    alice: &'a str,
    bob: &'a str,
    approver: &'a str,
    admin: &'a str,
}

/// The demo's instructions, printed once it serves: every example is a command to
/// paste, in sections.
fn print_banner(config: &Config, tokens: &Tokens<'_>) {
    let data = format!("http://{}", config.listen);
    let admin = format!("http://{}", config.admin_listen);
    println!(
        "{}{}{}{}",
        banner_intro(config, &data, &admin, tokens),
        banner_policy_examples(&data),
        banner_approval_walkthrough(&data, &admin, tokens.approver),
        banner_trace_lookup(&admin, tokens.admin),
    );
}

/// Where everything listens, and the demo users' tokens.
fn banner_intro(config: &Config, data: &str, admin: &str, tokens: &Tokens<'_>) -> String {
    let Tokens { alice, bob, .. } = tokens;
    format!(
        r#"
lastmile demo
  proxy        {data}/crm/...  ->  sample CRM on http://{SAMPLE_CRM_ADDR}
  admin        {admin}/metrics  {admin}/healthz  {admin}/readyz  {admin}/traces/<trace-id>
  policies     {policies}  with the library {library}
               (edit them: changes are live within a second)

Two demo users (tokens valid 12 h): alice may act on account acme, bob on globex.
  export ALICE='{alice}'
  export BOB='{bob}'

"#,
        policies = config.policies.dir.display(),
        library = config
            .policies
            .library_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// One request for each thing the demo policy does: allow, scope, deny, refuse.
fn banner_policy_examples(data: &str) -> String {
    let json = JSON_HEADER;
    format!(
        r#"Allowed: alice sends a reminder for an acme invoice (the CRM answers 201):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing"}}'

Allowed, and scoped: alice lists invoices; lastmile adds account=acme, so globex's never show:
  curl -s {data}/crm/v1/invoices -H "x-lastmile-user: $ALICE"

Denied, field not allowed and a raw address (403 with the reasons; the CRM sees nothing):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing","email":"cfo@acme.example"}}'

Denied, out of scope: bob asks for an acme invoice:
  curl -si {data}/crm/v1/invoices/INV-00038122 -H "x-lastmile-user: $BOB"

Refused, no token (401):
  curl -si {data}/crm/v1/invoices

"#
    )
}

/// A request parked for approval, its decision by an approver, and the agent's poll.
fn banner_approval_walkthrough(data: &str, admin: &str, approver: &str) -> String {
    let json = JSON_HEADER;
    format!(
        r#"Needs approval: alice refunds 1200 on an acme invoice. lastmile parks it (202 with an
approval id and a poll URL); the CRM sees nothing until a human approves:
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/refunds {json} -H "x-lastmile-user: $ALICE" -d '{{"amount":1200,"reason":"Duplicate charge"}}'
Approve or deny it on the approvals page, signing in with carol's approver token:
  {admin}/ui/approvals
  export APPROVER='{approver}'
or with the approver API:
  curl -s '{admin}/approvals?state=pending' -H "authorization: Bearer $APPROVER"
  curl -s -X POST {admin}/approvals/<approval_id>/approve -H "authorization: Bearer $APPROVER" {json} -d '{{"comment":"checked"}}'
Then the agent fetches the CRM's real answer (add ?wait=30s to wait for the decision):
  curl -si {data}/_lastmile/approvals/<approval_id> -H "x-lastmile-user: $ALICE"

"#
    )
}

/// How the operator finds a decision from a response's trace id.
fn banner_trace_lookup(admin: &str, admin_token: &str) -> String {
    format!(
        r#"Every response carries lastmile-trace-id; the operator looks the decision up with:
  export ADMIN='{admin_token}'
  curl -s {admin}/traces/<lastmile-trace-id> -H "authorization: Bearer $ADMIN"
Decision trace lines follow below, one JSON object per request.
"#
    )
}

/// The curl flag the banner's JSON requests carry.
const JSON_HEADER: &str = "-H 'content-type: application/json'";

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies built into the binary must be the whole bundle and library: a file
    /// added to either without being embedded here would be missing outside the repo.
    #[test]
    fn the_embedded_policies_are_every_file_of_the_example_and_library() -> Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let listed = |dir: &Path, skip_tests: bool| -> Result<Vec<String>> {
            let mut names: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| {
                    (n.ends_with(".rego") || n == "data.json")
                        && !(skip_tests && n.ends_with("_test.rego"))
                })
                .collect();
            names.sort();
            Ok(names)
        };
        let embedded = |files: &[(&str, &str)]| {
            let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
            names.sort();
            names
        };
        assert_eq!(
            embedded(&EXAMPLE_FILES),
            listed(&root.join("examples/invoicing"), false)?
        );
        assert_eq!(embedded(&LIBRARY_FILES), listed(&root.join("lib"), true)?);
        Ok(())
    }
}
