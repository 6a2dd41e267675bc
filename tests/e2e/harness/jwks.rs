//! An identity provider's key endpoint: real TLS (a test CA made per server, the leaf
//! valid for 127.0.0.1) and real HTTP, serving a JWKS document the test can change.

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The path the document is served at (any other path is 404).
pub const PATH: &str = "/.well-known/jwks.json";

#[derive(Default)]
struct State {
    document: Mutex<String>,
    fetches: AtomicUsize,
}

/// A running HTTPS JWKS endpoint on 127.0.0.1. Dropping it (or [`JwksServer::stop`])
/// closes the listener and every open connection, as a crashed IdP would.
pub struct JwksServer {
    addr: SocketAddr,
    /// The PEM certificate of the CA that signed the server's certificate.
    pub ca_pem: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Serves `document` at [`PATH`].
    pub async fn start(document: String) -> Result<JwksServer> {
        let (ca_pem, tls) = tls_config()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        *state
            .document
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = document;
        let task = tokio::spawn(super::serve::accept(
            listener,
            Some(TlsAcceptor::from(tls)),
            {
                let state = state.clone();
                move |request| serve(request, state.clone())
            },
        ));
        Ok(JwksServer {
            addr,
            ca_pem,
            state,
            task,
        })
    }

    /// `https://127.0.0.1:<port>/.well-known/jwks.json`
    pub fn url(&self) -> String {
        format!("https://{}{PATH}", self.addr)
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: String) {
        *self
            .state
            .document
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = document;
    }

    /// How many times the document was served.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Stops serving: the port refuses connections from now on.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh CA (returned as PEM) and a server certificate it signed for 127.0.0.1.
pub fn tls_config() -> Result<(String, Arc<rustls::ServerConfig>)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lastmile e2e IdP CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&leaf_key, &issuer)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .context("the test server certificate")?;
    Ok((ca_cert.pem(), Arc::new(config)))
}

async fn serve(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != PATH {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(response);
    }
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let document = state
        .document
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut response = Response::new(Full::new(Bytes::from(document)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
