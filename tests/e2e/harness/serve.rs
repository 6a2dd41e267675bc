//! The accept loop of the test servers: HTTP/1, plain or over TLS. The connections live
//! in a set owned by the loop's task, so aborting the task closes them too (a pooled
//! keep-alive connection must not outlive a server taken "down").

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves every connection on `listener` with `handler` until the task is aborted; with
/// `tls`, a connection whose handshake fails is dropped.
pub async fn accept<F, Fut>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (tls, handler) = (tls.clone(), handler.clone());
        connections.spawn(async move {
            let service = service_fn(handler);
            let builder = http1::Builder::new();
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
}
