//! Hot reload: a changed policy directory takes effect without a restart, through the
//! file watcher (the 30 s poll is left at its default, far beyond these deadlines); a
//! broken bundle is rejected and the last good one keeps deciding.

use crate::harness::metrics::Metrics;
use crate::harness::{
    eventually, expect_status, policies, Behaviour, Proxy, Reply, RouteSpec, Setup, Upstream,
    Workspace,
};
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

/// A reload should take well under 2 s; the extra margin absorbs a loaded machine.
const RELOAD_LIMIT: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(100);

const RELOADS: &str = "lastmile_policy_reloads_total";
const LAST_OK: &str = "lastmile_policy_last_reload_successful";

fn setup(upstream: &Upstream) -> Setup {
    Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
}

async fn ticket(proxy: &Proxy) -> Result<Reply> {
    proxy
        .post_json("/crm/v1/tickets", &[], &json!({"subject": "hello"}))
        .await
}

/// Sends requests until one is denied with reason `code`; an allowed answer means the
/// old policy still serves, anything else is a failure.
async fn until_denied_with(proxy: &Proxy, code: &str) -> Result<Reply> {
    eventually(
        &format!("a denial with reason {code}"),
        RELOAD_LIMIT,
        POLL_EVERY,
        || async {
            let reply = ticket(proxy).await?;
            match reply.status {
                201 => Ok(None),
                403 => {
                    let body = reply.json()?;
                    if body["error"]["reasons"][0]["code"] == code {
                        Ok(Some(reply))
                    } else {
                        Ok(None)
                    }
                }
                status => bail!(
                    "unexpected status {status} while waiting for the reload: {}",
                    reply.text()
                ),
            }
        },
    )
    .await
}

fn revision_of(reply: &Reply) -> Result<String> {
    let body = reply.json()?;
    body["error"]["policy_revision"]
        .as_str()
        .map(str::to_string)
        .context("no policy_revision in the refusal")
}

/// The single `lastmile_policy_info` revision.
fn active_revision(metrics: &Metrics) -> Result<String> {
    let info = metrics.series("lastmile_policy_info");
    ensure!(
        info.len() == 1,
        "expected one lastmile_policy_info series, got {info:?}"
    );
    ensure!(
        info[0].value == 1.0,
        "lastmile_policy_info value {}",
        info[0].value
    );
    info[0]
        .labels
        .get("revision")
        .cloned()
        .context("lastmile_policy_info without a revision label")
}

#[tokio::test]
async fn edited_policy_takes_effect_and_a_broken_one_is_rejected() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Workspace::with_policy(policies::ALLOW_ALL)?
        .start(&setup(&upstream))
        .await?;
    let first = ticket(&proxy).await?;
    expect_status(&first, 201).context("v1 allows")?;
    let v1 = active_revision(&proxy.metrics().await?)?;

    // v2 replaces the file.
    proxy
        .workspace()
        .write("policies/lastmile.rego", &policies::deny_all("v2"))?;
    let denied = until_denied_with(&proxy, "v2").await?;
    let v2 = revision_of(&denied)?;
    ensure!(v2 != v1, "the revision did not change");
    let forwarded = upstream.received().len();
    let metrics = proxy.metrics().await?;
    ensure!(
        active_revision(&metrics)? == v2,
        "lastmile_policy_info does not name v2"
    );
    ensure!(
        metrics.get(RELOADS, &[("result", "success")]) == Some(2.0),
        "{}",
        metrics.text
    );
    ensure!(metrics.get(LAST_OK, &[]) == Some(1.0), "{}", metrics.text);

    // A broken bundle is rejected...
    proxy
        .workspace()
        .write("policies/lastmile.rego", policies::BROKEN)?;
    let metrics = eventually(
        "a failed reload to be counted",
        RELOAD_LIMIT,
        POLL_EVERY,
        || async {
            let metrics = proxy.metrics().await?;
            let failures = metrics
                .get(RELOADS, &[("result", "failure")])
                .unwrap_or(0.0);
            Ok((failures >= 1.0).then_some(metrics))
        },
    )
    .await?;
    ensure!(metrics.get(LAST_OK, &[]) == Some(0.0), "{}", metrics.text);
    ensure!(
        active_revision(&metrics)? == v2,
        "lastmile_policy_info changed after a failed reload"
    );

    // ...and v2 keeps deciding.
    let still = ticket(&proxy).await?;
    expect_status(&still, 403).context("after the broken reload")?;
    ensure!(
        still.json()?["error"]["reasons"][0]["code"] == "v2",
        "{}",
        still.text()
    );
    ensure!(revision_of(&still)? == v2);
    ensure!(proxy.admin_get("/readyz").await?.json()?["policy_revision"] == v2.as_str());
    ensure!(
        upstream.received().len() == forwarded,
        "a request went upstream after the flip to v2"
    );
    Ok(())
}

/// The kubelet's ConfigMap volume layout: the real files live in a timestamped hidden
/// directory, reached through `..data`, which user-visible symlinks go through.
fn configmap_create(dir: &Path, version: &str, policy: &str) -> Result<()> {
    std::fs::create_dir(dir.join(version))?;
    std::fs::write(dir.join(version).join("lastmile.rego"), policy)?;
    symlink(version, dir.join("..data"))?;
    symlink("..data/lastmile.rego", dir.join("lastmile.rego"))?;
    Ok(())
}

/// A ConfigMap update exactly as the kubelet's AtomicWriter does it: write the new
/// timestamped directory, point `..data_tmp` at it, rename it over `..data` (the atomic
/// step), then remove the old directory. The user-visible symlink is never touched.
fn configmap_update(dir: &Path, old: &str, new: &str, policy: &str) -> Result<()> {
    std::fs::create_dir(dir.join(new))?;
    std::fs::write(dir.join(new).join("lastmile.rego"), policy)?;
    symlink(new, dir.join("..data_tmp"))?;
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data"))?;
    std::fs::remove_dir_all(dir.join(old))?;
    Ok(())
}

#[tokio::test]
async fn configmap_symlink_swap_takes_effect() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let workspace = Workspace::new()?;
    let dir = workspace.path("policies");
    configmap_create(&dir, "..2026_01_01_v1", policies::ALLOW_ALL)?;
    let proxy = workspace.start(&setup(&upstream)).await?;
    let first = ticket(&proxy).await?;
    expect_status(&first, 201).context("v1 allows")?;

    configmap_update(
        &dir,
        "..2026_01_01_v1",
        "..2026_01_01_v2",
        &policies::deny_all("v2"),
    )?;
    until_denied_with(&proxy, "v2").await?;

    // Again, now that the watched tree has been swapped once.
    configmap_update(
        &dir,
        "..2026_01_01_v2",
        "..2026_01_01_v3",
        &policies::deny_all("v3"),
    )?;
    until_denied_with(&proxy, "v3").await?;

    // Every reload saw a consistent directory: the initial load and two swaps.
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(RELOADS, &[("result", "success")]) == Some(3.0),
        "{}",
        metrics.text
    );
    ensure!(
        metrics
            .get(RELOADS, &[("result", "failure")])
            .unwrap_or(0.0)
            == 0.0,
        "{}",
        metrics.text
    );
    ensure!(metrics.get(LAST_OK, &[]) == Some(1.0), "{}", metrics.text);
    Ok(())
}
