//! What makes two requests the same intent: the dedup key and the fingerprint.
//!
//! The key is SHA-256 over the route, the acting user (unless the intent is shared) and
//! either the canonical JSON of the policy's `dedup.key` or the agent's validated
//! `Idempotency-Key`. Fields are length-prefixed so no two different inputs hash the
//! same bytes. The fingerprint is what must match when an agent reuses its own key:
//! the policy's intent when there is one, otherwise the whole request.

use regorus::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The header an agent may send to name its own intent (IETF
/// draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest accepted `Idempotency-Key`.
const MAX_CLIENT_KEY_LEN: usize = 255;

/// A dedup key: the identity of one logical action within its window.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

/// A digest of what the action does, compared when a key is reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Who acts, as far as the key is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The intent is the same whoever acts (`dedup.shared`).
    Anyone,
    /// The verified user's `sub`; `None` for a route without identity.
    User(Option<&'a str>),
}

/// Where the intent comes from.
#[derive(Clone, Copy, Debug)]
pub enum Intent<'a> {
    /// The policy's `dedup.key`.
    Policy(&'a Value),
    /// The agent's own `Idempotency-Key`, already validated.
    Client(&'a ClientKey),
}

/// Derives the key for one request.
pub fn derive(route: &str, actor: Actor<'_>, intent: Intent<'_>) -> Key {
    let mut hash = Sha256::new();
    field(&mut hash, b"lastmile-dedup-v1");
    field(&mut hash, route.as_bytes());
    match actor {
        Actor::Anyone => field(&mut hash, b"*shared"),
        Actor::User(None) => field(&mut hash, b"*anonymous"),
        Actor::User(Some(sub)) => {
            field(&mut hash, b"user");
            field(&mut hash, sub.as_bytes());
        }
    }
    match intent {
        Intent::Policy(value) => {
            field(&mut hash, b"intent");
            field(&mut hash, canonical_json(value).as_bytes());
        }
        Intent::Client(key) => {
            field(&mut hash, b"client");
            field(&mut hash, key.0.as_bytes());
        }
    }
    Key(hash.finalize().into())
}

impl Fingerprint {
    /// The fingerprint of a policy intent.
    pub fn of_intent(value: &Value) -> Fingerprint {
        Fingerprint(Sha256::digest(canonical_json(value).as_bytes()).into())
    }

    /// The fingerprint of a whole request, for an agent key with no policy intent:
    /// method, path, query and body (canonical JSON when it parsed, raw bytes otherwise).
    pub fn of_request(method: &str, path: &str, query: Option<&str>, body: Body<'_>) -> Self {
        let mut hash = Sha256::new();
        field(&mut hash, method.as_bytes());
        field(&mut hash, path.as_bytes());
        field(&mut hash, query.unwrap_or("").as_bytes());
        match body {
            Body::Json(value) => {
                field(&mut hash, b"json");
                field(&mut hash, canonical_json(value).as_bytes());
            }
            Body::Bytes(bytes) => {
                field(&mut hash, b"bytes");
                field(&mut hash, bytes);
            }
        }
        Fingerprint(hash.finalize().into())
    }
}

/// A request body as the fingerprint sees it.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Json(&'a Value),
    Bytes(&'a [u8]),
}

fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

/// Canonical JSON: object keys sorted by their canonical text, no insignificant
/// whitespace, sets as sorted arrays, and numbers normalised so `1`, `1.0` and `1e0`
/// are one value.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Undefined => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => out.push_str(&canonical_number(value)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // A set's order is its members' canonical text, so each is written on its own.
        Value::Set(items) => {
            let mut members: Vec<String> = items.iter().map(canonical_json).collect();
            members.sort();
            out.push('[');
            out.push_str(&members.join(","));
            out.push(']');
        }
        Value::Object(fields) => {
            let mut pairs: Vec<(String, &Value)> = fields
                .iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    match k {
                        Value::String(s) => write_string(s, &mut key),
                        // Rego allows non-string keys; JSON writes them as their text.
                        other => write_string(&canonical_json(other), &mut key),
                    }
                    (key, v)
                })
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, value)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&key);
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped as serde_json escapes.
fn write_string(s: &str, out: &mut String) {
    // serde_json writes into a String's bytes without failing; the fallback is unreachable.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
}

/// Integers exactly as digits, whatever their size; other numbers through their double,
/// written in Rust's shortest round-trip form (never an exponent). So `1`, `1.0` and
/// `1e0` are one value, every spelling of one double is one text, and the canonical text
/// reads back as the same number (no step goes through a parser that might round).
fn canonical_number(value: &Value) -> String {
    if let Ok(i) = value.as_i64() {
        return i.to_string();
    }
    if let Ok(u) = value.as_u64() {
        return u.to_string();
    }
    // Zero, negative zero included, is an i64 above.
    match value.as_f64() {
        Ok(f) => format!("{f}"),
        // An integer beyond 64 bits: its exact digits.
        Err(_) => value
            .as_number()
            .map_or_else(|_| "null".to_string(), |n| n.format_decimal()),
    }
}

/// A validated `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKey(String);

/// Why an `Idempotency-Key` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientKeyError {
    #[error("send at most one Idempotency-Key header")]
    Repeated,
    #[error("an Idempotency-Key is 1-255 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
    Malformed,
}

impl ClientKey {
    /// Reads the key from the request headers: at most one header, either a bare token
    /// or an RFC 8941 sf-string (`"..."`), of `[A-Za-z0-9._:-]{1,255}`.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Option<ClientKey>, ClientKeyError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ClientKeyError::Repeated);
        }
        let text = value.to_str().map_err(|_| ClientKeyError::Malformed)?;
        text.parse().map(Some)
    }
}

impl FromStr for ClientKey {
    type Err = ClientKeyError;

    fn from_str(text: &str) -> Result<ClientKey, ClientKeyError> {
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        let valid = !text.is_empty()
            && text.len() <= MAX_CLIENT_KEY_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if valid {
            Ok(ClientKey(text.to_string()))
        } else {
            Err(ClientKeyError::Malformed)
        }
    }
}

impl Key {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Keys and fingerprints print as 64 lower-case hex digits.
fn write_hex(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut out = [0u8; 64];
    crate::hex::encode_to(bytes, &mut out);
    f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl FromStr for Key {
    type Err = ();

    fn from_str(text: &str) -> Result<Key, ()> {
        parse_hex(text).map(Key).ok_or(())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = ();

    fn from_str(text: &str) -> Result<Fingerprint, ()> {
        parse_hex(text).map(Fingerprint).ok_or(())
    }
}

#[cfg(test)]
mod tests;
