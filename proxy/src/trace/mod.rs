//! The decision trace: one JSON line per request, written off the request path, with a
//! bounded in-memory ring of recent records for the admin API.
//!
//! Records hold what an investigation needs (who, what, which rules, which policy
//! revision, what upstream said) and never credentials or identity tokens; request
//! bodies only when configured, and then redacted.

pub mod context;
pub mod record;
pub mod redact;

use crate::config::{TraceConfig, TraceOutput};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use record::TraceRecord;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How many lines may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 8_192;

/// Where records go.
#[derive(Clone)]
pub struct TraceSink {
    lines: Option<mpsc::Sender<String>>,
    recent: Arc<Mutex<VecDeque<(String, String)>>>,
    ring_size: usize,
    metrics: Metrics,
}

impl TraceSink {
    /// Opens the output and starts the writer task.
    pub async fn start(config: &TraceConfig, metrics: Metrics) -> Result<TraceSink> {
        let writer: Option<Box<dyn AsyncWrite + Send + Unpin>> = match &config.output {
            TraceOutput::Off => None,
            TraceOutput::Stdout => Some(Box::new(tokio::io::stdout())),
            TraceOutput::File(path) => Some(Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .with_context(|| format!("opening trace file {}", path.display()))?,
            )),
        };
        let lines = writer.map(|w| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_lines(rx, w));
            tx
        });
        Ok(TraceSink {
            lines,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(config.ring_size))),
            ring_size: config.ring_size,
            metrics,
        })
    }

    /// Records one request. Never blocks: a writer that falls behind loses lines,
    /// counted in `lastmile_trace_records_dropped_total`.
    pub fn emit(&self, record: &TraceRecord) {
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "serialising a trace record");
                return;
            }
        };
        if self.ring_size > 0 {
            if let Ok(mut recent) = self.recent.lock() {
                if recent.len() >= self.ring_size {
                    recent.pop_front();
                }
                recent.push_back((record.trace_id.clone(), line.clone()));
            }
        }
        if let Some(tx) = &self.lines {
            if tx.try_send(line).is_err() {
                self.metrics.trace_dropped.inc();
            }
        }
    }

    /// The recent records of one trace, oldest first, as JSON lines.
    pub fn find(&self, trace_id: &str) -> Vec<String> {
        match self.recent.lock() {
            Ok(recent) => recent.iter().filter(|(id, _)| id == trace_id).map(|(_, line)| line.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

async fn write_lines(mut rx: mpsc::Receiver<String>, mut out: Box<dyn AsyncWrite + Send + Unpin>) {
    while let Some(line) = rx.recv().await {
        let mut batch = line;
        batch.push('\n');
        // Write whatever else is already queued in the same syscall.
        while let Ok(more) = rx.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        if let Err(e) = async {
            out.write_all(batch.as_bytes()).await?;
            out.flush().await
        }
        .await
        {
            tracing::error!(error = %e, "writing the decision trace");
        }
    }
}
