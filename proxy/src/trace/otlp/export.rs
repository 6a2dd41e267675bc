//! The exporter: a bounded queue fed by [`super::super::TraceSink::emit`] and one task on
//! the async runtime that turns records into spans and sends them in batches. The
//! request path only ever does a `try_send` of a reference-counted record: a slow or
//! dead collector fills the queue, and the records that find it full are dropped and
//! counted, never waited for.

use super::send::{Collector, Delivered};
use super::span::{request, resource, span_from};
use super::OtlpConfig;
use crate::metrics::Metrics;
use crate::trace::record::TraceRecord;
use anyhow::{Context, Result};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Records waiting for the exporter: sixteen full batches, room for a few seconds of
/// retries at a high request rate.
const QUEUE: usize = 8_192;
/// A batch is sent when it holds this many spans...
const MAX_BATCH: usize = 512;
/// ...or when its first span has waited this long.
const BATCH_PERIOD: Duration = Duration::from_secs(1);
/// How long a flush (at shutdown) may take in all: sending, retrying and waiting for it.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// A batch sent in the ordinary course may retry for this long.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

/// The reasons of `lastmile_trace_spans_dropped_total`.
const QUEUE_FULL: &str = "queue_full";
const EXPORT_FAILED: &str = "export_failed";
const REJECTED: &str = "rejected";
const INVALID: &str = "invalid";

/// A flush request: send what is queued, then acknowledge.
type Flush = (Instant, std::sync::mpsc::SyncSender<()>);

/// The request path's side of the exporter.
#[derive(Clone)]
pub struct Exporter {
    records: mpsc::Sender<Arc<TraceRecord>>,
    flushes: mpsc::UnboundedSender<Flush>,
    metrics: Metrics,
}

impl Exporter {
    /// Starts the export task on the current async runtime.
    pub fn start(config: &OtlpConfig, metrics: Metrics) -> Result<Exporter> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs the async runtime")?;
        let collector = Collector::new(config.clone()).context("building the OTLP client")?;
        for reason in [QUEUE_FULL, EXPORT_FAILED, REJECTED, INVALID] {
            metrics.trace_spans_dropped.with_label_values(&[reason]);
        }
        let (records, queued) = mpsc::channel(QUEUE);
        let (flushes, flush_requests) = mpsc::unbounded_channel();
        let batcher = Batcher {
            collector,
            resource: resource(&config.service_name),
            spans: Vec::with_capacity(MAX_BATCH),
            metrics: metrics.clone(),
        };
        runtime.spawn(batcher.run(queued, flush_requests));
        // The endpoint's host and path only: a query string could hold a key.
        tracing::info!(
            collector = %config.endpoint.authority().map_or("", |a| a.as_str()),
            path = config.endpoint.path(),
            "exporting trace spans over OTLP"
        );
        Ok(Exporter {
            records,
            flushes,
            metrics,
        })
    }

    /// Queues `record` for export; never blocks.
    pub fn export(&self, record: Arc<TraceRecord>) {
        if self.records.try_send(record).is_err() {
            self.metrics
                .trace_spans_dropped
                .with_label_values(&[QUEUE_FULL])
                .inc();
        }
    }

    /// Sends every span queued so far, waiting at most [`FLUSH_LIMIT`]. Blocks the calling
    /// thread: call it off the async runtime's workers (as shutdown does).
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
    resource: Resource,
    spans: Vec<Span>,
    metrics: Metrics,
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
                        self.add(&record, deadline).await;
                    }
                    self.send(deadline).await;
                    due = None;
                    let _ = ack.send(());
                }
                received = queued.recv() => match received {
                    Some(record) => {
                        let deadline = Instant::now() + DELIVERY_LIMIT;
                        if self.add(&record, deadline).await {
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

    /// Adds the record's span; a full batch is sent at once. True when it was sent.
    async fn add(&mut self, record: &TraceRecord, deadline: Instant) -> bool {
        match span_from(record) {
            Some(span) => self.spans.push(span),
            None => self.dropped(INVALID, 1),
        }
        if self.spans.len() >= MAX_BATCH {
            self.send(deadline).await;
            return true;
        }
        false
    }

    /// Sends the batch (if any) and counts how it went.
    async fn send(&mut self, deadline: Instant) {
        if self.spans.is_empty() {
            return;
        }
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(MAX_BATCH));
        let count = spans.len();
        let body = request(&self.resource, spans).encode_to_vec();
        match self.collector.deliver(body.into(), count, deadline).await {
            Delivered::Accepted { rejected } => {
                let rejected = rejected.min(count as u64);
                self.metrics
                    .trace_spans_exported
                    .inc_by(count as u64 - rejected);
                self.dropped(REJECTED, rejected);
            }
            Delivered::Failed => self.dropped(EXPORT_FAILED, count as u64),
        }
    }

    fn dropped(&self, reason: &str, spans: u64) {
        if spans > 0 {
            self.metrics
                .trace_spans_dropped
                .with_label_values(&[reason])
                .inc_by(spans);
        }
    }
}
