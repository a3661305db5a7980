//! Every marker against the oracle, on random heaps, at 1 to 16 workers.

use sencha::testing::{HeapSpec, SplitMix64, check_marker, random_heap};
use sencha::{Algorithm, Heap, KernelChoice, Layout, Marker, Roots, reference};

use crate::{scaled, with_timeout};

/// Builds the heap of `spec` and checks every marker against the oracle on it.
fn assert_markers_agree(spec: &HeapSpec, markers: &[Marker], seed: u64) {
    let mut t = random_heap(spec);
    for m in markers {
        if let Err(e) = check_marker(&mut t, m) {
            panic!("seed {seed}: {e}");
        }
    }
}

fn markers() -> Vec<Marker> {
    let mut v = Vec::new();
    for w in [1, 2, 4, 8, 16] {
        v.push(
            Marker::builder()
                .workers(w)
                .build()
                .expect("green tea marker"),
        );
    }
    for w in [1, 4] {
        v.push(
            Marker::builder()
                .workers(w)
                .algorithm(Algorithm::Baseline)
                .build()
                .expect("baseline"),
        );
    }
    v
}

#[test]
fn markers_match_oracle_on_random_heaps() {
    with_timeout(600, || {
        let markers = markers();
        let heaps = scaled(1500);
        for seed in 0..heaps as u64 {
            assert_markers_agree(&HeapSpec::small(seed), &markers, seed);
        }
    });
}

#[test]
fn markers_match_oracle_with_every_kernel_forced() {
    with_timeout(300, || {
        let mut markers = vec![
            Marker::builder()
                .workers(2)
                .kernel(KernelChoice::Scalar)
                .build()
                .unwrap(),
        ];
        match Marker::builder()
            .workers(2)
            .kernel(KernelChoice::Avx512)
            .build()
        {
            Ok(m) => markers.push(m),
            Err(e) => eprintln!("SKIPPED avx512 tier: {e}"),
        }
        for seed in 0..scaled(300) as u64 {
            assert_markers_agree(&HeapSpec::small(seed ^ 0xabcd), &markers, seed);
        }
    });
}

#[test]
fn markers_match_oracle_on_larger_heaps() {
    with_timeout(300, || {
        let markers = markers();
        for seed in 0..scaled(6) as u64 {
            let spec = HeapSpec {
                seed,
                objects: 60_000,
                custom_spans: 8,
                large: 12,
                list: 20_000,
                roots: 50,
            };
            assert_markers_agree(&spec, &markers, seed);
        }
    });
}

#[test]
fn no_lost_span_under_oversubscription() {
    // 16 workers on 2 cores, many small heaps in a loop: stealing and termination races.
    with_timeout(300, || {
        let m = Marker::builder().workers(16).build().unwrap();
        for seed in 0..scaled(800) as u64 {
            let spec = HeapSpec {
                seed,
                objects: 200,
                custom_spans: 0,
                large: 0,
                list: 50,
                roots: 4,
            };
            assert_markers_agree(&spec, std::slice::from_ref(&m), seed);
        }
    });
}

#[test]
fn termination_with_fewer_threads_than_workers() {
    with_timeout(120, || {
        let pool = std::sync::Arc::new(rayon_pool(2));
        for algorithm in [Algorithm::GreenTea, Algorithm::Baseline] {
            let m = Marker::builder()
                .workers(12)
                .thread_pool(pool.clone())
                .algorithm(algorithm)
                .build()
                .unwrap();
            for seed in 0..scaled(100) as u64 {
                assert_markers_agree(&HeapSpec::small(seed + 77), std::slice::from_ref(&m), seed);
            }
        }
    });
}

fn rayon_pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

#[test]
fn smoke_empty_roots_mark_nothing() {
    let t = random_heap(&HeapSpec::small(5));
    for m in markers() {
        let s = m.mark(t.heap(), &Roots::new()).unwrap();
        assert_eq!(s.objects_marked, 0);
        assert!(t.heap().marked_objects().is_empty());
    }
}

#[test]
fn full_cycle_keeps_every_live_object() {
    with_timeout(120, || {
        let marker = Marker::builder().workers(4).build().unwrap();
        let mut t = random_heap(&HeapSpec {
            seed: 9,
            objects: 5000,
            custom_spans: 3,
            large: 6,
            list: 2000,
            roots: 10,
        });
        let mut r = SplitMix64::new(99);
        for cycle in 0..4 {
            check_marker(&mut t, &marker).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            marker.mark(t.heap(), &t.roots).unwrap();
            let live = t.heap().marked_objects();
            let contents: Vec<usize> = live
                .iter()
                .map(|&a| t.heap().read_word(a, 0).unwrap())
                .collect();
            let swept = t.sweep().unwrap();
            let kept = swept.live_objects + swept.live_medium_objects + swept.live_large_objects;
            assert_eq!(kept, live.len());
            for (&a, &c) in live.iter().zip(&contents) {
                assert!(
                    t.heap().object(a).is_ok(),
                    "cycle {cycle}: live object {a:#x} was freed"
                );
                assert_eq!(
                    t.heap().read_word(a, 0).unwrap(),
                    c,
                    "cycle {cycle}: live object changed"
                );
            }
            t.objects = live;
            // Allocate again, linking new objects from live ones, and go round.
            let cell = Layout::all_pointers(32).unwrap();
            for _ in 0..3000 {
                let new = t.alloc(&cell).unwrap();
                let from = t.objects[r.below(t.objects.len())];
                if t.heap().object(from).unwrap().bytes() <= 512 && Layout::all_pointers(8).is_ok()
                {
                    let _ = t.write_word(new, 0, from);
                }
                t.objects.push(new);
                t.roots.push_precise(new);
            }
        }
    });
}

#[test]
fn deep_list_and_wide_fanout() {
    with_timeout(120, || {
        let mut heap = Heap::new();
        let cons = Layout::all_pointers(16).unwrap();
        let mut head = 0;
        for _ in 0..200_000 {
            let c = heap.alloc(&cons).unwrap();
            heap.write_word(c, 1, head).unwrap();
            head = c;
        }
        let fan = heap
            .alloc(&Layout::all_pointers(8 * 100_000).unwrap())
            .unwrap();
        for w in 0..100_000 {
            let leaf = heap.alloc(&Layout::no_pointers(24).unwrap()).unwrap();
            heap.write_word(fan, w, leaf).unwrap();
        }
        let roots = Roots::precise([head, fan]);
        reference::mark(&heap, &roots).unwrap();
        let want = heap.marked_objects();
        assert_eq!(want.len(), 200_000 + 1 + 100_000);
        for m in markers() {
            heap.clear_marks();
            let s = m.mark(&heap, &roots).unwrap();
            assert_eq!(heap.marked_objects(), want, "{:?}", m);
            assert_eq!(s.objects_marked, want.len());
            assert!(
                s.large_chunks >= 7,
                "an 800 KB array is scanned in 128 KiB chunks"
            );
        }
    });
}
