//! The acting user: a JWT in a request header, verified against the configured keys.
//!
//! Keys come from any mix of three sources, used as one set: the keys file (re-read when
//! it changes), an HS256 secret file, and the identity provider's JWKS URL (fetched in
//! the background). Verification is strict: every key is bound to the algorithms of its
//! own family, so a token can never pick how it is checked (no `alg: none`, no HMAC
//! with a public key); `exp` is required; `iss` and `aud` are required and must match
//! when configured; time claims must be numbers (`claims.rs` checks all of this itself,
//! after the library has checked the signature).

mod claims;
mod file;
mod jwks;
mod keys;

use crate::config::IdentityConfig;
use anyhow::{bail, Result};
use http::HeaderMap;
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use keys::Key;
use regorus::Value;
use std::sync::Arc;

/// A verified acting user.
#[derive(Debug, Clone)]
pub struct User {
    /// The `sub` claim, when it is a string (traces record it).
    pub sub: Option<String>,
    /// Every claim, with `scope` normalised to a list; becomes `input.user`.
    pub claims: Value,
    /// The verified token itself, for a route that exchanges it (RFC 8693). Absent on a
    /// stored request: approval records never hold it.
    pub token: Option<SubjectToken>,
}

/// A verified user token, kept only in memory for the request it came with. `Debug`
/// never shows it, so logging a [`User`] cannot leak it.
#[derive(Clone)]
pub struct SubjectToken(Arc<str>);

impl SubjectToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectToken(<redacted>)")
    }
}

/// Why a token was refused. The message is safe to return: a fixed text that never
/// echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub &'static str);

/// Verifies identity tokens. `Send + Sync`: one verifier serves every request; key
/// rotation (file or JWKS) happens behind it without a restart.
pub struct Verifier {
    header: http::HeaderName,
    /// The key sources, shared by every verifier [`Verifier::expecting`] derives.
    static_keys: Arc<Vec<Key>>,
    file: Option<Arc<file::FileKeys>>,
    remote: Option<Arc<jwks::RemoteKeys>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_seconds: u64,
    /// Dropping the last verifier holding it stops the JWKS fetches.
    _fetch_task: Option<Arc<jwks::FetchTask>>,
}

impl Verifier {
    /// Loads the configured keys: `keys_file` (JWKS or PEM) and `hs256_secret_file` are
    /// read now (an unusable one is an error); with `jwks_url`, spawns the task that
    /// fetches the set (so it must be called inside a tokio runtime) and returns at once.
    pub fn new(config: &IdentityConfig) -> Result<Verifier> {
        let file = config
            .keys_file
            .as_deref()
            .map(|path| file::FileKeys::load(path, file::CHECK_EVERY))
            .transpose()?;
        let static_keys = config
            .hs256_secret_file
            .as_deref()
            .map(keys::hs256_secret)
            .transpose()?
            .into_iter()
            .collect();
        let (remote, fetch_task) = match &config.jwks_url {
            Some(url) => {
                let (remote, task) = jwks::start(jwks::Source {
                    url: url.clone(),
                    ca_file: config.jwks_ca_file.clone(),
                    refresh: config.jwks_refresh,
                    min_refresh: config.jwks_min_refresh,
                })?;
                (Some(remote), Some(task))
            }
            None => (None, None),
        };
        if file.is_none() && remote.is_none() && config.hs256_secret_file.is_none() {
            bail!("identity: set keys_file, hs256_secret_file or jwks_url");
        }
        Ok(Verifier {
            header: config.header.clone(),
            static_keys: Arc::new(static_keys),
            file: file.map(Arc::new),
            remote,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_seconds: config.leeway.as_secs(),
            _fetch_task: fetch_task.map(Arc::new),
        })
    }

    /// The same keys, with the same file check and JWKS fetch behind them, expecting
    /// other claims: approver tokens are verified against the identity key set without
    /// a second copy of its sources.
    pub fn expecting(&self, issuer: Option<String>, audience: Option<String>) -> Verifier {
        Verifier {
            header: self.header.clone(),
            static_keys: self.static_keys.clone(),
            file: self.file.clone(),
            remote: self.remote.clone(),
            issuer,
            audience,
            leeway_seconds: self.leeway_seconds,
            _fetch_task: self._fetch_task.clone(),
        }
    }

    /// The header that carries the token; it is never forwarded upstream.
    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    /// Verifies the request's token. `Ok(None)` when the request carries none.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Option<User>, IdentityError> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(IdentityError("more than one identity header"));
        }
        let text = value
            .to_str()
            .map_err(|_| IdentityError("the identity header is not visible ASCII"))?;
        let token = text.strip_prefix("Bearer ").unwrap_or(text).trim();
        self.verify_token(token).map(Some)
    }

    /// Verifies one token as it came (no header, no `Bearer ` prefix).
    pub fn verify_token(&self, token: &str) -> Result<User, IdentityError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| IdentityError("malformed token or unsupported algorithm"))?;
        let kid = header.kid.as_deref();
        // Snapshots: a rotation landing mid-verify affects only the next token.
        let file_keys = self.file.as_ref().map(|f| f.current());
        let remote_keys = self.remote.as_ref().and_then(|r| r.current());
        let sets = [
            Some(self.static_keys.as_slice()),
            file_keys.as_deref().map(Vec::as_slice),
            remote_keys.as_deref().map(Vec::as_slice),
        ];
        let candidates = sets.iter().flatten().flat_map(|set| set.iter());
        let mut error = None;
        for key in candidates.filter(|k| k.accepts(header.alg, kid)) {
            match jsonwebtoken::decode::<serde_json::Value>(
                token,
                &key.key,
                &self.validation(header.alg),
            ) {
                Ok(data) => {
                    let mut user = self.user(data.claims)?;
                    user.token = Some(SubjectToken(Arc::from(token)));
                    return Ok(user);
                }
                Err(e) => error = Some(describe(e.kind())),
            }
        }
        // A `kid` no set holds may be a key the IdP has just published: ask for a
        // (rate-limited) refresh, even if a key without a `kid` was tried and failed.
        if let (Some(remote), Some(kid)) = (&self.remote, kid) {
            let mut held = sets.iter().flatten().flat_map(|s| s.iter());
            if !held.any(|k| k.kid.as_deref() == Some(kid)) {
                remote.request_refresh();
            }
        }
        Err(
            error.unwrap_or(if self.remote.is_some() && remote_keys.is_none() {
                IdentityError("the identity provider's key set has not been fetched yet")
            } else {
                IdentityError("no key accepts this token's algorithm or key id")
            }),
        )
    }

    /// The library's checks, kept as a second line behind [`claims::check`].
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_seconds;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn user(&self, claims: serde_json::Value) -> Result<User, IdentityError> {
        let serde_json::Value::Object(mut claims) = claims else {
            return Err(IdentityError("token claims are not an object"));
        };
        let expected = claims::Expected {
            issuer: self.issuer.as_deref(),
            audience: self.audience.as_deref(),
            leeway: self.leeway_seconds,
        };
        claims::check(&claims, &expected, jsonwebtoken::get_current_timestamp())?;
        // OAuth carries scope as one space-separated string; policies want a list.
        if let Some(serde_json::Value::String(scope)) = claims.get("scope") {
            let list = scope
                .split_whitespace()
                .map(serde_json::Value::from)
                .collect();
            claims.insert("scope".into(), serde_json::Value::Array(list));
        }
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        Ok(User {
            sub,
            claims: Value::from(serde_json::Value::Object(claims)),
            token: None,
        })
    }
}

fn describe(kind: &ErrorKind) -> IdentityError {
    IdentityError(match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "token lacks the exp claim",
            "iss" => "token lacks the iss claim",
            "aud" => "token lacks the aud claim",
            _ => "token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "exp" | "nbf" | "iat" => "token time claims (exp, nbf, iat) must be numbers",
            _ => "token claim has the wrong type",
        },
        ErrorKind::InvalidSignature => "token signature invalid",
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
        _ => "malformed token",
    })
}

#[cfg(test)]
mod tests;
