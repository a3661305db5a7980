//! Embedded-allocator throughput (criterion): objects allocated, and objects swept, per second.
//!
//! - `alloc/<size>B/<scan|noscan>`: allocate 4 MiB worth of `size`-byte objects into a warm
//!   heap (its arena reserved and touched, every span freed by a sweep), so each object costs
//!   its slot search, zeroing and pointer-bitmap write, plus a share of carving spans from
//!   free pages. Scan objects have one pointer word; noscan objects none. Between timed
//!   batches, an untimed sweep frees everything again.
//! - `sweep/<size>B/<scan|noscan>`: sweep a heap of `N` objects of which a random half
//!   (seeded) is marked with the reference mark (`Heap::mark_reachable`; the objects hold no
//!   heap pointers, so it marks exactly the roots). The setup (`iter_batched`) tops the heap up to
//!   `N` objects and marks; heaps are recycled between iterations, because dropping one costs
//!   more than the sweep itself.
//!
//! Run with `cargo bench -p sencha-bench --bench alloc` (add
//! `-- --warm-up-time 1 --measurement-time 3` for a short run).

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sencha::spans::testing::SplitMix64;
use sencha::spans::{Heap, Layout};

/// Bytes of objects allocated per timed batch.
const BATCH_BYTES: usize = 4 << 20;

/// Objects in a swept heap.
const SWEEP_OBJECTS: usize = 1 << 17;

const SIZES: [usize; 3] = [16, 64, 512];

fn layout(bytes: usize, scan: bool) -> Layout {
    let l = if scan {
        Layout::with_pointers(bytes, 1)
    } else {
        Layout::no_pointers(bytes)
    };
    l.expect("bench layouts are legal")
}

fn kind(scan: bool) -> &'static str {
    if scan { "scan" } else { "noscan" }
}

fn alloc(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc");
    group.sample_size(20);
    for bytes in SIZES {
        for scan in [true, false] {
            let layout = layout(bytes, scan);
            let n = BATCH_BYTES / bytes;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(format!("{bytes}B/{}", kind(scan)), |b| {
                b.iter_custom(|iters| {
                    let mut heap = Heap::new();
                    // Warm up: reserve the arena, touch every page, free it all.
                    for _ in 0..n {
                        heap.alloc(&layout).expect("allocation");
                    }
                    free_all(&mut heap);
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        for _ in 0..n {
                            black_box(heap.alloc(black_box(&layout)).expect("allocation"));
                        }
                        timed += start.elapsed();
                        free_all(&mut heap);
                    }
                    timed
                });
            });
        }
    }
    group.finish();
}

/// Frees every object: a mark from no roots, then a sweep.
fn free_all(heap: &mut Heap) {
    heap.mark_reachable(&[]).expect("no other mark");
    heap.sweep().expect("a complete mark ran");
}

/// A heap with its surviving objects, recycled between sweep iterations.
struct Swept {
    heap: Heap,
    objects: Vec<usize>,
}

fn sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    for (bytes, scan) in [(16, true), (64, true), (512, true), (64, false)] {
        let layout = layout(bytes, scan);
        let pool: RefCell<Vec<Swept>> = RefCell::new(Vec::new());
        let mut rng = SplitMix64::new(bytes as u64);
        group.throughput(Throughput::Elements(SWEEP_OBJECTS as u64));
        group.bench_function(format!("{bytes}B/{}", kind(scan)), |b| {
            b.iter_batched(
                || {
                    let mut s = pool.borrow_mut().pop().unwrap_or_else(|| Swept {
                        heap: Heap::new(),
                        objects: Vec::with_capacity(SWEEP_OBJECTS),
                    });
                    while s.objects.len() < SWEEP_OBJECTS {
                        s.objects.push(s.heap.alloc(&layout).expect("allocation"));
                    }
                    // Mark a random half: those survive the sweep.
                    s.objects.retain(|_| rng.coin());
                    s.heap.mark_reachable(&s.objects).expect("no other mark");
                    s
                },
                |mut s| {
                    let stats = s.heap.sweep().expect("a complete mark ran");
                    debug_assert_eq!(stats.live_objects, s.objects.len());
                    pool.borrow_mut().push(s);
                    stats
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, alloc, sweep);
criterion_main!(benches);
