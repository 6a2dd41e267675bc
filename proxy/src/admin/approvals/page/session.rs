//! Signed-in approvers (in memory: a restart signs everyone out) and the checks every
//! form post passes: a live session, its CSRF token, and a same-origin browser.
//!
//! A session keeps the credential it was opened with, so every request can check it
//! again: removing an approver's line, rotating the operator token or a JWT expiring
//! ends the session at once, not at the end of its TTL.

use crate::approval::auth::Approver;
use http::{header, HeaderMap};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "lastmile_approver";
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions beyond this many are refused rather than grown without bound.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    approver: Approver,
    csrf: String,
    /// The sign-in credential, kept in memory only (never logged or stored).
    credential: String,
    expires: Instant,
}

/// A live session as the page uses it.
pub struct SignedIn {
    pub approver: Approver,
    pub csrf: String,
    /// The credential to check again before the session is trusted.
    pub credential: String,
}

/// Signed-in approvers, by session id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    pub fn create(&self, approver: Approver, credential: &str) -> Option<String> {
        let id = crate::approval::new_id().ok()?;
        let csrf = crate::approval::new_id().ok()?;
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        // A session ends with the sign-in credential (a JWT's `exp`), or after the TTL.
        let ttl = approver
            .valid_until
            .map(|exp| {
                Duration::from_secs(exp.saturating_sub(crate::approval::system_now_ms() / 1000))
            })
            .map_or(SESSION_TTL, |left| left.min(SESSION_TTL));
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        map.insert(
            id.clone(),
            Session {
                approver,
                csrf,
                credential: credential.to_string(),
                expires: now + ttl,
            },
        );
        Some(id)
    }

    /// The request's session, if it is live. The caller checks its credential again.
    pub fn find(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let id = cookie(headers, COOKIE)?;
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| SignedIn {
                approver: s.approver.clone(),
                csrf: s.csrf.clone(),
                credential: s.credential.clone(),
            })
    }

    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A browser tells where a form post came from; anything but this origin is refused.
/// Clients that send neither header (curl) still need the session and its CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return false;
        }
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            host.is_some_and(|host| {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            })
        }
    }
}

pub fn form_value(form: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:15002"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:15002"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
