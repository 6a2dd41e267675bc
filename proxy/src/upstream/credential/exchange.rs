//! The `token_exchange` credential: RFC 8693 OAuth 2.0 Token Exchange. The acting
//! user's verified token goes to the identity provider's token endpoint as
//! `subject_token`, lastmile authenticates as its client (`client_secret_basic`), and
//! the access token that comes back is injected for the upstream.
//!
//! Tokens are cached per user until shortly before they expire ([`cache`]), one exchange
//! is in flight per user, each exchange has a time limit, and a failure is remembered
//! for a moment so a failing endpoint is not hammered. Neither the user's token, the
//! client secret nor a minted token is ever logged: failures carry fixed reasons and the
//! endpoint's OAuth `error` code only.

use super::cache::{Cache, Slot};
use super::CredentialError;
use crate::config::{AssertionAlg, ClientAuth, TokenExchangeConfig};
use crate::identity::SubjectToken;
use crate::upstream::{self, UpstreamClient};
use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use prometheus::{IntCounterVec, IntGauge};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// A token endpoint's answer larger than this is not a token response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Used when the endpoint does not say how long its token lives (`expires_in` is only
/// RECOMMENDED by RFC 6749 §5.1).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// A token is used until this much (or a tenth of its life, if shorter) before it
/// expires, so it does not expire between lastmile and the upstream.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// The exchange metrics of one route.
pub struct ExchangeMetrics {
    /// `lastmile_credential_exchanges_total`, by route and outcome.
    pub outcomes: IntCounterVec,
    /// `lastmile_credential_cache_entries` for this route.
    pub cache_entries: IntGauge,
}

pub struct TokenExchange {
    config: TokenExchangeConfig,
    route: String,
    client: UpstreamClient,
    cache: Cache,
    metrics: ExchangeMetrics,
}

/// What the token endpoint answers (RFC 8693 §2.2.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl TokenExchange {
    /// Builds the endpoint's client (webpki roots plus `ca_file`); the client secret
    /// must be readable now, and is read again for each exchange so a rotated Secret
    /// is used without a restart.
    pub fn new(
        config: &TokenExchangeConfig,
        route: &str,
        metrics: ExchangeMetrics,
    ) -> Result<TokenExchange> {
        match &config.client_auth {
            ClientAuth::SecretBasic(file) => {
                read_secret(file).with_context(|| {
                    format!("reading credential.client_secret_file {}", file.display())
                })?;
            }
            ClientAuth::PrivateKeyJwt { key_file, .. } => {
                assertion(config).map_err(|reason| {
                    anyhow::anyhow!(
                        "credential.client_assertion_key_file {}: {reason}",
                        key_file.display()
                    )
                })?;
            }
        }
        Ok(TokenExchange {
            client: upstream::client_with(config.ca_file.as_deref(), config.timeout)?,
            config: config.clone(),
            route: route.to_string(),
            cache: Cache::default(),
            metrics,
        })
    }

    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// The user's exchanged token: cached, or exchanged now (one exchange per user at a
    /// time; concurrent calls wait for it and share its result).
    pub async fn value(
        &self,
        subject: &str,
        token: &SubjectToken,
    ) -> Result<HeaderValue, CredentialError> {
        let slot = self.cache.slot(subject);
        self.metrics.cache_entries.set(self.cache.len() as i64);
        if let Some(value) = slot.fresh() {
            self.count("cached");
            return Ok(value);
        }
        let _flight = slot.flight.lock().await;
        if let Some(value) = slot.fresh() {
            self.count("cached");
            return Ok(value);
        }
        if let Some(reason) = slot.backing_off() {
            self.count("backoff");
            return Err(CredentialError::Exchange(format!(
                "{reason} (a recent exchange failed; retry shortly)"
            )));
        }
        self.exchange_into(&slot, token).await
    }

    /// The user's token for an approved execution: only a cached, unexpired one. The
    /// user's own token is not stored with a parked request, so there is nothing to
    /// exchange, and no broader credential is used in its place.
    pub fn cached(&self, subject: &str) -> Result<HeaderValue, CredentialError> {
        self.cache.cached(subject).ok_or_else(|| {
            CredentialError::Exchange(
                "no unexpired exchanged token is held for this user; an approved request is executed only with one"
                    .into(),
            )
        })
    }

    async fn exchange_into(
        &self,
        slot: &Slot,
        token: &SubjectToken,
    ) -> Result<HeaderValue, CredentialError> {
        match self.exchange(token).await {
            Ok((value, lifetime)) => {
                self.count("exchanged");
                let margin = EXPIRY_MARGIN.min(lifetime / 10);
                slot.store(value.clone(), lifetime.saturating_sub(margin));
                Ok(value)
            }
            Err((outcome, reason)) => {
                self.count(outcome);
                tracing::warn!(route = %self.route, outcome, %reason, "token exchange failed");
                slot.fail(reason.clone());
                Err(CredentialError::Exchange(reason))
            }
        }
    }

    /// One exchange, bounded by the configured timeout. `Err` carries the outcome label
    /// and a reason safe to show the agent.
    async fn exchange(
        &self,
        token: &SubjectToken,
    ) -> Result<(HeaderValue, Duration), (&'static str, String)> {
        let request = self.request(token)?;
        let answer = tokio::time::timeout(self.config.timeout, async {
            let response = self.client.request(request).await.map_err(|e| {
                let what = if e.is_connect() {
                    "the token endpoint could not be reached"
                } else {
                    "the connection to the token endpoint failed"
                };
                ("unreachable", what.to_string())
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|_| {
                    let reason = "the token endpoint's answer could not be read".to_string();
                    ("invalid_response", reason)
                })?
                .to_bytes();
            Ok::<_, (&'static str, String)>((status, body))
        })
        .await;
        let (status, body) = match answer {
            Err(_) => {
                return Err((
                    "timeout",
                    "the token endpoint did not answer in time".into(),
                ))
            }
            Ok(result) => result?,
        };
        if !status.is_success() {
            return Err(("refused", refused_reason(status, &body)));
        }
        self.minted(&body)
    }

    /// The exchange request (RFC 8693 §2.1), the client authenticated with HTTP Basic
    /// (RFC 6749 §2.3.1) or a signed assertion (RFC 7523 §2.2).
    fn request(
        &self,
        token: &SubjectToken,
    ) -> Result<Request<Full<Bytes>>, (&'static str, String)> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let authorization = match &self.config.client_auth {
            ClientAuth::SecretBasic(file) => Some(basic(&self.config.client_id, file)?),
            ClientAuth::PrivateKeyJwt { .. } => {
                let jwt = assertion(&self.config)
                    .map_err(|reason| ("client_key_unavailable", reason.to_string()))?;
                form.append_pair("client_id", &self.config.client_id)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", &jwt);
                None
            }
        };
        form.append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("subject_token", token.as_str())
        .append_pair("subject_token_type", self.config.subject_token_type)
        .append_pair(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        );
        for (name, value) in [
            ("audience", &self.config.audience),
            ("resource", &self.config.resource),
            ("scope", &self.config.scope),
        ] {
            if let Some(value) = value {
                form.append_pair(name, value);
            }
        }
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.config.token_endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        request
            .body(Full::new(Bytes::from(form.finish())))
            .map_err(|_| {
                (
                    "invalid_request",
                    "the exchange request could not be built".to_string(),
                )
            })
    }

    /// The header value and lifetime of a successful answer.
    fn minted(&self, body: &[u8]) -> Result<(HeaderValue, Duration), (&'static str, String)> {
        let invalid = |what: &str| {
            (
                "invalid_response",
                format!("the token endpoint's answer {what}"),
            )
        };
        let parsed: TokenResponse =
            serde_json::from_slice(body).map_err(|_| invalid("is not a token response"))?;
        if parsed.access_token.is_empty() {
            return Err(invalid("holds an empty access_token"));
        }
        let mut value =
            HeaderValue::from_str(&format!("{}{}", self.config.prefix, parsed.access_token))
                .map_err(|_| invalid("holds an access_token that is not a header value"))?;
        value.set_sensitive(true);
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok((value, lifetime))
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .outcomes
            .with_label_values(&[self.route.as_str(), outcome])
            .inc();
    }
}

/// The endpoint's status and its OAuth `error` code, when that is a plain code (it is
/// shown to the agent, so nothing else of the body is).
fn refused_reason(status: http::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .map(|e| e.error)
        .filter(|e| {
            !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
    match code {
        Some(code) => format!("the token endpoint refused the exchange ({status}, {code})"),
        None => format!("the token endpoint refused the exchange ({status})"),
    }
}

/// `Authorization: Basic` with id and secret form-encoded before base64 (RFC 6749 §2.3.1).
fn basic(client_id: &str, file: &Path) -> Result<HeaderValue, (&'static str, String)> {
    let secret = read_secret(file).map_err(|_| {
        (
            "client_secret_unavailable",
            "the client secret is unreadable".to_string(),
        )
    })?;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(client_id),
        encode(&secret)
    ));
    let mut authorization = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| {
        (
            "client_secret_unavailable",
            "the client secret is not usable".to_string(),
        )
    })?;
    authorization.set_sensitive(true);
    Ok(authorization)
}

/// Lifetime of a client assertion: it is used once, right away.
const ASSERTION_LIFETIME_SECS: u64 = 60;

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// A `private_key_jwt` assertion (RFC 7523 §3, OpenID Connect Core §9): issuer and
/// subject the client id, audience the token endpoint, a fresh `jti`, valid 60 s. The
/// key is read from its file each time so a rotated Secret is used without a restart.
/// The error names what failed, never the key.
fn assertion(config: &TokenExchangeConfig) -> Result<String, &'static str> {
    let ClientAuth::PrivateKeyJwt { key_file, alg, kid } = &config.client_auth else {
        return Err("no client assertion key is configured");
    };
    let pem = std::fs::read(key_file).map_err(|_| "the client assertion key is unreadable")?;
    let (key, algorithm) = match alg {
        AssertionAlg::Rs256 => (
            jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
            jsonwebtoken::Algorithm::RS256,
        ),
        AssertionAlg::Es256 => (
            jsonwebtoken::EncodingKey::from_ec_pem(&pem),
            jsonwebtoken::Algorithm::ES256,
        ),
    };
    let key = key.map_err(|_| "the client assertion key is not a PEM key for its alg")?;
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|_| "no randomness for the assertion's jti")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970")?
        .as_secs();
    let claims = AssertionClaims {
        iss: &config.client_id,
        sub: &config.client_id,
        aud: config.token_endpoint.to_string(),
        jti: crate::hex::encode(&jti),
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = kid.clone();
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| "the client assertion key could not sign (not a key for its alg)")
}

fn read_secret(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        anyhow::bail!("the client secret file is empty");
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_only_a_plain_oauth_error_code() {
        let status = http::StatusCode::BAD_REQUEST;
        assert_eq!(
            refused_reason(
                status,
                br#"{"error":"invalid_grant","error_description":"x"}"#
            ),
            "the token endpoint refused the exchange (400 Bad Request, invalid_grant)"
        );
        assert_eq!(
            refused_reason(status, br#"{"error":"eyJhbGciOi.secret"}"#),
            "the token endpoint refused the exchange (400 Bad Request)"
        );
    }
}
