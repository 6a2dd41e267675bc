//! The trace writer: a plain thread of its own that serialises records (as lastmile
//! records or OPA decision-log events), seals them into the file's hash chain, and
//! writes them in batches.

use super::chain::{self, Digest, Sealer};
use super::opa::{Labels, OpaEvent};
use super::record::TraceRecord;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// The writer wakes on this period rather than per line: a wake-up per request costs
/// more CPU than everything else the trace does.
const WRITE_PERIOD: Duration = Duration::from_millis(10);

pub(super) enum Message {
    Record(Arc<TraceRecord>),
    /// Write everything queued so far, then acknowledge.
    Flush(SyncSender<()>),
}

/// How a record becomes a line.
pub(super) enum Encoding {
    Lastmile,
    /// OPA decision-log events; `path` is the decision's (`lastmile/decision`).
    Opa {
        labels: Labels,
        path: String,
    },
}

/// The sealer for a trace file about to be appended to: it continues the chain of the
/// file's last line, or starts a new one (with a warning, as `trace verify` will note
/// the restart) when that line is not a chained record.
pub(super) fn continue_chain(file: &mut File, path: &Path) -> std::io::Result<Sealer> {
    // Only a regular file has an end to read: a FIFO or a device has no last line, and
    // reading one could block.
    if !file.metadata()?.is_file() {
        return Ok(Sealer::new(Digest::ZERO));
    }
    let tail = chain::resume(&mut File::open(path)?)?;
    if tail.newline_first {
        // The next record gets a line of its own rather than completing a torn one.
        file.write_all(b"\n")?;
    }
    if let Some(reason) = tail.restart {
        tracing::warn!(
            file = %path.display(),
            "the trace file's hash chain starts again: {reason}"
        );
    }
    Ok(Sealer::new(tail.prev))
}

pub(super) fn write_lines(
    rx: Receiver<Message>,
    out: Box<dyn Write + Send>,
    mut sealer: Option<Sealer>,
    encoding: Encoding,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    // One buffer for every line: the record is serialised into it, then sealed.
    let mut line = Vec::with_capacity(1024);
    loop {
        std::thread::sleep(WRITE_PERIOD);
        let mut result = Ok(());
        let mut acks = Vec::new();
        let disconnected = loop {
            match rx.try_recv() {
                // After a failed write the rest of the batch is not sealed either, so
                // the chain holds only records whose write was attempted: a record
                // lost to an I/O error then shows as a removal in `trace verify`.
                Ok(Message::Record(record)) => {
                    result = result.and_then(|()| {
                        write_record(&mut out, &mut line, sealer.as_mut(), &encoding, &record)
                    });
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

/// Serialises one record into `line`, seals it when the output is chained, and writes
/// it with its newline.
fn write_record(
    out: &mut impl Write,
    line: &mut Vec<u8>,
    sealer: Option<&mut Sealer>,
    encoding: &Encoding,
    record: &TraceRecord,
) -> std::io::Result<()> {
    line.clear();
    match encoding {
        Encoding::Lastmile => serde_json::to_writer(&mut *line, record)?,
        Encoding::Opa { labels, path } => serde_json::to_writer(
            &mut *line,
            &OpaEvent {
                record,
                labels,
                path,
            },
        )?,
    }
    if let Some(sealer) = sealer {
        sealer
            .seal(line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    line.push(b'\n');
    out.write_all(line)
}
