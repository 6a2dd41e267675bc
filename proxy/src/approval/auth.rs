//! Who is approving: a bearer token from the approvers file, or a JWT from the identity
//! key set carrying the approver role. The approver's name is what every decision
//! records, and what the self-approval check compares with the acting user.

use crate::identity::Verifier;
use std::path::PathBuf;

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
    verifier: Option<Verifier>,
    role: String,
}

impl ApproverAuth {
    pub fn new(tokens_file: Option<PathBuf>, verifier: Option<Verifier>, role: String) -> Self {
        ApproverAuth {
            tokens_file,
            verifier,
            role,
        }
    }

    /// Checks the `Authorization: Bearer` header.
    pub fn from_headers(&self, headers: &http::HeaderMap) -> Result<Approver, AuthError> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.check(token)
    }

    /// Checks one token: the approvers file first, then the JWT key set.
    pub fn check(&self, token: &str) -> Result<Approver, AuthError> {
        if let Some(path) = &self.tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                tracing::error!(error = %e, "reading the approvers file");
                AuthError::Unavailable
            })?;
            if let Some(name) = find_token(&text, token) {
                return Ok(Approver {
                    name,
                    valid_until: None,
                });
            }
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
        if has_role(&user.claims, &self.role) {
            let exp = match &user.claims["exp"] {
                regorus::Value::Number(n) => n.as_u64(),
                _ => None,
            };
            Ok(Approver {
                name: sub,
                valid_until: exp,
            })
        } else {
            Err(AuthError::NotApprover)
        }
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
        if constant_time_eq(expected.as_bytes(), token.as_bytes()) && found.is_none() {
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

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
