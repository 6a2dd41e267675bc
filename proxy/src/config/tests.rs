use super::*;
use std::time::Duration;

const MINIMAL: &str = r#"
policies: {dir: ./policies/demo}
routes:
  - name: crm
    prefix: /crm/
    upstream: https://crm.example.com/api/
"#;

fn load(text: &str) -> Result<Config> {
    Config::from_yaml(text, Path::new("/etc/lastmile"))
}

#[test]
fn minimal_config_gets_documented_defaults() -> Result<()> {
    let config = load(MINIMAL)?;
    assert_eq!(config.listen.to_string(), "127.0.0.1:15001");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:15002");
    assert_eq!(
        config.policies.dir,
        PathBuf::from("/etc/lastmile/./policies/demo")
    );
    assert_eq!(config.policies.entrypoint, "data.lastmile.decision");
    let route = &config.routes[0];
    assert_eq!(route.prefix.as_deref(), Some("/crm"));
    assert_eq!(route.upstream.base_path, "/api");
    assert_eq!(route.mode, Mode::Enforce);
    assert_eq!(route.timeout, Duration::from_secs(10));
    assert_eq!(route.max_body_bytes, 1024 * 1024);
    assert!(route.hosts.is_empty());
    assert_eq!(config.trace.output, TraceOutput::Stdout);
    Ok(())
}

#[test]
fn unknown_fields_are_rejected_everywhere() {
    assert!(load(&format!("{MINIMAL}\nlisten_port: 1\n")).is_err());
    assert!(load(
        "policies: {dir: p, entry: x}\nroutes: [{name: a, prefix: /a, upstream: http://a}]"
    )
    .is_err());
    assert!(load(
        "policies: {dir: p}\nroutes: [{name: a, prefix: /a, upstream: http://a, mod: enforce}]"
    )
    .is_err());
}

#[test]
fn invalid_values_are_rejected() {
    let route = |r: &str| load(&format!("policies: {{dir: p}}\nroutes: [{r}]"));
    assert!(route("{name: a, prefix: /a, upstream: ftp://a}").is_err());
    assert!(route("{name: a, prefix: a, upstream: http://a}").is_err());
    assert!(route("{name: a, prefix: /a/../b, upstream: http://a}").is_err());
    assert!(route("{name: Bad Name, prefix: /a, upstream: http://a}").is_err());
    assert!(route("{name: a, prefix: /a, upstream: http://a, mode: audit}").is_err());
    assert!(route("{name: a, prefix: /a, upstream: http://a, timeout_ms: 0}").is_err());
    assert!(route(
        "{name: a, prefix: /a, upstream: http://a, credential: {header: authorization}}"
    )
    .is_err());
    assert!(route(
        "{name: a, prefix: /a, upstream: http://a}, {name: a, prefix: /b, upstream: http://b}"
    )
    .is_err());
    assert!(route(
        "{name: a, prefix: /a, upstream: http://a}, {name: b, prefix: /a, upstream: http://b}"
    )
    .is_err());
    assert!(load("policies: {dir: p}\nroutes: []").is_err());
    assert!(load("listen: localhost\npolicies: {dir: p}\nroutes: [{name: a, prefix: /a, upstream: http://a}]").is_err());
}

#[test]
fn a_route_without_prefix_matches_its_upstream_host() -> Result<()> {
    let config =
        load("policies: {dir: p}\nroutes: [{name: a, upstream: 'http://CRM.example.com:8080'}]")?;
    assert_eq!(
        config.routes[0].hosts,
        vec!["crm.example.com:8080".to_string()]
    );
    Ok(())
}

#[test]
fn approvals_get_documented_defaults_and_checked_values() -> Result<()> {
    assert!(load(MINIMAL)?.approvals.is_none());
    let config = load(&format!(
        "{MINIMAL}approvals: {{store_path: state/approvals.db}}\n"
    ))?;
    let approvals = config.approvals.context("approvals")?;
    assert_eq!(
        approvals.store_path,
        PathBuf::from("/etc/lastmile/state/approvals.db")
    );
    assert_eq!(approvals.expire_after, Duration::from_secs(86_400));
    assert_eq!(approvals.approver_role, "approver");
    assert_eq!(approvals.max_wait, Duration::from_secs(60));
    assert!(approvals.webhook.is_none() && approvals.approvers_file.is_none());

    let with = |block: &str| load(&format!("{MINIMAL}approvals: {block}\n"));
    assert!(with("{store_path: a.db, expire_after_seconds: 0}").is_err());
    assert!(with("{store_path: a.db, webhook: {url: 'ftp://hooks'}}").is_err());
    assert!(
        with("{store_path: a.db, webhook: {url: 'https://hooks.example/x', max_attempts: 0}}")
            .is_err()
    );
    assert!(with("{store_path: a.db, approvers: x}").is_err());
    assert!(with("{}").is_err());
    let hook = with("{store_path: a.db, webhook: {url: 'https://hooks.example/x'}}")?;
    assert_eq!(
        hook.approvals.and_then(|a| a.webhook).map(|w| w.timeout),
        Some(Duration::from_secs(5))
    );
    Ok(())
}

#[test]
fn the_poll_prefix_is_reserved_and_routes_may_set_their_expiry() -> Result<()> {
    let route = |r: &str| load(&format!("policies: {{dir: p}}\nroutes: [{r}]"));
    assert!(route("{name: a, prefix: /_lastmile, upstream: http://a}").is_err());
    assert!(route("{name: a, prefix: /_lastmile/x, upstream: http://a}").is_err());
    assert!(route("{name: a, prefix: /_lastmilex, upstream: http://a}").is_ok());
    assert!(
        route("{name: a, prefix: /a, upstream: http://a, approval_expire_after_seconds: 0}")
            .is_err()
    );
    let config =
        route("{name: a, prefix: /a, upstream: http://a, approval_expire_after_seconds: 60}")?;
    assert_eq!(
        config.routes[0].approval_expire_after,
        Some(Duration::from_secs(60))
    );
    Ok(())
}

#[test]
fn approver_jwts_have_their_own_audience() -> Result<()> {
    const IDENTITY: &str = "identity: {hs256_secret_file: s, audience: lastmile}\n";
    let approvals =
        |extra: &str| format!("{MINIMAL}{IDENTITY}approvals: {{store_path: a.db{extra}}}\n");
    let config = load(&approvals(""))?;
    assert!(config
        .approvals
        .context("approvals")?
        .approver_jwt
        .is_none());

    let config = load(&approvals(
        ", jwt_audience: lastmile-approvals, jwt_keys_file: keys/approvers.json",
    ))?;
    let jwt = config
        .approvals
        .and_then(|a| a.approver_jwt)
        .context("approver_jwt")?;
    assert_eq!(jwt.audience, "lastmile-approvals");
    assert_eq!(
        jwt.keys_file,
        Some(PathBuf::from("/etc/lastmile/keys/approvers.json"))
    );

    let error = |text: String| load(&text).err().map(|e| format!("{e:#}"));
    let same = error(approvals(", jwt_audience: lastmile")).unwrap_or_default();
    assert!(
        same.contains("approvals.jwt_audience must differ"),
        "{same}"
    );
    let no_audience = error(approvals(", jwt_issuer: https://idp")).unwrap_or_default();
    assert!(
        no_audience.contains("need approvals.jwt_audience"),
        "{no_audience}"
    );
    let no_identity = error(format!(
        "{MINIMAL}approvals: {{store_path: a.db, jwt_audience: x}}\n"
    ))
    .unwrap_or_default();
    assert!(no_identity.contains("needs identity"), "{no_identity}");
    Ok(())
}

#[test]
fn a_jwks_url_is_https_and_its_refresh_settings_are_bounded() -> Result<()> {
    let with = |identity: &str| load(&format!("{MINIMAL}identity: {{{identity}}}\n"));
    let config =
        with("jwks_url: \"https://idp.example/.well-known/jwks.json\", jwks_ca_file: ca.pem")?;
    let identity = config.identity.context("identity")?;
    assert_eq!(identity.jwks_refresh, Duration::from_secs(300));
    assert_eq!(identity.jwks_min_refresh, Duration::from_secs(30));
    assert_eq!(
        identity.jwks_ca_file,
        Some(PathBuf::from("/etc/lastmile/ca.pem"))
    );
    assert!(identity.keys_file.is_none() && identity.hs256_secret_file.is_none());
    for (identity, field) in [
        ("jwks_url: \"http://idp.example/jwks\"", "identity.jwks_url"),
        (
            "jwks_url: \"https://user:pw@idp.example/jwks\"",
            "identity.jwks_url",
        ),
        ("jwks_url: \"/jwks\"", "identity.jwks_url"),
        (
            "hs256_secret_file: s, jwks_ca_file: ca.pem",
            "identity.jwks_ca_file",
        ),
        (
            "jwks_url: \"https://idp/j\", jwks_min_refresh_seconds: 0",
            "jwks_min_refresh_seconds",
        ),
        (
            "jwks_url: \"https://idp/j\", jwks_refresh_seconds: 10, jwks_min_refresh_seconds: 20",
            "jwks_min_refresh_seconds",
        ),
        ("issuer: x", "jwks_url"),
    ] {
        let error = with(identity)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.contains(field), "{identity}: {error}");
    }
    Ok(())
}

#[test]
fn user_credential_modes_need_identity() {
    let text = "policies: {dir: p}\nroutes: [{name: a, prefix: /a, upstream: http://a, credential: {mode: per_user, dir: d}}]";
    let error = load(text)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(error.contains("configure identity"), "{error}");
}
