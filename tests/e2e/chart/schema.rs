//! What the chart promises before anything runs: `helm lint --strict`, the rendered
//! manifests against the Kubernetes API schemas, and the values schema.

use super::helm::{describe, helm, kubernetes_validate};
use super::manifest::{at, text, values_file, Rendered};
use super::{ALL_FEATURES, CHART, EXAMPLE, KUBE_VERSIONS, SERVICE_MONITOR_API, USER_CREDENTIALS};
use crate::harness::repo_root;
use anyhow::{ensure, Context, Result};
use serde_yaml_ng::Value;
use std::process::{Command, Stdio};

#[test]
fn chart_lints_strict_with_default_all_features_and_example_values() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for values in [
        None,
        Some(ALL_FEATURES),
        Some(EXAMPLE),
        Some(USER_CREDENTIALS),
    ] {
        let mut args = vec!["lint", "--strict", CHART];
        if let Some(file) = values {
            args.extend(["-f", file]);
        }
        let output = helm.run(&args)?;
        ensure!(
            output.status.success(),
            "helm lint --strict with {values:?}: {}",
            describe(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            stdout.contains("0 chart(s) failed"),
            "unexpected lint output: {stdout}"
        );
    }
    Ok(())
}

#[test]
fn chart_renders_manifests_that_validate_against_kubernetes_1_29_and_1_33() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let Some(validator) = kubernetes_validate()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let cases: [(&str, &[&str]); 4] = [
        ("default", &[]),
        (
            "all-features",
            &["-f", ALL_FEATURES, "--api-versions", SERVICE_MONITOR_API],
        ),
        (
            "example",
            &["-f", EXAMPLE, "--api-versions", SERVICE_MONITOR_API],
        ),
        ("user-credentials", &["-f", USER_CREDENTIALS]),
    ];
    for kube in KUBE_VERSIONS {
        for (label, extra) in cases {
            let mut args = vec!["--kube-version", kube];
            args.extend_from_slice(extra);
            let manifest = helm.template(&args)?;
            let rendered = Rendered::parse(&manifest)?;
            let file = dir.path().join(format!("{label}-{kube}.yaml"));
            std::fs::write(&file, &manifest)?;
            let output = Command::new(&validator)
                .arg("--strict")
                .arg("--kubernetes-version")
                .arg(kube)
                .arg(&file)
                .stdin(Stdio::null())
                .output()
                .context("running kubernetes-validate")?;
            let report = describe(&output);
            ensure!(
                output.status.success(),
                "{label} values on Kubernetes {kube} do not validate: {report}"
            );
            // Every resource but the CRD-based ServiceMonitor was checked against a schema.
            let checked = rendered
                .docs
                .iter()
                .filter(|d| text(d, "kind") != Some("ServiceMonitor"))
                .count();
            let passed = String::from_utf8_lossy(&output.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&output.stderr).lines())
                .filter(|l| l.contains(" passed for resource "))
                .count();
            ensure!(
                passed == checked,
                "{label} on {kube}: {passed} resources passed, {checked} rendered: {report}"
            );
        }
    }
    Ok(())
}

// --- Values schema ----------------------------------------------------------------------

#[test]
fn chart_schema_rejects_unknown_keys_and_bad_values() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for (set, needle) in [
        ("bogus=1", "bogus"),
        ("proxy.listenPortt=15001", "listenPortt"),
        ("metrics.serviceMonitor.enabeld=true", "enabeld"),
        ("proxy.adminPort=0", "adminPort"),
        ("approvals.webhook.urll=x", "urll"),
        ("approvals.webhook.url=ftp://hooks", "url"),
    ] {
        let stderr = helm.template_fails(&["--set", set])?;
        ensure!(
            stderr.contains(needle),
            "--set {set}: error does not name {needle:?}: {stderr}"
        );
    }
    let dir = tempfile::tempdir()?;
    for (name, values, needle) in [
        (
            "route-key.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    timeout: 5\n",
            "timeout",
        ),
        (
            "route-name.yaml",
            "routes:\n  - name: CRM\n    upstream: https://crm.example.com\n",
            "name",
        ),
        (
            "body.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    maxBodyBytes: -1\n",
            "maxBodyBytes",
        ),
        (
            "upstream.yaml",
            "routes:\n  - name: crm\n    upstream: ftp://crm.example.com\n",
            "upstream",
        ),
        ("no-routes.yaml", "routes: []\n", "routes"),
        (
            "identity.yaml",
            "identity:\n  enabled: true\n",
            "identity.enabled",
        ),
        (
            "approvers.yaml",
            "approvals:\n  enabled: true\n",
            "approvals.enabled",
        ),
        (
            "approver-jwts-without-audience.yaml",
            "identity:\n  enabled: true\n  hs256:\n    secretName: s\napprovals:\n  enabled: true\n",
            "approvals.jwtAudience",
        ),
        (
            "credential-mode.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    credential:\n      mode: per-user\n      secretName: crm-users\n",
            "credential/mode",
        ),
        (
            "per-user-with-static-key.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    credential:\n      mode: per_user\n      secretName: crm-users\n      secretKey: token\n",
            "secretKey",
        ),
        (
            "per-user-without-secret.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    credential:\n      mode: per_user\n",
            "secretName",
        ),
        (
            "static-with-claim.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    credential:\n      secretName: crm-token\n      claim: sub\n",
            "claim",
        ),
        (
            "token-exchange-without-client-secret.yaml",
            "routes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n",
            "clientSecret",
        ),
        (
            "token-exchange-client-secret-key-only.yaml",
            "routes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n      clientSecret:\n        key: client-secret\n",
            "secretName",
        ),
        (
            "token-exchange-endpoint.yaml",
            "routes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: idp.example.com/token\n      clientId: lastmile\n      clientSecret:\n        secretName: lastmile-idp\n",
            "tokenEndpoint",
        ),
        (
            "token-exchange-subject-token-type.yaml",
            "routes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n      clientSecret:\n        secretName: lastmile-idp\n      subjectTokenType: id_token\n",
            "subjectTokenType",
        ),
        (
            "user-mode-without-identity.yaml",
            "routes:\n  - name: crm\n    upstream: https://crm.example.com\n    credential:\n      mode: per_user\n      secretName: crm-users\n",
            "needs identity.enabled",
        ),
        (
            "token-exchange-two-cas.yaml",
            "identity:\n  enabled: true\n  jwksUrl: https://idp.example.com/certs\nroutes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n      clientSecret:\n        secretName: lastmile-idp\n      ca:\n        secretName: idp-ca\n        configMapName: idp-ca\n",
            "not both",
        ),
        (
            "approver-audience-is-the-users.yaml",
            "identity:\n  enabled: true\n  audience: lastmile\n  hs256:\n    secretName: s\napprovals:\n  enabled: true\n  jwtAudience: lastmile\n",
            "must differ from identity.audience",
        ),
    ] {
        let file = values_file(&dir, name, values)?;
        let stderr = helm.template_fails(&["-f", file.as_str()])?;
        ensure!(
            stderr.contains(needle),
            "{name}: error does not name {needle:?}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn chart_image_tag_defaults_to_the_app_version() -> Result<()> {
    let root = repo_root();
    let chart: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        root.join(CHART).join("Chart.yaml"),
    )?)?;
    let values: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        root.join(CHART).join("values.yaml"),
    )?)?;
    let app = text(&chart, "appVersion");
    ensure!(app.is_some(), "Chart.yaml has no appVersion");
    ensure!(
        text(&values, "image.tag") == app,
        "values.yaml image.tag {:?} differs from appVersion {app:?}",
        at(&values, "image.tag")
    );
    Ok(())
}
