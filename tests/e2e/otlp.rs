//! OpenTelemetry export: every trace record reaches an OTLP/HTTP collector as a span in
//! the agent's trace, child of the agent's span, with the collector's API key sent as a
//! header and never written anywhere else. The collector here is a small hyper server
//! that decodes the spans with the official OTLP types, as a real one does.

use crate::harness::upstream::dead_url;
use crate::harness::{
    eventually, expect_status, jwt, Behaviour, Proxy, RouteSpec, Setup, Upstream,
    INBOUND_PARENT_ID, INBOUND_TRACE_ID,
};
use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The collector's API key: it must reach the collector and nowhere else.
const API_KEY: &str = "otlp-api-key-e2e-must-never-be-logged-5d21";
/// The environment variable the proxy reads it from.
const API_KEY_ENV: &str = "LASTMILE_E2E_OTLP_KEY";
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// One export the collector accepted.
#[derive(Clone)]
struct Export {
    headers: HeaderMap,
    request: ExportTraceServiceRequest,
}

#[derive(Default)]
struct State {
    /// Statuses to answer, in order, before accepting anything.
    refusals: VecDeque<u16>,
    /// Every POST to the traces endpoint, accepted or not.
    attempts: usize,
    accepted: Vec<Export>,
}

/// An OTLP/HTTP traces receiver on a free loopback port.
struct Collector {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Collector {
    /// Answers the statuses of `refusals` first, then accepts every export.
    async fn start(refusals: &[u16]) -> Result<Collector> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            refusals: refusals.iter().copied().collect(),
            ..State::default()
        }));
        let task = tokio::spawn(accept(listener, state.clone()));
        Ok(Collector { addr, state, task })
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn exports(&self) -> Vec<Export> {
        self.lock().accepted.clone()
    }

    fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Every span accepted so far.
    fn spans(&self) -> Vec<Span> {
        self.exports()
            .into_iter()
            .flat_map(|e| e.request.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// Waits until `count` spans have arrived.
    async fn wait_for_spans(&self, count: usize) -> Result<Vec<Span>> {
        eventually(&format!("{count} span(s)"), WAIT, POLL, || {
            let spans = self.spans();
            std::future::ready(Ok((spans.len() >= count).then_some(spans)))
        })
        .await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, state: Arc<Mutex<State>>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        let service = service_fn(move |request| receive(request, state.clone()));
        connections.spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// `POST /v1/traces` with a binary protobuf body, as OTLP/HTTP specifies.
async fn receive(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let answer = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(response)
    };
    if parts.method != Method::POST || parts.uri.path() != "/v1/traces" {
        return answer(StatusCode::NOT_FOUND, Vec::new());
    }
    let protobuf = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct == "application/x-protobuf");
    if !protobuf {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(decoded) = ExportTraceServiceRequest::decode(body) else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    state.attempts += 1;
    if let Some(status) = state.refusals.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return answer(status, Vec::new());
    }
    state.accepted.push(Export {
        headers: parts.headers,
        request: decoded,
    });
    answer(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// The proxy with routes `crm` (to `upstream`) and `billing` (to a dead port), exporting
/// to `collector` with the API key from the environment and one header from the file.
async fn start(collector: &Collector, upstream: &Upstream) -> Result<Proxy> {
    let otlp = format!(
        "{{endpoint: {}, headers: {{x-team: e2e}}, headers_env: {{x-api-key: {API_KEY_ENV}}}, service_name: lastmile-e2e}}",
        json!(collector.endpoint())
    );
    let setup = Setup::new(vec![
        RouteSpec::new("crm", "/crm", upstream.url()).require_user(),
        RouteSpec::new("billing", "/billing", dead_url()?),
    ])
    .otlp(&otlp)
    .env(API_KEY_ENV, API_KEY)
    .admin_token();
    Proxy::start(&setup).await
}

fn traceparent() -> String {
    format!("00-{INBOUND_TRACE_ID}-{INBOUND_PARENT_ID}-01")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span's attribute, if set.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn texts(span: &Span, key: &str) -> Option<Vec<String>> {
    match attribute(span, key) {
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The trace file's records, one JSON value each.
fn records(proxy: &Proxy) -> Result<Vec<serde_json::Value>> {
    proxy
        .trace_text()?
        .lines()
        .map(|line| serde_json::from_str(line).context("a trace line"))
        .collect()
}

/// Checks what every span shares with its record: ids, parent, times, common attributes.
fn check_against_record(span: &Span, record: &serde_json::Value) -> Result<()> {
    let context = || format!("span {:?} vs record {record}", span.name);
    ensure!(hex(&span.trace_id) == INBOUND_TRACE_ID, "{}", context());
    ensure!(
        hex(&span.parent_span_id) == INBOUND_PARENT_ID,
        "{}",
        context()
    );
    ensure!(span.kind == SpanKind::Server as i32, "{}", context());
    let route = record["route"].as_str().context("record route")?;
    ensure!(span.name == format!("POST {route}"), "{}", context());
    let time = record["time"].as_str().context("record time")?;
    let start = humantime::parse_rfc3339(time)?.duration_since(UNIX_EPOCH)?;
    ensure!(
        u128::from(span.start_time_unix_nano) == start.as_nanos(),
        "{}",
        context()
    );
    let total_ms = record["latency_ms"]["total"].as_f64().context("latency")?;
    let lasted = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    ensure!(
        (lasted as f64 - total_ms * 1e6).abs() < 1_000.0,
        "lasted {lasted} ns, record {total_ms} ms"
    );
    let expected_text = [
        ("http.request.method", "POST"),
        ("http.route", route),
        ("lastmile.route", route),
        ("lastmile.mode", "enforce"),
        ("lastmile.user", "alice"),
    ];
    for (key, value) in expected_text {
        ensure!(
            text(span, key).as_deref() == Some(value),
            "{key}: {}",
            context()
        );
    }
    for (key, field) in [
        ("url.path", &record["path"]),
        ("lastmile.outcome", &record["outcome"]),
        ("lastmile.policy_revision", &record["policy_revision"]),
        ("lastmile.verdict", &record["decision"]["verdict"]),
    ] {
        ensure!(
            text(span, key).as_deref() == field.as_str(),
            "{key}: {}",
            context()
        );
    }
    ensure!(
        int(span, "http.response.status_code") == record["status"].as_i64(),
        "status: {}",
        context()
    );
    Ok(())
}

#[tokio::test]
async fn every_record_reaches_the_collector_as_a_child_of_the_agents_span() -> Result<()> {
    let collector = Collector::start(&[]).await?;
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&collector, &upstream).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let traceparent = traceparent();
    let headers = [
        ("x-lastmile-user", token.as_str()),
        ("traceparent", traceparent.as_str()),
    ];
    let mut keyed = headers.to_vec();
    keyed.push(("idempotency-key", "otlp-e2e-1"));

    let allowed = proxy
        .post_json("/crm/v1/tickets", &keyed, &json!({"subject": "otlp"}))
        .await?;
    expect_status(&allowed, 201).context("allowed")?;
    let denied = proxy
        .post_json("/crm/v1/tickets", &headers, &json!({"forbidden": 1}))
        .await?;
    expect_status(&denied, 403).context("denied")?;
    let refused = proxy
        .post_json("/billing/v1/charges", &headers, &json!({"amount": 5}))
        .await?;
    expect_status(&refused, 502).context("refused: upstream unreachable")?;

    let spans = collector.wait_for_spans(3).await?;
    ensure!(spans.len() == 3, "{} spans", spans.len());
    let records = records(&proxy)?;
    ensure!(records.len() == 3, "{records:?}");
    let span_of = |outcome: &str| -> Result<(&Span, &serde_json::Value)> {
        let record = records
            .iter()
            .find(|r| r["outcome"] == outcome)
            .with_context(|| format!("no {outcome} record: {records:?}"))?;
        let span = spans
            .iter()
            .find(|s| Some(hex(&s.span_id).as_str()) == record["span_id"].as_str())
            .with_context(|| format!("no span for the {outcome} record {record}"))?;
        check_against_record(span, record)?;
        Ok((span, record))
    };

    let (span, record) = span_of("allowed")?;
    ensure!(texts(span, "lastmile.reasons") == Some(Vec::new()));
    ensure!(int(span, "lastmile.upstream.status_code") == Some(201));
    let dedup_key = record["dedup"]["key"].as_str().context("no dedup key")?;
    ensure!(text(span, "lastmile.dedup.key").as_deref() == Some(dedup_key));
    ensure!(text(span, "lastmile.dedup.result").as_deref() == Some("first"));
    ensure!(
        span.status.is_none(),
        "a 201 is no error: {:?}",
        span.status
    );

    let (span, _) = span_of("denied")?;
    ensure!(texts(span, "lastmile.reasons") == Some(vec!["forbidden_field".to_string()]));
    ensure!(int(span, "lastmile.upstream.status_code").is_none());
    ensure!(
        span.status.is_none(),
        "a 4xx is the client's: {:?}",
        span.status
    );

    let (span, _) = span_of("upstream_unreachable")?;
    ensure!(
        span.status.as_ref().map(|s| s.code) == Some(SpanStatus::Error as i32),
        "a 5xx is an error: {:?}",
        span.status
    );
    ensure!(text(span, "error.type").as_deref() == Some("502"));

    for export in collector.exports() {
        let header = |name: &str| export.headers.get(name).and_then(|v| v.to_str().ok());
        ensure!(header("x-api-key") == Some(API_KEY), "the API key header");
        ensure!(header("x-team") == Some("e2e"), "the header from the file");
        for resource in export
            .request
            .resource_spans
            .iter()
            .filter_map(|r| r.resource.as_ref())
        {
            let find = |key: &str| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
            };
            ensure!(find("service.name").as_deref() == Some("lastmile-e2e"));
            ensure!(find("service.version").is_some_and(|v| !v.is_empty()));
        }
    }

    let metrics = eventually("the export to be counted", WAIT, POLL, || async {
        let metrics = proxy.metrics().await?;
        let exported = metrics.get("lastmile_trace_spans_exported_total", &[]);
        Ok((exported == Some(3.0)).then_some(metrics))
    })
    .await?;
    for reason in ["queue_full", "export_failed", "rejected", "invalid"] {
        let dropped = metrics.get("lastmile_trace_spans_dropped_total", &[("reason", reason)]);
        ensure!(dropped == Some(0.0), "dropped ({reason}): {dropped:?}");
    }

    // The key went to the collector and nowhere else.
    let lookup = proxy
        .admin_operator_get(&format!("/traces/{INBOUND_TRACE_ID}"))
        .await?;
    expect_status(&lookup, 200)?;
    let stderr = proxy.stderr();
    ensure!(
        stderr.contains("exporting trace spans over OTLP"),
        "no start-up line:\n{stderr}"
    );
    for (output, text) in [
        ("stderr log", stderr),
        ("stdout", proxy.stdout()),
        ("trace file", proxy.trace_text()?),
        ("/traces", lookup.text()),
        ("/metrics", metrics.text.clone()),
    ] {
        ensure!(
            !text.contains(API_KEY),
            "the API key appears in the {output}:\n{text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_unavailable_collector_gets_the_spans_on_a_retry() -> Result<()> {
    let collector = Collector::start(&[503, 429]).await?;
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&collector, &upstream).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let reply = proxy
        .get("/crm/v1/tickets", &[("x-lastmile-user", token.as_str())])
        .await?;
    expect_status(&reply, 201)?;

    let spans = collector.wait_for_spans(1).await?;
    ensure!(
        spans.len() == 1 && collector.attempts() == 3,
        "attempts: {}",
        collector.attempts()
    );
    eventually("the export to be counted", WAIT, POLL, || async {
        let metrics = proxy.metrics().await?;
        Ok((metrics.get("lastmile_trace_spans_exported_total", &[]) == Some(1.0)).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_dead_collector_costs_spans_not_requests() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let endpoint = format!("{}/v1/traces", dead_url()?);
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())]).otlp(&format!(
        "{{endpoint: {}, timeout_ms: 500}}",
        json!(endpoint)
    ));
    let proxy = Proxy::start(&setup).await?;
    let reply = proxy.get("/crm/v1/tickets", &[]).await?;
    expect_status(&reply, 201)?;
    eventually("the span to be counted as dropped", WAIT, POLL, || async {
        let metrics = proxy.metrics().await?;
        let dropped = metrics.get(
            "lastmile_trace_spans_dropped_total",
            &[("reason", "export_failed")],
        );
        Ok((dropped == Some(1.0)).then_some(()))
    })
    .await?;
    let stderr = proxy.stderr();
    ensure!(
        stderr.contains("exporting trace spans over OTLP failed"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_sends_the_spans_still_queued() -> Result<()> {
    let collector = Collector::start(&[]).await?;
    let upstream = Upstream::start(Behaviour::created()).await?;
    let mut proxy = start(&collector, &upstream).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let reply = proxy
        .get("/crm/v1/tickets", &[("x-lastmile-user", token.as_str())])
        .await?;
    expect_status(&reply, 201)?;
    // Well inside the one-second batch period: only the shutdown flush can send it.
    let pid = proxy.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    ensure!(status.success(), "kill -TERM {pid}: {status}");
    let exit = proxy.exit_status(WAIT).await?;
    ensure!(exit.success(), "exited with {exit}:\n{}", proxy.stderr());
    let spans = collector.spans();
    ensure!(spans.len() == 1, "{} spans after shutdown", spans.len());
    Ok(())
}
