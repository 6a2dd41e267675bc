//! A real upstream: a hyper server on 127.0.0.1:0 that records every request it
//! receives and answers as the test configured it.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The body the default upstream answers with; deliberately oddly spaced and with a
/// non-ASCII character, so a byte-for-byte comparison means something.
pub const CREATED_BODY: &str =
    "{ \"id\" : \"INV-00000007\",  \"status\":\"created\", \"note\": \"d\u{e9}j\u{e0} vu\" }\n";

/// How the upstream answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers at once with this status and JSON body.
    Reply { status: u16, body: &'static str },
    /// Answers 200 only after this long (longer than the route's timeout).
    Sleep(Duration),
    /// Answers 200 with a JSON string body of this many bytes.
    Large(usize),
}

impl Behaviour {
    /// 201 with [`CREATED_BODY`].
    pub fn created() -> Behaviour {
        Behaviour::Reply {
            status: 201,
            body: CREATED_BODY,
        }
    }
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every value of one header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

pub struct Upstream {
    pub addr: SocketAddr,
    log: Log,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(behaviour: Behaviour) -> Result<Upstream> {
        Upstream::start_at("127.0.0.1:0".parse()?, behaviour).await
    }

    /// Listens on `addr`: a restarted upstream takes its predecessor's address.
    pub async fn start_at(addr: SocketAddr, behaviour: Behaviour) -> Result<Upstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let log = Log::default();
        let task = tokio::spawn(accept(listener, behaviour, log.clone()));
        Ok(Upstream { addr, log, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything received so far, failing unless it is exactly `count` requests.
    pub fn expect_requests(&self, count: usize) -> Result<Vec<Received>> {
        let received = self.received();
        ensure!(
            received.len() == count,
            "expected the upstream to receive {count} request(s), it received {}: {received:?}",
            received.len()
        );
        Ok(received)
    }

    /// The one request received so far; fails if there were none or more than one.
    pub fn only_request(&self) -> Result<Received> {
        let mut received = self.expect_requests(1)?;
        received.pop().context("one request, checked above")
    }

    /// Fails if the upstream received anything: the request was not forwarded.
    pub fn nothing_received(&self) -> Result<()> {
        self.expect_requests(0).map(drop)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL on which nothing listens: a port the OS just handed out and took back.
pub fn dead_url() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

/// Serves connections until aborted; the connections live in a set owned by this task, so
/// dropping the upstream closes them too, as a killed server's would be.
async fn accept(listener: TcpListener, behaviour: Behaviour, log: Log) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (behaviour, log) = (behaviour.clone(), log.clone());
        let service = service_fn(move |request| handle(request, behaviour.clone(), log.clone()));
        connections.spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    request: Request<Incoming>,
    behaviour: Behaviour,
    log: Log,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body,
        });
    let (status, body) = match behaviour {
        Behaviour::Reply { status, body } => (status, Bytes::from_static(body.as_bytes())),
        Behaviour::Sleep(delay) => {
            tokio::time::sleep(delay).await;
            (200, Bytes::from_static(b"{\"late\":true}"))
        }
        Behaviour::Large(size) => (
            200,
            Bytes::from(format!("\"{}\"", "x".repeat(size.saturating_sub(2)))),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-upstream", http::HeaderValue::from_static("e2e"));
    // A session cookie, which a replay must never hand out again.
    headers.insert(
        http::header::SET_COOKIE,
        http::HeaderValue::from_static("session=e2e-upstream-session; HttpOnly"),
    );
    Ok(response)
}
