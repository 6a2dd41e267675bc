//! An Envoy ext_authz (HTTP) service that decides with the real OPA engine, the way
//! OPA-Envoy deployments do, on the same Rego bundle and the same input document as
//! lastmile (policies/README.md, "The contract").
//!
//! Usage: `opa-authz --listen 127.0.0.1:PORT --library libopabridge.so --bundle DIR
//! [--lib DIR]... [--prefix /crm] [--route crm]`
//!
//! Envoy sends the original method, path, allowed headers and the buffered body; Envoy's
//! jwt_authn filter has already verified the identity token and forwards its payload,
//! base64url-encoded, in `x-jwt-payload`. A 200 answer lets the request through; any
//! other status is returned to the client by Envoy. One thread serves every connection
//! (one worker, like every peer in the benchmark); the Go runtime inside the library
//! adds its own threads (garbage collector, scheduler), as an OPA server would.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lastmile_bench::opa::{Opa, DECISION};
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

/// Headers the policy never sees, as in lastmile's input (credentials and the token).
const HIDDEN: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-lastmile-user",
    "x-jwt-payload",
];

struct Service {
    opa: Opa,
    prefix: String,
    route: String,
}

fn main() -> Result<()> {
    let mut listen = "127.0.0.1:18190".to_string();
    let (mut library, mut bundle, mut libs) = (None, None, Vec::new());
    let (mut prefix, mut route) = ("/crm".to_string(), "crm".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--library" => library = Some(PathBuf::from(value)),
            "--bundle" => bundle = Some(PathBuf::from(value)),
            "--lib" => libs.push(PathBuf::from(value)),
            "--prefix" => prefix = value,
            "--route" => route = value,
            _ => bail!("unknown flag {flag}"),
        }
    }
    let (Some(library), Some(bundle)) = (library, bundle) else {
        bail!("usage: opa-authz --listen ADDR --library SO --bundle DIR [--lib DIR]...");
    };
    let opa = Opa::with_bundle(&library, &bundle, &libs)?;
    let service = Arc::new(Service { opa, prefix, route });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(&listen, service))
}

async fn serve(listen: &str, service: Arc<Service>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.check(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(e) = connection.await {
                eprintln!("opa-authz: connection: {e}");
            }
        });
    }
}

impl Service {
    /// One check: the input built, OPA evaluated, the decision enforced. Fails closed:
    /// an error or an undefined decision is a 403.
    async fn check(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return refuse("bad_request", json!(e.to_string())),
        };
        let input = self.input(&parts, &body);
        match self.opa.eval(DECISION, &input.to_string()) {
            Ok(Some(decision)) => enforce(&decision),
            Ok(None) => refuse("policy_error", json!("the decision is undefined")),
            Err(e) => refuse("policy_error", json!(e.to_string())),
        }
    }

    /// The input document, field for field as lastmile builds it.
    fn input(&self, parts: &hyper::http::request::Parts, body: &Bytes) -> Value {
        let path = parts.uri.path();
        let path = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        let segments: Vec<Value> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| json!(percent_encoding::percent_decode_str(s).decode_utf8_lossy()))
            .collect();
        let mut query = Map::new();
        for pair in parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let list = query.entry(name).or_insert_with(|| json!([]));
            if let Value::Array(values) = list {
                values.push(json!(value));
            }
        }
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            if !HIDDEN.contains(&name.as_str()) {
                headers.insert(name.to_string(), json!(value.to_str().unwrap_or("")));
            }
        }
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let parsed = match content_type {
            Some(t) if t.contains("json") => serde_json::from_slice(body).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        json!({
            "version": 1,
            "route": self.route,
            "mode": "enforce",
            "request": {
                "method": parts.method.as_str(),
                "path": path,
                "segments": segments,
                "query": query,
                "headers": headers,
                "content_type": content_type,
                "body": parsed,
                "body_bytes": body.len(),
            },
            "user": user(parts.headers.get("x-jwt-payload")),
            "approval": null,
            "now_ns": now_ns as u64,
        })
    }
}

/// The verified claims Envoy forwards, with `scope` as a list like lastmile's.
fn user(payload: Option<&hyper::header::HeaderValue>) -> Value {
    let Some(payload) = payload else {
        return Value::Null;
    };
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.as_bytes().trim_ascii())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let Some(mut claims) = decoded else {
        return Value::Null;
    };
    if let Some(Value::String(scope)) = claims.get("scope") {
        let list: Vec<Value> = scope.split_whitespace().map(|s| json!(s)).collect();
        claims["scope"] = Value::Array(list);
    }
    claims
}

/// Any deny or approval reason refuses, as lastmile does (approvals fail closed).
fn enforce(decision: &Value) -> Response<Full<Bytes>> {
    let reasons = |key: &str| decision[key].as_array().filter(|list| !list.is_empty());
    if let Some(deny) = reasons("deny") {
        return refuse("denied", json!(deny));
    }
    if let Some(approval) = reasons("approval") {
        return refuse("approval_unavailable", json!(approval));
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::OK;
    response
}

fn refuse(error: &str, reasons: Value) -> Response<Full<Bytes>> {
    let body = json!({"error": error, "reasons": reasons}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
