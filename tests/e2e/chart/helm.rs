//! The tools the chart tests run: `helm` with a private home, and `kubernetes-validate`.

use super::manifest::Rendered;
use super::{CHART, NAMESPACE, RELEASE};
use crate::harness::repo_root;
use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `env` names an override, `local` the path `.ci/run` installs to, `name` the binary on
/// PATH. Ok(None): not found outside CI, so the caller skips.
fn find_tool(env: &str, local: &str, name: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        ensure!(path.is_file(), "{env}={} is not a file", path.display());
        return Ok(Some(path));
    }
    let installed = repo_root().join(local);
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

pub(super) fn helm() -> Result<Option<Helm>> {
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

pub(super) fn kubernetes_validate() -> Result<Option<PathBuf>> {
    find_tool(
        "LASTMILE_KUBERNETES_VALIDATE",
        ".ci/tools/venv/bin/kubernetes-validate",
        "kubernetes-validate",
    )
}

/// Stdout and stderr of a finished command, for error messages.
pub(super) fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(super) struct Helm {
    binary: PathBuf,
    /// Private HELM_*_HOME directories: no user config or repository cache is read.
    home: tempfile::TempDir,
}

impl Helm {
    pub(super) fn run(&self, args: &[&str]) -> Result<Output> {
        let home = self.home.path();
        Command::new(&self.binary)
            .args(args)
            .current_dir(repo_root())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))
    }

    /// `helm template` of `chart` with `args`; fails unless helm succeeds.
    pub(super) fn template_chart(&self, chart: &str, args: &[&str]) -> Result<String> {
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

    pub(super) fn template(&self, args: &[&str]) -> Result<String> {
        self.template_chart(CHART, args)
    }

    pub(super) fn render(&self, args: &[&str]) -> Result<Rendered> {
        Rendered::parse(&self.template(args)?)
    }

    /// `helm template` that must fail; returns its stderr.
    pub(super) fn template_fails(&self, args: &[&str]) -> Result<String> {
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
