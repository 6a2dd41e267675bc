//! Batches as OPA's decision logger uploads them: a JSON array of events, gzipped.

use crate::trace::export::{Encode, Encoded, Wire};
use crate::trace::opa::{decision_path, Labels, OpaEvent};
use crate::trace::record::TraceRecord;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::sync::Arc;

/// Retried: 429 and every 5xx (a decision-log service has no partial-success answer).
pub const WIRE: Wire = Wire {
    name: "decision logs",
    content_type: "application/json",
    content_encoding: Some("gzip"),
    retry: |status| status.as_u16() == 429 || status.is_server_error(),
    rejected: |_| 0,
};

pub struct Events {
    labels: Labels,
    path: String,
}

impl Events {
    pub fn new(entrypoint: &str) -> Events {
        Events {
            labels: Labels::for_this_process(),
            path: decision_path(entrypoint),
        }
    }
}

impl Encode for Events {
    fn encode(&mut self, records: &[Arc<TraceRecord>]) -> Encoded {
        let events: Vec<OpaEvent<'_>> = records
            .iter()
            .map(|record| OpaEvent {
                record,
                labels: &self.labels,
                path: &self.path,
            })
            .collect();
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        let written = serde_json::to_writer(&mut gzip, &events)
            .map_err(std::io::Error::from)
            .and_then(|()| gzip.flush());
        match written.and_then(|()| gzip.finish()) {
            Ok(body) => Encoded {
                body: body.into(),
                items: records.len(),
                invalid: 0,
            },
            // Serialising records cannot fail short of memory; counted, not sent.
            Err(_) => Encoded {
                body: bytes::Bytes::new(),
                items: 0,
                invalid: records.len(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn a_batch_is_a_gzipped_json_array_of_events() -> anyhow::Result<()> {
        let record = crate::trace::record::sample::call();
        let encoded = Events::new("data.lastmile.decision").encode(&[Arc::new(record)]);
        assert_eq!(encoded.items, 1);
        let mut text = String::new();
        GzDecoder::new(&encoded.body[..]).read_to_string(&mut text)?;
        let events: Vec<serde_json::Value> = serde_json::from_str(&text)?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["path"], "lastmile/decision");
        assert!(events[0]["decision_id"].is_string());
        Ok(())
    }
}
