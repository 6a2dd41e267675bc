//! Decision cost, in process, one thread: p50/p90/p99/max per representative request,
//! for lastmile's evaluator and, with `--opa`, for the OPA engine on the same policy
//! files, data and input document, side by side in one run.
//!
//! Usage: `decision [--lib DIR]... [--opa libopabridge.so] [BUNDLE] [ITERATIONS]`
//! (default `policies/demo`, 20000).
//!
//! lastmile's figure is a whole decision as the proxy makes it: the body parsed, the
//! input built, the policy evaluated and its decision parsed. OPA's is one
//! `OpaEvalDocument` call on the input already serialised to JSON (OPA parses it, then
//! evaluates), plus reading its JSON reply: the input building is not charged to OPA.

use anyhow::{bail, Result};
use clap::Parser;
use lastmile_bench::opa::{Opa, DECISION};
use lastmile_bench::{alice, cases_for, decide, input_json, json_headers, load, summary};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// The proxy's allocator, so decisions cost here what they cost in the proxy.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// A policy library directory, as `policy.library_dirs` (repeatable).
    #[arg(long = "lib")]
    libraries: Vec<PathBuf>,
    /// OPA's `libopabridge.so` (bench/run downloads it into bench/.cache/opa/): also
    /// measures the OPA engine on the same policy and inputs.
    #[arg(long)]
    opa: Option<PathBuf>,
    #[arg(default_value = "policies/demo")]
    bundle: PathBuf,
    #[arg(default_value_t = 20_000)]
    iterations: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let policy = load(&args.bundle, &args.libraries)?;
    let opa = args
        .opa
        .as_ref()
        .map(|library| Opa::with_bundle(library, &args.bundle, &args.libraries))
        .transpose()?;
    let (user, headers) = (alice(), json_headers());
    println!(
        "policy {} ({}), {} decisions per case and engine, one thread",
        args.bundle.display(),
        policy.revision(),
        args.iterations
    );
    println!(
        "{:<30} {:<9} {:>8} {:>8} {:>8} {:>8}",
        "case", "engine", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for case in cases_for(&args.bundle) {
        let lastmile = measure(args.iterations, || {
            decide(&policy, &case, &user, &headers).map(drop)
        })?;
        print_row(case.name, "lastmile", &lastmile);
        let Some(opa) = &opa else { continue };
        let input = input_json(&case, &user, &headers)?;
        // The engines must agree before their speed is compared.
        let ours = summary(&decide(&policy, &case, &user, &headers)?);
        let theirs = opa_decision(opa, &input)?;
        if ours != theirs {
            bail!(
                "{}: the engines disagree\n lastmile: {ours}\n OPA:      {theirs}",
                case.name
            );
        }
        let measured = measure(args.iterations, || opa.eval(DECISION, &input).map(drop))?;
        print_row("", "OPA", &measured);
        println!(
            "{:<30} {:<9} {:>7.1}× {:>7.1}× {:>7.1}×",
            "",
            "OPA/ours",
            measured.at(0.50) / lastmile.at(0.50),
            measured.at(0.90) / lastmile.at(0.90),
            measured.at(0.99) / lastmile.at(0.99),
        );
    }
    Ok(())
}

/// OPA's decision for one input, read by lastmile's decision parser.
fn opa_decision(opa: &Opa, input: &str) -> Result<String> {
    let Some(value) = opa.eval(DECISION, input)? else {
        bail!("OPA: the decision is undefined");
    };
    let value =
        regorus::Value::from_json_str(&value.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(summary(&lastmile::policy::decide::interpret(&value)?))
}

/// Every sample of one run, sorted.
struct Samples(Vec<Duration>);

impl Samples {
    /// The sample at quantile `q`, in µs.
    fn at(&self, q: f64) -> f64 {
        let index = ((self.0.len() as f64 * q) as usize).min(self.0.len().saturating_sub(1));
        self.0.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// Times `iterations` calls; the first tenth more warm caches and are not recorded.
fn measure(iterations: usize, mut call: impl FnMut() -> Result<()>) -> Result<Samples> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        std::hint::black_box(call()?);
        if i >= iterations / 10 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    Ok(Samples(samples))
}

fn print_row(case: &str, engine: &str, samples: &Samples) {
    println!(
        "{:<30} {:<9} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        case,
        engine,
        samples.at(0.50),
        samples.at(0.90),
        samples.at(0.99),
        samples.at(1.0)
    );
}
