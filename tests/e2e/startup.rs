//! Start-up: the proxy never serves without a usable policy.

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
