//! Criterion benchmarks of what the proxy does in process for each request:
//!
//! - `decision/<bundle>/<case>/lastmile`: one whole decision (body parsed, input built,
//!   policy evaluated, decision parsed) for the shipped bundles;
//! - `decision/<bundle>/<case>/opa`: the OPA engine on the same policy files, data and
//!   input document (JSON in, JSON out), when `LASTMILE_OPA_LIBRARY` names OPA's
//!   `libopabridge.so` or bench/run has downloaded it into bench/.cache/opa/;
//! - `input/<case>`: building the input document alone (body parse included);
//! - `dedup_key/…`: deriving a dedup key and fingerprint, from a policy intent and from
//!   an agent's Idempotency-Key with a ~1 KiB body.
//!
//! Run: `cargo bench -p lastmile-bench --bench policy`. Criterion reports means and
//! medians; for tail percentiles use the `decision` binary, which records every sample.

use criterion::{criterion_group, criterion_main, Criterion};
use lastmile::dedup::key::{self, Actor, ClientKey, Fingerprint, Intent};
use lastmile_bench::opa::{Opa, DECISION};
use lastmile_bench::{
    alice, cases_for, decide, input_for, input_json, invoicing, json_headers, load, ROUTE,
};
use std::hint::black_box;
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("policies")
}

fn bundles() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let root = policies();
    let lib = root.join("lib");
    vec![
        (root.join("demo"), vec![]),
        (root.join("examples").join("invoicing"), vec![lib.clone()]),
        (root.join("examples").join("ticketing"), vec![lib]),
    ]
}

/// OPA's library, when it is there to compare with.
fn opa_library() -> Option<PathBuf> {
    let library = std::env::var_os("LASTMILE_OPA_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/opa/opa_bindings/libopabridge.so")
        });
    library.is_file().then_some(library)
}

fn decisions(c: &mut Criterion) {
    let (user, headers) = (alice(), json_headers());
    let opa_library = opa_library();
    if opa_library.is_none() {
        eprintln!("OPA's libopabridge.so not found: measuring lastmile only (see bench/README.md)");
    }
    for (dir, libraries) in bundles() {
        let policy = match load(&dir, &libraries) {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("{} does not load: {e:#}", dir.display());
                continue;
            }
        };
        let opa = opa_library.as_ref().and_then(|library| {
            match Opa::with_bundle(library, &dir, &libraries) {
                Ok(opa) => Some(opa),
                Err(e) => {
                    eprintln!("OPA cannot load {}: {e:#}", dir.display());
                    None
                }
            }
        });
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for case in cases_for(&dir) {
            let mut group = c.benchmark_group(format!("decision/{name}/{}", case.name));
            group.bench_function("lastmile", |b| {
                b.iter(|| decide(&policy, &case, &user, &headers))
            });
            let input = input_json(&case, &user, &headers);
            if let (Some(opa), Ok(input)) = (&opa, input) {
                group.bench_function("opa", |b| b.iter(|| opa.eval(DECISION, black_box(&input))));
            }
            group.finish();
        }
    }
}

fn inputs(c: &mut Criterion) {
    let (user, headers) = (alice(), json_headers());
    let mut group = c.benchmark_group("input");
    for case in invoicing() {
        group.bench_function(case.name, |b| {
            b.iter(|| input_for(black_box(&case), &user, &headers))
        });
    }
    group.finish();
}

fn dedup_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedup_key");
    let intent = regorus::Value::from(serde_json::json!([
        "send_reminder",
        "INV-00038122",
        "email"
    ]));
    group.bench_function("policy intent", |b| {
        b.iter(|| {
            let key = key::derive(
                ROUTE,
                Actor::User(Some("u_alice")),
                Intent::Policy(black_box(&intent)),
            );
            (key, Fingerprint::of_intent(&intent))
        })
    });
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "idempotency-key",
        http::HeaderValue::from_static("run-7f3a:step-2"),
    );
    let client = ClientKey::from_headers(&headers).ok().flatten();
    let body = invoicing()
        .into_iter()
        .find(|case| case.name.contains("1 KiB (allowed)"))
        .and_then(|case| case.body)
        .and_then(|text| regorus::Value::from_json_str(&text).ok());
    if let (Some(client), Some(body)) = (client, body) {
        group.bench_function("agent key, 1 KiB body", |b| {
            b.iter(|| {
                let key = key::derive(ROUTE, Actor::User(Some("u_alice")), Intent::Client(&client));
                let fingerprint = Fingerprint::of_request(
                    "POST",
                    "/v1/invoices",
                    None,
                    key::Body::Json(black_box(&body)),
                );
                (key, fingerprint)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions, inputs, dedup_keys);
criterion_main!(benches);
