//! Who is approving: a bearer token from the approvers file, the operator's token, or a
//! JWT issued to the approvals audience carrying the approver role. The approver's name
//! is what every decision records, and what the self-approval check compares with the
//! acting user.
//!
//! The agent holds its users' identity tokens, so an approver JWT is never verified
//! like one: it must carry `approvals.jwt_audience`, which config refuses to let equal
//! the identity audience. Without that setting, JWTs never approve.

use crate::admin_token::{bearer, OperatorCheck, OperatorToken};
use crate::config::Config;
use crate::identity::Verifier;
use anyhow::{Context, Result};
use std::path::PathBuf;
use subtle::ConstantTimeEq;

/// The name decisions made with the operator's token are recorded under.
pub const OPERATOR: &str = "operator";

/// An authenticated approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub name: String,
    /// When the credential stops being valid (a JWT's `exp`, seconds since the epoch);
    /// a page session never outlives it.
    pub valid_until: Option<u64>,
}

/// Why a caller is not an approver. Messages never echo the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("send an approver token as Authorization: Bearer <token>")]
    Missing,
    #[error("the token is not an approver's")]
    Invalid,
    #[error("the token is valid but lacks the approver role")]
    NotApprover,
    #[error("the approvers file could not be read")]
    Unavailable,
}

/// Checks approver credentials.
pub struct ApproverAuth {
    /// Lines of `<name> <token>`, re-read on every check so edits apply at once.
    tokens_file: Option<PathBuf>,
    operator: OperatorToken,
    /// Verifies JWTs for the approvals audience; `None`: JWTs never approve.
    verifier: Option<Verifier>,
    role: String,
}

impl ApproverAuth {
    pub fn new(
        tokens_file: Option<PathBuf>,
        operator: OperatorToken,
        verifier: Option<Verifier>,
        role: String,
    ) -> Self {
        ApproverAuth {
            tokens_file,
            operator,
            verifier,
            role,
        }
    }

    /// The approver credentials `config` names; `None` without approvals. Approver
    /// JWTs are verified with `identity`'s keys (the proxy's own verifier, so the key
    /// sources are not watched or fetched twice) unless `approvals.jwt_keys_file` names
    /// a key set of their own.
    pub fn from_config(
        config: &Config,
        identity: Option<&Verifier>,
    ) -> Result<Option<ApproverAuth>> {
        let Some(approvals) = &config.approvals else {
            return Ok(None);
        };
        let verifier = match (&approvals.approver_jwt, &config.identity, identity) {
            (Some(jwt), Some(settings), Some(identity)) => {
                let issuer = jwt.issuer.clone().or_else(|| settings.issuer.clone());
                let audience = Some(jwt.audience.clone());
                match &jwt.keys_file {
                    Some(keys) => {
                        // The approvers' own key set replaces every identity key source.
                        let mut own = settings.clone();
                        own.keys_file = Some(keys.clone());
                        own.hs256_secret_file = None;
                        own.jwks_url = None;
                        own.jwks_ca_file = None;
                        own.issuer = issuer;
                        own.audience = audience;
                        Some(Verifier::new(&own).context("approvals: approver JWT keys")?)
                    }
                    None => Some(identity.expecting(issuer, audience)),
                }
            }
            _ => None,
        };
        Ok(Some(ApproverAuth::new(
            approvals.approvers_file.clone(),
            OperatorToken::new(config.admin_token_file.clone()),
            verifier,
            approvals.approver_role.clone(),
        )))
    }

    /// Checks the `Authorization: Bearer` header.
    pub fn from_headers(&self, headers: &http::HeaderMap) -> Result<Approver, AuthError> {
        self.check(bearer(headers).ok_or(AuthError::Missing)?)
    }

    /// Checks one token: the approvers file, the operator token, then the JWT key set.
    pub fn check(&self, token: &str) -> Result<Approver, AuthError> {
        if let Some(path) = &self.tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                tracing::error!(error = %e, file = %path.display(), "reading the approvers file");
                AuthError::Unavailable
            })?;
            if let Some(name) = find_token(&text, token) {
                return Ok(Approver {
                    name,
                    valid_until: None,
                });
            }
        }
        match self.operator.check(Some(token)) {
            OperatorCheck::Accepted => {
                return Ok(Approver {
                    name: OPERATOR.to_string(),
                    valid_until: None,
                })
            }
            OperatorCheck::Unavailable => return Err(AuthError::Unavailable),
            OperatorCheck::Rejected | OperatorCheck::NotConfigured => {}
        }
        let Some(verifier) = &self.verifier else {
            return Err(AuthError::Invalid);
        };
        // Only something shaped like a JWT is tried as one.
        if token.split('.').count() != 3 {
            return Err(AuthError::Invalid);
        }
        let user = verifier
            .verify_token(token)
            .map_err(|_| AuthError::Invalid)?;
        let Some(sub) = user.sub else {
            return Err(AuthError::Invalid);
        };
        if !has_role(&user.claims, &self.role) {
            return Err(AuthError::NotApprover);
        }
        let exp = match &user.claims["exp"] {
            regorus::Value::Number(n) => n.as_u64(),
            _ => None,
        };
        Ok(Approver {
            name: sub,
            valid_until: exp,
        })
    }
}

/// The name on the line whose token equals `token`. Every line is compared in full so
/// the time taken does not tell which line (or how much of a token) matched.
fn find_token(text: &str, token: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(expected), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) && found.is_none() {
            found = Some(name.to_string());
        }
    }
    found
}

/// `roles` as a list of strings, or one space-separated string.
fn has_role(claims: &regorus::Value, role: &str) -> bool {
    match &claims["roles"] {
        regorus::Value::Array(items) => items
            .iter()
            .any(|r| r.as_string().is_ok_and(|s| s.as_ref() == role)),
        regorus::Value::String(s) => s.split_whitespace().any(|r| r == role),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_lines() {
        let text = "# approvers\nalice  tok-a\n\nbob tok-b extra\ncarol tok-c\n";
        assert_eq!(find_token(text, "tok-a").as_deref(), Some("alice"));
        assert_eq!(find_token(text, "tok-b"), None);
        assert_eq!(find_token(text, "tok-c").as_deref(), Some("carol"));
        assert_eq!(find_token(text, "tok-"), None);
    }

    #[test]
    fn roles_as_list_or_string() {
        let list = regorus::Value::from(serde_json::json!({"roles": ["viewer", "approver"]}));
        let text = regorus::Value::from(serde_json::json!({"roles": "viewer approver"}));
        let none = regorus::Value::from(serde_json::json!({"roles": ["approver-ish"]}));
        assert!(has_role(&list, "approver"));
        assert!(has_role(&text, "approver"));
        assert!(!has_role(&none, "approver"));
    }
}
