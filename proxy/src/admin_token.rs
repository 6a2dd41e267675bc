//! The operator's bearer token (`admin.token_file`). It opens every admin endpoint: the
//! agent shares the pod's network namespace, so the admin port is no boundary, and
//! anything that reveals request data or changes state needs a credential the agent
//! cannot hold. The file is read on every check so a rotated secret applies at once.

use http::{header, HeaderMap};
use std::path::PathBuf;
use subtle::ConstantTimeEq;

/// The operator token's file, if configured.
#[derive(Debug, Clone, Default)]
pub struct OperatorToken {
    file: Option<PathBuf>,
}

/// What a presented bearer token is, as far as the operator token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorCheck {
    /// The operator's token.
    Accepted,
    /// Some other token, or none.
    Rejected,
    /// No `admin.token_file`: endpoints that need the operator are disabled.
    NotConfigured,
    /// The file could not be read (logged): fail closed.
    Unavailable,
}

impl OperatorToken {
    pub fn new(file: Option<PathBuf>) -> OperatorToken {
        OperatorToken { file }
    }

    /// Compares `given` with the token in the file, in constant time.
    pub fn check(&self, given: Option<&str>) -> OperatorCheck {
        let Some(path) = &self.file else {
            return OperatorCheck::NotConfigured;
        };
        let expected = match std::fs::read_to_string(path) {
            Ok(expected) => expected,
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "reading the admin token file");
                return OperatorCheck::Unavailable;
            }
        };
        let expected = expected.trim();
        match given {
            Some(given)
                if !expected.is_empty()
                    && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) =>
            {
                OperatorCheck::Accepted
            }
            _ => OperatorCheck::Rejected,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_file_on_every_call() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("admin-token");
        std::fs::write(&path, "tok-1\n")?;
        let token = OperatorToken::new(Some(path.clone()));
        assert_eq!(token.check(Some("tok-1")), OperatorCheck::Accepted);
        assert_eq!(token.check(Some("tok-")), OperatorCheck::Rejected);
        assert_eq!(token.check(None), OperatorCheck::Rejected);
        std::fs::write(&path, "tok-2\n")?;
        assert_eq!(token.check(Some("tok-1")), OperatorCheck::Rejected);
        std::fs::write(&path, "\n")?;
        assert_eq!(token.check(Some("")), OperatorCheck::Rejected);
        std::fs::remove_file(&path)?;
        assert_eq!(token.check(Some("tok-2")), OperatorCheck::Unavailable);
        assert_eq!(
            OperatorToken::new(None).check(Some("x")),
            OperatorCheck::NotConfigured
        );
        Ok(())
    }
}
