//! The process shutdown signal: SIGTERM (what Kubernetes sends), SIGHUP (what
//! `systemctl reload`, a closing terminal and many operators send) or Ctrl-C.
//!
//! SIGHUP stops lastmile exactly as SIGTERM does, with a drain, rather than reloading:
//! policies already reload on their own when their files change, and the rest of the
//! config (listeners, routes, stores) is only read at start-up. Left at its default
//! disposition, SIGHUP would kill the process mid-request.

/// Completes when the process is asked to stop, after logging which signal asked.
pub async fn shutdown() {
    let name = received().await;
    tracing::info!(signal = name, "stop requested");
}

/// Waits for the first stop signal and names it.
#[cfg(unix)]
async fn received() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for {name}; it will not stop lastmile gracefully");
            None
        }
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    let mut hup = listen(SignalKind::hangup(), "SIGHUP");
    // A branch whose pattern does not match is disabled, so a signal that cannot be
    // listened for (or a failing Ctrl-C handler) never reads as a stop request.
    tokio::select! {
        Some(()) = next(term.as_mut()) => "SIGTERM",
        Some(()) = next(hup.as_mut()) => "SIGHUP",
        Ok(()) = tokio::signal::ctrl_c() => "SIGINT",
        // No way to be asked at all: serve on (SIGKILL still ends the process).
        else => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn received() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "Ctrl-C",
        Err(_) => std::future::pending().await,
    }
}

/// The next delivery of `signal`, or `None` when there is no listener.
#[cfg(unix)]
async fn next(signal: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => None,
    }
}
