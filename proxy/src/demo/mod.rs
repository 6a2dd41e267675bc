//! `lastmile demo`: the sample CRM, the proxy in front of it with the shipped demo
//! policy, fresh demo secrets, and signed tokens for two demo users, with curl commands
//! to paste.

mod banner;
pub mod upstream;

use crate::config::Config;
use crate::response::ResponseBody;
use anyhow::{Context, Result};
use banner::{print_banner, Tokens};
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
    Ok(crate::hex::encode(&buf))
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
