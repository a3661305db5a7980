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

use std::cell::OnceCell;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
