//! The sidecar's shape: pod security, probes, native or plain container, and the
//! templates another chart includes to add the sidecar to its own pods.

use super::helm::{describe, helm, kubernetes_validate};
use super::manifest::{agent, at, list, named, pod_spec, sidecar, text, Rendered};
use super::{ALL_FEATURES, CHART};
use crate::harness::{copy_dir, repo_root};
use anyhow::{ensure, Context, Result};
use serde_yaml_ng::Value;
use std::process::{Command, Stdio};

#[test]
fn chart_sidecar_runs_under_the_restricted_pod_security_profile() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for args in [
        &["--set", "exampleAgent.enabled=true"][..],
        &[
            "--set",
            "exampleAgent.enabled=true",
            "--set",
            "sidecar.native=false",
        ][..],
        &["-f", ALL_FEATURES][..],
    ] {
        let rendered = helm.render(args)?;
        let deployment = rendered.deployment()?;
        let (container, _) = sidecar(deployment)?;
        let context = at(container, "securityContext").context("no securityContext")?;
        let expect_bool = |path: &str, want: bool| -> Result<()> {
            let got = at(context, path).and_then(Value::as_bool);
            ensure!(
                got == Some(want),
                "{args:?}: {path} is {got:?}, want {want}"
            );
            Ok(())
        };
        expect_bool("runAsNonRoot", true)?;
        expect_bool("readOnlyRootFilesystem", true)?;
        expect_bool("allowPrivilegeEscalation", false)?;
        ensure!(
            at(context, "runAsUser").and_then(Value::as_u64) == Some(65532),
            "{args:?}: runAsUser {:?}",
            at(context, "runAsUser")
        );
        let dropped: Vec<&str> = list(context, "capabilities.drop")
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(
            dropped == ["ALL"],
            "{args:?}: capabilities.drop {dropped:?}"
        );
        ensure!(
            at(context, "capabilities.add").is_none(),
            "{args:?}: capabilities added"
        );
        ensure!(
            text(context, "seccompProfile.type") == Some("RuntimeDefault"),
            "{args:?}: seccompProfile {:?}",
            at(context, "seccompProfile")
        );
        let spec = pod_spec(deployment)?;
        ensure!(
            at(spec, "automountServiceAccountToken").and_then(Value::as_bool) == Some(false),
            "{args:?}: the example pod mounts a service account token"
        );
    }
    Ok(())
}

fn check_probes(container: &Value) -> Result<()> {
    for (probe, path) in [
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        let got = text(container, &format!("{probe}.httpGet.path"));
        ensure!(got == Some(path), "{probe} path is {got:?}, want {path}");
        let port = text(container, &format!("{probe}.httpGet.port"));
        ensure!(port == Some("lastmile-admin"), "{probe} port is {port:?}");
    }
    let admin = named(&list(container, "ports"), "lastmile-admin").context("no admin port")?;
    ensure!(
        at(admin, "containerPort").and_then(Value::as_u64) == Some(15002),
        "admin containerPort {admin:?}"
    );
    Ok(())
}

#[test]
fn chart_sidecar_is_native_by_default() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let rendered = helm.render(&["--set", "exampleAgent.enabled=true"])?;
    let deployment = rendered.deployment()?;
    let (container, init) = sidecar(deployment)?;
    ensure!(init, "lastmile is not in initContainers");
    ensure!(
        text(container, "restartPolicy") == Some("Always"),
        "native sidecar without restartPolicy: Always: {container:?}"
    );
    check_probes(container)?;
    let args: Vec<&str> = list(container, "args")
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        args == ["run", "--config", "/etc/lastmile/config/lastmile.yaml"],
        "args {args:?}"
    );
    Ok(())
}

#[test]
fn chart_sidecar_falls_back_to_a_plain_container() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let rendered = helm.render(&[
        "--set",
        "exampleAgent.enabled=true",
        "--set",
        "sidecar.native=false",
        "--kube-version",
        "1.28.0",
    ])?;
    let deployment = rendered.deployment()?;
    let (container, init) = sidecar(deployment)?;
    ensure!(!init, "lastmile is still an init container");
    ensure!(
        at(container, "restartPolicy").is_none(),
        "a plain container must not set restartPolicy"
    );
    ensure!(
        list(pod_spec(deployment)?, "initContainers").is_empty(),
        "initContainers rendered without a native sidecar"
    );
    check_probes(container)?;
    agent(deployment)?;

    // Native sidecars need Kubernetes 1.29: an older cluster gets a clear error.
    let stderr = helm.template_fails(&["--kube-version", "1.28.0"])?;
    ensure!(
        stderr.contains("sidecar.native=false"),
        "no hint in: {stderr}"
    );
    Ok(())
}

// --- Including the sidecar from another chart ------------------------------------------

const PARENT_CHART: &str = r#"apiVersion: v2
name: my-agent
version: 1.0.0
dependencies:
  - name: lastmile
    version: 0.1.0
"#;

const PARENT_VALUES: &str = r#"lastmile:
  routes:
    - name: crm
      prefix: /crm
      upstream: https://crm.example.com
      credential:
        secretName: crm-api-token
"#;

/// The snippet the chart's README tells teams to use.
const PARENT_DEPLOYMENT: &str = r#"{{- $lastmile := dict "Values" .Values.lastmile "Release" .Release }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-agent
spec:
  selector:
    matchLabels:
      app: my-agent
  template:
    metadata:
      labels:
        app: my-agent
      annotations:
        {{- include "lastmile.sidecar.podAnnotations" $lastmile | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      initContainers:
        {{- include "lastmile.sidecar.initContainers" $lastmile | nindent 8 }}
      containers:
        - name: agent
          image: registry.example.com/my-agent:1.0.0
          env:
            {{- include "lastmile.sidecar.agentEnv" $lastmile | nindent 12 }}
        {{- include "lastmile.sidecar.containers" $lastmile | nindent 8 }}
      volumes:
        {{- include "lastmile.sidecar.volumes" $lastmile | nindent 8 }}
"#;

#[test]
fn chart_sidecar_templates_work_from_a_parent_chart() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let parent = dir.path().join("my-agent");
    copy_dir(&repo_root().join(CHART), &parent.join("charts/lastmile"))?;
    std::fs::create_dir_all(parent.join("templates"))?;
    std::fs::write(parent.join("Chart.yaml"), PARENT_CHART)?;
    std::fs::write(parent.join("values.yaml"), PARENT_VALUES)?;
    std::fs::write(parent.join("templates/deployment.yaml"), PARENT_DEPLOYMENT)?;
    let parent_path = parent.to_str().context("non-UTF-8 temp dir")?;

    let output = helm.run(&["lint", "--strict", parent_path])?;
    ensure!(output.status.success(), "lint: {}", describe(&output));
    for native in ["true", "false"] {
        let flag = format!("lastmile.sidecar.native={native}");
        let manifest = helm.template_chart(parent_path, &["--set", flag.as_str()])?;
        let rendered = Rendered::parse(&manifest)?;
        let deployment = rendered.one("Deployment", "my-agent")?;
        let (container, init) = sidecar(deployment)?;
        ensure!(init == (native == "true"), "native={native}: init={init}");
        check_probes(container)?;
        let config_volume = named(&list(pod_spec(deployment)?, "volumes"), "lastmile-config")
            .and_then(|v| text(v, "configMap.name"))
            .context("no config volume")?;
        // The volume names the ConfigMap the lastmile subchart renders.
        rendered.one("ConfigMap", config_volume)?;
        rendered.one("ConfigMap", "agent-lastmile-policies")?;
        let agent = agent(deployment)?;
        ensure!(
            list(agent, "env")
                .iter()
                .any(|e| text(e, "name") == Some("LASTMILE_CRM_URL")),
            "agent env {:?}",
            at(agent, "env")
        );
        let Some(validator) = kubernetes_validate()? else {
            continue;
        };
        let file = dir.path().join(format!("parent-{native}.yaml"));
        std::fs::write(&file, &manifest)?;
        let output = Command::new(&validator)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()?;
        ensure!(output.status.success(), "validate: {}", describe(&output));
    }
    Ok(())
}
