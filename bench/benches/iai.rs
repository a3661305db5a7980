//! Instruction counts (gungraun, iai-callgrind's successor): stable figures on a noisy machine.
//!
//! Valgrind hides AVX-512 from the program (its CPUID says no) but runs AVX2, so these count
//! the scalar tier and the avx2 tier: every setup asserts that detection did not pick avx512,
//! and each benchmark asserts the tier it counts (an absent avx2 tier is reported as skipped).
//! Never build this target with `-C target-cpu=native`, which would compile AVX-512 into code
//! valgrind cannot run. Run with `cargo bench -p sencha-bench --bench iai` (needs `gungraun-runner` of
//! the same version as the `gungraun` crate, and valgrind).

#![allow(missing_docs)] // the gungraun macros generate undocumented modules

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};
use sencha::kernel::{GatherBuf, HeapRange, Kernel};
use sencha::spans::{Resolved, SizeClass};
use sencha::{Heap, KernelChoice, Layout, Marker, Roots};
use sencha_bench::workload::{self, Kind};

fn assert_no_avx512() {
    assert_ne!(
        Kernel::detect().name(),
        "avx512",
        "valgrind runs no AVX-512: detection must not pick the avx512 tier"
    );
}

/// The avx2 tier, or `None` with a notice where this CPU (as valgrind shows it) lacks it.
fn avx2() -> Option<Kernel> {
    let k = Kernel::avx2();
    if k.is_none() {
        eprintln!("iai: SKIPPED tier avx2 (not available on this CPU); counting nothing");
    }
    k
}

/// A heap with one full span of `bytes`-byte objects whose every word points into the span.
fn full_span(bytes: usize) -> (Heap, usize) {
    assert_no_avx512();
    let class = SizeClass::new(bytes).expect("class");
    let mut heap = Heap::new();
    let layout = Layout::all_pointers(bytes).expect("layout");
    let objs: Vec<usize> = (0..class.capacity())
        .map(|_| heap.alloc(&layout).expect("alloc"))
        .collect();
    for (i, &o) in objs.iter().enumerate() {
        for w in 0..class.words() {
            heap.write_word(o, w, objs[(i * 7 + w) % objs.len()])
                .expect("write");
        }
    }
    (heap, objs[0])
}

#[library_benchmark]
#[bench::c16(setup = full_span, args = (16))]
#[bench::c64(setup = full_span, args = (64))]
#[bench::c512(setup = full_span, args = (512))]
fn kernel_scalar_full_span(input: (Heap, usize)) -> usize {
    let (heap, obj) = input;
    let Resolved::Small(o) = heap.resolve(obj) else {
        panic!("not a small object")
    };
    let (lo, hi) = heap.address_range();
    let mut buf = GatherBuf::default();
    let grey = [u64::MAX; 8];
    black_box(Kernel::scalar().gather(o.span, &grey, HeapRange::new(lo, hi), &mut buf))
}

#[library_benchmark]
#[bench::c16(setup = full_span, args = (16))]
#[bench::c64(setup = full_span, args = (64))]
#[bench::c512(setup = full_span, args = (512))]
fn kernel_avx2_full_span(input: (Heap, usize)) -> usize {
    let (heap, obj) = input;
    let Resolved::Small(o) = heap.resolve(obj) else {
        panic!("not a small object")
    };
    let (lo, hi) = heap.address_range();
    let mut buf = GatherBuf::default();
    let grey = [u64::MAX; 8];
    match avx2() {
        Some(k) => {
            assert_eq!(k.name(), "avx2");
            black_box(k.gather(o.span, &grey, HeapRange::new(lo, hi), &mut buf))
        }
        None => 0,
    }
}

fn lookups() -> (Heap, Vec<usize>) {
    assert_no_avx512();
    let mut heap = Heap::new();
    let l = Layout::with_pointers(48, 1).expect("layout");
    let objs: Vec<usize> = (0..1000).map(|_| heap.alloc(&l).expect("alloc")).collect();
    let mut probes: Vec<usize> = objs.iter().map(|&o| o + 8).collect();
    probes.extend([0, 1, usize::MAX, objs[0] - 8192]);
    (heap, probes)
}

#[library_benchmark]
#[bench::thousand(setup = lookups)]
fn page_map_resolve(input: (Heap, Vec<usize>)) -> usize {
    let (heap, probes) = input;
    let mut found = 0;
    for &p in &probes {
        if !matches!(heap.resolve(black_box(p)), Resolved::NotInHeap) {
            found += 1;
        }
    }
    black_box(found)
}

/// A workload at 1/1024 scale and a one-worker marker on `tier` (`None`: the tier is absent).
fn small_workload(kind: &str, tier: &str) -> (Heap, Roots, Option<Marker>) {
    assert_no_avx512();
    let kind = Kind::from_name(kind).expect("workload");
    let w = workload::build(kind, 1.0 / 1024.0, &mut |_| {}).expect("workload");
    let kernel = match tier {
        "scalar" => Some(Kernel::scalar()),
        _ => avx2(),
    };
    let m = kernel.map(|k| {
        let m = Marker::builder()
            .workers(1)
            .kernel(KernelChoice::from(k))
            .build()
            .expect("marker");
        assert_eq!(m.kernel().name(), tier, "the marker runs the tier counted");
        m
    });
    (w.heap, w.roots, m)
}

#[library_benchmark]
#[bench::tree(setup = small_workload, args = ("tree", "scalar"))]
#[bench::list(setup = small_workload, args = ("list", "scalar"))]
#[bench::graph(setup = small_workload, args = ("graph", "scalar"))]
fn mark_one_worker(input: (Heap, Roots, Option<Marker>)) -> usize {
    let (heap, roots, marker) = input;
    let marker = marker.expect("the scalar tier is always available");
    black_box(marker.mark(&heap, &roots).expect("mark").objects_marked)
}

#[library_benchmark]
#[bench::tree(setup = small_workload, args = ("tree", "avx2"))]
#[bench::list(setup = small_workload, args = ("list", "avx2"))]
#[bench::graph(setup = small_workload, args = ("graph", "avx2"))]
fn mark_one_worker_avx2(input: (Heap, Roots, Option<Marker>)) -> usize {
    let (heap, roots, marker) = input;
    match marker {
        Some(m) => black_box(m.mark(&heap, &roots).expect("mark").objects_marked),
        None => 0,
    }
}

library_benchmark_group!(
    name = sencha_scalar;
    benchmarks = kernel_scalar_full_span, page_map_resolve, mark_one_worker
);

library_benchmark_group!(
    name = sencha_avx2;
    benchmarks = kernel_avx2_full_span, mark_one_worker_avx2
);

main!(library_benchmark_groups = sencha_scalar, sencha_avx2);
