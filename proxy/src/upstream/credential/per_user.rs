//! The `per_user` credential: one file per acting user in a directory (a mounted
//! Secret), named by one of the user's verified claims.
//!
//! Each call checks the user's file's modification time and length (one `stat`), and
//! reads it again only when they changed, so a rotated Secret takes effect on the next
//! call. Values are never logged.

use super::CredentialError;
use crate::config::PerUserConfig;
use dashmap::DashMap;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::SystemTime;

/// Files longer than this are not credentials; they are refused rather than read.
const MAX_FILE_BYTES: u64 = 16 * 1024;

pub struct PerUser {
    config: PerUserConfig,
    /// By file name; at most one entry per file in the directory.
    cached: DashMap<String, Arc<Cached>>,
}

struct Cached {
    value: HeaderValue,
    modified: Option<SystemTime>,
    len: u64,
}

impl PerUser {
    pub fn new(config: &PerUserConfig) -> PerUser {
        if !config.dir.is_dir() {
            tracing::warn!(dir = %config.dir.display(), "per-user credential directory not readable yet; calls on this route are refused until it is");
        }
        PerUser {
            config: config.clone(),
            cached: DashMap::new(),
        }
    }

    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// The claim that names a user's file.
    pub fn claim(&self) -> &str {
        &self.config.claim
    }

    /// The header value for the user whose claim is `subject`.
    pub fn value(&self, subject: &str) -> Result<HeaderValue, CredentialError> {
        if !safe_file_name(subject) {
            return Err(CredentialError::NoUserCredential);
        }
        let path = self.config.dir.join(subject);
        let Ok(meta) = std::fs::metadata(&path) else {
            self.cached.remove(subject);
            return Err(CredentialError::NoUserCredential);
        };
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            return Err(CredentialError::NoUserCredential);
        }
        let modified = meta.modified().ok();
        if let Some(c) = self.cached.get(subject) {
            if c.modified == modified && c.len == meta.len() {
                return Ok(c.value.clone());
            }
        }
        let text = std::fs::read_to_string(&path).map_err(|_| CredentialError::NoUserCredential)?;
        let secret = text.trim_end_matches(['\n', '\r']).trim();
        if secret.is_empty() {
            return Err(CredentialError::NoUserCredential);
        }
        let mut value = HeaderValue::from_str(&format!("{}{}", self.config.prefix, secret))
            .map_err(|_| CredentialError::NoUserCredential)?;
        value.set_sensitive(true);
        self.cached.insert(
            subject.to_string(),
            Arc::new(Cached {
                value: value.clone(),
                modified,
                len: meta.len(),
            }),
        );
        Ok(value)
    }
}

/// A claim value names a file only when it cannot reach outside the directory or a
/// Secret's hidden entries (`..data`, dotfiles).
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains("..")
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_that_could_escape_the_directory_are_refused() {
        for bad in [
            "", ".", "..", "../etc", "a/b", ".hidden", "a..b", "a\\b", "a\0",
        ] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
        for good in ["u_4471", "alice@example.com", "0f1e-22"] {
            assert!(safe_file_name(good), "{good:?}");
        }
    }

    #[test]
    fn reads_each_users_file_and_sees_changes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("alice"), "a-1\n")?;
        let creds = PerUser::new(&PerUserConfig {
            header: http::header::AUTHORIZATION,
            prefix: "Bearer ".into(),
            dir: dir.path().to_path_buf(),
            claim: "sub".into(),
        });
        assert_eq!(
            creds.value("alice").ok(),
            Some(HeaderValue::from_static("Bearer a-1"))
        );
        assert!(matches!(
            creds.value("bob"),
            Err(CredentialError::NoUserCredential)
        ));
        std::fs::write(dir.path().join("alice"), "a-second\n")?;
        assert_eq!(
            creds.value("alice").ok(),
            Some(HeaderValue::from_static("Bearer a-second"))
        );
        std::fs::remove_file(dir.path().join("alice"))?;
        assert!(creds.value("alice").is_err());
        Ok(())
    }
}
