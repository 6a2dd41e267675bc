//! Accepting connections and serving HTTP/1.1 and h2c on them, with a header read
//! timeout (hyper only enforces one when a timer is set), header count and size limits
//! (431), a cap on open connections, and a graceful drain.

use crate::config::ServerConfig;
use crate::response::ResponseBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Serves `handler` on every connection accepted from `listener` until `shutdown`
/// turns true, then stops accepting and lets open requests finish within the grace
/// period.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    settings: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let builder = connection_builder(&settings);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    while let Some((stream, permit)) = accept_next(&listener, &connections, &mut shutdown).await {
        serve_connection(&builder, &graceful, stream, permit, handler.clone());
    }
    drop(listener);
    drain(graceful, settings.shutdown_grace).await;
}

/// HTTP/1 and HTTP/2 with the configured limits; the timers make hyper enforce the
/// header read timeout at all.
fn connection_builder(settings: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(settings.max_headers)
        .max_buf_size(settings.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The next connection with the permit that counts it open; `None` once shutdown
/// begins.
async fn accept_next(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog instead
        // of getting a connection lastmile cannot serve.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            _ = shutdown.wait_for(|stop| *stop) => return None,
        };
        let Ok(permit) = permit else { return None };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return None,
        };
        match accepted {
            Ok((stream, _)) => return Some((stream, permit)),
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection on its own task, watched by `graceful` so the drain waits for
/// it; its permit is released when it ends.
fn serve_connection<F, Fut>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(request).await) }
    });
    let connection = graceful.watch(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned(),
    );
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        drop(permit);
    });
}

/// Lets open connections finish, up to the grace period; the rest are closed.
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
}
