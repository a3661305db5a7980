//! The embedded allocator and sweep: fill spans, sweep with random mark sets, reuse.

use std::collections::{BTreeMap, BTreeSet};

use sencha_spans::{
    Error, Heap, Layout, Object, Resolved, SPAN_BYTES, SizeClass, SmallObject, SweepStats,
};

use crate::support::{Rng, mark_exactly, small_heap};

/// The slot of the small object at `addr`.
fn slot(heap: &Heap, addr: usize) -> SmallObject<'_> {
    match heap.resolve(addr) {
        Resolved::Small(o) => o,
        other => panic!("{addr:#x} is not a small slot: {other:?}"),
    }
}

/// Two layouts that land in `class`: one full-size, one as small as the class allows (its
/// size just above the previous default class). Both have pointers unless `noscan`.
fn layouts(class: SizeClass, noscan: bool) -> [Layout; 2] {
    let prev = SizeClass::DEFAULTS
        .iter()
        .rev()
        .find(|c| c.bytes() < class.bytes())
        .map_or(0, |c| c.bytes());
    let small = prev + 1; // rounds up to prev + 8
    let words = class.words();
    if noscan {
        [
            Layout::no_pointers(class.bytes()).unwrap(),
            Layout::no_pointers(small).unwrap(),
        ]
    } else {
        let small_words = small.div_ceil(8);
        let alternate = 0x5555_5555_5555_5555u64 & ((1u128 << words) - 1) as u64;
        [
            Layout::with_pointers(class.bytes(), alternate | 1 << (words - 1)).unwrap(),
            Layout::with_pointers(small, 1 << (small_words - 1)).unwrap(),
        ]
    }
}

/// The pointer bits a small object of `layout` must have: bit k = word k is a pointer.
fn bits_of(layout: &Layout) -> u64 {
    (0..layout.words().min(64))
        .filter(|&w| layout.is_pointer_word(w))
        .fold(0, |b, w| b | 1 << w)
}

fn pattern(addr: usize, w: usize) -> usize {
    addr ^ (w << 52) ^ 0x5e9c_4a00_0000_0000
}

/// Allocates `n` objects with random picks of `layouts`, checking that each is zeroed, then
/// fills it with a recognisable pattern. Returns address -> pointer bits.
fn alloc_n(
    heap: &mut Heap,
    layouts: &[Layout; 2],
    n: usize,
    rng: &mut Rng,
) -> BTreeMap<usize, u64> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let layout = layouts[rng.below(2)];
        let a = heap.alloc(&layout).unwrap();
        let words = heap.object(a).unwrap().bytes() / 8;
        for w in 0..words {
            assert_eq!(
                heap.read_word(a, w).unwrap(),
                0,
                "{a:#x} word {w} not zeroed"
            );
            heap.write_word(a, w, pattern(a, w)).unwrap();
        }
        assert!(
            out.insert(a, bits_of(&layout)).is_none(),
            "{a:#x} handed out twice"
        );
    }
    out
}

/// Every slot of every span of `heap`: allocated slots have their layout's pointer bits and
/// their pattern; free slots and noscan spans have no pointer bits.
fn check_slots(heap: &Heap, live: &BTreeMap<usize, u64>, noscan: bool) {
    for span in heap.spans() {
        let class = span.class();
        assert_eq!(span.is_noscan(), noscan);
        for i in 0..class.capacity() {
            let a = span.object_addr(i);
            let bits = span.object_ptr_bits(i);
            match live.get(&a) {
                Some(&want) => {
                    assert_eq!(bits, if noscan { 0 } else { want }, "slot {a:#x}");
                    assert!(heap.object(a).is_ok(), "{a:#x} should be allocated");
                    for w in 0..class.words() {
                        assert_eq!(heap.read_word(a, w).unwrap(), pattern(a, w), "{a:#x}.{w}");
                    }
                }
                None => {
                    assert_eq!(bits, 0, "free slot {a:#x} keeps pointer bits");
                    assert_eq!(heap.object(a).unwrap_err(), Error::NotAnObject { addr: a });
                }
            }
        }
    }
}

/// Fill several spans of one class, sweep with a seeded random mark set (one span entirely
/// unmarked), and check that exactly the unmarked slots are freed and then reused.
fn fill_sweep_reuse(class: SizeClass, noscan: bool, seed: u64) {
    let ctx = format!("class {class}, noscan {noscan}, seed {seed}");
    let mut heap = small_heap();
    let mut rng = Rng::new(seed);
    let layouts = layouts(class, noscan);
    for l in &layouts {
        assert_eq!(
            SizeClass::for_bytes(l.bytes()),
            Some(class),
            "{ctx}: fixture {l:?}"
        );
    }
    const SPANS: usize = 4;
    let n = SPANS * class.capacity();
    let objects = alloc_n(&mut heap, &layouts, n, &mut rng);

    // Every object is a slot of a span of this class; the spans are full.
    let mut spans: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &a in objects.keys() {
        let o = slot(&heap, a);
        assert_eq!((o.class, o.noscan, o.addr()), (class, noscan, a), "{ctx}");
        spans.entry(o.span.base()).or_default().push(a);
    }
    assert_eq!(spans.len(), SPANS, "{ctx}: spans used");
    assert!(spans.values().all(|v| v.len() == class.capacity()), "{ctx}");
    let s = heap.stats();
    assert_eq!((s.spans, s.small_objects), (SPANS, n), "{ctx}");
    assert_eq!(s.small_bytes, n * class.bytes(), "{ctx}");
    check_slots(&heap, &objects, noscan);

    // Mark about half at random, but nothing in the second span.
    let empty_span = *spans.keys().nth(1).unwrap();
    let mut marked = BTreeSet::new();
    for &a in objects.keys() {
        if a & !(SPAN_BYTES - 1) != empty_span && rng.coin() {
            marked.insert(a);
        }
    }
    // A root given twice is harmless.
    let mut roots: Vec<usize> = marked.iter().copied().collect();
    roots.extend(marked.first());
    mark_exactly(&heap, &roots);
    let freed: BTreeSet<usize> = objects
        .keys()
        .copied()
        .filter(|a| !marked.contains(a))
        .collect();
    let swept = heap.sweep().unwrap();
    let want = SweepStats {
        freed_objects: freed.len(),
        freed_bytes: freed.len() * class.bytes(),
        freed_spans: 1,
        live_objects: marked.len(),
        live_bytes: marked.len() * class.bytes(),
        ..SweepStats::default()
    };
    assert_eq!(swept, want, "{ctx}");
    let s = heap.stats();
    assert_eq!(
        (s.spans, s.small_objects, s.small_bytes),
        (SPANS - 1, swept.live_objects, swept.live_bytes),
        "{ctx}: stats after sweep"
    );
    assert_eq!(s.objects(), swept.live_objects);

    // Survivors keep their contents and pointer bits, and lost their marks.
    let live: BTreeMap<usize, u64> = objects
        .iter()
        .filter(|(a, _)| marked.contains(a))
        .map(|(&a, &b)| (a, b))
        .collect();
    check_slots(&heap, &live, noscan);
    for &a in &marked {
        assert!(!heap.is_marked(a).unwrap(), "{ctx}: {a:#x} still marked");
    }
    // The empty span went back to the page pool: its addresses are not in the heap.
    assert!(
        matches!(heap.resolve(empty_span), Resolved::NotInHeap),
        "{ctx}"
    );
    assert_eq!(
        heap.object(empty_span).unwrap_err(),
        Error::NotRegistered { addr: empty_span }
    );

    // The next allocations take exactly the freed slots (the empty span's page is carved
    // again, first fit), zeroed, with the new layouts' pointer bits.
    let again = alloc_n(&mut heap, &layouts, freed.len(), &mut rng);
    let again_set: BTreeSet<usize> = again.keys().copied().collect();
    assert_eq!(again_set, freed, "{ctx}: reused slots");
    let mut all = live.clone();
    all.extend(again);
    check_slots(&heap, &all, noscan);
    // And the heap is full again: one more object needs a fresh span.
    let extra = heap.alloc(&layouts[0]).unwrap();
    assert!(!objects.contains_key(&extra), "{ctx}");
    assert_eq!(heap.stats().spans, SPANS + 1, "{ctx}");
}

#[test]
fn alloc_sweep_reuses_exactly_unmarked_slots_scan() {
    for (i, bytes) in [16, 24, 48, 64, 144, 208, 512].into_iter().enumerate() {
        fill_sweep_reuse(SizeClass::new(bytes).unwrap(), false, 100 + i as u64);
    }
}

#[test]
fn alloc_sweep_reuses_exactly_unmarked_slots_noscan() {
    for (i, bytes) in [16, 32, 64, 112, 352, 512].into_iter().enumerate() {
        fill_sweep_reuse(SizeClass::new(bytes).unwrap(), true, 200 + i as u64);
    }
}

/// Scan and noscan objects of one class go to different spans.
#[test]
fn alloc_scan_and_noscan_spans_are_separate() {
    let mut heap = small_heap();
    let scan = heap.alloc(&Layout::all_pointers(64).unwrap()).unwrap();
    let noscan = heap.alloc(&Layout::no_pointers(64).unwrap()).unwrap();
    let (a, b) = (slot(&heap, scan), slot(&heap, noscan));
    assert_ne!(a.span, b.span);
    assert!(!a.noscan && b.noscan);
    assert_eq!(a.span.object_ptr_bits(a.index), u64::MAX >> 56);
    assert_eq!(b.span.ptr_bitmap(), [0; 16]);
}

/// A sweep with no marks frees everything; the heap is empty but keeps its arena.
#[test]
fn alloc_sweep_with_nothing_reachable_frees_everything() {
    let mut heap = small_heap();
    let mut rng = Rng::new(9);
    let layouts = [
        Layout::all_pointers(16).unwrap(),
        Layout::no_pointers(100).unwrap(),
    ];
    let objects = alloc_n(&mut heap, &layouts, 2000, &mut rng);
    let big = heap.alloc(&Layout::all_pointers(10_000).unwrap()).unwrap();
    let reserved = heap.stats().reserved_bytes;
    // Without a mark, a sweep is refused and frees nothing.
    assert_eq!(heap.sweep(), Err(Error::NoCompleteMark));
    assert_eq!(heap.stats().objects(), objects.len() + 1);
    mark_exactly(&heap, &[]);
    let swept = heap.sweep().unwrap();
    assert_eq!(swept.freed_objects, objects.len());
    assert_eq!(
        (swept.freed_large_objects, swept.live_large_objects),
        (1, 0)
    );
    assert_eq!(swept.live_objects, 0);
    let s = heap.stats();
    assert_eq!((s.spans, s.objects(), s.bytes()), (0, 0, 0));
    assert_eq!(s.reserved_bytes, reserved);
    assert!(heap.objects().next().is_none());
    for &a in objects.keys().chain([&big]) {
        assert!(matches!(heap.resolve(a), Resolved::NotInHeap), "{a:#x}");
    }
}

/// Null, low addresses, addresses beyond 2^48 and free pages of an arena are not in the heap.
#[test]
fn heap_resolve_outside_is_not_in_heap() {
    let mut heap = small_heap();
    let a = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    let base = a & !(SPAN_BYTES - 1);
    for addr in [0, 8, 4096, base + 64 * SPAN_BYTES, 1 << 48, usize::MAX] {
        assert!(
            matches!(heap.resolve(addr), Resolved::NotInHeap),
            "{addr:#x}"
        );
        assert!(heap.object_containing(addr).is_none());
    }
    assert_eq!(heap.object(0).unwrap_err(), Error::NullAddress);
    let (lo, hi) = heap.address_range();
    assert!(lo <= base && base + SPAN_BYTES <= hi);
}

/// Large objects: layouts (arrays included), zeroing, interior and past-the-end lookups,
/// sweep of marked and unmarked ones, and reuse of their pages, zeroed again.
#[test]
fn alloc_large_objects_sweep_and_reuse_pages() {
    let mut heap = small_heap();
    let elem = Layout::with_pointers(24, 0b101).unwrap();
    // Over 8 KiB: large (smaller objects are medium since issue 10; see medium.rs).
    let cases = [
        Layout::all_pointers(8200).unwrap(),          // 2 pages
        Layout::array(elem, 1000).unwrap(),           // 24000 B, 3 pages
        Layout::no_pointers(2 * SPAN_BYTES).unwrap(), // exactly 2 pages
        Layout::array(Layout::all_pointers(16).unwrap(), 1200).unwrap(), // 19200 B, 3 pages
        Layout::with_pointers(8200, 1 << 63 | 1).unwrap(), // 2 pages
        Layout::array(Layout::no_pointers(512).unwrap(), 20).unwrap(), // 10240 B, 2 pages
    ];
    let mut starts = Vec::new();
    for layout in &cases {
        let start = heap.alloc(layout).unwrap();
        assert_eq!(
            start % SPAN_BYTES,
            0,
            "embedded large objects start on a page"
        );
        let l = match heap.object(start).unwrap() {
            Object::Large(l) => l,
            o => panic!("{layout:?} is not large: {o:?}"),
        };
        assert_eq!(
            (l.bytes(), l.layout(), l.is_custom()),
            (layout.bytes(), layout, false)
        );
        for w in 0..layout.words() {
            assert_eq!(l.read_word(w), Some(0), "word {w} of a fresh large object");
            let expect = match w {
                _ if layout == &cases[0] || layout == &cases[3] => true,
                _ if layout == &cases[1] => w % 3 != 1,
                _ if layout == &cases[4] => w == 0 || w == 63,
                _ => false,
            };
            assert_eq!(layout.is_pointer_word(w), expect, "{layout:?} word {w}");
        }
        for (off, inside) in [
            (0, true),
            (8, true),
            (layout.bytes() - 1, true),
            (layout.bytes(), false),
        ] {
            let r = heap.resolve(start + off);
            assert_eq!(
                matches!(r, Resolved::Large(l) if l.start() == start),
                inside,
                "+{off}"
            );
        }
        assert_eq!(
            heap.object(start + 8).unwrap_err(),
            Error::NotAnObject { addr: start + 8 }
        );
        for w in 0..layout.words() {
            heap.write_word(start, w, !w).unwrap();
        }
        starts.push(start);
    }
    let s = heap.stats();
    assert_eq!(s.large_objects, cases.len());
    assert_eq!(
        s.large_bytes,
        cases.iter().map(Layout::bytes).sum::<usize>()
    );

    // Keep objects 1 and 4; free 0, 2, 3, 5.
    mark_exactly(&heap, &[starts[1], starts[4]]);
    let swept = heap.sweep().unwrap();
    let freed_bytes = [0, 2, 3, 5].iter().map(|&i| cases[i].bytes()).sum();
    assert_eq!(
        (
            swept.freed_large_objects,
            swept.freed_large_bytes,
            swept.live_large_objects
        ),
        (4, freed_bytes, 2)
    );
    assert!(swept.freed_custom_large.is_empty());
    assert_eq!(heap.stats().large_objects, 2);
    for i in [0, 2, 3, 5] {
        let a = starts[i];
        assert_eq!(
            heap.object(a).unwrap_err(),
            Error::NotRegistered { addr: a }
        );
    }
    for i in [1, 4] {
        assert!(!heap.is_marked(starts[i]).unwrap());
        for w in 0..cases[i].words() {
            assert_eq!(heap.read_word(starts[i], w).unwrap(), !w);
        }
    }
    // Pages were allocated first fit in order: 0 0 | 1 1 1 | 2 2 | 3 3 3 | 4 4 | 5 5 | ...
    // Freed runs: [0 0], [2 2, 3 3 3] coalesced to 5 pages, [5 5 ...] joined to the rest.
    // A 5-page object takes the coalesced run at object 2's start, a 2-page object object
    // 0's pages, another 2-page object object 5's start: all reused, and all zeroed.
    let five = Layout::all_pointers(5 * SPAN_BYTES).unwrap();
    let two_a = Layout::no_pointers(9000).unwrap();
    let two = Layout::array(elem, 500).unwrap();
    for (layout, want) in [(five, starts[2]), (two_a, starts[0]), (two, starts[5])] {
        let a = heap.alloc(&layout).unwrap();
        assert_eq!(a, want, "{layout:?} reuses freed pages first fit");
        for w in 0..layout.words() {
            assert_eq!(
                heap.read_word(a, w).unwrap(),
                0,
                "reused page not zeroed at {w}"
            );
        }
    }
}
