//! The `server:` section: the data port's connection limits and timeouts.

use super::raw::RawServer;
use anyhow::{bail, Result};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// More request headers than this: 431.
    pub max_headers: usize,
    /// The request head (line and headers) may not exceed this: 431.
    pub max_header_bytes: usize,
    /// The whole request body must arrive within this: 408.
    pub body_read_timeout: Duration,
    /// At this many open connections, lastmile stops accepting until one closes.
    pub max_connections: usize,
    /// At this many requests in progress, new ones are refused: 503.
    pub max_in_flight: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

/// hyper's HTTP/1 read buffer has this minimum; a smaller header limit cannot be set.
const MIN_HEADER_BYTES: usize = 8192;

pub(super) fn validate_server(raw: &RawServer) -> Result<ServerConfig> {
    if raw.max_header_bytes < MIN_HEADER_BYTES {
        bail!("server.max_header_bytes must be at least {MIN_HEADER_BYTES}");
    }
    if raw.max_headers == 0 || raw.max_connections == 0 || raw.max_in_flight == 0 {
        bail!("server.max_headers, max_connections and max_in_flight must be greater than zero");
    }
    if raw.max_concurrent_streams == 0
        || raw.header_read_timeout_ms == 0
        || raw.body_read_timeout_ms == 0
    {
        bail!("server.max_concurrent_streams and the read timeouts must be greater than zero");
    }
    Ok(ServerConfig {
        header_read_timeout: Duration::from_millis(raw.header_read_timeout_ms),
        shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
        max_headers: raw.max_headers,
        max_header_bytes: raw.max_header_bytes,
        body_read_timeout: Duration::from_millis(raw.body_read_timeout_ms),
        max_connections: raw.max_connections,
        max_in_flight: raw.max_in_flight,
        max_concurrent_streams: raw.max_concurrent_streams,
    })
}
