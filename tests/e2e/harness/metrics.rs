//! A small parser for the Prometheus text exposition, so assertions name series by
//! labels rather than depend on label order or formatting.

use anyhow::{Context, Result};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: String) -> Result<Metrics> {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_line(l).with_context(|| format!("bad metrics line {l:?}")))
            .collect::<Result<_>>()?;
        Ok(Metrics { text, samples })
    }

    /// Every sample of one series name.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the sample with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// `lastmile_requests_total` as `(route, outcome) -> count`.
    pub fn requests(&self) -> BTreeMap<(String, String), f64> {
        self.series("lastmile_requests_total")
            .into_iter()
            .map(|s| {
                let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                ((label("route"), label("outcome")), s.value)
            })
            .collect()
    }
}

fn parse_line(line: &str) -> Result<Sample> {
    let (series, value) = line.rsplit_once(' ').context("no value")?;
    let value: f64 = value.parse()?;
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), BTreeMap::new()),
        Some((name, rest)) => (
            name.to_string(),
            parse_labels(rest.strip_suffix('}').context("unclosed labels")?)?,
        ),
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(mut rest: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().context("unterminated label value")? {
                (_, '\\') => match chars.next().context("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end + 1..];
    }
    Ok(labels)
}
