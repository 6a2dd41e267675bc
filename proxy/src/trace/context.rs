//! W3C Trace Context (`traceparent`): lastmile keeps the caller's trace id, and sends
//! its own span id upstream as the new parent. An invalid header is ignored and a new
//! trace is started; it is never forwarded as it came.

use http::{HeaderMap, HeaderValue};
use std::cell::Cell;

/// The trace this request belongs to and lastmile's own span within it.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    /// The caller's span (from its `traceparent`): lastmile's span is its child.
    pub parent_span_id: Option<String>,
    flags: String,
}

impl TraceContext {
    /// Continues the caller's trace when its `traceparent` is valid, else starts one.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let inbound = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let span_id = random_hex::<8>();
        match inbound {
            Some(Parent {
                trace_id,
                parent_span_id,
                flags,
            }) => TraceContext {
                trace_id,
                span_id,
                parent_span_id: Some(parent_span_id),
                flags,
            },
            None => TraceContext {
                trace_id: random_hex::<16>(),
                span_id,
                parent_span_id: None,
                flags: "01".into(),
            },
        }
    }

    /// A new span in an existing trace: an approved request executed later keeps the
    /// trace id it was parked under.
    pub fn within(trace_id: &str) -> TraceContext {
        TraceContext {
            trace_id: trace_id.to_string(),
            span_id: random_hex::<8>(),
            parent_span_id: None,
            flags: "01".into(),
        }
    }

    /// A fresh span id.
    pub fn new_span_id() -> String {
        random_hex::<8>()
    }

    /// The `traceparent` to send upstream.
    pub fn traceparent(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "00-{}-{}-{}",
            self.trace_id, self.span_id, self.flags
        ))
        .ok()
    }
}

/// Whether `id` has the shape of a W3C trace id: 32 lower-case hex digits.
pub fn is_trace_id(id: &str) -> bool {
    lower_hex(id, 32)
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a valid `traceparent` says.
struct Parent {
    trace_id: String,
    parent_span_id: String,
    flags: String,
}

/// Parses a valid version-00-compatible traceparent.
fn parse_traceparent(value: &str) -> Option<Parent> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && lower_hex(trace_id, 32)
        && lower_hex(parent, 16)
        && lower_hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| Parent {
        trace_id: trace_id.to_string(),
        parent_span_id: parent.to_string(),
        flags: flags.to_string(),
    })
}

thread_local! {
    /// Trace and span ids must be unique, not secret: a per-thread SplitMix64 seeded
    /// once from the OS avoids a `getrandom` system call on every request.
    static ID_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos());
        return nanos as u64 ^ u64::from(std::process::id()) << 32;
    }
    u64::from_le_bytes(bytes)
}

fn next_u64() -> u64 {
    ID_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// `N` random bytes as lower-case hex, never all zero (W3C forbids all-zero ids).
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = next_u64() | u64::from(i == 0);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
    crate::hex::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(value: &str) -> TraceContext {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("x")),
        );
        TraceContext::from_headers(&h)
    }

    #[test]
    fn keeps_a_valid_trace_id_with_a_new_span() {
        let c = ctx("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(c.span_id, "00f067aa0ba902b7");
        assert_eq!(c.span_id.len(), 16);
        assert_eq!(c.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    }

    #[test]
    fn replaces_invalid_trace_ids() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "garbage",
        ] {
            let c = ctx(bad);
            assert_eq!(c.trace_id.len(), 32);
            assert!(!bad.contains(&c.trace_id), "{bad}");
            assert_eq!(c.parent_span_id, None, "{bad}");
        }
    }
}
