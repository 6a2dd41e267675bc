//! Decision cost, in process: building the policy input, evaluating the bundle and
//! parsing the decision, exactly as the proxy does per request, on one thread.
//!
//! Usage: `decision [POLICY_DIR] [ITERATIONS]` (default `policies/demo`, 20000).
//! Prints p50/p90/p99/max in microseconds for three representative requests.

use anyhow::{Context, Result};
use http::{HeaderMap, HeaderValue, Method};
use lastmile::pipeline::input::{self, InputParts};
use lastmile::pipeline::request::BodyView;
use lastmile::policy::bundle::Bundle;
use lastmile::policy::decision;
use lastmile::policy::engine::PreparedPolicy;
use regorus::Value;
use std::time::{Duration, Instant};

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
}

const CASES: [Case; 3] = [
    Case {
        name: "GET search (scoped)",
        method: Method::GET,
        path: "/v1/invoices",
        body: None,
    },
    Case {
        name: "POST reminder (allowed)",
        method: Method::POST,
        path: "/v1/invoices/INV-00038122/reminders",
        body: Some(
            r#"{"channel":"email","recipient_role":"billing","note":"Friendly reminder: invoice INV-00038122 is 30 days overdue."}"#,
        ),
    },
    Case {
        name: "POST reminder (denied)",
        method: Method::POST,
        path: "/v1/invoices/INV-00038122/reminders",
        body: Some(r#"{"channel":"email","recipient_role":"billing","email":"cfo@acme.example"}"#),
    },
];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "policies/demo".into());
    let iterations: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let bundle = Bundle::read(std::path::Path::new(&dir))?;
    let policy = PreparedPolicy::compile(
        &bundle,
        "data.lastmile.decision",
        Duration::from_millis(100),
    )?;
    let user = user()?;
    println!(
        "policy {dir} ({}), {iterations} decisions per case, one thread",
        policy.revision()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9}",
        "case", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for case in &CASES {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + iterations / 10 {
            let started = Instant::now();
            let body = match case.body {
                Some(text) => BodyView::Json(serde_json::from_str::<Value>(text)?),
                None => BodyView::Empty,
            };
            let value = policy.evaluate(input::build(InputParts {
                route: "crm",
                mode: "enforce",
                method: &case.method,
                path: case.path,
                segments: lastmile::pipeline::request::path_segments(case.path)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                query: None,
                headers: &headers,
                hidden: [None, None],
                body,
                body_bytes: case.body.map_or(0, str::len),
                user: Some(&user),
                now_ns: 0,
            }))?;
            let parsed = decision::parse(&value).context("decision")?;
            std::hint::black_box(parsed);
            // The first tenth warms caches and is not recorded.
            if i >= iterations / 10 {
                samples.push(started.elapsed());
            }
        }
        samples.sort();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64()
                * 1e6
        };
        println!(
            "{:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            case.name,
            at(0.50),
            at(0.90),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}

fn user() -> Result<lastmile::identity::User> {
    let claims = serde_json::json!({"sub": "u_alice", "scope": ["account:acme"], "roles": ["agent-operator"]});
    Ok(lastmile::identity::User {
        sub: Some("u_alice".into()),
        claims: Value::from(claims),
    })
}
