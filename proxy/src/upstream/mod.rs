//! Talking to upstream systems: a pooled hyper client per route (rustls for https,
//! plain TCP for local upstreams) and the route's credential.

pub mod credential;

use crate::config::RouteConfig;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::sync::Arc;
use std::time::Duration;

/// Idle upstream connections are closed before typical upstream keep-alive timeouts
/// (often 60 s), so the pool rarely hands out a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled client for one route's upstream.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why an upstream exchange failed, which decides what the agent may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Nothing was sent (connection or TLS failure): safe to retry.
    Unreachable,
    /// No response head within the route's timeout: the outcome is unknown.
    Timeout,
    /// The connection broke after the request was sent: the outcome is unknown.
    Broken,
}

/// Builds the route's client: webpki roots plus the route's CA file, if any.
pub fn client(route: &RouteConfig) -> Result<UpstreamClient> {
    client_with(route.ca_file.as_deref(), route.connect_timeout)
}

/// A pooled http/https client trusting the webpki roots plus `ca_file`.
pub fn client_with(
    ca_file: Option<&std::path::Path>,
    connect_timeout: Duration,
) -> Result<UpstreamClient> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading CA file {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing CA file {}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            anyhow::bail!("CA file {} holds no usable certificate", path.display());
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("configuring TLS")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

/// Sends one request and waits for the response head, up to `timeout`.
pub async fn send(
    client: &UpstreamClient,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Response<Incoming>, UpstreamFailure> {
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(UpstreamFailure::Timeout),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) if e.is_connect() => {
            tracing::warn!(error = %e, "upstream unreachable");
            Err(UpstreamFailure::Unreachable)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream exchange failed after sending");
            Err(UpstreamFailure::Broken)
        }
    }
}
