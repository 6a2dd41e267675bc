//! Start-up: the proxy never serves without a usable policy, and a file it cannot use
//! stops it with an error naming the component and the path.

use crate::harness::config::TRACE_FILE;
use crate::harness::{policies, RouteSpec, Setup, Workspace};
use anyhow::{ensure, Result};

fn setup() -> Setup {
    Setup::new(vec![RouteSpec::new("crm", "/crm", "http://127.0.0.1:9")])
}

#[tokio::test]
async fn broken_policy_bundle_stops_start_up() -> Result<()> {
    let workspace = Workspace::with_policy(policies::BROKEN)?;
    let (status, stderr) = workspace.run_to_exit(&setup()).await?;
    ensure!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    ensure!(
        stderr.contains("policy") && stderr.contains("lastmile.rego"),
        "stderr does not name the policy:\n{stderr}"
    );
    ensure!(
        !stderr.contains("lastmile ready"),
        "it became ready:\n{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn empty_policy_directory_stops_start_up() -> Result<()> {
    let workspace = Workspace::new()?;
    let (status, stderr) = workspace.run_to_exit(&setup()).await?;
    ensure!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    ensure!(
        stderr.contains("policy"),
        "stderr does not mention the policy:\n{stderr}"
    );
    ensure!(
        !stderr.contains("lastmile ready"),
        "it became ready:\n{stderr}"
    );
    Ok(())
}

/// Runs the proxy with its approvals queue at `store_path` and returns the store's path
/// as the proxy resolves it (against the config file's directory) and its stderr,
/// checking it exited non-zero without ever becoming ready.
async fn failed_start_with_store(store_path: &str) -> Result<(String, String)> {
    let workspace = Workspace::with_policy(policies::ALLOW_ALL)?;
    let setup = setup().approvals_at(store_path, "");
    let (status, stderr) = workspace.run_to_exit(&setup).await?;
    ensure!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    ensure!(
        !stderr.contains("lastmile ready"),
        "it became ready:\n{stderr}"
    );
    Ok((workspace.path(store_path).display().to_string(), stderr))
}

#[tokio::test]
async fn an_unusable_approvals_store_is_named_with_its_path() -> Result<()> {
    // Under a regular file (no directory can be made there, even as root), and a file
    // that is no database.
    for store_path in ["secrets/approvers/approvals.db", "secrets/approvers"] {
        let (path, stderr) = failed_start_with_store(store_path).await?;
        ensure!(
            stderr.contains(&format!("approvals store {path}: ")),
            "stderr does not name the approvals store {path}:\n{stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_unopenable_trace_file_is_named_with_its_path() -> Result<()> {
    let workspace = Workspace::with_policy(policies::ALLOW_ALL)?;
    // A directory where the trace file should be.
    std::fs::create_dir_all(workspace.path(TRACE_FILE))?;
    let (status, stderr) = workspace.run_to_exit(&setup()).await?;
    ensure!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    let path = workspace.path(TRACE_FILE);
    ensure!(
        stderr.contains(&format!("trace file {}", path.display())),
        "stderr does not name the trace file {}:\n{stderr}",
        path.display()
    );
    Ok(())
}
