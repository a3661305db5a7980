//! One workload, marked again and again with one marker and nothing else: for profilers
//! (`perf record`) and for A/B timings of the marker's switches in *one* process, on one heap.
//! (Separate processes build separate heaps, whose physical placement — huge pages or not —
//! moves a mark's time by up to 30% on the 2-core machines here; interleaving variants on one
//! heap removes that.) The CLI (`sencha-bench`) stays the measurement of record.
//!
//! `cargo run --release -p sencha-bench --example mark_loop -- tree 1 20 green-tea auto 1.0 default,no-prefetch`
//!
//! Arguments, all optional: workload, workers, marks per variant, `green-tea` or `baseline`,
//! kernel tier (`auto`, `scalar`, `avx2`, `avx512`), scale, and comma-separated variants
//! (`default`, `no-prefetch`, `no-in-place`, `fifo`, `lifo`), run in turn each round. Prints per variant the
//! median and minimum mark time and the scan counters of its last mark.
use sencha::{Algorithm, KernelChoice, Marker, SpanOrder};
use sencha_bench::workload::{self, Kind};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let kind = Kind::from_name(arg(1, "tree")).expect("a workload name");
    let workers: usize = arg(2, "1").parse().expect("workers");
    let marks: usize = arg(3, "10").parse().expect("marks");
    let algorithm = match arg(4, "green-tea") {
        "baseline" => Algorithm::Baseline,
        "green-tea" => Algorithm::GreenTea,
        other => panic!("unknown marker {other}"),
    };
    let kernel = match arg(5, "auto") {
        "auto" => KernelChoice::Auto,
        "scalar" => KernelChoice::Scalar,
        "avx2" => KernelChoice::Avx2,
        "avx512" => KernelChoice::Avx512,
        other => panic!("unknown tier {other}"),
    };
    let scale: f64 = arg(6, "1").parse().expect("scale");
    let variants: Vec<&str> = arg(7, "default").split(',').collect();
    let mut w = workload::build(kind, scale, &mut |_| {}).expect("workload");
    let markers: Vec<Marker> = variants
        .iter()
        .map(|v| {
            let b = Marker::builder()
                .workers(workers)
                .algorithm(algorithm)
                .kernel(kernel);
            match *v {
                "default" => b,
                "no-prefetch" => b.prefetch(false),
                "no-in-place" => b.in_place_scanning(false),
                "fifo" => b.span_order(SpanOrder::Fifo),
                "lifo" => b.span_order(SpanOrder::Lifo),
                other => panic!("unknown variant {other}"),
            }
            .build()
            .expect("marker")
        })
        .collect();
    let mut times = vec![Vec::new(); markers.len()];
    let mut last = vec![None; markers.len()];
    for _ in 0..marks {
        for (k, marker) in markers.iter().enumerate() {
            w.heap.clear_marks();
            let t = Instant::now();
            let stats = marker.mark(&w.heap, &w.roots).expect("mark");
            times[k].push(t.elapsed().as_secs_f64() * 1e3);
            last[k] = Some(stats);
        }
    }
    for (k, mut ms) in times.into_iter().enumerate() {
        ms.sort_by(f64::total_cmp);
        let s = last[k].take().expect("marks >= 1");
        println!(
            "{} {} {} workers={workers} {}: median {:.1} ms, min {:.1} ms over {marks}; \
             objects {} dense {} sparse {} single {} steals {}",
            kind.name(),
            algorithm.name(),
            markers[k].kernel().name(),
            variants[k],
            ms[ms.len() / 2],
            ms[0],
            s.objects_marked,
            s.spans_dense,
            s.spans_sparse,
            s.spans_single,
            s.steals,
        );
    }
}
