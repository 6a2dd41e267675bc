//! `identity:` as written: how the acting user's token is found and verified.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default = "default_identity_header")]
    pub header: String,
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default = "default_leeway_s")]
    pub leeway_seconds: u64,
    /// The identity provider's JWKS endpoint (https only), fetched in the background.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM CA certificates trusted for `jwks_url`, besides the public roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// How often the key set is fetched again; default 300.
    #[serde(default = "default_jwks_refresh_s")]
    pub jwks_refresh_seconds: u64,
    /// The least time between two fetches: a token with an unknown `kid` asks for one
    /// early, and a failed fetch is retried, no sooner than this; default 30.
    #[serde(default = "default_jwks_min_refresh_s")]
    pub jwks_min_refresh_seconds: u64,
}

fn default_identity_header() -> String {
    "x-lastmile-user".into()
}
fn default_leeway_s() -> u64 {
    30
}
fn default_jwks_refresh_s() -> u64 {
    300
}
fn default_jwks_min_refresh_s() -> u64 {
    30
}
