//! Hostile input, written as raw bytes to the listener (no HTTP client library would
//! send most of these): request smuggling and framing tricks, header floods, malformed
//! headers, pipelining after a refusal, hop-by-hop abuse, JSON the policy and the upstream
//! could read differently, slow clients and overload. For every case the refusal status is
//! checked and the upstream must have received nothing it should not have.

use crate::harness::{crm_proxy, expect_status, Behaviour, Proxy, RouteSpec, Setup, Upstream};
use anyhow::{bail, ensure, Context, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `bytes` on a fresh connection and reads until the server closes it (or
/// `limit` passes); returns everything read.
async fn exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut out = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The status codes of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// The machine-readable code of the first refusal in `text`.
fn first_code(text: &str) -> Option<String> {
    let start = text.find("{\"error\"")?;
    let body: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()?
        .ok()?;
    body["error"]["code"].as_str().map(str::to_string)
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
    /// The refusal code, when lastmile (not hyper's parser) refuses.
    code: Option<&'static str>,
}

fn case(
    name: &'static str,
    bytes: impl Into<Vec<u8>>,
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        status,
        code,
    }
}

fn post(headers: &str, body: &str) -> String {
    format!("POST /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\n{headers}\r\n{body}")
}

fn json_post(body: &str) -> String {
    post(
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ),
        body,
    )
}

/// A request with `headers`, closed after the answer. Header values carry [`SECRET`] so
/// that a refusal echoing a value is caught.
fn with_headers(method_path: &str, headers: &str, body: &str) -> String {
    format!(
        "{method_path} HTTP/1.1\r\nHost: agent\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Put into header values; no refusal may contain it.
const SECRET: &str = "s3cr3t-value-91f";

/// Requests the policy and the upstream could read differently: doubled singleton
/// headers, bodies the policy cannot read, method overrides, `;` path parameters.
fn ambiguous_requests() -> Vec<Case> {
    let p = |headers: &str, body: &str| with_headers("POST /crm/v1/invoices", headers, body);
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    vec![
        case("two Content-Types", p("Content-Type: text/plain\r\nContent-Type: application/json\r\n", r#"{"forbidden": true}"#), 400, Some("ambiguous_header")),
        case("two Content-Encodings", p(&format!("Content-Type: application/json\r\nContent-Encoding: identity\r\nContent-Encoding: {SECRET}\r\n"), "{}"), 400, Some("ambiguous_header")),
        case("two Authorization headers", with_headers("GET /crm/v1/invoices", &format!("Authorization: Bearer a\r\nAuthorization: Bearer {SECRET}\r\n"), ""), 400, Some("ambiguous_header")),
        case("two identity headers", with_headers("GET /crm/v1/invoices", &format!("X-Lastmile-User: a.b.c\r\nX-Lastmile-User: {SECRET}\r\n"), ""), 400, Some("ambiguous_header")),
        case("two Idempotency-Keys", p(&format!("Content-Type: application/json\r\nIdempotency-Key: a\r\nIdempotency-Key: {SECRET}\r\n"), "{}"), 400, Some("ambiguous_header")),
        case("two Hosts", with_headers("GET /crm/v1/invoices", &format!("Host: {SECRET}\r\n"), ""), 400, Some("ambiguous_header")),
        case("JSON sent as text/plain", p("Content-Type: text/plain\r\n", r#"{"forbidden": true}"#), 415, Some("unsupported_media_type")),
        case("JSON sent without a content type", p("", r#"{"forbidden": true}"#), 415, Some("unsupported_media_type")),
        case("a form denied field", p(form, "forbidden=1"), 403, Some("denied")),
        case("a form key sent twice", p(form, "amount=1&amount=1000000"), 400, Some("invalid_form")),
        case("a form key as a value and an object", p(form, "a=1&a%5Bb%5D=2"), 400, Some("invalid_form")),
        case("a form with a bad percent escape", p(form, "a=%zz"), 400, Some("invalid_form")),
        case("a form with invalid UTF-8", p(form, "a=%ff"), 400, Some("invalid_form")),
        case("a gzip-encoded form", p(&format!("{form}Content-Encoding: gzip\r\n"), "a=1"), 415, Some("unsupported_content_encoding")),
        case("X-HTTP-Method-Override on a POST", p("Content-Type: application/json\r\nX-HTTP-Method-Override: DELETE\r\n", "{}"), 400, Some("method_override")),
        case("X-HTTP-Method on a POST", p("Content-Type: application/json\r\nX-HTTP-Method: DELETE\r\n", "{}"), 400, Some("method_override")),
        case("X-Method-Override on a POST", p("Content-Type: application/json\r\nX-Method-Override: DELETE\r\n", "{}"), 400, Some("method_override")),
        case("a '..;' path segment", with_headers("GET /crm/v1/..;/admin", "", ""), 400, Some("bad_path")),
        case("a ';' path parameter", with_headers("GET /crm/v1/invoices;jsessionid=x", "", ""), 400, Some("bad_path")),
        case("an encoded ';' in the path", with_headers("GET /crm/v1/..%3B/admin", "", ""), 400, Some("bad_path")),
    ]
}

fn corpus() -> Vec<Case> {
    let many_headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    vec![
        // Framing and smuggling.
        case("two different Content-Lengths", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400, None),
        case("Content-Length with a sign", post("Content-Length: +5\r\n", "hello"), 400, None),
        case("Content-Length not a number", post("Content-Length: 5x\r\n", "hello"), 400, None),
        case("Transfer-Encoding not chunked", post("Transfer-Encoding: xchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, None),
        case("Transfer-Encoding chunked, then identity", post("Transfer-Encoding: chunked, identity\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, None),
        case("Transfer-Encoding gzip before chunked", post("Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, Some("bad_framing")),
        case("Transfer-Encoding on HTTP/1.0", "POST /crm/v1/invoices HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, None),
        case("chunk size overflow", post("Transfer-Encoding: chunked\r\nConnection: close\r\n", "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400, None),
        case("chunk size not hex", post("Transfer-Encoding: chunked\r\nConnection: close\r\n", "zz\r\nhello\r\n0\r\n\r\n"), 400, None),
        // Header floods and malformed headers.
        case("101 headers", format!("GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\n{many_headers}\r\n"), 431, None),
        case("a 40 KiB header", format!("GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nX-Big: {}\r\n\r\n", "a".repeat(40 * 1024)), 431, None),
        case("space in a header name", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nBad Header: x\r\n\r\n", 400, None),
        case("header line without a colon", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nNoColon\r\n\r\n", 400, None),
        case("NUL in a header value", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nX-A: a\0b\r\n\r\n", 400, None),
        case("bare LF in a header value", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nX-A: a\rb\r\n\r\n", 400, None),
        case("request line with two spaces", "GET  /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\n\r\n", 400, None),
        case("unknown HTTP version", "GET /crm/v1/invoices HTTP/3.7\r\nHost: agent\r\n\r\n", 400, None),
        // Hop-by-hop abuse: dropping a header lastmile relies on.
        case("Connection names Authorization", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: close, authorization\r\n\r\n", 400, Some("bad_connection_header")),
        case("Connection names the identity header", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: close, X-Lastmile-User\r\n\r\n", 400, Some("bad_connection_header")),
        case("Connection names Content-Type", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: content-type, close\r\n\r\n", 400, Some("bad_connection_header")),
        case("Connection names Idempotency-Key", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: Idempotency-Key, close\r\n\r\n", 400, Some("bad_connection_header")),
        case("Connection names traceparent", "GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: traceparent, close\r\n\r\n", 400, Some("bad_connection_header")),
        // JSON the policy and the upstream could read differently.
        case("duplicate JSON keys", json_post(r#"{"amount": 1, "amount": 1000000}"#), 400, Some("invalid_json")),
        case("nested duplicate JSON keys", json_post(r#"{"a": {"to": "x", "to": "y"}}"#), 400, Some("invalid_json")),
        case("a number beyond 2^53", json_post(r#"{"amount": 9007199254740993}"#), 400, Some("invalid_json")),
        case("a number beyond a double", json_post(r#"{"amount": 1e400}"#), 400, Some("invalid_json")),
        case("a lone surrogate", json_post(r#"{"to": "\ud800"}"#), 400, Some("invalid_json")),
        case("JSON nested 40 deep", json_post(&deep), 400, Some("invalid_json")),
        case("two JSON documents", json_post(r#"{"a": 1} {"b": 2}"#), 400, Some("invalid_json")),
        case("a gzip-encoded JSON body", post("Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n", "{}"), 415, Some("unsupported_content_encoding")),
        case("invalid UTF-8 in JSON", {
            let mut bytes = post("Content-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n", "").into_bytes();
            bytes.extend_from_slice(b"{\"a\":\"\xff\"}");
            bytes
        }, 400, Some("invalid_json")),
    ]
    .into_iter()
    .chain(ambiguous_requests())
    .collect()
}

#[tokio::test]
async fn the_hostile_corpus_is_refused_and_nothing_reaches_the_upstream() -> Result<()> {
    let (upstream, proxy) = crm_proxy(|r| r).await?;
    let mut failures = Vec::new();
    for case in corpus() {
        let text = exchange(proxy.data, &case.bytes, Duration::from_secs(5)).await?;
        let got = statuses(&text);
        let code = first_code(&text);
        let ok = got.first() == Some(&case.status)
            && case.code.is_none_or(|c| code.as_deref() == Some(c))
            && !text.contains(SECRET);
        if !ok {
            failures.push(format!(
                "{}: expected {} {:?}, got {got:?} {code:?}",
                case.name, case.status, case.code
            ));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() -> Result<()> {
    // hyper decodes the chunked body (RFC 9112 §6.1: Transfer-Encoding wins), drops the
    // Content-Length and closes the connection after answering; lastmile forwards exactly
    // the decoded bytes it evaluated. The bytes after the chunked body would be a second
    // request to a proxy that trusted Content-Length: it must never reach the upstream.
    let (upstream, proxy) = crm_proxy(|r| r).await?;
    let smuggled = "GET /crm/v1/smuggled HTTP/1.1\r\nHost: agent\r\n\r\n";
    let chunked = format!("0\r\n\r\n{smuggled}");
    let request = post(
        &format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n",
            chunked.len()
        ),
        &chunked,
    );
    let text = exchange(proxy.data, request.as_bytes(), Duration::from_secs(5)).await?;
    ensure!(
        statuses(&text).len() <= 1,
        "a second response came back: {text}"
    );
    let paths: Vec<String> = upstream.received().iter().map(|r| r.path.clone()).collect();
    ensure!(
        !paths.iter().any(|p| p.contains("smuggled")),
        "smuggled: {paths:?}"
    );
    ensure!(upstream.received().iter().all(|r| r.body.is_empty()));
    Ok(())
}

#[tokio::test]
async fn pipelined_requests_after_a_refusal_are_each_judged_on_their_own() -> Result<()> {
    let (upstream, proxy) = crm_proxy(|r| r).await?;
    let pipelined = "GET /crm/v1/../admin HTTP/1.1\r\nHost: agent\r\n\r\n\
                     GET /crm/v1/ok HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    let text = exchange(proxy.data, pipelined.as_bytes(), Duration::from_secs(5)).await?;
    ensure!(statuses(&text) == [400, 201], "{text}");
    let paths: Vec<String> = upstream.received().iter().map(|r| r.path.clone()).collect();
    ensure!(paths == ["/v1/ok"], "{paths:?}");

    // A body refused unread (over the limit) never becomes a request of its own.
    let (upstream, proxy) = crm_proxy(|r| r.max_body_bytes(64)).await?;
    let inner = "GET /crm/v1/smuggled HTTP/1.1\r\nHost: agent\r\n\r\n";
    let body = format!("{inner}{}", "x".repeat(100));
    let request = post(
        &format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        ),
        &body,
    );
    let text = exchange(proxy.data, request.as_bytes(), Duration::from_secs(5)).await?;
    ensure!(statuses(&text) == [413], "{text}");
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_starve_others() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(
        &Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
            .server("{header_read_timeout_ms: 1000, body_read_timeout_ms: 1000}"),
    )
    .await?;
    // 500 connections that send part of a request head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(proxy.data).await?;
        stream
            .write_all(b"GET /crm/v1/invoices HTTP/1.1\r\nHost: ag")
            .await?;
        slow.push(stream);
    }
    let reply = proxy.get("/crm/v1/invoices", &[]).await?;
    expect_status(&reply, 201).context("a normal request failed beside slow sockets")?;

    // Each slow socket is closed once the header read timeout passes.
    for stream in slow.iter_mut().take(20) {
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        ensure!(read.is_ok(), "a slow socket was still open after 10 s");
    }

    // A body that stops arriving: 408, and nothing upstream.
    let mut stream = TcpStream::connect(proxy.data).await?;
    stream
        .write_all(b"POST /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello")
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .context("no answer to a stalled body")??;
    let text = String::from_utf8_lossy(&buf);
    ensure!(statuses(&text) == [408], "{text}");
    ensure!(
        first_code(&text).as_deref() == Some("body_timeout"),
        "{text}"
    );
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn overload_is_shed_with_503_and_counted() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_millis(1500))).await?;
    let proxy = std::sync::Arc::new(
        Proxy::start(
            &Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
                .server("{max_in_flight: 4}"),
        )
        .await?,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let proxy = proxy.clone();
        tasks.spawn(async move { proxy.get("/crm/v1/invoices", &[]).await });
    }
    let (mut ok, mut shed) = (0, 0);
    while let Some(reply) = tasks.join_next().await {
        let reply = reply??;
        match reply.status {
            200 => ok += 1,
            503 => {
                crate::harness::assert_refusal(&reply, 503, "overloaded")?;
                ensure!(reply.header("retry-after").as_deref() == Some("1"));
                shed += 1;
            }
            other => bail!("unexpected {other}: {}", reply.text()),
        }
    }
    ensure!(ok == 4 && shed == 16, "{ok} served, {shed} shed");
    upstream.expect_requests(4)?;
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(
            "lastmile_requests_total",
            &[("route", "none"), ("outcome", "overloaded")]
        ) == Some(16.0)
    );
    Ok(())
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(
        &Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())])
            .server("{max_connections: 2}"),
    )
    .await?;
    let first = TcpStream::connect(proxy.data).await?;
    let second = TcpStream::connect(proxy.data).await?;
    // Give the proxy time to accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let request = b"GET /crm/v1/invoices HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    let third =
        tokio::spawn(async move { exchange(proxy.data, request, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    upstream
        .nothing_received()
        .context("a connection over the cap was served")?;
    drop(first);
    let text = third.await??;
    ensure!(statuses(&text) == [201], "{text}");
    drop(second);
    Ok(())
}

/// A deny-list rule: no body may carry an `email` field.
const DENY_EMAIL: &str = r#"package lastmile

decision := {"deny": deny}

deny contains {"code": "raw_recipient", "message": "the body may not name an e-mail address"} if {
	is_object(input.request.body)
	"email" in object.keys(input.request.body)
}
"#;

#[tokio::test]
async fn a_deny_list_rule_sees_form_encoded_fields() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = crate::harness::Workspace::with_policy(DENY_EMAIL)?
        .start(&Setup::new(vec![RouteSpec::new(
            "crm",
            "/crm",
            upstream.url(),
        )]))
        .await?;
    for body in ["email=attacker%40evil.example", "name=x&email=a@b.example"] {
        let request = with_headers(
            "POST /crm/v1/contacts",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            body,
        );
        let text = exchange(proxy.data, request.as_bytes(), Duration::from_secs(5)).await?;
        ensure!(statuses(&text) == [403], "{body}: {text}");
        ensure!(
            first_code(&text).as_deref() == Some("denied"),
            "{body}: {text}"
        );
    }
    upstream.nothing_received()?;
    Ok(())
}

/// Denies any header value that holds an "@": a stand-in for the library's recipient rule.
const DENY_AT_IN_HEADERS: &str = r#"package lastmile

decision := {"deny": deny}

deny contains {"code": "raw_recipient", "message": sprintf("header %s holds an address", [name])} if {
	some name, value in input.request.headers
	contains(value, "@")
}
"#;

#[tokio::test]
async fn a_header_with_bytes_beyond_ascii_is_still_shown_to_the_policy() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = crate::harness::Workspace::with_policy(DENY_AT_IN_HEADERS)?
        .start(&Setup::new(vec![RouteSpec::new(
            "crm",
            "/crm",
            upstream.url(),
        )]))
        .await?;
    // obs-text (RFC 9110 §5.5): hyper accepts it, so the policy must see the value too.
    let mut request =
        b"GET /crm/v1/contacts HTTP/1.1\r\nHost: crm\r\nX-Recipient: attacker@evil.example"
            .to_vec();
    request.extend_from_slice(&[0xe9, 0xff]);
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let text = exchange(proxy.data, &request, Duration::from_secs(5)).await?;
    ensure!(statuses(&text) == [403], "{text}");
    ensure!(first_code(&text).as_deref() == Some("denied"), "{text}");
    upstream.nothing_received()?;
    Ok(())
}
