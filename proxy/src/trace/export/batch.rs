//! An exporter: a bounded queue fed by [`crate::trace::TraceSink::emit`] and one task on
//! the async runtime that encodes records in batches and delivers them. The request path
//! only ever does a `try_send` of a reference-counted record: a slow or dead server fills
//! the queue, and the records that find it full are dropped and counted, never waited
//! for.

use super::deliver::{Collector, Delivered, Wire};
use super::endpoint::Endpoint;
use crate::trace::record::TraceRecord;
use anyhow::{Context, Result};
use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Records waiting for the exporter: sixteen full batches, room for a few seconds of
/// retries at a high request rate.
const QUEUE: usize = 8_192;
/// A batch is sent when it holds this many records...
const MAX_BATCH: usize = 512;
/// ...or when its first record has waited this long.
const BATCH_PERIOD: Duration = Duration::from_secs(1);
/// How long a flush (at shutdown) may take in all: sending, retrying and waiting for it.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// A batch sent in the ordinary course may retry for this long.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

/// The reasons of an exporter's dropped counter.
const QUEUE_FULL: &str = "queue_full";
const EXPORT_FAILED: &str = "export_failed";
const REJECTED: &str = "rejected";
const INVALID: &str = "invalid";

/// Turns a batch of records into one request body.
pub trait Encode: Send + 'static {
    fn encode(&mut self, records: &[Arc<TraceRecord>]) -> Encoded;
}

/// One batch, encoded.
pub struct Encoded {
    pub body: Bytes,
    /// The records the body holds.
    pub items: usize,
    /// Records that could not be encoded (left out).
    pub invalid: usize,
}

/// What an exporter counts: what the server accepted, and what was dropped, by reason
/// (`queue_full`, `export_failed`, `rejected`, `invalid`).
#[derive(Clone)]
pub struct Counters {
    pub exported: IntCounter,
    pub dropped: IntCounterVec,
}

/// A flush request: send what is queued, then acknowledge.
type Flush = (Instant, std::sync::mpsc::SyncSender<()>);

/// The request path's side of an exporter.
#[derive(Clone)]
pub struct Exporter {
    records: mpsc::Sender<Arc<TraceRecord>>,
    flushes: mpsc::UnboundedSender<Flush>,
    counters: Counters,
}

impl Exporter {
    /// Starts the export task on the current async runtime.
    pub fn start(
        endpoint: Endpoint,
        wire: Wire,
        encoder: impl Encode,
        counters: Counters,
    ) -> Result<Exporter> {
        let runtime = tokio::runtime::Handle::try_current()
            .with_context(|| format!("exporting {} needs the async runtime", wire.name))?;
        let name = wire.name;
        // The endpoint's host and path only: a query string could hold a key.
        tracing::info!(
            server = %endpoint.url.authority().map_or("", |a| a.as_str()),
            path = endpoint.url.path(),
            "exporting {name}"
        );
        let collector = Collector::new(endpoint, wire)
            .with_context(|| format!("building the client for exporting {name}"))?;
        for reason in [QUEUE_FULL, EXPORT_FAILED, REJECTED, INVALID] {
            counters.dropped.with_label_values(&[reason]);
        }
        let (records, queued) = mpsc::channel(QUEUE);
        let (flushes, flush_requests) = mpsc::unbounded_channel();
        let batcher = Batcher {
            collector,
            encoder: Box::new(encoder),
            records: Vec::with_capacity(MAX_BATCH),
            counters: counters.clone(),
        };
        runtime.spawn(batcher.run(queued, flush_requests));
        Ok(Exporter {
            records,
            flushes,
            counters,
        })
    }

    /// Queues `record` for export; never blocks.
    pub fn export(&self, record: Arc<TraceRecord>) {
        if self.records.try_send(record).is_err() {
            self.counters.dropped.with_label_values(&[QUEUE_FULL]).inc();
        }
    }

    /// Sends every record queued so far, waiting at most [`FLUSH_LIMIT`]. Blocks the
    /// calling thread: call it off the async runtime's workers (as shutdown does).
    pub fn flush(&self) {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if self
            .flushes
            .send((Instant::now() + FLUSH_LIMIT, ack))
            .is_ok()
        {
            // A little over the limit: the task answers once its last attempt has ended.
            let _ = done.recv_timeout(FLUSH_LIMIT + Duration::from_millis(250));
        }
    }
}

/// The export task's state: the batch being filled and where it goes.
struct Batcher {
    collector: Collector,
    encoder: Box<dyn Encode>,
    records: Vec<Arc<TraceRecord>>,
    counters: Counters,
}

impl Batcher {
    async fn run(
        mut self,
        mut queued: mpsc::Receiver<Arc<TraceRecord>>,
        mut flush_requests: mpsc::UnboundedReceiver<Flush>,
    ) {
        // When the batch being filled must go, whatever its size.
        let mut due: Option<Instant> = None;
        loop {
            let period = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A flush first: shutdown is waiting for it.
                biased;
                Some((deadline, ack)) = flush_requests.recv() => {
                    // Everything emitted before the flush is in the queue by now; at most a
                    // queue's worth is taken, so records still arriving cannot hold it open.
                    for _ in 0..QUEUE {
                        let Ok(record) = queued.try_recv() else { break };
                        self.add(record, deadline).await;
                    }
                    self.send(deadline).await;
                    due = None;
                    let _ = ack.send(());
                }
                received = queued.recv() => match received {
                    Some(record) => {
                        let deadline = Instant::now() + DELIVERY_LIMIT;
                        if self.add(record, deadline).await {
                            due = None;
                        } else if due.is_none() {
                            due = Some(Instant::now() + BATCH_PERIOD);
                        }
                    }
                    // Every sink is gone: the process is ending.
                    None => {
                        self.send(Instant::now() + FLUSH_LIMIT).await;
                        return;
                    }
                },
                () = period => {
                    self.send(Instant::now() + DELIVERY_LIMIT).await;
                    due = None;
                }
            }
        }
    }

    /// Adds the record; a full batch is sent at once. True when it was sent.
    async fn add(&mut self, record: Arc<TraceRecord>, deadline: Instant) -> bool {
        self.records.push(record);
        if self.records.len() >= MAX_BATCH {
            self.send(deadline).await;
            return true;
        }
        false
    }

    /// Encodes and sends the batch (if any) and counts how it went.
    async fn send(&mut self, deadline: Instant) {
        if self.records.is_empty() {
            return;
        }
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(MAX_BATCH));
        let encoded = self.encoder.encode(&records);
        self.dropped(INVALID, encoded.invalid as u64);
        let count = encoded.items;
        if count == 0 {
            return;
        }
        match self.collector.deliver(encoded.body, count, deadline).await {
            Delivered::Accepted { rejected } => {
                let rejected = rejected.min(count as u64);
                self.counters.exported.inc_by(count as u64 - rejected);
                self.dropped(REJECTED, rejected);
            }
            Delivered::Failed => self.dropped(EXPORT_FAILED, count as u64),
        }
    }

    fn dropped(&self, reason: &str, records: u64) {
        if records > 0 {
            self.counters
                .dropped
                .with_label_values(&[reason])
                .inc_by(records);
        }
    }
}
