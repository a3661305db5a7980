//! Instruction counts (gungraun, iai-callgrind's successor): stable figures on a noisy machine.
//!
//! Valgrind hides AVX-512 from the program (its CPUID says no), so kernel detection picks the
//! scalar tier and these counts are the scalar tier's; every setup asserts that. Never build
//! this target with `-C target-cpu=native`, which would compile AVX-512 into code valgrind
//! cannot run. Run with `cargo bench -p sencha-bench --bench iai` (needs `gungraun-runner` of
//! the same version as the `gungraun` crate, and valgrind).

#![allow(missing_docs)] // the gungraun macros generate undocumented modules

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};
use sencha::kernel::{GatherBuf, HeapRange, Kernel};
use sencha::spans::{Resolved, SizeClass};
use sencha::{Heap, Layout, Marker, Roots};
use sencha_bench::workload::{self, Kind};

fn assert_scalar() {
    assert_eq!(
        Kernel::detect().name(),
        "scalar",
        "under valgrind detection must pick the scalar tier"
    );
}

/// A heap with one full span of `bytes`-byte objects whose every word points into the span.
fn full_span(bytes: usize) -> (Heap, usize) {
    assert_scalar();
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

fn lookups() -> (Heap, Vec<usize>) {
    assert_scalar();
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

fn small_workload(kind: &str) -> (Heap, Roots, Marker) {
    assert_scalar();
    let kind = Kind::from_name(kind).expect("workload");
    let w = workload::build(kind, 1.0 / 1024.0, &mut |_| {}).expect("workload");
    let m = Marker::builder().workers(1).build().expect("marker");
    assert_eq!(m.kernel().name(), "scalar");
    (w.heap, w.roots, m)
}

#[library_benchmark]
#[bench::tree(setup = small_workload, args = ("tree"))]
#[bench::list(setup = small_workload, args = ("list"))]
#[bench::graph(setup = small_workload, args = ("graph"))]
fn mark_one_worker(input: (Heap, Roots, Marker)) -> usize {
    let (heap, roots, marker) = input;
    black_box(marker.mark(&heap, &roots).expect("mark").objects_marked)
}

library_benchmark_group!(
    name = sencha_scalar;
    benchmarks = kernel_scalar_full_span, page_map_resolve, mark_one_worker
);

main!(library_benchmark_groups = sencha_scalar);
