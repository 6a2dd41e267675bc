//! What the pod mounts: the policy ConfigMap as a directory, the checksum annotations
//! that roll pods on a change, and credentials that only the sidecar sees.

use super::helm::helm;
use super::manifest::{
    agent, at, list, named, pod_annotations, pod_spec, sidecar, text, values_file,
};
use super::{ALL_FEATURES, EXAMPLE};
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
