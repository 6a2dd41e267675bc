//! The decision document: what the policy returned, parsed into a plain Rust value that
//! the enforcement step matches on.
//!
//! Parsing is strict because a decision is only an allow when the policy says so
//! unambiguously: anything of the wrong shape is a [`DecisionError`], which the proxy
//! turns into a `policy_error` refusal.

use crate::headers::RESERVED;
use http::{HeaderName, HeaderValue};
use regorus::Value;
use std::time::Duration;

/// One reason the policy gave for a denial or an approval requirement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

/// The intent a dedup window is keyed on (`decision.dedup`).
#[derive(Debug, Clone, PartialEq)]
pub struct DedupIntent {
    pub key: Value,
    pub window: Duration,
    /// The intent is the same whoever acts; otherwise the acting user is part of the key.
    pub shared: bool,
}

/// A parsed, well-formed decision.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// The tool the request calls, as the policy names it (for the trace).
    pub tool: Option<String>,
    pub deny: Vec<Reason>,
    pub approval: Vec<Reason>,
    pub dedup: Option<DedupIntent>,
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    pub add_query: Vec<(String, Vec<String>)>,
}

/// What a decision means once precedence is applied: any deny refuses; otherwise any
/// approval reason parks; otherwise the request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deny,
    Approval,
    Allow,
}

impl Decision {
    pub fn verdict(&self) -> Verdict {
        if !self.deny.is_empty() {
            Verdict::Deny
        } else if !self.approval.is_empty() {
            Verdict::Approval
        } else {
            Verdict::Allow
        }
    }
}

impl Verdict {
    /// The verdict's name in the trace (`decision.verdict`) and the CLI's reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Deny => "deny",
            Verdict::Approval => "approval",
            Verdict::Allow => "allow",
        }
    }

    /// The verdict a trace names, when it names one.
    pub fn from_name(name: &str) -> Option<Verdict> {
        [Verdict::Deny, Verdict::Approval, Verdict::Allow]
            .into_iter()
            .find(|v| v.name() == name)
    }
}

/// Why a policy result is not a usable decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecisionError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, DecisionError> {
    Err(DecisionError(message.into()))
}

const TOP_LEVEL_KEYS: [&str; 6] = [
    "tool",
    "deny",
    "approval",
    "dedup",
    "add_headers",
    "add_query",
];

/// Parses the value of the decision entry point.
pub fn parse(value: &Value) -> Result<Decision, DecisionError> {
    let object = match value {
        Value::Undefined => return err("the policy produced no decision (entry point undefined)"),
        Value::Object(object) => object,
        other => {
            return err(format!(
                "the decision must be an object, got {}",
                type_name(other)
            ))
        }
    };
    for key in object.keys() {
        match key {
            Value::String(k) if TOP_LEVEL_KEYS.contains(&k.as_ref()) => {}
            other => return err(format!("unknown decision key {other}")),
        }
    }
    let field = |name: &str| {
        object
            .get(&Value::from(name))
            .filter(|v| !matches!(v, Value::Null))
    };
    Ok(Decision {
        tool: field("tool").map(tool).transpose()?,
        deny: field("deny")
            .map(|v| reasons("deny", v))
            .transpose()?
            .unwrap_or_default(),
        approval: field("approval")
            .map(|v| reasons("approval", v))
            .transpose()?
            .unwrap_or_default(),
        dedup: field("dedup").map(dedup).transpose()?,
        add_headers: field("add_headers")
            .map(add_headers)
            .transpose()?
            .unwrap_or_default(),
        add_query: field("add_query")
            .map(add_query)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// Longer tool names are a contract mistake, not a name.
const MAX_TOOL_NAME: usize = 128;

fn tool(value: &Value) -> Result<String, DecisionError> {
    match value {
        Value::String(name) if !name.is_empty() && name.len() <= MAX_TOOL_NAME => {
            Ok(name.to_string())
        }
        Value::String(_) => err(format!(
            "tool must be a non-empty string of at most {MAX_TOOL_NAME} bytes"
        )),
        other => err(format!("tool must be a string, got {}", type_name(other))),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

fn elements<'a>(name: &str, value: &'a Value) -> Result<Vec<&'a Value>, DecisionError> {
    match value {
        Value::Array(items) => Ok(items.iter().collect()),
        Value::Set(items) => Ok(items.iter().collect()),
        other => err(format!(
            "{name} must be a set or an array, got {}",
            type_name(other)
        )),
    }
}

fn reasons(name: &str, value: &Value) -> Result<Vec<Reason>, DecisionError> {
    elements(name, value)?
        .into_iter()
        .map(|item| reason(name, item))
        .collect()
}

fn reason(name: &str, item: &Value) -> Result<Reason, DecisionError> {
    let text = |key: &str| match &item[key] {
        Value::String(s) if !s.is_empty() => Ok(s.to_string()),
        _ => err(format!(
            "every {name} reason needs a non-empty string {key:?}, got {item}"
        )),
    };
    if !matches!(item, Value::Object(_)) {
        return err(format!(
            "every {name} reason must be an object with code and message, got {item}"
        ));
    }
    Ok(Reason {
        code: text("code")?,
        message: text("message")?,
    })
}

fn dedup(value: &Value) -> Result<DedupIntent, DecisionError> {
    let Value::Object(object) = value else {
        return err(format!("dedup must be an object, got {}", type_name(value)));
    };
    for key in object.keys() {
        match key {
            Value::String(k) if matches!(k.as_ref(), "key" | "window_seconds" | "shared") => {}
            other => return err(format!("unknown dedup key {other}")),
        }
    }
    let key = value["key"].clone();
    if matches!(key, Value::Undefined | Value::Null) {
        return err("dedup.key is required");
    }
    let window = match value["window_seconds"].as_u64() {
        Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
        _ => return err("dedup.window_seconds must be a positive integer"),
    };
    let shared = match &value["shared"] {
        Value::Undefined | Value::Null => false,
        Value::Bool(b) => *b,
        other => {
            return err(format!(
                "dedup.shared must be a boolean, got {}",
                type_name(other)
            ))
        }
    };
    Ok(DedupIntent {
        key,
        window,
        shared,
    })
}

fn string_map(name: &str, value: &Value) -> Result<Vec<(String, Value)>, DecisionError> {
    let Value::Object(object) = value else {
        return err(format!(
            "{name} must be an object, got {}",
            type_name(value)
        ));
    };
    object
        .iter()
        .map(|(k, v)| match k {
            Value::String(k) => Ok((k.to_string(), v.clone())),
            other => err(format!("{name} keys must be strings, got {other}")),
        })
        .collect()
}

fn add_headers(value: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, DecisionError> {
    string_map("add_headers", value)?
        .into_iter()
        .map(|(name, v)| {
            let header = HeaderName::from_bytes(name.as_bytes())
                .or_else(|_| err(format!("add_headers: {name:?} is not a valid header name")))?;
            if RESERVED.contains(&header.as_str()) {
                return err(format!("add_headers: {name:?} is reserved for the proxy"));
            }
            let Value::String(text) = &v else {
                return err(format!(
                    "add_headers: the value of {name:?} must be a string"
                ));
            };
            let value = HeaderValue::from_str(text).or_else(|_| {
                err(format!(
                    "add_headers: the value of {name:?} is not a valid header value"
                ))
            })?;
            Ok((header, value))
        })
        .collect()
}

fn add_query(value: &Value) -> Result<Vec<(String, Vec<String>)>, DecisionError> {
    string_map("add_query", value)?
        .into_iter()
        .map(|(name, v)| {
            let values = match &v {
                Value::String(s) => vec![s.to_string()],
                Value::Array(_) | Value::Set(_) => elements("add_query", &v)?
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.to_string()),
                        _ => err(format!("add_query: values of {name:?} must be strings")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return err(format!(
                        "add_query: {name:?} must be a string or a list of strings"
                    ))
                }
            };
            // A filter with no values cannot be expressed in a query string: dropping
            // the parameter would widen the search to every record, so refuse instead.
            if values.is_empty() {
                return err(format!(
                    "add_query: {name:?} has no values (an empty filter would match everything)"
                ));
            }
            Ok((name, values))
        })
        .collect()
}

#[cfg(test)]
mod tests;
