//! The rendered config and policies served by the real binary, through the shared
//! harness: the default and example policies answer as the chart promises.

use super::helm::helm;
use super::manifest::at;
use super::EXAMPLE;
use crate::harness::{expect_status, Workspace};
use anyhow::{bail, ensure, Context, Result};
use serde_yaml_ng::Value;

#[tokio::test]
async fn chart_default_and_example_policies_serve_and_refuse() -> Result<()> {
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
        // The default config, its pod paths moved into the test's workspace.
        let workspace = Workspace::new()?;
        let mut config: Value = serde_yaml_ng::from_str(&defaults.config_text("agent-lastmile")?)?;
        let map = policies.one("ConfigMap", "agent-lastmile-policies")?;
        let files = at(map, "data")
            .and_then(Value::as_mapping)
            .context("no policy files")?;
        for (name, content) in files {
            let (Some(name), Some(content)) = (name.as_str(), content.as_str()) else {
                bail!("{label}: odd policy entry {name:?}");
            };
            workspace.write(&format!("policies/{name}"), content)?;
        }
        let policy_dir = workspace.path("policies");
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

        let proxy = workspace
            .start_with_config_text(&serde_yaml_ng::to_string(&config)?)
            .await
            .with_context(|| format!("{label}: starting lastmile on the rendered config"))?;
        let ready = proxy.admin_get("/readyz").await?;
        expect_status(&ready, 200).with_context(|| format!("{label}: /readyz"))?;
        let reply = proxy.get(path, &[]).await?;
        expect_status(&reply, 403).with_context(|| format!("{label}: GET {path}"))?;
        ensure!(
            reply.text().contains(code),
            "{label}: GET {path} gave 403 without {code}: {}",
            reply.text()
        );
    }
    Ok(())
}
