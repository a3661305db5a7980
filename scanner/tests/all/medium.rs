//! Medium objects (issue 10, item 6) under every marker: heaps full of embedded and custom
//! medium objects, linked with small and large ones through starts, interior pointers,
//! pointers past an object's layout (its slot tail), to free slots and to garbage; every marker
//! and worker count marks exactly what the oracle (`Heap::mark_reachable`) marks, and full
//! cycles of mark, sweep and allocation keep exactly the marked objects.

use std::collections::{BTreeMap, BTreeSet};

use sencha::spans::{MediumClass, Object, SPAN_BYTES};
use sencha::testing::SplitMix64;
use sencha::{
    Algorithm, Heap, HeapConfig, KernelChoice, Layout, Marker, OwnedMemory, Roots, SizeClass,
    reference,
};

use crate::{scaled, with_timeout};

/// A heap, its objects with their layouts, and its roots (also as plain words).
struct MediumHeap {
    heap: Heap,
    objects: Vec<(usize, Layout)>,
    roots: Roots,
    root_words: Vec<usize>,
}

/// Leaks `pages` zeroed, 8 KiB-aligned pages (custom medium spans live for the whole test).
fn leak_pages(pages: usize) -> OwnedMemory {
    let raw: &'static mut [u8] = vec![0u8; (pages + 1) * SPAN_BYTES].leak();
    let skip = raw.as_ptr().align_offset(SPAN_BYTES);
    OwnedMemory::from_static(&mut raw[skip..skip + pages * SPAN_BYTES])
}

/// A random layout of `bytes` (at least 16) of every constructor shape.
fn random_layout(r: &mut SplitMix64, bytes: usize) -> Layout {
    let words = bytes.div_ceil(8);
    match r.below(6) {
        0 => Layout::no_pointers(bytes),
        1 => Layout::all_pointers(bytes),
        2 => {
            let ws: Vec<usize> = (0..1 + r.below(8)).map(|_| r.below(words)).collect();
            Layout::from_pointer_words(bytes, &ws)
        }
        3 if bytes >= 40 => {
            let n = (bytes - 24) / 16;
            Layout::header_then_array(
                Layout::with_pointers(bytes - 16 * n, 0b011).expect("a header of at least 3 words"),
                Layout::with_pointers(16, 0b10).expect("valid"),
                n,
            )
        }
        4 => Layout::array(
            Layout::from_pointer_words(8 * (1 + r.below(words)), &[0]).expect("valid"),
            1,
        ),
        _ => Layout::with_pointers(bytes, r.next_u64() & low(words)),
    }
    .expect("valid layout")
}

/// A random layout of `lo .. hi` bytes.
fn layout_between(r: &mut SplitMix64, lo: usize, hi: usize) -> Layout {
    let bytes = lo + r.below(hi - lo);
    random_layout(r, bytes)
}

fn low(words: usize) -> u64 {
    if words >= 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    }
}

/// Builds a heap for `seed`: small, medium (embedded and in custom spans of odd classes) and
/// large objects, with random pointer words and roots.
fn medium_heap(seed: u64) -> MediumHeap {
    let mut r = SplitMix64::new(seed ^ 0x3ed1);
    let mut heap = Heap::with_config(HeapConfig {
        huge_pages: false,
        arena_bytes: 2 << 20,
    })
    .expect("valid configuration");
    let mut objects = Vec::new();
    for _ in 0..r.below(800) {
        let l = layout_between(&mut r, 16, 513);
        objects.push((heap.alloc(&l).expect("small"), l));
    }
    for _ in 0..1 + r.below(500) {
        let l = layout_between(&mut r, 513, 8193);
        objects.push((heap.alloc(&l).expect("medium"), l));
    }
    for _ in 0..r.below(4) {
        let class = MediumClass::new(8 * (65 + r.below(960))).expect("legal class");
        let pages = 1 + r.below(MediumClass::MAX_SPAN_PAGES);
        let base = heap
            .register_medium_span(leak_pages(pages), class)
            .expect("register");
        for k in 0..class.capacity(pages * SPAN_BYTES) {
            if r.chance(2, 3) {
                let l = layout_between(&mut r, class.bytes() - 63, class.bytes() + 1);
                let a = base + k * class.bytes();
                heap.init_object(a, &l).expect("init");
                objects.push((a, l));
            }
        }
    }
    for _ in 0..r.below(3) {
        let l = layout_between(&mut r, 8193, 108_193);
        objects.push((heap.alloc(&l).expect("large"), l));
    }
    let n = objects.len();
    let (lo, hi) = heap.address_range();
    for k in 0..n {
        let (obj, l) = objects[k];
        let words: Vec<usize> = (0..l.words().min(300))
            .chain(l.words().saturating_sub(8)..l.words())
            .filter(|&w| l.is_pointer_word(w))
            .collect();
        for w in words {
            let (t, tl) = objects[r.below(n)];
            let v = match r.below(16) {
                0..=6 => t,
                7 => t + 8 * r.below(tl.words()),
                // Just past the target's layout: its slot tail (medium) or the next object.
                8 => t + tl.bytes(),
                9 => obj,
                10 => r.below(4096),
                11 => lo.wrapping_sub(8 + 8 * r.below(64)),
                12 => hi + 8 * r.below(1024),
                13 => lo + 8 * r.below((hi - lo) / 8),
                _ => 0,
            };
            heap.write_word(obj, w, v).expect("write");
        }
    }
    let mut roots = Roots::new();
    let mut root_words = Vec::new();
    for _ in 0..1 + r.below(6) {
        let a = objects[r.below(n)].0;
        roots.push_precise(a);
        root_words.push(a);
    }
    for _ in 0..4 {
        let (t, tl) = objects[r.below(n)];
        let v = match r.below(3) {
            0 => t + 8 * r.below(tl.words()),
            1 => r.next_u64() as usize,
            _ => lo + 8 * r.below((hi - lo) / 8),
        };
        roots.push_conservative(v);
        root_words.push(v);
    }
    MediumHeap {
        heap,
        objects,
        roots,
        root_words,
    }
}

fn markers() -> Vec<Marker> {
    let mut v: Vec<Marker> = [1, 2, 4, 8, 16]
        .into_iter()
        .map(|w| Marker::builder().workers(w).build().expect("green tea"))
        .collect();
    for w in [1, 4] {
        let b = Marker::builder().workers(w).algorithm(Algorithm::Baseline);
        v.push(b.build().expect("baseline"));
    }
    for k in [
        KernelChoice::Scalar,
        KernelChoice::Avx2,
        KernelChoice::Avx512,
    ] {
        match Marker::builder().workers(2).kernel(k).build() {
            Ok(m) => v.push(m),
            Err(e) => eprintln!("SKIPPED {k:?} tier: {e}"),
        }
    }
    v
}

/// What is reachable in `h`, computed from the test's own object list without the heap's
/// page map: a word keeps the object whose bytes it points into (a small object's whole slot,
/// a medium or large object's layout), precise roots keep their object.
fn model_reachable(h: &MediumHeap, conservative: &[usize]) -> Vec<usize> {
    let extent: BTreeMap<usize, (usize, Layout)> = h
        .objects
        .iter()
        .map(|&(a, l)| {
            let end = match SizeClass::for_bytes(l.bytes()) {
                Some(c) => a + c.bytes(),
                None => a + l.bytes(),
            };
            (a, (end, l))
        })
        .collect();
    let find = |v: usize| {
        let (&a, &(end, l)) = extent.range(..=v).next_back()?;
        (v < end).then_some((a, l))
    };
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(usize, Layout)> = conservative.iter().filter_map(|&v| find(v)).collect();
    while let Some((a, l)) = stack.pop() {
        if !seen.insert(a) {
            continue;
        }
        for w in (0..l.words()).filter(|&w| l.is_pointer_word(w)) {
            let v = h.heap.read_word(a, w).expect("a live object");
            stack.extend(find(v));
        }
    }
    seen.into_iter().collect()
}

/// The oracle's marked set of `h` (checked against [`model_reachable`]), then each marker's:
/// `Err` names the first difference.
fn check(h: &mut MediumHeap, markers: &[Marker]) -> Result<Vec<usize>, String> {
    reference::mark(&h.heap, &h.roots).map_err(|e| format!("oracle: {e}"))?;
    let want = h.heap.marked_objects();
    let model = model_reachable(h, &h.root_words);
    if want != model {
        let missing: Vec<_> = model.iter().filter(|a| !want.contains(a)).take(5).collect();
        let extra: Vec<_> = want.iter().filter(|a| !model.contains(a)).take(5).collect();
        return Err(format!(
            "oracle: {} marked, model {}; missing {missing:x?}, extra {extra:x?}",
            want.len(),
            model.len()
        ));
    }
    let medium = h.heap.marked_totals().medium_objects;
    for m in markers {
        h.heap.clear_marks();
        let stats = m.mark(&h.heap, &h.roots).map_err(|e| e.to_string())?;
        let got = h.heap.marked_objects();
        let what = format!("{} {} x{}", m.algorithm().name(), m.kernel(), m.workers());
        if got != want {
            let missing: Vec<_> = want.iter().filter(|a| !got.contains(a)).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|a| !want.contains(a)).take(5).collect();
            return Err(format!(
                "{what}: {} marked, oracle {}; missing {missing:x?}, extra {extra:x?}",
                got.len(),
                want.len()
            ));
        }
        if stats.objects_marked != got.len() || h.heap.marked_totals().medium_objects != medium {
            return Err(format!("{what}: counts {stats:?}"));
        }
    }
    Ok(want)
}

#[test]
fn medium_markers_match_oracle() {
    with_timeout(600, || {
        let markers = markers();
        let mut medium_marked = 0;
        for seed in 0..scaled(120) as u64 {
            let mut h = medium_heap(seed);
            let want = check(&mut h, &markers).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            medium_marked += want
                .iter()
                .filter(|&&a| matches!(h.heap.object(a), Ok(Object::Large(l)) if l.is_medium()))
                .count();
        }
        // The heaps are not vacuous: medium objects were reached and marked.
        assert!(
            medium_marked > 1000,
            "{medium_marked} medium objects marked"
        );
    });
}

/// Mark with a marker, sweep, allocate, relink, repeat: the sweep keeps exactly the marked
/// objects (contents intact), new objects allocated between the mark and the sweep survive
/// it (allocated black), and the markers keep agreeing with the oracle on the reused heap.
#[test]
fn medium_full_cycles_keep_exactly_the_marked() {
    with_timeout(600, || {
        let markers = markers();
        let marker = Marker::builder().workers(4).build().expect("marker");
        for seed in 0..scaled(12) as u64 {
            let mut h = medium_heap(seed);
            let mut r = SplitMix64::new(seed);
            for cycle in 0..4 {
                let live = check(&mut h, &markers)
                    .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: {e}"));
                h.heap.clear_marks();
                marker.mark(&h.heap, &h.roots).expect("mark");
                assert_eq!(h.heap.marked_objects(), live);
                let firsts: Vec<usize> = live
                    .iter()
                    .map(|&a| h.heap.read_word(a, 0).expect("live"))
                    .collect();
                // Allocated black: new medium objects, linked from nothing yet.
                let black: Vec<(usize, Layout)> = (0..20)
                    .map(|_| {
                        let l = layout_between(&mut r, 513, 8193);
                        (h.heap.alloc(&l).expect("alloc"), l)
                    })
                    .collect();
                let swept = h.heap.sweep().expect("sweep");
                let kept =
                    swept.live_objects + swept.live_medium_objects + swept.live_large_objects;
                assert_eq!(kept, live.len() + black.len(), "seed {seed} cycle {cycle}");
                for (&a, &w0) in live.iter().zip(&firsts) {
                    assert_eq!(h.heap.read_word(a, 0), Ok(w0), "seed {seed}: {a:#x}");
                }
                for &(a, _) in &black {
                    assert!(h.heap.object(a).is_ok(), "seed {seed}: black {a:#x} freed");
                }
                h.objects.retain(|o| live.binary_search(&o.0).is_ok());
                h.objects.extend(black);
                // New objects in freed slots, linked into live ones; roots from survivors.
                for _ in 0..200 {
                    let l = layout_between(&mut r, 16, 12_016);
                    let a = h.heap.alloc(&l).expect("alloc");
                    h.objects.push((a, l));
                }
                let n = h.objects.len();
                for k in 0..n {
                    let (obj, l) = h.objects[k];
                    if let Some(w) = (0..l.words().min(64)).find(|&w| l.is_pointer_word(w)) {
                        h.heap
                            .write_word(obj, w, h.objects[r.below(n)].0)
                            .expect("write");
                    }
                }
                h.root_words = (0..3).map(|_| h.objects[r.below(n)].0).collect();
                h.roots = Roots::precise(h.root_words.iter().copied());
            }
        }
    });
}
