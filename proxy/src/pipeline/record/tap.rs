//! The tap on an upstream's answer: its body passed through to the agent, hashed,
//! measured and (up to a bound) captured, so the record says what the agent got.

use crate::response::ResponseBody;
use crate::trace::record::TraceRecord;
use crate::trace::recorded::RecordedResponse;
use crate::trace::TraceSink;
use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response body passed through as it is sent, hashed and measured (and captured up
/// to a bound); the record is emitted at its last byte, or when the body is dropped
/// unfinished (the agent hung up, the upstream broke off).
pub(super) struct Tapped {
    inner: ResponseBody,
    hasher: Sha256,
    bytes: u64,
    /// The body so far, while it is within `limit`; `None` once past it (or when
    /// bodies are not kept).
    captured: Option<BytesMut>,
    limit: usize,
    pending: Option<(TraceRecord, TraceSink, Arc<[String]>)>,
}

impl Tapped {
    /// Taps `body`; `record` is emitted to `sink` when it ends. `capture`: keep the
    /// body for the record when it is no longer than this.
    pub(super) fn new(
        body: ResponseBody,
        capture: Option<usize>,
        record: TraceRecord,
        sink: TraceSink,
        redact: Arc<[String]>,
    ) -> Tapped {
        Tapped {
            inner: body,
            hasher: Sha256::new(),
            bytes: 0,
            captured: capture.map(|_| BytesMut::new()),
            limit: capture.unwrap_or(0),
            pending: Some((record, sink, redact)),
        }
    }

    fn take(&mut self, data: &Bytes) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        if let Some(captured) = self.captured.as_mut() {
            if captured.len() + data.len() <= self.limit {
                captured.extend_from_slice(data);
            } else {
                self.captured = None;
            }
        }
    }

    /// Emits the record, once.
    fn finish(&mut self, complete: bool) {
        let Some((mut record, sink, redact)) = self.pending.take() else {
            return;
        };
        let digest = std::mem::take(&mut self.hasher).finalize();
        record.response = Some(RecordedResponse {
            bytes: self.bytes,
            sha256: crate::hex::encode(&digest),
            complete,
            body: self
                .captured
                .take()
                .filter(|_| complete)
                .map(BytesMut::freeze),
            redact,
        });
        sink.emit(record);
    }
}

impl Body for Tapped {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.take(data);
                }
                // Recorded before the last bytes are handed on, so the record is there
                // by the time the agent has the whole answer.
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
