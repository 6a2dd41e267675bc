//! What the pod mounts: the policy ConfigMap as a directory, the checksum annotations
//! that roll pods on a change, and credentials that only the sidecar sees.

use super::helm::helm;
use super::manifest::{
    agent, at, list, named, pod_annotations, pod_spec, sidecar, text, values_file,
};
use super::{ALL_FEATURES, EXAMPLE, USER_CREDENTIALS};
use anyhow::{ensure, Context, Result};
use serde_yaml_ng::Value;
use std::collections::BTreeSet;

#[test]
fn chart_mounts_the_policy_configmap_as_a_directory_without_subpath() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for (args, configmap) in [
        (
            &["--set", "exampleAgent.enabled=true"][..],
            "agent-lastmile-policies",
        ),
        (&["-f", ALL_FEATURES][..], "security-team-policies"),
    ] {
        let rendered = helm.render(args)?;
        let deployment = rendered.deployment()?;
        let spec = pod_spec(deployment)?;
        let volume = named(&list(spec, "volumes"), "lastmile-policies")
            .context("no lastmile-policies volume")?;
        ensure!(
            text(volume, "configMap.name") == Some(configmap),
            "{args:?}: policy volume {volume:?}"
        );
        ensure!(
            at(volume, "configMap.items").is_none(),
            "{args:?}: the policy volume picks items; every file must reach the directory"
        );
        let (container, _) = sidecar(deployment)?;
        let mount = named(&list(container, "volumeMounts"), "lastmile-policies")
            .context("the policy volume is not mounted")?;
        ensure!(
            text(mount, "mountPath") == Some("/etc/lastmile/policies"),
            "{args:?}: mount {mount:?}"
        );
        // No mount in the pod uses subPath: a subPath mount never sees updates.
        for c in list(spec, "initContainers")
            .into_iter()
            .chain(list(spec, "containers"))
        {
            for m in list(c, "volumeMounts") {
                ensure!(
                    at(m, "subPath").is_none() && at(m, "subPathExpr").is_none(),
                    "{args:?}: subPath mount {m:?}"
                );
            }
        }
        let config: Value = serde_yaml_ng::from_str(&rendered.config_text("agent-lastmile")?)?;
        ensure!(
            text(&config, "policies.dir") == Some("/etc/lastmile/policies"),
            "{args:?}: policies.dir {:?}",
            at(&config, "policies.dir")
        );
    }
    let rendered = helm.render(&[])?;
    let policies = rendered.one("ConfigMap", "agent-lastmile-policies")?;
    ensure!(
        text(policies, "data.lastmile.rego").is_some_and(|p| p.contains("package lastmile")),
        "the default policy ConfigMap has no lastmile.rego"
    );
    Ok(())
}

#[test]
fn chart_adds_checksum_annotations_only_when_rollout_on_change_is_set() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let checksums = |args: &[&str]| -> Result<Vec<String>> {
        let rendered = helm.render(args)?;
        Ok(pod_annotations(rendered.deployment()?)
            .into_iter()
            .filter(|k| k.starts_with("checksum/"))
            .collect())
    };
    let on = ["--set", "exampleAgent.enabled=true"];
    ensure!(
        checksums(&on)?.is_empty(),
        "checksum annotation by default: a policy edit would restart the pods"
    );
    ensure!(
        checksums(&["-f", EXAMPLE])?.is_empty(),
        "checksum annotation in the example values"
    );
    let policy = checksums(&[&on[..], &["--set", "policy.rolloutOnChange=true"]].concat())?;
    ensure!(
        policy == ["checksum/lastmile-policy"],
        "policy.rolloutOnChange: {policy:?}"
    );
    let config = checksums(&[&on[..], &["--set", "proxy.rolloutOnConfigChange=true"]].concat())?;
    ensure!(
        config == ["checksum/lastmile-config"],
        "proxy.rolloutOnConfigChange: {config:?}"
    );

    // The policy checksum follows the policy text.
    let dir = tempfile::tempdir()?;
    let edited = values_file(
        &dir,
        "edited.yaml",
        "policy:\n  rolloutOnChange: true\n  files:\n    lastmile.rego: |\n      package lastmile\n\n      decision := {}\n",
    )?;
    let value = |args: &[&str]| -> Result<String> {
        let rendered = helm.render(args)?;
        let deployment = rendered.deployment()?;
        text(
            deployment,
            "spec.template.metadata.annotations.checksum/lastmile-policy",
        )
        .map(String::from)
        .context("no checksum/lastmile-policy")
    };
    let before = value(&[&on[..], &["--set", "policy.rolloutOnChange=true"]].concat())?;
    let after = value(&[&on[..], &["-f", edited.as_str()]].concat())?;
    ensure!(before != after, "the checksum ignores the policy text");
    Ok(())
}

#[test]
fn chart_mounts_credentials_into_the_sidecar_only() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for values in [EXAMPLE, ALL_FEATURES] {
        let rendered = helm.render(&["-f", values])?;
        let deployment = rendered.deployment()?;
        let spec = pod_spec(deployment)?;
        let secret_volumes: BTreeSet<&str> = list(spec, "volumes")
            .into_iter()
            .filter(|v| at(v, "secret").is_some())
            .filter_map(|v| text(v, "name"))
            .collect();
        ensure!(
            secret_volumes.contains("lastmile-credential-0"),
            "{values}: no credential Secret volume: {secret_volumes:?}"
        );
        let (container, _) = sidecar(deployment)?;
        let sidecar_mounts: BTreeSet<&str> = list(container, "volumeMounts")
            .into_iter()
            .filter_map(|m| text(m, "name"))
            .collect();
        ensure!(
            secret_volumes.is_subset(&sidecar_mounts),
            "{values}: Secret volumes {secret_volumes:?} not all mounted by lastmile {sidecar_mounts:?}"
        );
        let agent = agent(deployment)?;
        for mount in list(agent, "volumeMounts") {
            let name = text(mount, "name").unwrap_or_default();
            ensure!(
                !secret_volumes.contains(name) && !name.starts_with("lastmile-"),
                "{values}: the agent mounts {name}"
            );
        }
        ensure!(
            at(agent, "envFrom").is_none(),
            "{values}: the agent has envFrom"
        );
        for env in list(agent, "env") {
            ensure!(
                at(env, "valueFrom.secretKeyRef").is_none(),
                "{values}: the agent reads a Secret: {env:?}"
            );
        }
        let agent_env: Vec<&str> = list(agent, "env")
            .into_iter()
            .filter_map(|e| text(e, "name"))
            .collect();
        ensure!(
            agent_env.contains(&"LASTMILE_URL") && agent_env.contains(&"LASTMILE_CRM_URL"),
            "{values}: agent env {agent_env:?}"
        );
        let crm_url = list(agent, "env")
            .into_iter()
            .find(|e| text(e, "name") == Some("LASTMILE_CRM_URL"))
            .and_then(|e| text(e, "value"));
        ensure!(
            crm_url == Some("http://127.0.0.1:15001/crm"),
            "{values}: LASTMILE_CRM_URL {crm_url:?}"
        );
    }
    Ok(())
}

/// The Secret volumes of a pod, and the mount paths the sidecar gives each; the agent
/// mounts none of them and reads no Secret.
fn sidecar_only_secret_mounts<'a>(
    deployment: &'a Value,
    label: &str,
) -> Result<Vec<(&'a Value, &'a str)>> {
    let spec = pod_spec(deployment)?;
    let (container, _) = sidecar(deployment)?;
    let agent = agent(deployment)?;
    let mut mounted = Vec::new();
    for volume in list(spec, "volumes") {
        let name = text(volume, "name").unwrap_or_default();
        if at(volume, "secret").is_none() && !name.starts_with("lastmile-credential") {
            continue;
        }
        let mount = named(&list(container, "volumeMounts"), name)
            .with_context(|| format!("{label}: lastmile does not mount {name}"))?;
        ensure!(
            at(mount, "readOnly").and_then(Value::as_bool) == Some(true),
            "{label}: {name} is mounted writable: {mount:?}"
        );
        ensure!(
            named(&list(agent, "volumeMounts"), name).is_none(),
            "{label}: the agent mounts {name}"
        );
        mounted.push((volume, text(mount, "mountPath").unwrap_or_default()));
    }
    ensure!(
        at(agent, "envFrom").is_none()
            && list(agent, "env")
                .into_iter()
                .all(|e| at(e, "valueFrom.secretKeyRef").is_none()),
        "{label}: the agent reads a Secret: {agent:?}"
    );
    Ok(mounted)
}

#[test]
fn chart_mounts_a_per_user_secret_as_the_route_credential_dir_in_the_sidecar_only() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let rendered = helm.render(&["-f", USER_CREDENTIALS])?;
    let mounted = sidecar_only_secret_mounts(rendered.deployment()?, "per_user")?;
    let (volume, path) = mounted
        .iter()
        .find(|(v, _)| text(v, "secret.secretName") == Some("crm-users"))
        .context("no volume of the crm-users Secret")?;
    ensure!(
        *path == "/etc/lastmile/credentials/crm",
        "crm-users mounted at {path}"
    );
    // Every key is a user's file: the whole Secret, not chosen items.
    ensure!(
        at(volume, "secret.items").is_none(),
        "the per_user Secret picks items: {volume:?}"
    );
    let config: Value = serde_yaml_ng::from_str(&rendered.config_text("agent-lastmile")?)?;
    let crm = list(&config, "routes")
        .into_iter()
        .find(|r| text(r, "name") == Some("crm"))
        .context("no crm route")?;
    for (key, want) in [
        ("credential.mode", "per_user"),
        ("credential.dir", "/etc/lastmile/credentials/crm"),
        ("credential.claim", "sub"),
        ("credential.header", "authorization"),
        ("credential.prefix", "Bearer "),
    ] {
        ensure!(
            text(crm, key) == Some(want),
            "{key}: {:?}, want {want:?}",
            at(crm, key)
        );
    }
    ensure!(
        at(crm, "credential.value_file").is_none(),
        "per_user route has a value_file: {crm:?}"
    );
    Ok(())
}

#[test]
fn chart_mounts_the_token_exchange_client_secret_into_the_sidecar_only() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let ca_secret = values_file(
        &dir,
        "ca-secret.yaml",
        "routes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n      clientSecret:\n        secretName: lastmile-idp\n      ca:\n        secretName: idp-ca-secret\n        key: bundle.pem\n",
    )?;
    for (label, args, client_secret_file, ca_file) in [
        (
            "example",
            vec!["-f", USER_CREDENTIALS],
            "/etc/lastmile/credentials/tickets/client-secret",
            "/etc/lastmile/credential-ca/tickets/ca.crt",
        ),
        (
            "ca from a Secret",
            vec!["-f", USER_CREDENTIALS, "-f", ca_secret.as_str()],
            "/etc/lastmile/credentials/tickets/client-secret",
            "/etc/lastmile/credential-ca/tickets/bundle.pem",
        ),
    ] {
        let rendered = helm.render(&args)?;
        let mounted = sidecar_only_secret_mounts(rendered.deployment()?, label)?;
        let (volume, path) = mounted
            .iter()
            .find(|(v, _)| text(v, "secret.secretName") == Some("lastmile-idp"))
            .with_context(|| format!("{label}: no volume of the lastmile-idp Secret"))?;
        ensure!(
            *path == "/etc/lastmile/credentials/tickets"
                && list(volume, "secret.items")
                    .into_iter()
                    .filter_map(|i| text(i, "key"))
                    .eq(["client-secret"]),
            "{label}: client secret volume {volume:?} at {path}"
        );
        let ca = mounted
            .iter()
            .find(|(v, _)| {
                text(v, "name").is_some_and(|n| n.starts_with("lastmile-credential-ca-"))
            })
            .with_context(|| format!("{label}: no CA volume mounted"))?;
        ensure!(
            ca.1 == "/etc/lastmile/credential-ca/tickets",
            "{label}: CA mounted at {}",
            ca.1
        );

        let config: Value = serde_yaml_ng::from_str(&rendered.config_text("agent-lastmile")?)?;
        let tickets = list(&config, "routes")
            .into_iter()
            .find(|r| text(r, "name") == Some("tickets"))
            .context("no tickets route")?;
        for (key, want) in [
            ("credential.mode", "token_exchange"),
            (
                "credential.token_endpoint",
                if label == "example" {
                    "https://idp.example.com/realms/acme/protocol/openid-connect/token"
                } else {
                    "https://idp.example.com/token"
                },
            ),
            ("credential.client_secret_file", client_secret_file),
            ("credential.ca_file", ca_file),
        ] {
            ensure!(
                text(tickets, key) == Some(want),
                "{label}: {key}: {:?}, want {want:?}",
                at(tickets, key)
            );
        }
        let rendered_config = rendered.config_text("agent-lastmile")?;
        ensure!(
            !rendered_config.contains("lastmile-idp") && !rendered_config.contains("secretName"),
            "{label}: a Secret's name reached the config:\n{rendered_config}"
        );
    }
    let example = helm.render(&["-f", USER_CREDENTIALS])?;
    let config: Value = serde_yaml_ng::from_str(&example.config_text("agent-lastmile")?)?;
    let tickets = &list(&config, "routes")[1];
    ensure!(
        text(tickets, "credential.client_id") == Some("lastmile-tickets")
            && text(tickets, "credential.audience") == Some("tickets-api")
            && text(tickets, "credential.scope") == Some("tickets.write")
            && at(tickets, "credential.timeout_ms").and_then(Value::as_u64) == Some(5000),
        "token_exchange parameters {tickets:?}"
    );
    Ok(())
}

#[test]
fn chart_mounts_a_client_assertion_key_into_the_sidecar_only() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let values = values_file(
        &dir,
        "assertion.yaml",
        "identity:\n  enabled: true\n  jwksUrl: https://idp.example.com/certs\nroutes:\n  - name: tickets\n    upstream: https://tickets.example.com\n    credential:\n      mode: token_exchange\n      tokenEndpoint: https://idp.example.com/token\n      clientId: lastmile\n      clientAssertionKey:\n        secretName: lastmile-idp-key\n        alg: ES256\n        kid: k1\n",
    )?;
    let rendered = helm.render(&["-f", USER_CREDENTIALS, "-f", values.as_str()])?;
    let mounted = sidecar_only_secret_mounts(rendered.deployment()?, "assertion key")?;
    let (volume, path) = mounted
        .iter()
        .find(|(v, _)| text(v, "secret.secretName") == Some("lastmile-idp-key"))
        .context("no volume of the lastmile-idp-key Secret")?;
    ensure!(
        *path == "/etc/lastmile/credentials/tickets"
            && list(volume, "secret.items")
                .into_iter()
                .filter_map(|i| text(i, "key"))
                .eq(["client-key.pem"]),
        "assertion key volume {volume:?} at {path}"
    );
    let config: Value = serde_yaml_ng::from_str(&rendered.config_text("agent-lastmile")?)?;
    let tickets = list(&config, "routes")
        .into_iter()
        .find(|r| text(r, "name") == Some("tickets"))
        .context("no tickets route")?;
    for (key, want) in [
        (
            "credential.client_assertion_key_file",
            "/etc/lastmile/credentials/tickets/client-key.pem",
        ),
        ("credential.client_assertion_alg", "ES256"),
        ("credential.client_assertion_kid", "k1"),
    ] {
        ensure!(
            text(tickets, key) == Some(want),
            "{key}: {:?}, want {want:?}",
            at(tickets, key)
        );
    }
    ensure!(
        at(tickets, "credential.client_secret_file").is_none(),
        "a client secret file was rendered too"
    );
    Ok(())
}
