//! The `static` credential: one service credential for the whole route. The agent never holds it: it lives in a
//! file (usually a mounted Secret) or an environment variable of the sidecar.
//!
//! A file credential is re-read when the file changes (checked at most once a second),
//! so a rotated Secret takes effect without a restart. The value is never logged.

use crate::config::{CredentialSource, StaticCredentialConfig};
use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

const RECHECK_EVERY_MS: u64 = 1_000;

/// The current value of one route's credential.
pub struct StaticCredential {
    header: HeaderName,
    source: CredentialSource,
    prefix: String,
    cached: ArcSwapOption<Cached>,
    /// Milliseconds since `epoch` at the last file check.
    checked_at_ms: AtomicU64,
    epoch: Instant,
}

struct Cached {
    value: HeaderValue,
    modified: Option<SystemTime>,
    len: u64,
}

/// The credential could not be read; the request is refused rather than sent without it.
#[derive(Debug, thiserror::Error)]
#[error("the route's upstream credential is unavailable")]
pub struct CredentialUnavailable;

impl StaticCredential {
    pub fn new(config: &StaticCredentialConfig) -> StaticCredential {
        let credential = StaticCredential {
            header: config.header.clone(),
            source: config.source.clone(),
            prefix: config.prefix.clone(),
            cached: ArcSwapOption::empty(),
            checked_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        if credential.refresh().is_none() {
            tracing::warn!(header = %config.header, "upstream credential not readable yet; requests on this route are refused until it is");
        }
        credential
    }

    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The header value to inject.
    pub fn value(&self) -> Result<HeaderValue, CredentialUnavailable> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.checked_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECHECK_EVERY_MS {
            if let Some(cached) = self.cached.load().as_ref() {
                return Ok(cached.value.clone());
            }
        }
        self.refresh()
            .map(|c| c.value.clone())
            .ok_or(CredentialUnavailable)
    }

    fn refresh(&self) -> Option<Arc<Cached>> {
        self.checked_at_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let CredentialSource::File(path) = &self.source else {
            if let Some(c) = self.cached.load_full() {
                return Some(c);
            }
            let CredentialSource::Env(var) = &self.source else {
                return None;
            };
            let fresh = Arc::new(self.build(std::env::var(var).ok()?.trim(), None, 0)?);
            self.cached.store(Some(fresh.clone()));
            return Some(fresh);
        };
        let meta = std::fs::metadata(path).ok()?;
        let current = self.cached.load_full();
        if let Some(c) = &current {
            if c.modified == meta.modified().ok() && c.len == meta.len() {
                return current;
            }
        }
        let text = std::fs::read_to_string(path).ok()?;
        let fresh = Arc::new(self.build(text.trim(), meta.modified().ok(), meta.len())?);
        self.cached.store(Some(fresh.clone()));
        Some(fresh)
    }

    fn build(&self, secret: &str, modified: Option<SystemTime>, len: u64) -> Option<Cached> {
        if secret.is_empty() {
            return None;
        }
        let mut value = HeaderValue::from_str(&format!("{}{}", self.prefix, secret)).ok()?;
        value.set_sensitive(true);
        Some(Cached {
            value,
            modified,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_the_file_when_it_changes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n")?;
        let cred = StaticCredential::new(&StaticCredentialConfig {
            header: http::header::AUTHORIZATION,
            source: CredentialSource::File(path.clone()),
            prefix: "Bearer ".into(),
        });
        assert_eq!(cred.value()?, "Bearer one");
        std::fs::write(&path, "second")?;
        assert_eq!(
            cred.refresh().map(|c| c.value.clone()),
            Some(HeaderValue::from_static("Bearer second"))
        );
        std::fs::remove_file(&path)?;
        assert!(cred.refresh().is_none());
        Ok(())
    }
}
