//! Decision cost, in process, one thread: p50/p90/p99/max per representative request.
//!
//! Usage: `decision [--lib DIR]... [BUNDLE] [ITERATIONS]` (default `policies/demo`, 20000).

use anyhow::Result;
use lastmile_bench::{alice, cases_for, decide, json_headers, load};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<()> {
    let mut libraries = Vec::new();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lib" => libraries.extend(args.next().map(PathBuf::from)),
            _ => positional.push(arg),
        }
    }
    let dir = PathBuf::from(positional.first().map_or("policies/demo", String::as_str));
    let iterations: usize = positional
        .get(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let policy = load(&dir, &libraries)?;
    let (user, headers) = (alice(), json_headers());
    println!(
        "policy {} ({}), {iterations} decisions per case, one thread",
        dir.display(),
        policy.revision()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9}",
        "case", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for case in cases_for(&dir) {
        let mut samples = Vec::with_capacity(iterations);
        // The first tenth warms caches and is not recorded.
        for i in 0..iterations + iterations / 10 {
            let started = Instant::now();
            std::hint::black_box(decide(&policy, case, &user, &headers)?);
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
