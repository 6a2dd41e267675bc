//! Resources rendered only when asked for: the ServiceMonitor, the PodDisruptionBudget,
//! the NetworkPolicy and the Grafana dashboard.

use super::helm::helm;
use super::manifest::{at, list, text};
use super::{ALL_FEATURES, EXAMPLE, SERVICE_MONITOR_API};
use anyhow::{ensure, Context, Result};
use serde_yaml_ng::Value;

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
