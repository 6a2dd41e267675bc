//! The keys file, re-read when it changes, so an identity provider rotating keys into a
//! mounted file (a Kubernetes Secret, a sidecar writing it) needs no restart.
//!
//! The check rides on the verify path: at most one `stat` a second, and only while
//! tokens arrive, so an idle proxy does nothing at all. A watcher would notice sooner,
//! but keys rotate with overlap (the new key is published before tokens use it), and a
//! stat of the path follows Kubernetes' symlink swaps without special cases.

use super::keys::{self, Key, Origin};
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often, at most, the file's metadata is checked.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What identifies one version of the file: a rename (atomic replace, symlink swap)
/// changes the inode, an in-place write the size or modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    /// `None` when the file cannot be stat'ed: that too is a version, logged once.
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }
}

struct Check {
    next: Instant,
    seen: Option<Stamp>,
}

/// The keys of one keys file, current as of the last check.
pub(super) struct FileKeys {
    path: PathBuf,
    every: Duration,
    keys: ArcSwap<Vec<Key>>,
    check: Mutex<Check>,
}

impl FileKeys {
    /// Reads the file now: at start-up an unreadable or invalid file is an error.
    pub fn load(path: &Path, every: Duration) -> Result<FileKeys> {
        let seen = Stamp::of(path);
        let keys = read(path)?;
        Ok(FileKeys {
            path: path.to_path_buf(),
            every,
            keys: ArcSwap::from_pointee(keys),
            check: Mutex::new(Check {
                next: Instant::now() + every,
                seen,
            }),
        })
    }

    /// The current keys, after re-reading the file if it changed since the last check.
    pub fn current(&self) -> Arc<Vec<Key>> {
        self.refresh();
        self.keys.load_full()
    }

    fn refresh(&self) {
        // One request checks; concurrent ones use the keys they have rather than wait.
        let Ok(mut check) = self.check.try_lock() else {
            return;
        };
        let now = Instant::now();
        if now < check.next {
            return;
        }
        check.next = now + self.every;
        let stamp = Stamp::of(&self.path);
        if stamp == check.seen {
            return;
        }
        check.seen = stamp;
        // A small local file, read once per change: cheap enough on a request thread.
        match read(&self.path) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), keys = keys.len(), "identity keys file reloaded");
                self.keys.store(Arc::new(keys));
            }
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                error = %format!("{e:#}"),
                "identity keys file unreadable or invalid; keeping the last good keys"
            ),
        }
    }
}

fn read(path: &Path) -> Result<Vec<Key>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = keys::parse(&bytes, Origin::File)
        .with_context(|| format!("loading identity keys {}", path.display()))?;
    for skipped in &parsed.skipped {
        tracing::warn!(path = %path.display(), "identity keys file: {skipped}; ignored");
    }
    Ok(parsed.keys)
}
