//! What operators see: exact request counts and the latency series on `/metrics`,
//! health and readiness, and decision traces that can be looked up but never hold
//! secrets.

use crate::harness::{
    expect_status, jwt, Behaviour, Proxy, RouteSpec, Setup, Upstream, UPSTREAM_TOKEN,
};
use anyhow::{ensure, Context, Result};
use serde_json::json;
use std::collections::BTreeMap;

async fn start(upstream: &Upstream, setup: fn(Vec<RouteSpec>) -> Setup) -> Result<Proxy> {
    Proxy::start(&setup(vec![
        RouteSpec::new("crm", "/crm", upstream.url()).require_user()
    ]))
    .await
}

#[tokio::test]
async fn metrics_count_each_outcome_exactly() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, Setup::new).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let user = [("x-lastmile-user", token.as_str())];

    for subject in ["one", "two"] {
        let reply = proxy
            .post_json("/crm/v1/tickets", &user, &json!({"subject": subject}))
            .await?;
        expect_status(&reply, 201).context("allowed")?;
    }
    let denied = proxy
        .post_json("/crm/v1/tickets", &user, &json!({"forbidden": 1}))
        .await?;
    expect_status(&denied, 403).context("denied")?;
    let lost = proxy.get("/nowhere", &[]).await?;
    expect_status(&lost, 404).context("no route")?;

    let reply = proxy.admin_get("/metrics").await?;
    expect_status(&reply, 200)?;
    ensure!(reply
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/plain")));
    let metrics = proxy.metrics().await?;
    let key = |route: &str, outcome: &str| (route.to_string(), outcome.to_string());
    let expected = BTreeMap::from([
        (key("crm", "allowed"), 2.0),
        (key("crm", "denied"), 1.0),
        (key("none", "no_route"), 1.0),
    ]);
    ensure!(
        metrics.requests() == expected,
        "lastmile_requests_total: {:?}\n{}",
        metrics.requests(),
        metrics.text
    );

    // Every histogram is exported, and observed once per request that reached its phase.
    let counts = [
        ("lastmile_request_duration_seconds", "crm", 3.0),
        ("lastmile_request_duration_seconds", "none", 1.0),
        ("lastmile_policy_evaluation_duration_seconds", "crm", 3.0),
        ("lastmile_upstream_duration_seconds", "crm", 2.0),
    ];
    for (name, route, count) in counts {
        let got = metrics.get(&format!("{name}_count"), &[("route", route)]);
        ensure!(
            got == Some(count),
            "{name}_count{{route={route}}} = {got:?}, expected {count}\n{}",
            metrics.text
        );
        let inf = metrics.get(
            &format!("{name}_bucket"),
            &[("le", "+Inf"), ("route", route)],
        );
        ensure!(
            inf == Some(count),
            "{name}_bucket{{le=+Inf,route={route}}} = {inf:?}"
        );
        ensure!(
            metrics
                .get(&format!("{name}_sum"), &[("route", route)])
                .is_some(),
            "{name}_sum missing"
        );
    }

    ensure!(
        metrics.get("lastmile_policy_reloads_total", &[("result", "success")]) == Some(1.0),
        "{}",
        metrics.text
    );
    ensure!(metrics.get("lastmile_policy_last_reload_successful", &[]) == Some(1.0));
    let ready = proxy.admin_get("/readyz").await?.json()?;
    let revision = ready["policy_revision"]
        .as_str()
        .context("no revision in /readyz")?;
    ensure!(
        metrics.get("lastmile_policy_info", &[("revision", revision)]) == Some(1.0),
        "lastmile_policy_info{{revision={revision:?}}} missing:\n{}",
        metrics.text
    );
    ensure!(metrics.series("lastmile_policy_info").len() == 1);
    Ok(())
}

#[tokio::test]
async fn health_and_readiness() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, Setup::new).await?;

    let health = proxy.admin_get("/healthz").await?;
    expect_status(&health, 200).context("/healthz")?;
    let ready = proxy.admin_get("/readyz").await?;
    expect_status(&ready, 200).context("/readyz")?;
    let body = ready.json()?;
    ensure!(body["ready"] == true, "{body}");
    ensure!(
        body["policy_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:")),
        "{body}"
    );
    let unknown = proxy.admin_get("/nope").await?;
    expect_status(&unknown, 404).context("unknown admin path")?;
    // The admin API is not on the data port.
    let on_data = proxy.get("/metrics", &[]).await?;
    expect_status(&on_data, 404)?;
    ensure!(on_data.header("lastmile-decision").as_deref() == Some("no_route"));
    Ok(())
}

#[tokio::test]
async fn traces_can_be_looked_up_and_never_hold_secrets() -> Result<()> {
    const PASSWORD: &str = "hunter2-must-never-be-traced";
    const API_KEY: &str = "k-1234-must-never-be-traced";
    const AGENT_KEY: &str = "agent-own-key-must-never-be-traced";
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, |routes| {
        Setup::new(routes).include_body().admin_token()
    })
    .await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let agent_auth = format!("Bearer {AGENT_KEY}");
    let headers = [
        ("x-lastmile-user", token.as_str()),
        ("authorization", agent_auth.as_str()),
    ];

    let body =
        json!({"account": "acme", "password": PASSWORD, "nested": {"api_key": API_KEY, "n": 1}});
    let reply = proxy.post_json("/crm/v1/invoices", &headers, &body).await?;
    expect_status(&reply, 201)?;
    let trace_id = reply
        .header("lastmile-trace-id")
        .context("no lastmile-trace-id")?;
    let denied = proxy
        .post_json(
            "/crm/v1/invoices",
            &headers,
            &json!({"forbidden": true, "token": PASSWORD}),
        )
        .await?;
    expect_status(&denied, 403)?;
    let denied_id = denied
        .header("lastmile-trace-id")
        .context("no lastmile-trace-id")?;
    // Query strings can carry secrets too: traces record the path only.
    let searched = proxy
        .get(&format!("/crm/v1/search?api_key={API_KEY}"), &headers)
        .await?;
    expect_status(&searched, 201)?;
    let searched_record = proxy
        .trace_record(&searched.header("lastmile-trace-id").unwrap_or_default())
        .await?;
    ensure!(
        searched_record["path"] == "/crm/v1/search",
        "{searched_record}"
    );

    // The admin API finds the record by trace id, for the operator.
    let found = proxy
        .admin_operator_get(&format!("/traces/{trace_id}"))
        .await?;
    expect_status(&found, 200).context("/traces")?;
    let found_body = found.json()?;
    ensure!(found_body["trace_id"] == trace_id.as_str(), "{found_body}");
    let records = found_body["records"]
        .as_array()
        .context("no records array")?;
    ensure!(records.len() == 1, "{found_body}");
    let record = &records[0];
    for (field, value) in [
        ("outcome", json!("allowed")),
        ("route", json!("crm")),
        ("user", json!("alice")),
        ("method", json!("POST")),
    ] {
        ensure!(record[field] == value, "trace {field}: {record}");
    }
    ensure!(
        record["status"] == 201 && record["path"] == "/crm/v1/invoices",
        "{record}"
    );
    ensure!(record["upstream"]["status"] == 201, "{record}");
    // The body is traced, redacted.
    let traced_body = &record["request_body"];
    ensure!(
        traced_body["password"] == "[redacted]" && traced_body["nested"]["api_key"] == "[redacted]",
        "{record}"
    );
    ensure!(
        traced_body["account"] == "acme" && traced_body["nested"]["n"] == 1,
        "{record}"
    );

    ensure!(
        proxy
            .admin_operator_get("/traces/not-a-trace-id")
            .await?
            .status
            == 400
    );
    ensure!(
        proxy
            .admin_operator_get(&format!("/traces/{}", "0".repeat(32)))
            .await?
            .status
            == 404
    );

    // The trace file holds both records and none of the secrets.
    let file_record = proxy.trace_record(&trace_id).await?;
    ensure!(
        file_record["outcome"] == "allowed"
            && file_record["request_body"]["password"] == "[redacted]"
    );
    let denied_record = proxy.trace_record(&denied_id).await?;
    ensure!(
        denied_record["outcome"] == "denied"
            && denied_record["request_body"]["token"] == "[redacted]"
    );
    let secrets = [
        ("password", PASSWORD),
        ("api key", API_KEY),
        ("agent key", AGENT_KEY),
        ("credential", UPSTREAM_TOKEN),
    ];
    let outputs = [
        ("trace file", proxy.trace_text()?),
        ("/traces", found.text()),
        ("stderr log", proxy.stderr()),
    ];
    for (output, text) in &outputs {
        for (what, secret) in secrets.iter().chain([&("identity token", token.as_str())]) {
            ensure!(
                !text.contains(secret),
                "the {what} appears in the {output}:\n{text}"
            );
        }
    }
    Ok(())
}
