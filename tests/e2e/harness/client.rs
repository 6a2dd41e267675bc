//! Talking to the proxy: a hyper client for ordinary requests, and raw TCP for the
//! requests a well-behaved client library would not send (CONNECT, absolute-form,
//! un-normalised paths).

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// No single exchange in these tests should take anywhere near this long.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(15);

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response body is not JSON: {}", self.text()))
    }
}

/// Sends one request and reads the whole response.
pub async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Result<Reply> {
    let what = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, anyhow::Error>(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange)
        .await
        .map_err(|_| anyhow!("{what}: no complete response within {EXCHANGE_LIMIT:?}"))?
        .with_context(|| what)
}

/// Writes `request` verbatim on a fresh connection and parses the response (status,
/// headers, and a body delimited by Content-Length or the end of the connection).
pub async fn raw(addr: SocketAddr, request: &str) -> Result<Reply> {
    tokio::time::timeout(EXCHANGE_LIMIT, raw_exchange(addr, request))
        .await
        .map_err(|_| anyhow!("raw request: no complete response within {EXCHANGE_LIMIT:?}"))?
        .with_context(|| format!("raw request {:?}", request.lines().next().unwrap_or("")))
}

async fn raw_exchange(addr: SocketAddr, request: &str) -> Result<Reply> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if read_some(&mut stream, &mut buf).await? == 0 {
            bail!(
                "connection closed before the response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?.to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("bad header line {line:?}"))?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().parse()?,
        );
    }
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .map_err(anyhow::Error::from)
                .and_then(|v| Ok(v.parse::<usize>()?))
        })
        .transpose()?;
    let body_start = head_end + 4;
    match length {
        Some(length) => {
            while buf.len() < body_start + length {
                if read_some(&mut stream, &mut buf).await? == 0 {
                    bail!("connection closed inside the body");
                }
            }
            buf.truncate(body_start + length);
        }
        None => while read_some(&mut stream, &mut buf).await? > 0 {},
    }
    Ok(Reply {
        status,
        headers,
        body: Bytes::copy_from_slice(&buf[body_start..]),
    })
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
