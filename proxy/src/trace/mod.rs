//! The decision trace: one JSON line per request, written off the request path, with a
//! bounded in-memory ring of recent records for the admin API.
//!
//! With `trace.otlp`, every record is also exported as an OpenTelemetry span ([`otlp`]).
//!
//! Records hold what an investigation needs (who, what, which rules, which policy
//! revision, what upstream said) and never credentials or identity tokens; request
//! bodies only when configured, and then redacted.

pub mod context;
pub mod otlp;
pub mod record;
pub mod redact;

use crate::config::{TraceConfig, TraceOutput};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use record::TraceRecord;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many lines may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// The writer wakes on this period rather than per line: a wake-up per request costs
/// more CPU than everything else the trace does.
const WRITE_PERIOD: Duration = Duration::from_millis(10);

enum Message {
    Record(Arc<TraceRecord>),
    /// Write everything queued so far, then acknowledge.
    Flush(SyncSender<()>),
}

/// Where records go.
#[derive(Clone)]
pub struct TraceSink {
    lines: Option<SyncSender<Message>>,
    otlp: Option<otlp::Exporter>,
    recent: Arc<Mutex<VecDeque<Arc<TraceRecord>>>>,
    ring_size: usize,
    metrics: Metrics,
}

impl TraceSink {
    /// Opens the output and starts the writer thread. Writing happens on a plain thread
    /// of its own: file and stdout writes block, and handing each batch to the async
    /// runtime's blocking pool costs more than the write.
    pub fn start(config: &TraceConfig, metrics: Metrics) -> Result<TraceSink> {
        let writer: Option<Box<dyn Write + Send>> = match &config.output {
            TraceOutput::Off => None,
            TraceOutput::Stdout => Some(Box::new(std::io::stdout())),
            // Created 0600 (an existing file is tightened): records name users and
            // carry request fields.
            TraceOutput::File(path) => Some(Box::new(
                crate::private_file::open_append(path)
                    .with_context(|| format!("opening trace file {}", path.display()))?,
            )),
        };
        let lines = writer
            .map(|w| {
                let (tx, rx) = mpsc::sync_channel(QUEUE);
                std::thread::Builder::new()
                    .name("lastmile-trace".into())
                    .spawn(move || write_lines(rx, w))
                    .map(|_| tx)
            })
            .transpose()
            .context("starting the trace writer")?;
        let otlp = config
            .otlp
            .as_ref()
            .map(|c| otlp::Exporter::start(c, metrics.clone()))
            .transpose()
            .context("starting the OTLP exporter")?;
        Ok(TraceSink {
            lines,
            otlp,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(config.ring_size))),
            ring_size: config.ring_size,
            metrics,
        })
    }

    /// Records one request. Never blocks, and does no serialisation on the request
    /// path: the writer thread serialises. A writer that falls behind loses records,
    /// counted in `lastmile_trace_records_dropped_total`; so does an OTLP exporter, in
    /// `lastmile_trace_spans_dropped_total`.
    pub fn emit(&self, record: TraceRecord) {
        let record = Arc::new(record);
        if self.ring_size > 0 {
            if let Ok(mut recent) = self.recent.lock() {
                if recent.len() >= self.ring_size {
                    recent.pop_front();
                }
                recent.push_back(record.clone());
            }
        }
        if let Some(exporter) = &self.otlp {
            exporter.export(record.clone());
        }
        if let Some(tx) = &self.lines {
            if tx.try_send(Message::Record(record)).is_err() {
                self.metrics.trace_dropped.inc();
            }
        }
    }

    /// Waits (up to a second) until every record emitted so far has been written, then
    /// (up to five more) until the OTLP exporter has sent their spans. Blocks: call it off
    /// the async runtime's workers.
    pub fn flush(&self) {
        if let Some(tx) = &self.lines {
            let (ack, done) = mpsc::sync_channel(1);
            if tx.send(Message::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(Duration::from_secs(1));
            }
        }
        if let Some(exporter) = &self.otlp {
            exporter.flush();
        }
    }

    /// The recent records of one trace, oldest first, as JSON lines.
    pub fn find(&self, trace_id: &str) -> Vec<String> {
        match self.recent.lock() {
            Ok(recent) => recent
                .iter()
                .filter(|r| r.trace_id == trace_id)
                .filter_map(|r| serde_json::to_string(r.as_ref()).ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn write_lines(rx: Receiver<Message>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        std::thread::sleep(WRITE_PERIOD);
        let mut result = Ok(());
        let mut acks = Vec::new();
        let disconnected = loop {
            match rx.try_recv() {
                Ok(Message::Record(record)) => {
                    result = result
                        .and_then(|()| {
                            serde_json::to_writer(&mut out, record.as_ref())
                                .map_err(std::io::Error::from)
                        })
                        .and_then(|()| out.write_all(b"\n"));
                }
                Ok(Message::Flush(ack)) => acks.push(ack),
                Err(mpsc::TryRecvError::Empty) => break false,
                Err(mpsc::TryRecvError::Disconnected) => break true,
            }
        };
        if let Err(e) = result.and_then(|()| out.flush()) {
            tracing::error!(error = %e, "writing the decision trace");
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if disconnected {
            return;
        }
    }
}
