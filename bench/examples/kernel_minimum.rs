//! Span kernels side by side: every available tier, interleaved batches of 256 gathers with
//! 4096 random masks, minimum per tier over 800 rounds (robust to other load on a shared
//! machine). Round `r` writes to output buffer `r % 8` of 8 consecutive ones (64 bytes apart
//! modulo 4 KiB), so the minimum also covers 8 buffer placements: a dense gather's time
//! depends on where its buffer lies (up to about 10% on Zen 5), and one fixed buffer would
//! give each build and tier its own luck. `cargo run --release -p sencha-bench --example kernel_minimum -- 16,64 100,12.5`
//! (classes in bytes, grey densities in percent). Prints ns per span, then per density the
//! geometric mean over the classes of each tier's time relative to every other tier's, and the
//! largest and smallest such ratio. A third argument `fresh` writes each grey mask word by word
//! into a local copy just before its gather, as the marker does (a kernel that reloads those
//! words as one vector then waits for the stores to reach the cache).
use sencha::kernel::{GatherBuf, HeapRange, Kernel};
use sencha::spans::{Heap, Layout, Resolved, SizeClass};
use sencha::testing::SplitMix64;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let classes: Vec<usize> = args
        .get(1)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![16, 64, 512]);
    let dens: Vec<f64> = args
        .get(2)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![100.0, 12.5]);
    let fresh = args.get(3).is_some_and(|a| a == "fresh");
    let tiers: Vec<Kernel> = Kernel::available().collect();
    // best[density][class][tier], ns per span.
    let mut table = vec![Vec::new(); dens.len()];
    for &bytes in &classes {
        let class = SizeClass::new(bytes).unwrap();
        let mut heap = Heap::new();
        let layout = Layout::all_pointers(bytes).unwrap();
        let objs: Vec<usize> = (0..class.capacity())
            .map(|_| heap.alloc(&layout).unwrap())
            .collect();
        let mut r = SplitMix64::new(5);
        for &o in &objs {
            for w in 0..class.words() {
                let v = if r.below(8) == 0 {
                    0
                } else {
                    objs[r.below(objs.len())]
                };
                heap.write_word(o, w, v).unwrap();
            }
        }
        let Resolved::Small(o) = heap.resolve(objs[0]) else {
            panic!()
        };
        let (lo, hi) = heap.address_range();
        let range = HeapRange::new(lo, hi);
        for (di, &d) in dens.iter().enumerate() {
            let thr = (d / 100.0 * (1u64 << 32) as f64) as u64;
            let masks: Vec<[u64; 8]> = (0..4096)
                .map(|_| {
                    let mut m = [0u64; 8];
                    for i in 0..class.capacity() {
                        if (r.next_u64() >> 32) < thr {
                            m[i / 64] |= 1 << (i % 64);
                        }
                    }
                    m
                })
                .collect();
            let mut line = format!("{bytes:>4}B {d:>5}%");
            let mut best = vec![f64::MAX; tiers.len()];
            let mut outs = vec![GatherBuf::default(); 8];
            for round in 0..800 {
                let out = &mut outs[round % 8];
                for (i, k) in tiers.iter().enumerate() {
                    let ms = &masks[(round * 256) % 4096..][..256];
                    let t = Instant::now();
                    if fresh {
                        for m in ms {
                            let mut grey = [0u64; 8];
                            for (g, &w) in grey.iter_mut().zip(m) {
                                *g = black_box(w);
                            }
                            black_box(k.gather(o.span, &grey, range, &mut *out));
                        }
                    } else {
                        for m in ms {
                            black_box(k.gather(o.span, black_box(m), range, &mut *out));
                        }
                    }
                    best[i] = best[i].min(t.elapsed().as_nanos() as f64 / ms.len() as f64);
                }
            }
            for (k, b) in tiers.iter().zip(&best) {
                line += &format!("  {}={b:7.1}", k.name());
            }
            println!("{line}");
            table[di].push(best);
        }
    }
    for (di, &d) in dens.iter().enumerate() {
        for (i, a) in tiers.iter().enumerate() {
            for (j, b) in tiers.iter().enumerate().skip(i + 1) {
                let ratios: Vec<f64> = table[di].iter().map(|t| t[i] / t[j]).collect();
                let geomean =
                    (ratios.iter().map(|x| x.ln()).sum::<f64>() / ratios.len() as f64).exp();
                let max = ratios.iter().copied().fold(f64::MIN, f64::max);
                let min = ratios.iter().copied().fold(f64::MAX, f64::min);
                println!(
                    "{d:>5}%  {} / {}: geomean {geomean:.3}  min {min:.3}  max {max:.3}",
                    a.name(),
                    b.name()
                );
            }
        }
    }
}
