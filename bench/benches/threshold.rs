//! criterion: where the dense (kernel) path starts to beat the sparse (object by object) path.
//!
//! For a span of each measured class with `n` random grey objects (every word a pointer into
//! the heap), two ways to collect the grey objects' pointer values:
//! - `kernel/<tier>`: the span kernel, as a dense scan runs it;
//! - `sparse`: object by object, as the marker's sparse path does (pointer bits of the object,
//!   then each pointer word, filtered by the heap range).
//!
//! Discovery of the collected pointers costs the same on both paths, so it is left out. The
//! smallest `n` at which a tier's kernel is faster is that tier's threshold for the class;
//! docs/PERFORMANCE.md records the data and the thresholds chosen from it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sencha::kernel::{GatherBuf, HeapRange, Kernel};
use sencha::spans::{Resolved, SizeClass, Span};
use sencha::testing::SplitMix64;
use sencha::{Heap, Layout};

const MASKS: usize = 4096;

fn full_heap(class: SizeClass) -> (Heap, usize) {
    let mut heap = Heap::new();
    let layout = Layout::all_pointers(class.bytes()).expect("layout");
    let objs: Vec<usize> = (0..class.capacity())
        .map(|_| heap.alloc(&layout).expect("alloc"))
        .collect();
    for (i, &o) in objs.iter().enumerate() {
        for w in 0..class.words() {
            heap.write_word(o, w, objs[(i * 31 + w * 7) % objs.len()])
                .expect("write");
        }
    }
    (heap, objs[0])
}

fn masks(class: SizeClass, n: usize, seed: u64) -> Vec<[u64; 8]> {
    let mut r = SplitMix64::new(seed);
    let cap = class.capacity();
    (0..MASKS)
        .map(|_| {
            let mut m = [0u64; 8];
            let mut set = 0;
            while set < n.min(cap) {
                let i = r.below(cap);
                if m[i / 64] >> (i % 64) & 1 == 0 {
                    m[i / 64] |= 1 << (i % 64);
                    set += 1;
                }
            }
            m
        })
        .collect()
}

fn sparse(
    span: Span<'_>,
    class: SizeClass,
    grey: &[u64; 8],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    let mut n = 0;
    for (wi, &g) in grey.iter().enumerate() {
        let mut g = g;
        while g != 0 {
            let i = wi * 64 + g.trailing_zeros() as usize;
            g &= g - 1;
            let mut bits = span.ptr_bits(i, class);
            let first = i * class.words();
            while bits != 0 {
                let k = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let v = span.read_word(first + k).unwrap_or(0);
                if range.contains(v) {
                    out.0[n] = v;
                    n += 1;
                }
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let classes = [16usize, 24, 32, 48, 64, 128, 256, 512];
    for bytes in classes {
        let class = SizeClass::new(bytes).expect("class");
        let (heap, obj) = full_heap(class);
        let Resolved::Small(o) = heap.resolve(obj) else {
            panic!("small object")
        };
        let (lo, hi) = heap.address_range();
        let range = HeapRange::new(lo, hi);
        let mut g = c.benchmark_group(format!("threshold/{bytes}B"));
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        let cap = class.capacity();
        let mut ns: Vec<usize> = [1, 2, 4, 8, 16, 32, 64, 128, 256]
            .into_iter()
            .filter(|&n| n < cap)
            .collect();
        ns.push(cap / 8);
        ns.sort_unstable();
        ns.dedup();
        for n in ns {
            let ms = masks(class, n, n as u64 * 1000 + bytes as u64);
            let mut out = GatherBuf::default();
            for k in Kernel::available() {
                let mut i = 0;
                g.bench_function(BenchmarkId::new(format!("kernel-{}", k.name()), n), |b| {
                    b.iter(|| {
                        i = (i + 1) % MASKS;
                        black_box(k.gather(o.span, &ms[i], range, &mut out))
                    })
                });
            }
            let mut i = 0;
            g.bench_function(BenchmarkId::new("sparse", n), |b| {
                b.iter(|| {
                    i = (i + 1) % MASKS;
                    black_box(sparse(o.span, class, &ms[i], range, &mut out))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
