//! The acting user: a JWT in a request header, verified against configured keys.
//!
//! Verification is strict: every key is bound to the algorithms of its own family, so a
//! token can never pick how it is checked (no `alg: none`, no HMAC-with-a-public-key
//! confusion); `exp` is required; `nbf`, `iss` and `aud` are checked with a small leeway.

use crate::config::IdentityConfig;
use anyhow::{bail, Context, Result};
use http::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use regorus::Value;
use std::path::Path;

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A verified acting user.
#[derive(Debug, Clone)]
pub struct User {
    /// The `sub` claim, when it is a string (traces record it).
    pub sub: Option<String>,
    /// Every claim, with `scope` normalised to a list; becomes `input.user`.
    pub claims: Value,
}

/// Why a token was refused. The message is safe to return: it never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub &'static str);

struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Verifies identity tokens against a fixed key set.
pub struct Verifier {
    header: http::HeaderName,
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_seconds: u64,
}

impl Verifier {
    /// Loads the configured keys: a JWKS or PEM public key in `keys_file`, and/or an
    /// HS256 secret in `hs256_secret_file`.
    pub fn new(config: &IdentityConfig) -> Result<Verifier> {
        let mut keys = Vec::new();
        if let Some(path) = &config.keys_file {
            keys.extend(
                load_keys_file(path)
                    .with_context(|| format!("loading identity keys {}", path.display()))?,
            );
        }
        if let Some(path) = &config.hs256_secret_file {
            let secret =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let secret = secret.trim_ascii();
            if secret.len() < 32 {
                bail!(
                    "the HS256 secret in {} must be at least 32 bytes",
                    path.display()
                );
            }
            keys.push(Key {
                kid: None,
                algorithms: vec![Algorithm::HS256],
                key: DecodingKey::from_secret(secret),
            });
        }
        if keys.is_empty() {
            bail!("identity: no usable keys were loaded");
        }
        Ok(Verifier {
            header: config.header.clone(),
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_seconds: config.leeway.as_secs(),
        })
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
        self.verify(token).map(Some)
    }

    /// Verifies one token as it came (no header, no `Bearer ` prefix).
    pub fn verify_token(&self, token: &str) -> Result<User, IdentityError> {
        self.verify(token)
    }

    fn verify(&self, token: &str) -> Result<User, IdentityError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| IdentityError("malformed token or unsupported algorithm"))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithms.contains(&header.alg)
                && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        let mut error = IdentityError("no key accepts this token's algorithm or key id");
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(
                token,
                &key.key,
                &self.validation(header.alg),
            ) {
                Ok(data) => return user_from_claims(data.claims),
                Err(e) => error = describe(e.kind()),
            }
        }
        Err(error)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_seconds;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }
}

fn describe(kind: &ErrorKind) -> IdentityError {
    IdentityError(match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidIssuer => "token issuer not accepted",
        ErrorKind::InvalidAudience => "token audience not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (exp, iss or aud)",
        ErrorKind::InvalidSignature => "token signature invalid",
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
        _ => "malformed token",
    })
}

fn user_from_claims(claims: serde_json::Value) -> Result<User, IdentityError> {
    let serde_json::Value::Object(mut claims) = claims else {
        return Err(IdentityError("token claims are not an object"));
    };
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
    })
}

fn load_keys_file(path: &Path) -> Result<Vec<Key>> {
    let bytes = std::fs::read(path)?;
    if bytes.trim_ascii_start().starts_with(b"{") {
        let set: JwkSet = serde_json::from_slice(&bytes).context("not a JWKS document")?;
        set.keys
            .iter()
            .map(|jwk| {
                let algorithms = match jwk.common.key_algorithm {
                    Some(alg) => vec![format!("{alg:?}")
                        .parse::<Algorithm>()
                        .context("unsupported JWK alg")?],
                    None => match &jwk.algorithm {
                        AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
                        AlgorithmParameters::EllipticCurve(p) => match p.curve {
                            EllipticCurve::P256 => vec![Algorithm::ES256],
                            EllipticCurve::P384 => vec![Algorithm::ES384],
                            _ => bail!("unsupported elliptic curve"),
                        },
                        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                        AlgorithmParameters::OctetKey(_) => {
                            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
                        }
                    },
                };
                let key = DecodingKey::from_jwk(jwk).context("unusable JWK")?;
                Ok(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithms,
                    key,
                })
            })
            .collect()
    } else {
        pem_key(&bytes).map(|k| vec![k])
    }
}

fn pem_key(pem: &[u8]) -> Result<Key> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(Key {
            kid: None,
            algorithms: RSA_ALGS.to_vec(),
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok(Key {
            kid: None,
            algorithms: vec![Algorithm::ES256, Algorithm::ES384],
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(Key {
            kid: None,
            algorithms: vec![Algorithm::EdDSA],
            key,
        });
    }
    bail!("neither a JWKS document nor an RSA, EC or Ed25519 public key in PEM")
}

#[cfg(test)]
mod tests;
