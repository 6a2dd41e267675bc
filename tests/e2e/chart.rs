//! The Helm chart in `charts/lastmile`, tested without a cluster: `helm lint --strict`,
//! `helm template` validated offline against the Kubernetes API schemas
//! (`kubernetes-validate --strict`, Kubernetes 1.29 and 1.33), assertions on the rendered
//! manifests, the rendered config fed to lastmile's own config parser, and the rendered
//! config and policies served by the real binary.
//!
//! Tools: `LASTMILE_HELM` / `LASTMILE_KUBERNETES_VALIDATE`, else `.ci/tools/bin/helm` /
//! `.ci/tools/venv/bin/kubernetes-validate` (installed by `.ci/run`), else `PATH`. A missing
//! tool skips a test with a note, except under `CI`, where it fails the test.

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHART: &str = "charts/lastmile";
const ALL_FEATURES: &str = "charts/lastmile/ci/all-features-values.yaml";
const EXAMPLE: &str = "charts/lastmile/examples/agent-values.yaml";
const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];
const SERVICE_MONITOR_API: &str = "monitoring.coreos.com/v1/ServiceMonitor";
const RELEASE: &str = "agent";
const NAMESPACE: &str = "agents";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// --- Tools ----------------------------------------------------------------------------

/// `env` names an override, `local` the path `.ci/run` installs to, `name` the binary on
/// PATH. Ok(None): not found outside CI, so the caller skips.
fn find_tool(env: &str, local: &str, name: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        ensure!(path.is_file(), "{env}={} is not a file", path.display());
        return Ok(Some(path));
    }
    let installed = workspace_root().join(local);
    if installed.is_file() {
        return Ok(Some(installed));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return Ok(on_path);
    }
    if std::env::var_os("CI").is_some() {
        bail!(
            "{name} not found (not in ${env}, {local} or PATH) and CI is set: the chart tests \
             must not be skipped in CI; .ci/run installs it"
        );
    }
    eprintln!(
        "note: {name} not found (set {env}, run the tool steps of .ci/run, or put it on PATH); \
         skipping this chart test"
    );
    Ok(None)
}

fn helm() -> Result<Option<Helm>> {
    let Some(binary) = find_tool("LASTMILE_HELM", ".ci/tools/bin/helm", "helm")? else {
        return Ok(None);
    };
    Ok(Some(Helm {
        binary,
        home: tempfile::Builder::new()
            .prefix("lastmile-helm-")
            .tempdir()?,
    }))
}

fn kubernetes_validate() -> Result<Option<PathBuf>> {
    find_tool(
        "LASTMILE_KUBERNETES_VALIDATE",
        ".ci/tools/venv/bin/kubernetes-validate",
        "kubernetes-validate",
    )
}

/// Stdout and stderr of a finished command, for error messages.
fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Helm {
    binary: PathBuf,
    /// Private HELM_*_HOME directories: no user config or repository cache is read.
    home: tempfile::TempDir,
}

impl Helm {
    fn run(&self, args: &[&str]) -> Result<Output> {
        let home = self.home.path();
        Command::new(&self.binary)
            .args(args)
            .current_dir(workspace_root())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))
    }

    /// `helm template` of `chart` with `args`; fails unless helm succeeds.
    fn template_chart(&self, chart: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["template", RELEASE, chart, "--namespace", NAMESPACE];
        all.extend_from_slice(args);
        let output = self.run(&all)?;
        ensure!(
            output.status.success(),
            "helm {} failed: {}",
            all.join(" "),
            describe(&output)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    fn template(&self, args: &[&str]) -> Result<String> {
        self.template_chart(CHART, args)
    }

    fn render(&self, args: &[&str]) -> Result<Rendered> {
        Rendered::parse(&self.template(args)?)
    }

    /// `helm template` that must fail; returns its stderr.
    fn template_fails(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
        all.extend_from_slice(args);
        let output = self.run(&all)?;
        ensure!(
            !output.status.success(),
            "helm {} succeeded but should have failed:\n{}",
            all.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        Ok(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

// --- Rendered manifests ---------------------------------------------------------------

struct Rendered {
    docs: Vec<Value>,
}

impl Rendered {
    fn parse(text: &str) -> Result<Rendered> {
        let mut docs = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value = <Value as serde::Deserialize>::deserialize(document)
                .context("a rendered document is not YAML")?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        Ok(Rendered { docs })
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| text(d, "kind") == Some(kind))
            .collect()
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.docs
            .iter()
            .filter_map(|d| text(d, "kind").map(String::from))
            .collect()
    }

    fn one(&self, kind: &str, name: &str) -> Result<&Value> {
        self.docs
            .iter()
            .find(|d| text(d, "kind") == Some(kind) && text(d, "metadata.name") == Some(name))
            .with_context(|| format!("no {kind} named {name}; kinds: {:?}", self.kinds()))
    }

    fn deployment(&self) -> Result<&Value> {
        self.one("Deployment", "agent-lastmile-example-agent")
    }

    /// The lastmile config file text from the config ConfigMap.
    fn config_text(&self, fullname: &str) -> Result<String> {
        let map = self.one("ConfigMap", &format!("{fullname}-config"))?;
        text(map, "data.lastmile.yaml")
            .map(String::from)
            .context("the config ConfigMap has no data.lastmile.yaml")
    }
}

/// The value at a dotted path; `data.lastmile.yaml`-style keys are found by trying the
/// longest key first.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    let parts: Vec<&str> = path.split('.').collect();
    for take in (1..=parts.len()).rev() {
        let key = parts[..take].join(".");
        if let Some(next) = value.get(key.as_str()) {
            let rest = parts[take..].join(".");
            if let Some(found) = at(next, &rest) {
                return Some(found);
            }
        }
    }
    None
}

fn text<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

fn list<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    at(value, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn named<'a>(items: &[&'a Value], name: &str) -> Option<&'a Value> {
    items
        .iter()
        .copied()
        .find(|item| text(item, "name") == Some(name))
}

fn pod_spec(deployment: &Value) -> Result<&Value> {
    at(deployment, "spec.template.spec").context("the Deployment has no pod spec")
}

/// The lastmile container: (container, is it an init container).
fn sidecar(deployment: &Value) -> Result<(&Value, bool)> {
    let spec = pod_spec(deployment)?;
    let init = named(&list(spec, "initContainers"), "lastmile");
    let plain = named(&list(spec, "containers"), "lastmile");
    match (init, plain) {
        (Some(c), None) => Ok((c, true)),
        (None, Some(c)) => Ok((c, false)),
        (Some(_), Some(_)) => bail!("lastmile is both an init container and a container"),
        (None, None) => bail!("no lastmile container in {deployment:?}"),
    }
}

fn agent(deployment: &Value) -> Result<&Value> {
    named(&list(pod_spec(deployment)?, "containers"), "agent").context("no agent container")
}

fn pod_annotations(deployment: &Value) -> Vec<String> {
    at(deployment, "spec.template.metadata.annotations")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `contents` as a values file in `dir`; returns its path as a string.
fn values_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> Result<String> {
    let path = dir.path().join(name);
    std::fs::write(&path, contents)?;
    path.to_str()
        .map(String::from)
        .context("temporary path is not UTF-8")
}

// --- Lint and offline schema validation -----------------------------------------------

#[test]
fn chart_lints_strict_with_default_all_features_and_example_values() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for values in [None, Some(ALL_FEATURES), Some(EXAMPLE)] {
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
    let cases: [(&str, &[&str]); 3] = [
        ("default", &[]),
        (
            "all-features",
            &["-f", ALL_FEATURES, "--api-versions", SERVICE_MONITOR_API],
        ),
        (
            "example",
            &["-f", EXAMPLE, "--api-versions", SERVICE_MONITOR_API],
        ),
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

// --- The sidecar's shape ----------------------------------------------------------------

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

// --- Policies, checksums, credentials ----------------------------------------------------

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

// --- Optional resources -----------------------------------------------------------------

#[test]
fn chart_renders_the_service_monitor_only_when_enabled_and_the_api_exists() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for (enabled, api, want) in [
        (false, false, 0),
        (false, true, 0),
        (true, false, 0),
        (true, true, 1),
    ] {
        let flag = format!("metrics.serviceMonitor.enabled={enabled}");
        let mut args = vec!["--set", flag.as_str()];
        if api {
            args.extend(["--api-versions", SERVICE_MONITOR_API]);
        }
        let rendered = helm.render(&args)?;
        let monitors = rendered.of_kind("ServiceMonitor");
        ensure!(
            monitors.len() == want,
            "enabled={enabled} api={api}: {} ServiceMonitors",
            monitors.len()
        );
        if let Some(monitor) = monitors.first() {
            let endpoint = list(monitor, "spec.endpoints")
                .first()
                .copied()
                .context("no endpoint")?;
            ensure!(
                text(endpoint, "port") == Some("lastmile-admin")
                    && text(endpoint, "path") == Some("/metrics"),
                "endpoint {endpoint:?}"
            );
            let service = rendered.one("Service", "agent-lastmile-metrics")?;
            let selector = at(monitor, "spec.selector.matchLabels").context("no selector")?;
            let labels = at(service, "metadata.labels")
                .and_then(Value::as_mapping)
                .context("service labels")?;
            for (key, value) in selector.as_mapping().context("selector map")? {
                ensure!(
                    labels.get(key) == Some(value),
                    "the ServiceMonitor selects {key:?}={value:?}, the Service has {labels:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn chart_renders_pdb_and_network_policy_only_when_enabled() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let defaults = helm.render(&[])?;
    for kind in [
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Deployment",
        "Service",
    ] {
        ensure!(
            defaults.of_kind(kind).is_empty(),
            "{kind} rendered by default"
        );
    }
    let rendered = helm.render(&["-f", EXAMPLE])?;
    let deployment = rendered.deployment()?;
    let pod_labels = at(deployment, "spec.template.metadata.labels").context("pod labels")?;
    let selects_pod = |selector: &Value| -> Result<()> {
        for (key, value) in selector.as_mapping().context("selector map")? {
            ensure!(
                pod_labels.get(key) == Some(value),
                "selector {key:?}={value:?} does not match the pod labels {pod_labels:?}"
            );
        }
        Ok(())
    };
    let pdb = rendered.one("PodDisruptionBudget", "agent-lastmile")?;
    selects_pod(at(pdb, "spec.selector.matchLabels").context("PDB selector")?)?;
    ensure!(
        at(pdb, "spec.minAvailable").and_then(Value::as_u64) == Some(1),
        "PDB {pdb:?}"
    );

    let policy = rendered.one("NetworkPolicy", "agent-lastmile")?;
    selects_pod(at(policy, "spec.podSelector.matchLabels").context("podSelector")?)?;
    let types: Vec<&str> = list(policy, "spec.policyTypes")
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(types == ["Egress"], "policyTypes {types:?}");
    let rules = list(policy, "spec.egress");
    let ports = |rule: &Value| -> Vec<(String, u64)> {
        list(rule, "ports")
            .into_iter()
            .filter_map(|p| Some((text(p, "protocol")?.to_string(), at(p, "port")?.as_u64()?)))
            .collect()
    };
    let dns = rules
        .iter()
        .find(|r| ports(r).contains(&("UDP".into(), 53)))
        .context("no DNS egress rule")?;
    ensure!(
        ports(dns).contains(&("TCP".into(), 53)),
        "DNS over TCP is not allowed: {dns:?}"
    );
    ensure!(
        list(dns, "to")
            .iter()
            .any(|peer| { text(peer, "podSelector.matchLabels.k8s-app") == Some("kube-dns") }),
        "DNS rule does not target kube-dns: {dns:?}"
    );
    let crm = rules
        .iter()
        .find(|r| {
            list(r, "to")
                .iter()
                .any(|peer| text(peer, "ipBlock.cidr") == Some("203.0.113.0/24"))
        })
        .context("no egress rule for the CRM upstream")?;
    ensure!(
        ports(crm) == [("TCP".to_string(), 443)],
        "CRM rule ports {:?}",
        ports(crm)
    );
    // Egress is the routes' upstreams, DNS and the configured extra rule: nothing else.
    ensure!(rules.len() == 3, "egress rules: {rules:?}");
    ensure!(
        rules.iter().all(|r| !list(r, "to").is_empty()),
        "an egress rule without peers allows everything: {rules:?}"
    );

    // The upstream port comes from the URL; a route without peers is an error.
    let all = helm.render(&["-f", ALL_FEATURES])?;
    let erp_ports: Vec<u64> = list(all.one("NetworkPolicy", "agent-lastmile")?, "spec.egress")
        .into_iter()
        .filter(|r| {
            list(r, "to").iter().any(|p| {
                text(
                    p,
                    "namespaceSelector.matchLabels.kubernetes.io/metadata.name",
                ) == Some("erp")
            })
        })
        .flat_map(|r| list(r, "ports"))
        .filter_map(|p| at(p, "port").and_then(Value::as_u64))
        .collect();
    ensure!(erp_ports == [8080], "ERP upstream ports {erp_ports:?}");
    let stderr = helm.template_fails(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "exampleAgent.enabled=true",
    ])?;
    ensure!(stderr.contains("egressTo"), "no egressTo hint in: {stderr}");
    Ok(())
}

#[test]
fn chart_dashboard_queries_the_lastmile_metrics() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let defaults = helm.render(&[])?;
    ensure!(
        defaults
            .docs
            .iter()
            .all(|d| text(d, "metadata.name") != Some("agent-lastmile-dashboard")),
        "dashboard rendered by default"
    );
    let rendered = helm.render(&["--set", "dashboard.enabled=true"])?;
    let map = rendered.one("ConfigMap", "agent-lastmile-dashboard")?;
    ensure!(
        text(map, "metadata.labels.grafana_dashboard") == Some("1"),
        "no grafana_dashboard label: {map:?}"
    );
    let json = text(map, "data.lastmile.json").context("no lastmile.json")?;
    let dashboard: serde_json::Value = serde_json::from_str(json)?;
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .context("no panels")?
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(String::from))
        .collect();
    for metric in [
        "lastmile_requests_total",
        "lastmile_request_duration_seconds_bucket",
        "lastmile_policy_evaluation_duration_seconds_bucket",
        "lastmile_upstream_duration_seconds_bucket",
        "lastmile_policy_reloads_total",
        "lastmile_policy_last_reload_successful",
        "lastmile_policy_info",
        "lastmile_dedup_total",
        "lastmile_approvals_pending",
    ] {
        ensure!(
            exprs.iter().any(|e| e.contains(metric)),
            "no panel queries {metric}"
        );
    }
    ensure!(
        exprs.iter().any(|e| e.contains("histogram_quantile(0.99")),
        "no p99 latency panel"
    );
    ensure!(
        dashboard["description"]
            .as_str()
            .is_some_and(|d| d.contains("never in metric labels")),
        "the dashboard does not say where deny reasons are"
    );
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
    let root = workspace_root();
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

// --- The rendered config and policies against the real proxy ---------------------------

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
        paths.extend(text(route, "credential.value_file").map(String::from));
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
    let cases: [(&str, &[&str], &[&str]); 3] = [
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

/// The real binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lastmile run` on `config` and returns the process and its (data, admin) ports.
fn start_proxy(config: &Path) -> Result<(Running, SocketAddr, SocketAddr)> {
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting lastmile")?,
    );
    let stderr = child.0.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| anyhow!("lastmile did not become ready; stderr:\n{log}"))?;
        log.push_str(&line);
        log.push('\n');
        if line.contains("lastmile ready") {
            let field = |key: &str| -> Result<SocketAddr> {
                let start = line.find(key).context("no address in the ready line")? + key.len();
                let value: String = line[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                Ok(value.parse()?)
            };
            return Ok((child, field("data_addr=")?, field("admin_addr=")?));
        }
    }
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {response:?}"))?;
    Ok((status, response))
}

#[test]
fn chart_default_and_example_policies_serve_and_refuse() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let defaults = helm.render(&[])?;
    let example = helm.render(&["-f", EXAMPLE])?;
    for (label, policies, path, code) in [
        (
            "default",
            &defaults,
            "/example/v1/anything",
            "policy_not_configured",
        ),
        ("example", &example, "/example/v1/contacts", "not_allowed"),
    ] {
        // The default config, its pod paths moved into a temporary directory.
        let dir = tempfile::tempdir()?;
        let mut config: Value = serde_yaml_ng::from_str(&defaults.config_text("agent-lastmile")?)?;
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir_all(&policy_dir)?;
        let map = policies.one("ConfigMap", "agent-lastmile-policies")?;
        let files = at(map, "data")
            .and_then(Value::as_mapping)
            .context("no policy files")?;
        for (name, content) in files {
            let (Some(name), Some(content)) = (name.as_str(), content.as_str()) else {
                bail!("{label}: odd policy entry {name:?}");
            };
            std::fs::write(policy_dir.join(name), content)?;
        }
        let mapping = config.as_mapping_mut().context("config is not a map")?;
        mapping.insert("listen".into(), "127.0.0.1:0".into());
        mapping.insert("admin_listen".into(), "127.0.0.1:0".into());
        let policies_section = mapping
            .get_mut("policies")
            .and_then(Value::as_mapping_mut)
            .context("no policies section")?;
        policies_section.insert(
            "dir".into(),
            policy_dir.to_str().context("non-UTF-8 temp dir")?.into(),
        );
        let config_path = dir.path().join("lastmile.yaml");
        std::fs::write(&config_path, serde_yaml_ng::to_string(&config)?)?;

        let (_proxy, data, admin) = start_proxy(&config_path)?;
        let (status, body) = http_get(admin, "/readyz")?;
        ensure!(status == 200, "{label}: /readyz {status}: {body}");
        let (status, body) = http_get(data, path)?;
        ensure!(
            status == 403 && body.contains(code),
            "{label}: GET {path} gave {status}, want 403 {code}: {body}"
        );
    }
    Ok(())
}

// --- Including the sidecar from another chart ------------------------------------------

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

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
    copy_dir(
        &workspace_root().join(CHART),
        &parent.join("charts/lastmile"),
    )?;
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
