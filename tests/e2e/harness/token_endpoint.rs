//! An OAuth 2.0 token endpoint implementing RFC 8693 token exchange, as an identity
//! provider would: it authenticates the client (HTTP Basic, RFC 6749 §2.3.1, or a
//! `private_key_jwt` assertion, RFC 7523 §2.2, once `accept_assertions` names its key:
//! signature, iss = sub = client id, aud = this endpoint, exp, a jti used once), checks the
//! grant type, verifies the subject token's signature, issuer and audience with the keys
//! the tests sign user tokens with, checks the requested audience, and issues short-lived
//! opaque tokens per user and audience. It remembers whom each token was issued to, so a
//! test can tell whether the upstream got the acting user's own token.

use super::jwt;
use anyhow::Result;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use sha2::Digest;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub const PATH: &str = "/oauth2/token";
pub const CLIENT_ID: &str = "lastmile-e2e";
/// Holds characters that must be form-encoded before Basic encoding (RFC 6749 §2.3.1).
pub const CLIENT_SECRET: &str = "e2e:client+secret/6d2f9a41";
/// The audience the upstream's tokens are issued for.
pub const UPSTREAM_AUDIENCE: &str = "crm-api";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Whom a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub sub: String,
    pub audience: String,
}

#[derive(Default)]
struct State {
    expires_in: AtomicU64,
    /// Held before answering, so concurrent first calls overlap.
    delay_ms: AtomicU64,
    exchanges: AtomicUsize,
    requests: AtomicUsize,
    issued: Mutex<HashMap<String, Issued>>,
    /// The public key client assertions must verify with, and the endpoint's URL.
    assertion_key: Mutex<Option<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm, String)>>,
    /// Every assertion `jti` seen: a replayed one is refused.
    jtis: Mutex<std::collections::HashSet<String>>,
}

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A running token endpoint on 127.0.0.1 (plain http, or https with a test CA).
pub struct TokenEndpoint {
    addr: SocketAddr,
    tls: bool,
    /// The CA that signed the https endpoint's certificate.
    pub ca_pem: Option<String>,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl TokenEndpoint {
    /// Plain http on loopback, issuing tokens that live `expires_in` seconds.
    pub async fn start(expires_in: u64) -> Result<TokenEndpoint> {
        TokenEndpoint::launch(expires_in, None).await
    }

    /// https with a certificate for 127.0.0.1 signed by a fresh test CA.
    pub async fn start_https(expires_in: u64) -> Result<TokenEndpoint> {
        let (ca_pem, tls) = super::jwks::tls_config()?;
        let mut endpoint = TokenEndpoint::launch(expires_in, Some(TlsAcceptor::from(tls))).await?;
        endpoint.ca_pem = Some(ca_pem);
        Ok(endpoint)
    }

    async fn launch(expires_in: u64, tls: Option<TlsAcceptor>) -> Result<TokenEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        state.expires_in.store(expires_in, Ordering::SeqCst);
        let is_tls = tls.is_some();
        let task = tokio::spawn(super::serve::accept(listener, tls, {
            let state = state.clone();
            move |request| serve(request, state.clone())
        }));
        Ok(TokenEndpoint {
            addr,
            tls: is_tls,
            ca_pem: None,
            state,
            task,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{PATH}", self.addr)
    }

    /// Holds each answer this long.
    pub fn delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Authenticates the client by `private_key_jwt` signed with the key whose public
    /// PEM (SPKI) is `public_pem`, instead of by its secret.
    pub fn accept_assertions(&self, public_pem: &str, alg: jsonwebtoken::Algorithm) -> Result<()> {
        let key = match alg {
            jsonwebtoken::Algorithm::ES256 => {
                jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes())?
            }
            _ => jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes())?,
        };
        *self
            .state
            .assertion_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((key, alg, self.url()));
        Ok(())
    }

    /// The `jti` of every client assertion received.
    pub fn assertion_ids(&self) -> Vec<String> {
        self.state
            .jtis
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Successful exchanges so far.
    pub fn exchanges(&self) -> usize {
        self.state.exchanges.load(Ordering::SeqCst)
    }

    /// Requests received so far, refused ones included.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Whom `token` was issued to.
    pub fn issued_to(&self, token: &str) -> Option<Issued> {
        self.issued().get(token).cloned()
    }

    /// Every token issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.issued().keys().cloned().collect()
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.state
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer = exchange(&parts, &body, &state);
    let (status, document) = match answer {
        Ok(document) => (StatusCode::OK, document),
        Err((status, error)) => (status, json!({"error": error})),
    };
    let mut response = Response::new(Full::new(Bytes::from(document.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

type Refused = (StatusCode, &'static str);

/// RFC 8693 §2.1-2.2: the checks an identity provider makes, in its order.
fn exchange(
    parts: &http::request::Parts,
    body: &[u8],
    state: &State,
) -> Result<serde_json::Value, Refused> {
    let bad = |error| (StatusCode::BAD_REQUEST, error);
    if parts.method != http::Method::POST || parts.uri.path() != PATH {
        return Err((StatusCode::NOT_FOUND, "not_found"));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    let assertion_key = state
        .assertion_key
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let authenticated = match assertion_key {
        None => client_authenticated(&parts.headers),
        Some(key) => {
            parts.headers.get(http::header::AUTHORIZATION).is_none()
                && field("client_id") == Some(CLIENT_ID)
                && field("client_assertion_type") == Some(ASSERTION_TYPE)
                && field("client_assertion").is_some_and(|jwt| assertion_verified(jwt, &key, state))
        }
    };
    if !authenticated {
        return Err((StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    let form_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if form_type != Some("application/x-www-form-urlencoded") {
        return Err(bad("invalid_request"));
    }
    if field("grant_type") != Some(TOKEN_EXCHANGE) {
        return Err(bad("unsupported_grant_type"));
    }
    if field("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return Err(bad("invalid_request"));
    }
    let sub = field("subject_token")
        .and_then(verified_subject)
        .ok_or(bad("invalid_request"))?;
    let audience = field("audience").ok_or(bad("invalid_target"))?;
    if audience != UPSTREAM_AUDIENCE {
        return Err(bad("invalid_target"));
    }
    let n = state.exchanges.fetch_add(1, Ordering::SeqCst);
    let token = opaque_token(n, &sub, audience);
    state
        .issued
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            token.clone(),
            Issued {
                sub,
                audience: audience.to_string(),
            },
        );
    Ok(json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": state.expires_in.load(Ordering::SeqCst),
    }))
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
fn client_authenticated(headers: &http::HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    let Some((id, secret)) = text.split_once(':') else {
        return false;
    };
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    decode(id).as_deref() == Some(CLIENT_ID) && decode(secret).as_deref() == Some(CLIENT_SECRET)
}

/// RFC 7523 §3: signed with the client's key, iss = sub = the client id, aud = this
/// endpoint, not expired, and a `jti` never seen before.
fn assertion_verified(
    jwt: &str,
    (key, alg, url): &(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm, String),
    state: &State,
) -> bool {
    let mut validation = jsonwebtoken::Validation::new(*alg);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_audience(&[url.as_str()]);
    validation.sub = Some(CLIENT_ID.to_string());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(jwt, key, &validation) else {
        return false;
    };
    let Some(jti) = data.claims["jti"].as_str() else {
        return false;
    };
    state
        .jtis
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(jti.to_string())
}

/// The subject token's `sub`, when it is signed with the test identity key and was
/// issued by the test issuer for lastmile's audience.
fn verified_subject(token: &str) -> Option<String> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[jwt::ISSUER]);
    validation.set_audience(&[jwt::AUDIENCE]);
    let key = jsonwebtoken::DecodingKey::from_secret(jwt::SECRET.as_bytes()).ok()?;
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).ok()?;
    data.claims["sub"].as_str().map(str::to_string)
}

/// An opaque token: nothing in it names the user or the audience.
fn opaque_token(n: usize, sub: &str, audience: &str) -> String {
    let digest = sha2::Sha256::digest(format!(
        "{n}/{sub}/{audience}/{:?}",
        std::time::SystemTime::now()
    ));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("at.{hex}")
}
