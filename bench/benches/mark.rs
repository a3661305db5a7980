//! criterion: the markers on the anchor workloads, by worker count.
//!
//! Groups `mark/<workload>`, benchmarks `<marker>/<workers>`, throughput in marked bytes.
//! Markers: `baseline` (classic, object at a time), `green-tea-<tier>` for every available
//! tier, and the Green Tea variants `plain` (no in-place rescans, no prefetch) and
//! `no-prefetch`, which show what DESIGN §5.4 and §5.5 buy. Only the mark is timed: marks are
//! cleared between iterations outside the timed region.
//!
//! `SENCHA_BENCH_SCALE` (default 1) scales the workloads; `SENCHA_BENCH_WORKLOADS` picks them
//! (default `tree,graph,list,shuffled`).

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use sencha::{Algorithm, Kernel, KernelChoice, Marker, MarkerBuilder, reference};
use sencha_bench::workload::{self, Kind};

fn markers(workers: usize) -> Vec<(String, Marker)> {
    let b = || Marker::builder().workers(workers);
    let tier = |k: Kernel| match k.name() {
        "avx512" => KernelChoice::Avx512,
        _ => KernelChoice::Scalar,
    };
    let build = |name: String, m: MarkerBuilder| (name, m.build().expect("marker"));
    let best = tier(Kernel::detect());
    let mut v = vec![build("baseline".into(), b().algorithm(Algorithm::Baseline))];
    for k in Kernel::available() {
        v.push(build(
            format!("green-tea-{}", k.name()),
            b().kernel(tier(k)),
        ));
    }
    v.push(build(
        "green-tea-no-prefetch".into(),
        b().kernel(best).prefetch(false),
    ));
    v.push(build(
        "green-tea-plain".into(),
        b().kernel(best).prefetch(false).in_place_scanning(false),
    ));
    v
}

fn bench(c: &mut Criterion) {
    let scale: f64 = std::env::var("SENCHA_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let names = std::env::var("SENCHA_BENCH_WORKLOADS")
        .unwrap_or_else(|_| "tree,graph,list,shuffled".to_string());
    for name in names.split(',') {
        let Some(kind) = Kind::from_name(name.trim()) else {
            eprintln!("skipping unknown workload {name:?}");
            continue;
        };
        let mut w = workload::build(kind, scale, &mut |_| {}).expect("workload");
        w.heap.clear_marks();
        let marked = reference::mark(&w.heap, &w.roots)
            .expect("oracle")
            .bytes_marked;
        let mut g = c.benchmark_group(format!("mark/{}", kind.name()));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Bytes(marked as u64));
        for workers in [1, 2] {
            for (name, marker) in markers(workers) {
                g.bench_function(BenchmarkId::new(name, workers), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            w.heap.clear_marks();
                            let t = Instant::now();
                            marker.mark(&w.heap, &w.roots).expect("mark");
                            total += t.elapsed();
                        }
                        total
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
