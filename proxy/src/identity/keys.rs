//! Verification keys and the documents they come in: a JWKS document or a PEM public
//! key (the keys file), a JWKS document (the JWKS URL), an HS256 secret file.
//!
//! Every key is bound to the algorithms of its own family (and, for EC, its curve), so a
//! token can never pick how it is checked: no HMAC with a public key as the secret.

use anyhow::{bail, Context, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::Path;

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// One verification key.
pub(super) struct Key {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl Key {
    /// Whether this key may check a token of `alg` naming `kid`. A key or token without a
    /// `kid` matches on the algorithm alone.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.algorithms.contains(&alg)
            && (kid.is_none() || self.kid.is_none() || self.kid.as_deref() == kid)
    }
}

/// Where a key document came from, which decides what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The operator's file: JWKS or PEM, symmetric keys allowed (the file is private).
    File,
    /// A published JWKS endpoint: a symmetric key there is readable by anyone who can
    /// fetch the set, so it would let them mint tokens; such keys are ignored.
    Url,
}

/// Keys parsed from a document, and a line per key left out (no key material in it).
pub(super) struct Parsed {
    pub keys: Vec<Key>,
    pub skipped: Vec<String>,
}

/// Parses a keys document. Keys lastmile cannot use (encryption keys, unknown types or
/// curves) are skipped and reported; a document with no usable key is an error.
pub(super) fn parse(bytes: &[u8], origin: Origin) -> Result<Parsed> {
    if !bytes.trim_ascii_start().starts_with(b"{") {
        if origin == Origin::Url {
            bail!("not a JWKS document");
        }
        return Ok(Parsed {
            keys: vec![pem_key(bytes)?],
            skipped: Vec::new(),
        });
    }
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(bytes).context("not a JWKS document")?;
    let mut parsed = Parsed {
        keys: Vec::new(),
        skipped: Vec::new(),
    };
    for (index, value) in document.keys.into_iter().enumerate() {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .map(str::to_string);
        let name = kid
            .as_deref()
            .map_or(format!("#{index}"), |k| format!("{k:?}"));
        match serde_json::from_value::<Jwk>(value)
            .context("not a JWK")
            .and_then(|jwk| jwk_key(&jwk, origin))
        {
            Ok(key) => parsed.keys.push(key),
            Err(e) => parsed.skipped.push(format!("key {name}: {e:#}")),
        }
    }
    if parsed.keys.is_empty() {
        bail!(
            "the JWKS document holds no usable signing key ({})",
            parsed.skipped.join("; ")
        );
    }
    Ok(parsed)
}

fn jwk_key(jwk: &Jwk, origin: Origin) -> Result<Key> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        bail!("not a signing key (use)");
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => bail!("unsupported elliptic curve"),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) if origin == Origin::Url => {
            bail!("a symmetric key in a published key set is ignored")
        }
        AlgorithmParameters::OctetKey(_) => {
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        }
        _ => bail!("unsupported key type"),
    };
    // A JWK's `alg` narrows its family to one algorithm; it can never widen it.
    let algorithms = match jwk.common.key_algorithm {
        Some(alg) => {
            let alg = Algorithm::try_from(alg).context("unsupported alg")?;
            if !family.contains(&alg) {
                bail!("alg does not match the key type");
            }
            vec![alg]
        }
        None => family,
    };
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key: DecodingKey::from_jwk(jwk).context("unusable JWK")?,
    })
}

fn pem_key(pem: &[u8]) -> Result<Key> {
    let key = |algorithms: &[Algorithm], key| Key {
        kid: None,
        algorithms: algorithms.to_vec(),
        key,
    };
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok(key(RSA_ALGS, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok(key(&[Algorithm::ES256, Algorithm::ES384], k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok(key(&[Algorithm::EdDSA], k));
    }
    bail!("neither a JWKS document nor an RSA, EC or Ed25519 public key in PEM")
}

/// The HS256 secret in `path` (surrounding whitespace trimmed), at least 32 bytes.
pub(super) fn hs256_secret(path: &Path) -> Result<Key> {
    let secret = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = secret.trim_ascii();
    if secret.len() < 32 {
        bail!(
            "the HS256 secret in {} must be at least 32 bytes",
            path.display()
        );
    }
    Ok(Key {
        kid: None,
        algorithms: vec![Algorithm::HS256],
        key: DecodingKey::from_secret(secret)?,
    })
}
