//! The rendered lastmile config, fed to lastmile's own config parser: accepted, with
//! every path it names under one of the sidecar's mounts.

use super::helm::helm;
use super::manifest::{at, list, sidecar, text};
use super::{ALL_FEATURES, EXAMPLE, USER_CREDENTIALS};
use anyhow::{anyhow, ensure, Context, Result};
use serde_yaml_ng::Value;
use std::path::Path;

/// Every path the config names must lie under one of the sidecar's mounts.
fn check_paths_are_mounted(config: &Value, container: &Value, label: &str) -> Result<()> {
    let mounts: Vec<&str> = list(container, "volumeMounts")
        .into_iter()
        .filter_map(|m| text(m, "mountPath"))
        .collect();
    let mut paths: Vec<String> = Vec::new();
    paths.extend(text(config, "policies.dir").map(|d| format!("{d}/x")));
    for key in [
        "identity.keys_file",
        "identity.hs256_secret_file",
        "approvals.store_path",
        "approvals.approvers_file",
    ] {
        paths.extend(text(config, key).map(String::from));
    }
    for route in list(config, "routes") {
        for key in [
            "credential.value_file",
            "credential.client_secret_file",
            "credential.ca_file",
        ] {
            paths.extend(text(route, key).map(String::from));
        }
        paths.extend(text(route, "credential.dir").map(|d| format!("{d}/x")));
        paths.extend(text(route, "ca_file").map(String::from));
    }
    if let Some(output) = text(config, "trace.output").filter(|o| o.starts_with('/')) {
        paths.push(output.to_string());
    }
    for path in paths {
        ensure!(
            mounts
                .iter()
                .any(|m| path.starts_with(&format!("{}/", m.trim_end_matches('/')))),
            "{label}: {path} is not under any sidecar mount {mounts:?}"
        );
    }
    Ok(())
}

#[test]
fn chart_config_is_accepted_by_the_lastmile_config_parser() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    // The all-features values keep dedup windows in Redis; the config names the variable
    // the sidecar gets from the Secret, and the parser reads it. (Each nextest test is a
    // process of its own, so setting it here affects no other test.)
    std::env::set_var("LASTMILE_DEDUP_REDIS_URL", "redis://redis.example:6379/0");
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "default",
            &["--set", "exampleAgent.enabled=true"],
            &["example"],
        ),
        ("example", &["-f", EXAMPLE], &["crm"]),
        (
            "all-features",
            &["-f", ALL_FEATURES],
            &["crm", "erp_internal", "tickets"],
        ),
        (
            "user-credentials",
            &["-f", USER_CREDENTIALS],
            &["crm", "tickets"],
        ),
    ];
    for (label, args, routes) in cases {
        let rendered = helm.render(args)?;
        let text_config = rendered.config_text("agent-lastmile")?;
        let config: Value = serde_yaml_ng::from_str(&text_config)
            .with_context(|| format!("{label}: the config is not YAML:\n{text_config}"))?;
        let names: Vec<&str> = list(&config, "routes")
            .into_iter()
            .filter_map(|r| text(r, "name"))
            .collect();
        ensure!(
            names == routes,
            "{label}: routes {names:?}, want {routes:?}"
        );
        ensure!(
            text(&config, "listen") == Some("127.0.0.1:15001")
                && text(&config, "admin_listen") == Some("0.0.0.0:15002"),
            "{label}: listen {:?} admin {:?}",
            at(&config, "listen"),
            at(&config, "admin_listen")
        );

        let parsed =
            lastmile::config::Config::from_yaml(&text_config, Path::new("/etc/lastmile/config"))
                .map_err(|e| {
                    anyhow!("{label}: lastmile rejects the rendered config: {e:#}\n{text_config}")
                })?;
        ensure!(
            parsed.routes.len() == routes.len(),
            "{label}: parsed {} routes",
            parsed.routes.len()
        );
        let (container, _) = sidecar(rendered.deployment()?)?;
        check_paths_are_mounted(&config, container, label)?;
    }

    // Values the proxy knows nothing about never reach its config file; the Redis URL (a
    // secret) reaches it only as the name of an environment variable.
    let rendered = helm.render(&["-f", ALL_FEATURES])?;
    let all = rendered.config_text("agent-lastmile")?;
    for absent in ["persistence", "redis://", "secretName"] {
        ensure!(
            !all.contains(absent),
            "{absent} leaked into the config:\n{all}"
        );
    }
    let parsed = lastmile::config::Config::from_yaml(&all, Path::new("/etc/lastmile/config"))?;
    let approvals = parsed
        .approvals
        .as_ref()
        .context("approvals not rendered")?;
    ensure!(
        approvals.store_path == Path::new("/var/lib/lastmile/approvals.db")
            && approvals.approvers_file.as_deref()
                == Some(Path::new("/etc/lastmile/approvers/approvers"))
            && approvals.expire_after == std::time::Duration::from_secs(3600)
            && approvals.webhook.is_some()
            && approvals
                .approver_jwt
                .as_ref()
                .is_some_and(|jwt| jwt.audience == "lastmile-approvals"),
        "approvals {approvals:?}"
    );
    let identity = parsed.identity.as_ref().context("identity not rendered")?;
    ensure!(
        identity.jwks_url.as_ref().map(|u| u.to_string()).as_deref()
            == Some("https://idp.example.com/.well-known/jwks.json")
            && identity.jwks_ca_file.as_deref()
                == Some(Path::new("/etc/lastmile/identity/jwks-ca/ca.crt")),
        "identity {identity:?}"
    );
    ensure!(
        parsed.admin_token_file.as_deref() == Some(Path::new("/etc/lastmile/admin/token")),
        "admin token file {:?}",
        parsed.admin_token_file
    );
    ensure!(
        helm.render(&["-f", EXAMPLE])?
            .config_text("agent-lastmile")?
            .lines()
            .all(|l| !l.starts_with("approvals:")),
        "approvals are off unless enabled"
    );
    match &parsed.dedup.store {
        lastmile::config::DedupStoreConfig::Redis(redis) => ensure!(
            redis.key_prefix == "lastmile:dedup:agent:",
            "key prefix {:?}",
            redis.key_prefix
        ),
        other => anyhow::bail!("all-features values keep windows in Redis, got {other:?}"),
    }
    let example = helm.render(&["-f", EXAMPLE])?;
    let crm = lastmile::config::Config::from_yaml(
        &example.config_text("agent-lastmile")?,
        Path::new("/etc/lastmile/config"),
    )?;
    let route = crm.routes.first().context("no route")?;
    ensure!(route.require_user, "requireUser was not rendered");
    ensure!(
        crm.identity
            .as_ref()
            .and_then(|i| i.keys_file.as_deref())
            .is_some_and(|p| p == Path::new("/etc/lastmile/identity/keys/jwks.json")),
        "identity keys_file {:?}",
        crm.identity
    );
    Ok(())
}
