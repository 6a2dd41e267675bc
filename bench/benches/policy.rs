//! Criterion benchmark of one decision (input building, evaluation, decision parsing)
//! for the shipped policy bundles. Run: `cargo bench -p lastmile-bench --bench policy`.
//! For tail percentiles use the `decision` binary, which records every sample.

use criterion::{criterion_group, criterion_main, Criterion};
use lastmile_bench::{alice, cases_for, decide, json_headers, load};
use std::path::{Path, PathBuf};

fn bundles() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("policies");
    let lib = root.join("lib");
    let mut bundles = vec![(root.join("demo"), vec![])];
    for example in ["invoicing", "ticketing"] {
        let dir = root.join("examples").join(example);
        if dir.is_dir() {
            bundles.push((dir, vec![lib.clone()]));
        }
    }
    bundles
}

fn decisions(c: &mut Criterion) {
    let (user, headers) = (alice(), json_headers());
    for (dir, libraries) in bundles() {
        let Ok(policy) = load(&dir, &libraries) else {
            eprintln!("skipping {}: it does not load", dir.display());
            continue;
        };
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut group = c.benchmark_group(format!("decision/{name}"));
        for case in cases_for(&dir) {
            group.bench_function(case.name, |b| {
                b.iter(|| decide(&policy, case, &user, &headers))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
