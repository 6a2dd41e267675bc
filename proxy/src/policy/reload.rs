//! Keeping the live policy current: a directory watch, debounced, plus a periodic poll.
//!
//! The directory (not its files) is watched, because a ConfigMap update swaps the
//! `..data` symlink and never touches the file names; any event at all triggers a full
//! re-read. The poll catches whatever the watch misses (inotify queue overflow, a
//! watch lost with a replaced directory). Both feed the same [`PolicyStore::reload`],
//! which does nothing when the content is unchanged.

use super::PolicyStore;
use notify::{RecursiveMode, Watcher};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{sleep, Instant};

/// Once changes start, a reload happens at most this long after the first one even if
/// events keep arriving.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// A running watch on the policy directories.
pub struct Watch {
    store: Arc<PolicyStore>,
    changed: Arc<Notify>,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Starts watching now, before serving begins, so no change made after the proxy
/// reports ready can be missed.
pub fn start(store: Arc<PolicyStore>) -> Watch {
    let changed = Arc::new(Notify::new());
    let watcher = start_watcher(&store, changed.clone());
    Watch {
        store,
        changed,
        _watcher: watcher,
    }
}

impl Watch {
    /// Reloads on every settled change and every poll until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let debounce = self.store.config().reload_debounce;
        let mut poll = tokio::time::interval(self.store.config().poll_interval);
        tokio::pin!(shutdown);
        // The first tick is immediate: it catches a change made between the initial
        // load and the start of the watch.
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = poll.tick() => {}
                _ = self.changed.notified() => settle(&self.changed, debounce).await,
            }
            let store = self.store.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || store.reload()).await {
                tracing::error!(error = %e, "policy reload task failed");
            }
        }
    }
}

/// Waits until no change has arrived for `debounce`, or for [`MAX_DEBOUNCE`] at most:
/// a ConfigMap update is several events, and the directory is only read once it settles.
async fn settle(changed: &Notify, debounce: Duration) {
    let deadline = Instant::now() + MAX_DEBOUNCE;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = sleep(debounce) => return,
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

fn start_watcher(store: &PolicyStore, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Err(e) = &event {
            tracing::warn!(error = %e, "policy directory watch error; the poll will catch up");
        }
        changed.notify_one();
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the policy directory; relying on the poll");
            return None;
        }
    };
    let config = store.config();
    for dir in std::iter::once(&config.dir).chain(&config.library_dirs) {
        if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch a policy directory; relying on the poll");
        }
    }
    Some(watcher)
}
