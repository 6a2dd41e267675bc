//! The Helm chart in `charts/lastmile`, tested without a cluster: `helm lint --strict`,
//! `helm template` validated offline against the Kubernetes API schemas
//! (`kubernetes-validate --strict`, Kubernetes 1.29 and 1.33), assertions on the rendered
//! manifests, the rendered config fed to lastmile's own config parser, and the rendered
//! config and policies served by the real binary.
//!
//! Tools: `LASTMILE_HELM` / `LASTMILE_KUBERNETES_VALIDATE`, else `.ci/tools/bin/helm` /
//! `.ci/tools/venv/bin/kubernetes-validate` (installed by `.ci/run`), else `PATH`. A missing
//! tool skips a test with a note, except under `CI`, where it fails the test.

mod config;
mod helm;
mod manifest;
mod mounts;
mod optional;
mod schema;
mod serve;
mod sidecar;

const CHART: &str = "charts/lastmile";
const ALL_FEATURES: &str = "charts/lastmile/ci/all-features-values.yaml";
const EXAMPLE: &str = "charts/lastmile/examples/agent-values.yaml";
const USER_CREDENTIALS: &str = "charts/lastmile/examples/user-credentials-values.yaml";
const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];
const SERVICE_MONITOR_API: &str = "monitoring.coreos.com/v1/ServiceMonitor";
const RELEASE: &str = "agent";
const NAMESPACE: &str = "agents";
