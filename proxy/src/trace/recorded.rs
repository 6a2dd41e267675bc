//! Documents a trace record keeps as they came (the policy input's reference-counted
//! value, the upstream's bytes) and turns into redacted JSON only when the record is
//! written or looked up: off the request path, on the trace writer's thread.

use super::masked::Masking;
use super::redact::redact;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The policy input of a call. Serialises (flattened into the record) as `arguments`
/// (`{"query", "body"}`, what the agent sent the tool) and, when `include_input` is set,
/// `input` (`{"document", "masked"}`: the whole document with the paths redaction masked,
/// so a replay can tell whether it re-evaluates exactly what the policy saw).
#[derive(Debug, Clone)]
pub struct RecordedInput {
    pub document: regorus::Value,
    pub redact: Arc<[String]>,
    pub include_input: bool,
    /// Also write the body alone as `request_body` (`trace.include_body`), as records
    /// did before they carried `arguments`.
    pub include_body: bool,
}

impl RecordedInput {
    /// The tool's arguments as the trace shows them: `{"query", "body"}`, masked.
    pub fn arguments(&self) -> Arguments<'_> {
        Arguments(self)
    }
}

/// See [`RecordedInput::arguments`].
pub struct Arguments<'a>(&'a RecordedInput);

impl Serialize for Arguments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = &self.0.document["request"];
        let mut map = serializer.serialize_map(Some(2))?;
        for part in ["query", "body"] {
            let value = &request[part];
            if matches!(value, regorus::Value::Undefined) {
                map.serialize_entry(part, &())?;
            } else {
                let masking = Masking::new(&self.0.redact, "input.request");
                map.serialize_entry(part, &masking.at(value, &[part]))?;
            }
        }
        map.end()
    }
}

/// The whole document, masked, and then the paths that were: `{"document", "masked"}`.
struct Document<'a>(&'a RecordedInput);

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let masking = Masking::new(&self.0.redact, "input");
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("document", &masking.at(&self.0.document, &[]))?;
        map.serialize_entry("masked", &masking.masked())?;
        map.end()
    }
}

impl Serialize for RecordedInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("arguments", &self.arguments())?;
        let request = &self.document["request"];
        // A body was read and parsed (not empty, not opaque): as `trace.include_body`
        // always recorded it, a JSON `null` included.
        let body_read = matches!(request["body_bytes"].as_u64(), Ok(n) if n > 0)
            && !matches!(request["body_opaque"], regorus::Value::Bool(true));
        if self.include_body && body_read {
            let masking = Masking::new(&self.redact, "input.request");
            map.serialize_entry("request_body", &masking.at(&request["body"], &["body"]))?;
        }
        if self.include_input {
            map.serialize_entry("input", &Document(self))?;
        }
        map.end()
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

/// What the upstream answered, as far as the agent was sent it: the body's size and
/// SHA-256 always; the body itself (JSON, parsed and redacted) when configured and
/// within its bound.
#[derive(Debug, Clone)]
pub struct RecordedResponse {
    pub bytes: u64,
    /// Hex SHA-256 of the bytes sent.
    pub sha256: String,
    /// Whether the whole body was sent (the agent may hang up, the upstream break off).
    pub complete: bool,
    /// The body, when it was captured whole.
    pub body: Option<Bytes>,
    pub redact: Arc<[String]>,
}

impl Serialize for RecordedResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("bytes", &self.bytes)?;
        map.serialize_entry("sha256", &self.sha256)?;
        map.serialize_entry("complete", &self.complete)?;
        let parsed = self
            .body
            .as_ref()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
        if let Some(mut body) = parsed {
            redact(&mut body, &self.redact);
            map.serialize_entry("body", &body)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Arc<[String]> {
        Arc::from(vec!["card_number".to_string()])
    }

    #[test]
    fn input_gives_the_arguments_and_the_masked_document() -> anyhow::Result<()> {
        let document = regorus::Value::from_json_str(
            r#"{"route": "crm", "request": {"query": {"a": ["1"]}, "body": {"card_number": "4111", "n": 1}}}"#,
        )?;
        let recorded = RecordedInput {
            document,
            redact: fields(),
            include_input: true,
            include_body: false,
        };
        let json = serde_json::to_value(&recorded)?;
        assert_eq!(json["arguments"]["query"]["a"][0], "1");
        assert_eq!(json["arguments"]["body"]["card_number"], "[redacted]");
        assert_eq!(json["input"]["document"]["route"], "crm");
        assert_eq!(
            json["input"]["masked"],
            serde_json::json!(["input.request.body.card_number"])
        );
        let without = RecordedInput {
            include_input: false,
            ..recorded
        };
        assert!(serde_json::to_value(&without)?.get("input").is_none());
        assert!(serde_json::to_value(&without)?
            .get("request_body")
            .is_none());
        Ok(())
    }

    #[test]
    fn the_body_alone_is_written_when_one_was_read_and_asked_for() -> anyhow::Result<()> {
        let recorded = |request: &str| -> anyhow::Result<serde_json::Value> {
            let document = regorus::Value::from_json_str(&format!(r#"{{"request": {request}}}"#))?;
            let input = RecordedInput {
                document,
                redact: fields(),
                include_input: false,
                include_body: true,
            };
            Ok(serde_json::to_value(&input)?)
        };
        let read = recorded(
            r#"{"body": {"card_number": "4111"}, "body_bytes": 24, "body_opaque": false}"#,
        )?;
        assert_eq!(read["request_body"]["card_number"], "[redacted]");
        let null = recorded(r#"{"body": null, "body_bytes": 4, "body_opaque": false}"#)?;
        assert_eq!(null.get("request_body"), Some(&serde_json::Value::Null));
        let empty = recorded(r#"{"body": null, "body_bytes": 0, "body_opaque": false}"#)?;
        assert!(empty.get("request_body").is_none());
        let opaque = recorded(r#"{"body": null, "body_bytes": 9, "body_opaque": true}"#)?;
        assert!(opaque.get("request_body").is_none());
        Ok(())
    }

    #[test]
    fn response_body_is_kept_only_when_it_is_json() -> anyhow::Result<()> {
        let response = |body: &'static [u8]| RecordedResponse {
            bytes: body.len() as u64,
            sha256: "00".into(),
            complete: true,
            body: Some(Bytes::from_static(body)),
            redact: fields(),
        };
        let json = serde_json::to_value(response(br#"{"card_number": "4111", "id": 7}"#))?;
        assert_eq!(json["body"]["card_number"], "[redacted]");
        assert_eq!(json["body"]["id"], 7);
        let text = serde_json::to_value(response(b"plain text"))?;
        assert!(text.get("body").is_none());
        assert_eq!(text["bytes"], 10);
        Ok(())
    }
}
