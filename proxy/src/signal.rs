//! The process shutdown signal: SIGTERM (what Kubernetes sends) or Ctrl-C.

/// Completes when the process is asked to stop.
pub async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops lastmile")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
