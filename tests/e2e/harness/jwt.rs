//! Identity tokens: HS256 tokens signed with the proxy's configured secret, and the
//! kinds of bad token an agent (or attacker) might present.

use anyhow::Result;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The HS256 secret written to the proxy's `identity.hs256_secret_file` (>= 32 bytes).
pub const SECRET: &str = "e2e-identity-hs256-secret-0123456789abcdef";
pub const ISSUER: &str = "https://idp.e2e.lastmile";
pub const AUDIENCE: &str = "lastmile";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Valid claims for `sub` with an OAuth-style space-separated `scope`, acting for the
/// `acme` account.
pub fn claims(sub: &str, scope: &str) -> Value {
    let now = now();
    json!({
        "sub": sub,
        "scope": scope,
        "account": "acme",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    })
}

pub fn sign(claims: &Value, secret: &str) -> Result<String> {
    Ok(encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )?)
}

/// A valid token.
pub fn token(sub: &str, scope: &str) -> Result<String> {
    sign(&claims(sub, scope), SECRET)
}

/// Well formed and correctly signed, but expired an hour ago (far past the leeway).
pub fn expired_token(sub: &str) -> Result<String> {
    let mut claims = claims(sub, "crm.read crm.write");
    claims["iat"] = json!(now() - 7200);
    claims["exp"] = json!(now() - 3600);
    sign(&claims, SECRET)
}

/// Correctly signed, but from an issuer the proxy does not trust.
pub fn wrong_issuer_token(sub: &str) -> Result<String> {
    let mut claims = claims(sub, "crm.read crm.write");
    claims["iss"] = json!("https://idp.evil.example");
    sign(&claims, SECRET)
}

/// Valid claims signed with a different secret.
pub fn wrong_signature_token(sub: &str) -> Result<String> {
    sign(
        &claims(sub, "crm.read crm.write"),
        "not-the-proxy-secret-but-just-as-long-0123",
    )
}

/// An unsigned token (`alg: none`, empty signature), built by hand since no sane JWT
/// library will produce one.
pub fn alg_none_token(sub: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT"}).to_string();
    let claims = claims(sub, "crm.read crm.write").to_string();
    format!(
        "{}.{}.",
        base64url(header.as_bytes()),
        base64url(claims.as_bytes())
    )
}

/// Base64url without padding (RFC 7515 §2).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 signing key for key-set tests, its public half published as a JWK under `kid`.
pub struct EsKey {
    pub kid: String,
    encoding: EncodingKey,
    public_raw: Vec<u8>,
}

impl EsKey {
    /// A fresh P-256 key pair.
    pub fn generate(kid: &str) -> Result<EsKey> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(EsKey {
            kid: kid.to_string(),
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?,
            public_raw: pair.public_key_raw().to_vec(),
        })
    }

    /// The public key as a JWK (RFC 7518 §6.2: `x` and `y` from the uncompressed point).
    pub fn jwk(&self) -> Result<Value> {
        let point = self.public_raw.strip_prefix(&[4u8][..]);
        let Some((x, y)) = point.filter(|p| p.len() == 64).map(|p| p.split_at(32)) else {
            anyhow::bail!("not an uncompressed P-256 point");
        };
        Ok(
            json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                  "kid": self.kid, "x": base64url(x), "y": base64url(y)}),
        )
    }

    /// Signs `claims` with ES256, naming this key's `kid` in the header.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.encoding)?)
    }
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[&EsKey]) -> Result<String> {
    let keys = keys.iter().map(|k| k.jwk()).collect::<Result<Vec<_>>>()?;
    Ok(json!({ "keys": keys }).to_string())
}
