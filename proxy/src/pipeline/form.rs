//! `application/x-www-form-urlencoded` bodies, read for the policy as a document.
//!
//! Keys use the bracket convention of Stripe and the other big form-encoded APIs (and of
//! Rack and PHP, which servers behind them use): `metadata[order]=7` is an object,
//! `expand[]=a&expand[]=b` an array, `items[0][price]=p` an array of objects. Values stay
//! strings: the form carries no types, and guessing one (is `007` a number?) is a second
//! reading the upstream may not share; policies compare with `to_number`.
//!
//! Where servers disagree, the body is refused rather than read one way: a key sent twice
//! (first wins in some parsers, last or a list in others), a key that is both a value and
//! an object, `[]` mixed with indices, indices with gaps or leading zeros, malformed
//! brackets, invalid percent escapes or UTF-8, and nesting deeper than JSON bodies may go.

use regorus::Value;
use std::collections::BTreeMap;

/// Parses a form body into an object of strings, objects and arrays, refusing anything
/// two servers could read differently (see the module documentation); at most
/// `max_depth` levels of nesting, counting the top-level object. The error names the
/// problem and the key, never a value.
pub fn parse(body: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut top = Node::Empty;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let key = decode(raw_key)?;
        let steps = steps(&key)?;
        if steps.len() > max_depth {
            return Err(format!("the key {} is nested too deeply", shown(&key)));
        }
        put(&mut top, &steps, decode(raw_value)?)
            .map_err(|problem| format!("the key {} {problem}", shown(&key)))?;
    }
    match top {
        Node::Empty => Ok(Value::from(BTreeMap::<Value, Value>::new())),
        node => node.into_value(),
    }
}

/// A key for a message: quoted, and cut short.
fn shown(key: &str) -> String {
    let cut: String = key.chars().take(64).collect();
    format!("{:?}", cut)
}

/// Percent-decodes one key or value (`+` is a space), strictly: a `%` must start two hex
/// digits, and the result must be UTF-8.
fn decode(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let digits = rest.get(..2).and_then(|d| Some((hex(d[0])?, hex(d[1])?)));
                let Some((high, low)) = digits else {
                    return Err("a '%' is not followed by two hex digits".into());
                };
                out.push(high << 4 | low);
                rest = &rest[2..];
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "a key or value is not UTF-8 once decoded".into())
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One step below the top-level object.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
    Append,
}

/// `a[b][0][]` → `[Key(a), Key(b), Index(0), Append]`.
fn steps(key: &str) -> Result<Vec<Step<'_>>, String> {
    let malformed = || format!("the key {} has malformed brackets", shown(key));
    let (base, mut rest) = key.split_at(key.find('[').unwrap_or(key.len()));
    if base.is_empty() || base.contains(']') {
        return Err(malformed());
    }
    let mut steps = vec![Step::Key(base)];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let (name, tail) = inner.split_once(']').ok_or_else(malformed)?;
        if name.contains('[') || steps.last() == Some(&Step::Append) {
            return Err(malformed());
        }
        steps.push(match name {
            "" => Step::Append,
            "0" => Step::Index(0),
            n if n.len() <= 6 && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) => {
                Step::Index(n.parse().map_err(|_| malformed())?)
            }
            n if n.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!(
                    "the key {} has an index with a leading zero or over six digits",
                    shown(key)
                ))
            }
            n => Step::Key(n),
        });
        rest = tail;
    }
    Ok(steps)
}

/// The document as it is built.
enum Node {
    /// Not set yet.
    Empty,
    Text(String),
    Object(BTreeMap<String, Node>),
    /// `a[0]`, `a[1]`: must end up contiguous from 0.
    Indexed(BTreeMap<usize, Node>),
    /// `a[]`, `a[]`: values in order.
    Appended(Vec<String>),
}

/// Sets `value` at `steps` below `slot`; the error says why the key cannot be placed.
fn put(slot: &mut Node, steps: &[Step<'_>], value: String) -> Result<(), String> {
    let conflict = || "is sent twice, or both as a value and with brackets".to_string();
    let Some((step, rest)) = steps.split_first() else {
        return match slot {
            Node::Empty => {
                *slot = Node::Text(value);
                Ok(())
            }
            _ => Err(conflict()),
        };
    };
    if let Node::Empty = slot {
        *slot = match step {
            Step::Key(_) => Node::Object(BTreeMap::new()),
            Step::Index(_) => Node::Indexed(BTreeMap::new()),
            Step::Append => Node::Appended(Vec::new()),
        };
    }
    match (step, slot) {
        (Step::Key(k), Node::Object(map)) => {
            put(map.entry(k.to_string()).or_insert(Node::Empty), rest, value)
        }
        (Step::Index(i), Node::Indexed(map)) => {
            put(map.entry(*i).or_insert(Node::Empty), rest, value)
        }
        // `[]` is always the last step (see `steps`).
        (Step::Append, Node::Appended(list)) if rest.is_empty() => {
            list.push(value);
            Ok(())
        }
        _ => Err(conflict()),
    }
}

impl Node {
    fn into_value(self) -> Result<Value, String> {
        Ok(match self {
            Node::Empty => Value::Null,
            Node::Text(text) => Value::from(text),
            Node::Object(map) => Value::from(
                map.into_iter()
                    .map(|(k, v)| Ok((Value::from(k), v.into_value()?)))
                    .collect::<Result<BTreeMap<_, _>, String>>()?,
            ),
            Node::Indexed(map) => {
                if map.keys().enumerate().any(|(i, k)| i != *k) {
                    return Err("an array's indices do not run from 0 without a gap".into());
                }
                Value::from(
                    map.into_values()
                        .map(Node::into_value)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            Node::Appended(list) => {
                Value::from(list.into_iter().map(Value::from).collect::<Vec<_>>())
            }
        })
    }
}

#[cfg(test)]
mod tests;
