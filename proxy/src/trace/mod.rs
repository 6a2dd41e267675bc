//! The decision trace: one JSON line per request, written off the request path, with a
//! bounded in-memory ring of recent records for the admin API.
//!
//! With `trace.otlp`, every record is also exported as an OpenTelemetry span ([`otlp`]).
//!
//! Records hold what an investigation needs (who, what, which rules, which policy
//! revision, what upstream said) and never credentials or identity tokens; request
//! bodies only when configured, and then redacted. A trace file is a hash chain
//! ([`chain`]), so edits, removals and reordering of its lines show; standard output
//! is not chained (whatever collects it re-frames the lines anyway).

pub mod chain;
pub mod context;
pub mod decision_log;
pub mod export;
mod masked;
pub mod opa;
pub mod otlp;
pub mod record;
pub mod recorded;
pub mod redact;
mod writer;

use crate::config::{TraceConfig, TraceFormat, TraceOutput};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use record::TraceRecord;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::{Encoding, Message};

/// How many lines may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// Where records go.
#[derive(Clone)]
pub struct TraceSink {
    lines: Option<SyncSender<Message>>,
    otlp: Option<export::Exporter>,
    decision_logs: Option<export::Exporter>,
    recent: Arc<Mutex<VecDeque<Arc<TraceRecord>>>>,
    ring_size: usize,
    metrics: Metrics,
}

impl TraceSink {
    /// Opens the output and starts the writer thread. Writing happens on a plain thread
    /// of its own: file and stdout writes block, and handing each batch to the async
    /// runtime's blocking pool costs more than the write.
    /// `entrypoint` names the decision in OPA-format events.
    pub fn start(config: &TraceConfig, entrypoint: &str, metrics: Metrics) -> Result<TraceSink> {
        let writer: Option<(Box<dyn Write + Send>, Option<chain::Sealer>)> = match &config.output {
            TraceOutput::Off => None,
            TraceOutput::Stdout => Some((Box::new(std::io::stdout()), None)),
            // Created 0600 (an existing file is tightened): records name users and
            // carry request fields.
            TraceOutput::File(path) => {
                let mut file = crate::private_file::open_append(path)
                    .with_context(|| format!("opening trace file {}", path.display()))?;
                let sealer = writer::continue_chain(&mut file, path)
                    .with_context(|| format!("reading the end of trace file {}", path.display()))?;
                Some((Box::new(file), Some(sealer)))
            }
        };
        let encoding = match config.format {
            TraceFormat::Lastmile => Encoding::Lastmile,
            TraceFormat::Opa => Encoding::Opa {
                labels: opa::Labels::for_this_process(),
                path: opa::decision_path(entrypoint),
            },
        };
        let lines = writer
            .map(|(w, sealer)| {
                let (tx, rx) = mpsc::sync_channel(QUEUE);
                std::thread::Builder::new()
                    .name("lastmile-trace".into())
                    .spawn(move || writer::write_lines(rx, w, sealer, encoding))
                    .map(|_| tx)
            })
            .transpose()
            .context("starting the trace writer")?;
        let otlp = config
            .otlp
            .as_ref()
            .map(|c| otlp::start(c, &metrics))
            .transpose()
            .context("starting the OTLP exporter")?;
        let decision_logs = config
            .decision_logs
            .as_ref()
            .map(|c| decision_log::start(c, entrypoint, &metrics))
            .transpose()
            .context("starting the decision-log uploader")?;
        Ok(TraceSink {
            lines,
            otlp,
            decision_logs,
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
        for exporter in self.otlp.iter().chain(&self.decision_logs) {
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
        for exporter in self.otlp.iter().chain(&self.decision_logs) {
            exporter.flush();
        }
    }

    /// The acting users of the recent calls of one trace (`None` for a call without a
    /// user); empty when the ring holds no call of it.
    pub fn callers(&self, trace_id: &str) -> Vec<Option<String>> {
        match self.recent.lock() {
            Ok(recent) => recent
                .iter()
                .filter(|r| r.trace_id == trace_id && r.kind == record::RecordKind::Call)
                .map(|r| r.user.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The recent records of one trace, oldest first, as JSON lines.
    /// Ordered by the time each record's event began (a call's arrival, a transition):
    /// a call is written once answered, after the approval it parked was.
    pub fn find(&self, trace_id: &str) -> Vec<String> {
        let mut records: Vec<Arc<TraceRecord>> = match self.recent.lock() {
            Ok(recent) => recent
                .iter()
                .filter(|r| r.trace_id == trace_id)
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        records.sort_by_key(|r| event_time(&r.time));
        records
            .iter()
            .filter_map(|r| serde_json::to_string(r.as_ref()).ok())
            .collect()
    }
}

/// A record's `time` as a sort key (unreadable times sort first, in written order).
pub fn event_time(time: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(time.trim_end_matches('Z')).ok()
}

#[cfg(test)]
mod tests {
    use super::event_time;

    #[test]
    fn event_times_of_either_precision_compare_as_times() {
        let micros = event_time("2026-12-02T13:41:03.601123Z");
        let millis = event_time("2026-12-02T13:41:03.604Z");
        assert!(micros.is_some() && millis.is_some());
        assert!(micros < millis);
        assert_eq!(event_time("not a time"), None);
    }
}
