//! Every sink a trace reaches: the file, the admin API's ring, OTLP spans and OPA-style
//! decision-log uploads. The decision-log service here is a small hyper server that
//! takes what OPA's decision logger sends (gzipped JSON arrays); no sink may hold a
//! secret, and each export's own key reaches only its own server.

use crate::harness::config::TRACE_FILE;
use crate::harness::{
    eventually, expect_status, jwt, Behaviour, Proxy, RouteSpec, Setup, Upstream,
    INBOUND_PARENT_ID, INBOUND_TRACE_ID, UPSTREAM_TOKEN,
};
use anyhow::{ensure, Result};
use bytes::Bytes;
use flate2::read::GzDecoder;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;

const LOGS_KEY: &str = "decision-logs-key-e2e-never-elsewhere-81f0";
const OTLP_KEY: &str = "otlp-key-e2e-never-elsewhere-3c9a";
const PASSWORD: &str = "hunter2-must-never-be-traced";
const AGENT_KEY: &str = "agent-own-key-must-never-be-traced";

/// One POST as the server got it.
#[derive(Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Records every POST; answers the first `refuse` of them 503.
struct Server {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    async fn start(refuse: usize) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let state = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(request, state.clone(), refuse));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Server { addr, received })
    }

    fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn wait_for(&self, path: &str, count: usize) -> Result<Vec<Received>> {
        eventually(
            &format!("{count} POST(s) to {path}"),
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                let got: Vec<Received> = self
                    .received()
                    .into_iter()
                    .filter(|r| r.path == path)
                    .collect();
                std::future::ready(Ok((got.len() >= count).then_some(got)))
            },
        )
        .await
    }
}

async fn answer(
    request: Request<Incoming>,
    state: Arc<Mutex<Vec<Received>>>,
    refuse: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut received = state.lock().unwrap_or_else(PoisonError::into_inner);
    received.push(Received {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
    });
    let status = if received.len() <= refuse { 503 } else { 200 };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}

/// The events of one upload: a gzipped JSON array.
fn events(upload: &Received) -> Result<Vec<Value>> {
    ensure!(upload
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip"));
    ensure!(upload
        .headers
        .get("content-type")
        .is_some_and(|v| v == "application/json"));
    let mut text = String::new();
    GzDecoder::new(&upload.body[..]).read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test]
async fn decision_logs_upload_opa_events_and_no_sink_holds_a_secret() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    // The service refuses the first upload once: it is sent again.
    let logs = Server::start(1).await?;
    let collector = Server::start(0).await?;
    let setup = Setup::new(vec![
        RouteSpec::new("crm", "/crm", upstream.url()).require_user()
    ])
    .include_body()
    .admin_token()
    .env("LASTMILE_E2E_LOGS_KEY", LOGS_KEY)
    .env("LASTMILE_E2E_OTLP_KEY", OTLP_KEY)
    .trace_setting("include_response_body", "true")
    .trace_setting(
        "decision_logs",
        &format!(
            "{{url: 'http://{}/logs', headers_env: {{x-api-key: LASTMILE_E2E_LOGS_KEY}}}}",
            logs.addr
        ),
    )
    .otlp(&format!(
        "{{endpoint: 'http://{}/v1/traces', headers_env: {{x-api-key: LASTMILE_E2E_OTLP_KEY}}}}",
        collector.addr
    ));
    let proxy = Proxy::start(&setup).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let agent_auth = format!("Bearer {AGENT_KEY}");
    let parent = format!("00-{INBOUND_TRACE_ID}-{INBOUND_PARENT_ID}-01");
    let headers = [
        ("x-lastmile-user", token.as_str()),
        ("authorization", agent_auth.as_str()),
        ("traceparent", parent.as_str()),
    ];
    let allowed = proxy
        .post_json(
            "/crm/v1/invoices",
            &headers,
            &json!({"account": "acme", "password": PASSWORD, "nested": {"api_key": AGENT_KEY}}),
        )
        .await?;
    expect_status(&allowed, 201)?;
    let denied = proxy
        .post_json(
            "/crm/v1/invoices",
            &headers,
            &json!({"forbidden": true, "token": PASSWORD}),
        )
        .await?;
    expect_status(&denied, 403)?;

    let uploads = logs.wait_for("/logs", 2).await?;
    ensure!(
        uploads[0].body == uploads[1].body,
        "the refused upload was sent again unchanged"
    );
    let events = events(&uploads[1])?;
    ensure!(events.len() == 2, "{events:?}");
    for event in &events {
        ensure!(event["path"] == "lastmile/decision", "{event}");
        ensure!(event["decision_id"].is_string() && event["timestamp"].is_string());
        ensure!(event["lastmile"]["trace_id"] == INBOUND_TRACE_ID, "{event}");
        ensure!(
            event["bundles"]["lastmile"]["revision"].is_string(),
            "{event}"
        );
    }
    ensure!(
        events[0]["input"]["request"]["body"]["password"] == "[redacted]",
        "{}",
        events[0]
    );
    ensure!(
        events[1]["result"]["deny"][0]["code"] == "forbidden_field",
        "{}",
        events[1]
    );
    ensure!(uploads[1]
        .headers
        .get("x-api-key")
        .is_some_and(|v| v == LOGS_KEY));
    let spans = collector.wait_for("/v1/traces", 1).await?;
    ensure!(spans[0]
        .headers
        .get("x-api-key")
        .is_some_and(|v| v == OTLP_KEY));
    eventually(
        "2 decision-log events counted as exported",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let metrics = proxy.metrics().await?;
            let exported = metrics.get("lastmile_decision_logs_exported_total", &[]);
            Ok((exported == Some(2.0)).then_some(()))
        },
    )
    .await?;

    // No sink holds a secret: not the trace file, the ring, the spans, the uploads, nor
    // the proxy's own output; each export key went to its own server only.
    let ring = proxy
        .admin_operator_get(&format!("/traces/{INBOUND_TRACE_ID}"))
        .await?;
    expect_status(&ring, 200)?;
    let output = proxy.stdout() + &proxy.stderr();
    let workspace = proxy.stop().await?;
    let mut everything = std::fs::read(workspace.path(TRACE_FILE))?;
    everything.extend_from_slice(&ring.body);
    for upload in logs.received() {
        let mut text = Vec::new();
        GzDecoder::new(&upload.body[..]).read_to_end(&mut text)?;
        everything.extend(text);
    }
    for export in collector.received() {
        everything.extend_from_slice(&export.body);
    }
    let everything = String::from_utf8_lossy(&everything).into_owned();
    ensure!(
        everything.contains(INBOUND_TRACE_ID),
        "the sinks got nothing"
    );
    for secret in [
        PASSWORD,
        AGENT_KEY,
        token.as_str(),
        UPSTREAM_TOKEN,
        LOGS_KEY,
        OTLP_KEY,
    ] {
        ensure!(!everything.contains(secret), "a secret reached a sink");
    }
    for secret in [PASSWORD, AGENT_KEY, token.as_str(), LOGS_KEY, OTLP_KEY] {
        ensure!(
            !output.contains(secret),
            "a secret reached the proxy's output"
        );
    }
    ensure!(logs
        .received()
        .iter()
        .all(|r| r.headers.get("x-api-key").is_some_and(|v| v != OTLP_KEY)));
    Ok(())
}
