//! The identity provider's published key set (`identity.jwks_url`), fetched over HTTPS by
//! a background task: at start-up, on a schedule, and when a token names a `kid` no key
//! set holds (rate-limited, so a stream of forged `kid`s cannot hammer the IdP).
//!
//! The last good set is kept when a fetch fails; until one fetch has succeeded, tokens
//! only this set could verify are refused (fail closed), and the proxy serves anyway: an
//! IdP outage at deploy time must not crash-loop every pod.

use super::keys::{self, Key, Origin};
use crate::upstream::{self, UpstreamClient};
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{sleep, sleep_until, timeout, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole exchange, headers and body; a slow IdP delays only the next refresh.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Real key sets are a few KB; the cap keeps a broken or hostile endpoint from making
/// the proxy buffer without bound.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Where and how often to fetch.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub url: Uri,
    pub ca_file: Option<PathBuf>,
    pub refresh: Duration,
    pub min_refresh: Duration,
}

/// The fetched key set, shared between the verifier and its fetch task.
pub(super) struct RemoteKeys {
    keys: ArcSwapOption<Vec<Key>>,
    wake: Notify,
}

impl RemoteKeys {
    /// The last good set; `None` until a fetch has succeeded.
    pub fn current(&self) -> Option<Arc<Vec<Key>>> {
        self.keys.load_full()
    }

    /// Asks for a fetch soon (a token named an unknown `kid`); never waits for it.
    pub fn request_refresh(&self) {
        self.wake.notify_one();
    }
}

/// Aborts the fetch task when the verifier goes away.
pub(super) struct FetchTask(tokio::task::JoinHandle<()>);

impl Drop for FetchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds the HTTPS client (a bad CA file is a start-up error) and spawns the fetch task
/// on the current tokio runtime.
pub(super) fn start(source: Source) -> Result<(Arc<RemoteKeys>, FetchTask)> {
    let client = upstream::client_with(source.ca_file.as_deref(), CONNECT_TIMEOUT)
        .context("identity.jwks_ca_file")?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        bail!("identity.jwks_url: the key set is fetched by a task, which needs a tokio runtime");
    };
    let shared = Arc::new(RemoteKeys {
        keys: ArcSwapOption::empty(),
        wake: Notify::new(),
    });
    let fetcher = Fetcher {
        source,
        client,
        shared: shared.clone(),
        last_document: None,
    };
    Ok((shared, FetchTask(runtime.spawn(fetcher.run()))))
}

struct Fetcher {
    source: Source,
    client: UpstreamClient,
    shared: Arc<RemoteKeys>,
    last_document: Option<Bytes>,
}

impl Fetcher {
    async fn run(mut self) {
        loop {
            let started = Instant::now();
            let fetched = self.refresh().await;
            // After a failure, retry at the rate limit rather than the schedule, so a
            // proxy that never had a set recovers soon after the IdP does.
            let wait = if fetched {
                self.source.refresh
            } else {
                self.source.min_refresh
            };
            tokio::select! {
                () = sleep(wait) => {}
                () = self.shared.wake.notified() => {
                    sleep_until(started + self.source.min_refresh).await;
                }
            }
        }
    }

    /// One fetch; `true` when the set now in force is the one the IdP serves.
    async fn refresh(&mut self) -> bool {
        let url = redacted(&self.source.url);
        let document = match self.fetch().await {
            Ok(document) => document,
            Err(e) => {
                tracing::warn!(url, error = %format!("{e:#}"), "JWKS fetch failed; keeping the last good key set");
                return false;
            }
        };
        if self.last_document.as_ref() == Some(&document) {
            return true;
        }
        match keys::parse(&document, Origin::Url) {
            Ok(parsed) => {
                for skipped in &parsed.skipped {
                    tracing::warn!(url, "JWKS {skipped}; ignored");
                }
                tracing::info!(url, keys = parsed.keys.len(), "JWKS key set loaded");
                self.shared.keys.store(Some(Arc::new(parsed.keys)));
                self.last_document = Some(document);
                true
            }
            Err(e) => {
                tracing::warn!(url, error = %format!("{e:#}"), "JWKS fetch failed: invalid key set; keeping the last good key set");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<Bytes> {
        let request = Request::get(self.source.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            if response.status() != http::StatusCode::OK {
                bail!("the endpoint answered {}", response.status());
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the key set: {e}"))?;
            Ok(body.to_bytes())
        };
        timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("no key set within {FETCH_TIMEOUT:?}"))?
    }
}

/// The URL for logs, without user info or query (where a misconfigured URL could carry
/// a secret).
fn redacted(url: &Uri) -> String {
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("https://{}{port}{}", url.host().unwrap_or(""), url.path())
}
