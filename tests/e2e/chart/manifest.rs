//! Rendered manifests, and reading values out of them by dotted path.

use anyhow::{bail, Context, Result};
use serde_yaml_ng::Value;
use std::collections::BTreeSet;

pub(super) struct Rendered {
    pub(super) docs: Vec<Value>,
}

impl Rendered {
    pub(super) fn parse(text: &str) -> Result<Rendered> {
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

    pub(super) fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| text(d, "kind") == Some(kind))
            .collect()
    }

    pub(super) fn kinds(&self) -> BTreeSet<String> {
        self.docs
            .iter()
            .filter_map(|d| text(d, "kind").map(String::from))
            .collect()
    }

    pub(super) fn one(&self, kind: &str, name: &str) -> Result<&Value> {
        self.docs
            .iter()
            .find(|d| text(d, "kind") == Some(kind) && text(d, "metadata.name") == Some(name))
            .with_context(|| format!("no {kind} named {name}; kinds: {:?}", self.kinds()))
    }

    pub(super) fn deployment(&self) -> Result<&Value> {
        self.one("Deployment", "agent-lastmile-example-agent")
    }

    /// The lastmile config file text from the config ConfigMap.
    pub(super) fn config_text(&self, fullname: &str) -> Result<String> {
        let map = self.one("ConfigMap", &format!("{fullname}-config"))?;
        text(map, "data.lastmile.yaml")
            .map(String::from)
            .context("the config ConfigMap has no data.lastmile.yaml")
    }
}

/// The value at a dotted path; `data.lastmile.yaml`-style keys are found by trying the
/// longest key first.
pub(super) fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
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

pub(super) fn text<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

pub(super) fn list<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    at(value, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

pub(super) fn named<'a>(items: &[&'a Value], name: &str) -> Option<&'a Value> {
    items
        .iter()
        .copied()
        .find(|item| text(item, "name") == Some(name))
}

pub(super) fn pod_spec(deployment: &Value) -> Result<&Value> {
    at(deployment, "spec.template.spec").context("the Deployment has no pod spec")
}

/// The lastmile container: (container, is it an init container).
pub(super) fn sidecar(deployment: &Value) -> Result<(&Value, bool)> {
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

pub(super) fn agent(deployment: &Value) -> Result<&Value> {
    named(&list(pod_spec(deployment)?, "containers"), "agent").context("no agent container")
}

pub(super) fn pod_annotations(deployment: &Value) -> Vec<String> {
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
pub(super) fn values_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> Result<String> {
    let path = dir.path().join(name);
    std::fs::write(&path, contents)?;
    path.to_str()
        .map(String::from)
        .context("temporary path is not UTF-8")
}
