//! Span-kernel benchmarks: every tier x Go's 25 size classes x grey density.
//!
//! Benchmark ids are `kernel/<tier>/<class>/<density>` for a few cache-resident spans and
//! `kernel/<tier>/<class>/cold-<density>` for 64 MiB of spans (larger than L3) visited in a
//! random order. `<density>` is the share of objects grey (0, 12.5, 50, 100 %); every object
//! has a pointer in every word, and one word in eight is null, so the full span is the worst
//! case of DESIGN §7. Each iteration gathers one span with the next of 4096 random grey masks
//! (a single repeated mask would let the branch predictor learn it). Throughput is 8 KiB per
//! span.
//!
//! ```text
//! cargo bench -p sencha-bench --bench kernel -- --warm-up-time 1 --measurement-time 2 'kernel/.*/16B/100'
//! ```
//! A tier this CPU lacks is skipped with a notice on stderr. Spans are built only for the
//! benchmarks the filter selects.
//!
//! A second group, `range/<tier>/<data>`, measures conservative range scanning
//! (`Roots::push_words`: the SIMD filter against the heap's address range, issue 10 item 5)
//! over stack-like words, in bytes per second:
//! ```text
//! cargo bench -p sencha-bench --bench kernel -- --warm-up-time 1 --measurement-time 2 'range/'
//! ```
//! `<data>` is `stack-<size>-<p>`: `<size>` of words, a share `<p>` of them heap pointers
//! (exact and interior), the rest small integers, stack addresses, code addresses and random
//! 64-bit values, as a thread's stack holds them. 64 KiB stays in L2, 4 MiB does not.

use std::cell::OnceCell;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sencha::Roots;
use sencha::kernel::{GatherBuf, HeapRange, Kernel};
use sencha::spans::span::{LINE_WORDS, SPAN_BYTES};
use sencha::spans::{Heap, Layout, Resolved, SizeClass, Span};

/// Grey masks cycled through per benchmark.
const MASKS: usize = 4096;
/// Spans of the cache-resident variant.
const HOT_SPANS: usize = 4;
/// Bytes of spans in the cold variant: larger than the L3 cache.
const COLD_BYTES: usize = 64 << 20;
/// Shares of grey objects, in percent.
const DENSITIES: [f64; 4] = [0.0, 12.5, 50.0, 100.0];

/// splitmix64, for reproducible fixtures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A heap whose spans all hold objects of one class, full, every word a pointer.
struct Fixture {
    heap: Heap,
    /// Span bases in visiting order.
    order: Vec<usize>,
}

impl Fixture {
    fn new(class: SizeClass, spans: usize, seed: u64) -> Self {
        let mut heap = Heap::new();
        let layout = Layout::all_pointers(class.bytes()).expect("layout");
        let objects = spans * class.capacity();
        let addrs: Vec<usize> = (0..objects)
            .map(|_| heap.alloc(&layout).expect("allocate a bench object"))
            .collect();
        let mut rng = Rng(seed);
        for &a in &addrs {
            for w in 0..class.words() {
                let v = if rng.below(8) == 0 {
                    0
                } else {
                    addrs[rng.below(objects)]
                };
                heap.write_word(a, w, v).expect("write a bench word");
            }
        }
        let mut order: Vec<usize> = heap.spans().map(|s| s.base()).collect();
        assert_eq!(order.len(), spans, "class {class}: spans allocated");
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        Fixture { heap, order }
    }

    fn spans(&self) -> Vec<Span<'_>> {
        let span = |base| match self.heap.resolve(base) {
            Resolved::Small(o) => o.span,
            other => panic!("span base {base:#x} resolves to {other:?}"),
        };
        self.order.iter().map(|&b| span(b)).collect()
    }

    fn range(&self) -> HeapRange {
        let (lo, hi) = self.heap.address_range();
        HeapRange::new(lo, hi)
    }
}

/// `MASKS` grey masks with each object grey with probability `percent`.
fn masks(class: SizeClass, percent: f64, seed: u64) -> Vec<[u64; LINE_WORDS]> {
    let mut rng = Rng(seed);
    let threshold = (percent / 100.0 * (1u64 << 32) as f64) as u64;
    (0..MASKS)
        .map(|_| {
            let mut m = [0u64; LINE_WORDS];
            for i in 0..class.capacity() {
                if (rng.next() >> 32) < threshold {
                    m[i / 64] |= 1 << (i % 64);
                }
            }
            m
        })
        .collect()
}

fn tiers() -> Vec<Kernel> {
    let mut tiers = vec![Kernel::scalar()];
    for (name, tier) in [("avx2", Kernel::avx2()), ("avx512", Kernel::avx512())] {
        match tier {
            Some(k) => tiers.push(k),
            None => eprintln!("kernel bench: SKIPPED tier {name} (not available on this CPU)"),
        }
    }
    tiers
}

fn bench_kernels(c: &mut Criterion) {
    let tiers = tiers();
    for class in SizeClass::DEFAULTS {
        let hot: OnceCell<Fixture> = OnceCell::new();
        let cold: OnceCell<Fixture> = OnceCell::new();
        let grey: Vec<OnceCell<Vec<[u64; LINE_WORDS]>>> =
            DENSITIES.iter().map(|_| OnceCell::new()).collect();
        for &k in &tiers {
            let mut g = c.benchmark_group(format!("kernel/{k}/{class}"));
            g.throughput(Throughput::Bytes(SPAN_BYTES as u64));
            for (d, &percent) in DENSITIES.iter().enumerate() {
                for (variant, cell, spans) in [
                    ("", &hot, HOT_SPANS),
                    ("cold-", &cold, COLD_BYTES / SPAN_BYTES),
                ] {
                    g.bench_function(format!("{variant}{percent}"), |b| {
                        let fx = cell.get_or_init(|| Fixture::new(class, spans, 0x5eed));
                        let masks = grey[d].get_or_init(|| masks(class, percent, 0x6e7));
                        let spans = fx.spans();
                        let range = fx.range();
                        let mut out = Box::new(GatherBuf::default());
                        let (mut m, mut s) = (0, 0);
                        b.iter(|| {
                            m = (m + 1) % MASKS;
                            s += 1;
                            if s == spans.len() {
                                s = 0;
                            }
                            let n = k.gather(spans[s], &masks[m], range, &mut out);
                            black_box(out.0[n / 2]);
                            n
                        });
                    });
                }
            }
            g.finish();
        }
    }
}

/// Stack-like words: a share `per_mille / 1000` point into `objects` (a quarter of them
/// interior), the rest are what stacks hold besides pointers.
fn stack_words(objects: &[usize], words: usize, per_mille: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    (0..words)
        .map(|_| {
            if rng.below(1000) < per_mille {
                objects[rng.below(objects.len())] + 8 * (rng.below(4) / 3)
            } else {
                match rng.below(4) {
                    0 => rng.below(4096),
                    1 => 0x7ffd_0000_0000 + 8 * rng.below(1 << 17),
                    2 => 0x5555_5555_0000 + rng.below(1 << 22),
                    _ => rng.next() as usize,
                }
            }
        })
        .collect()
}

fn bench_ranges(c: &mut Criterion) {
    let mut heap = Heap::new();
    let layout = Layout::all_pointers(32).expect("layout");
    let objects: Vec<usize> = (0..100_000)
        .map(|_| heap.alloc(&layout).expect("allocate a bench object"))
        .collect();
    for k in tiers() {
        let mut g = c.benchmark_group(format!("range/{k}"));
        for (size, bytes) in [("64KiB", 64 << 10), ("4MiB", 4 << 20)] {
            for (share, per_mille) in [("1%", 10), ("10%", 100)] {
                let data = stack_words(&objects, bytes / 8, per_mille, 0x57ac);
                g.throughput(Throughput::Bytes(bytes as u64));
                g.bench_function(format!("stack-{size}-{share}"), |b| {
                    let mut roots = Roots::new().range_kernel(k);
                    b.iter(|| {
                        roots.clear();
                        roots.push_words(&heap, black_box(&data))
                    });
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench_kernels, bench_ranges);
criterion_main!(benches);
