//! Medium objects (issue 10, item 6): classes and spans of the embedded allocator, resolution,
//! sweep, allocation black, and custom medium spans with every registration error typed.

use sencha_spans::{
    Error, Heap, Layout, MarkState, MediumClass, Object, OwnedMemory, Resolved, SPAN_BYTES,
};

use crate::support::{Rng, claim, leak_pages, mark_exactly, small_heap, snapshot};

/// The medium record at `addr`: it must be an allocated medium object.
fn medium(heap: &Heap, addr: usize) -> &sencha_spans::LargeObject {
    match heap.object(addr) {
        Ok(Object::Large(l)) if l.is_medium() => l,
        o => panic!("{addr:#x} is not a medium object: {o:?}"),
    }
}

/// A random layout of `bytes` bytes, of every shape.
fn random_layout(r: &mut Rng, bytes: usize) -> Layout {
    let words = bytes.div_ceil(8);
    match r.below(5) {
        0 => Layout::no_pointers(bytes).unwrap(),
        1 => Layout::all_pointers(bytes).unwrap(),
        2 => {
            let ws: Vec<usize> = (0..1 + r.below(6)).map(|_| r.below(words)).collect();
            Layout::from_pointer_words(bytes, &ws).unwrap()
        }
        3 => {
            // A header of 3 or 4 words (a pointer in word 1), then {ptr, int} to `bytes`.
            let n = (bytes - 24) / 16;
            Layout::header_then_array(
                Layout::with_pointers(bytes - 16 * n, 0b010).unwrap(),
                Layout::with_pointers(16, 0b01).unwrap(),
                n,
            )
            .unwrap()
        }
        _ => Layout::with_pointers(bytes, r.next_u64()).unwrap(),
    }
}

#[test]
fn medium_600_byte_object_takes_a_640_byte_slot() {
    let mut heap = small_heap();
    let l = Layout::from_pointer_words(600, &[0, 70]).unwrap();
    let class = MediumClass::for_bytes(600).unwrap();
    let per_span = class.capacity(class.span_pages() * SPAN_BYTES);
    assert_eq!((class.bytes(), class.span_pages(), per_span), (640, 2, 25));
    let objs: Vec<usize> = (0..=per_span).map(|_| heap.alloc(&l).unwrap()).collect();
    // One span holds the first 25, back to back; the 26th opens a second span.
    for (i, w) in objs[..per_span].windows(2).enumerate() {
        assert_eq!(w[1] - w[0], 640, "slot {i}");
    }
    let s = heap.stats();
    assert_eq!(
        (s.medium_spans, s.medium_objects, s.medium_bytes),
        (2, 26, 26 * 640)
    );
    assert_eq!((s.large_objects, s.small_objects), (0, 0));
    // 26 objects in 4 pages (32 KiB): 8 KiB each before medium classes (208 KiB).
    assert_eq!(s.reserved_bytes, 2 << 20);
    let o = medium(&heap, objs[3]);
    assert_eq!((o.bytes(), o.layout(), o.is_custom()), (600, &l, false));
}

#[test]
fn medium_alloc_every_default_class_resolves_and_zeroes() {
    let mut heap = small_heap();
    let mut r = Rng::new(7);
    let mut prev = 512;
    for class in MediumClass::DEFAULTS {
        for bytes in [prev + 1, class.bytes()] {
            let layout = random_layout(&mut r, bytes);
            let a = heap.alloc(&layout).unwrap();
            let o = medium(&heap, a);
            assert_eq!((o.bytes(), o.layout()), (layout.bytes(), &layout));
            assert_eq!(
                heap.stats().medium_bytes % 8,
                0,
                "slot bytes are whole words"
            );
            for w in 0..layout.words() {
                assert_eq!(heap.read_word(a, w).unwrap(), 0, "{class} word {w}");
                heap.write_word(a, w, !w).unwrap();
            }
            // Interior bytes resolve to the object; past its layout, nothing (the slot tail).
            for off in [0, 8, layout.bytes() - 1] {
                assert!(matches!(heap.resolve(a + off), Resolved::Large(l) if l.start() == a));
            }
            if layout.bytes() < class.bytes() {
                assert!(matches!(
                    heap.resolve(a + layout.bytes()),
                    Resolved::NotInHeap
                ));
            }
            assert_eq!(
                heap.object(a + 8).unwrap_err(),
                Error::NotAnObject { addr: a + 8 }
            );
            assert_eq!(heap.unregister_large(a), Err(Error::WrongOwner { addr: a }));
            assert_eq!(heap.free_object(a), Err(Error::WrongOwner { addr: a }));
        }
        prev = class.bytes();
    }
    let s = heap.stats();
    // Two objects per class: one span each, two for the classes of one object per span.
    let spans: usize = MediumClass::DEFAULTS
        .iter()
        .map(|c| 2usize.div_ceil(c.capacity(c.span_pages() * SPAN_BYTES)))
        .sum();
    assert_eq!((s.medium_objects, s.medium_spans), (54, spans));
    #[cfg(feature = "testing")]
    sencha_spans::testing::check_heap_invariants(&heap);
}

/// Random medium objects, a random live subset, a sweep: exactly the unmarked ones are freed,
/// survivors keep their contents, empty spans go back to the page pool, and freed slots are
/// reused zeroed.
#[test]
fn medium_sweep_frees_and_keeps_exactly() {
    for seed in 0..if cfg!(miri) { 1 } else { 20 } {
        let mut heap = small_heap();
        let mut r = Rng::new(seed);
        let mut objs = Vec::new();
        for _ in 0..300 {
            let bytes = 513 + r.below(8192 - 512);
            let layout = random_layout(&mut r, bytes);
            let a = heap.alloc(&layout).unwrap();
            heap.write_word(a, 0, !a).unwrap();
            objs.push((a, layout));
        }
        let live: Vec<usize> = objs
            .iter()
            .filter(|_| r.below(3) == 0)
            .map(|o| o.0)
            .collect();
        // Objects hold no heap pointers (word 0 is an address with its bits flipped), so the
        // roots reach nothing else.
        mark_exactly(&heap, &live);
        let spans_before = heap.stats().medium_spans;
        let swept = heap.sweep().unwrap();
        let slot = |l: &Layout| MediumClass::for_bytes(l.bytes()).unwrap().bytes();
        let live_bytes: usize = objs
            .iter()
            .filter(|o| live.contains(&o.0))
            .map(|o| slot(&o.1))
            .sum();
        let all_bytes: usize = objs.iter().map(|o| slot(&o.1)).sum();
        assert_eq!(
            (
                swept.live_medium_objects,
                swept.freed_medium_objects,
                swept.live_medium_bytes,
                swept.freed_medium_bytes
            ),
            (
                live.len(),
                objs.len() - live.len(),
                live_bytes,
                all_bytes - live_bytes
            ),
            "seed {seed}"
        );
        assert_eq!(swept.freed_objects + swept.freed_large_objects, 0);
        let s = heap.stats();
        assert_eq!(s.medium_objects, live.len());
        assert_eq!(s.medium_spans, spans_before - swept.freed_medium_spans);
        for (a, layout) in &objs {
            if live.contains(a) {
                assert_eq!(heap.read_word(*a, 0).unwrap(), !a);
                assert!(!heap.is_marked(*a).unwrap(), "marks reset by the sweep");
                assert_eq!(medium(&heap, *a).layout(), layout);
            } else {
                assert!(heap.object(*a).is_err(), "seed {seed}: {a:#x} not freed");
            }
        }
        #[cfg(feature = "testing")]
        sencha_spans::testing::check_heap_invariants(&heap);
        // Reuse: new objects land in freed slots or pages, zeroed.
        for _ in 0..100 {
            let bytes = 513 + r.below(8192 - 512);
            let layout = random_layout(&mut r, bytes);
            let a = heap.alloc(&layout).unwrap();
            for w in 0..layout.words() {
                assert_eq!(heap.read_word(a, w).unwrap(), 0, "seed {seed}: reused slot");
            }
        }
        assert_eq!(
            heap.stats().reserved_bytes,
            2 << 20,
            "seed {seed}: pages reused"
        );
    }
}

/// Between a complete mark and its sweep, new medium objects are allocated marked (black), so
/// that sweep keeps them; a medium object reached only through pointer word 70 is kept.
#[test]
fn medium_allocate_black_and_word_70() {
    let mut heap = small_heap();
    let odd = Layout::from_pointer_words(600, &[0, 70]).unwrap();
    let root = heap.alloc(&odd).unwrap();
    let via_70 = heap.alloc(&odd).unwrap();
    let via_69 = heap.alloc(&odd).unwrap(); // word 69 is not a pointer word
    let small = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    heap.write_word(root, 70, via_70).unwrap();
    heap.write_word(root, 69, via_69).unwrap();
    heap.write_word(via_70, 0, small + 8).unwrap(); // interior pointer into a small object
    heap.mark_reachable(&[root]).unwrap();
    assert_eq!(heap.marked_objects(), {
        let mut v = vec![root, via_70, small];
        v.sort_unstable();
        v
    });
    assert_eq!(heap.mark_state(), MarkState::Marked);
    let black = heap.alloc(&Layout::all_pointers(4000).unwrap()).unwrap();
    assert!(heap.is_marked(black).unwrap(), "allocated black");
    let swept = heap.sweep().unwrap();
    assert_eq!(
        (swept.live_medium_objects, swept.freed_medium_objects),
        (3, 1)
    );
    assert!(heap.object(black).is_ok() && heap.object(via_69).is_err());
    // Clean again: a new object is white.
    let white = heap.alloc(&odd).unwrap();
    assert!(!heap.is_marked(white).unwrap());
}

/// A pinned medium object is a root; an unpinned unreachable one is freed.
#[test]
fn medium_pinned_object_survives() {
    let mut heap = small_heap();
    let l = Layout::all_pointers(1024).unwrap();
    let (a, b) = (heap.alloc(&l).unwrap(), heap.alloc(&l).unwrap());
    let child = heap.alloc(&l).unwrap();
    heap.write_word(a, 127, child).unwrap();
    heap.pin(a).unwrap();
    heap.mark_reachable(&[]).unwrap();
    heap.sweep().unwrap();
    assert!(heap.object(a).is_ok() && heap.object(child).is_ok());
    assert!(heap.object(b).is_err());
}

const CLASS: usize = 1000;

/// A registered custom medium span of 2 pages and class 1000 (16 slots), in leaked memory.
fn custom_heap() -> (Heap, usize) {
    let mut heap = small_heap();
    let class = MediumClass::new(CLASS).unwrap();
    let mem = OwnedMemory::from_static(leak_pages(2));
    let base = heap.register_medium_span(mem, class).unwrap();
    (heap, base)
}

#[test]
fn medium_custom_span_objects_through_a_sweep() {
    let (mut heap, base) = custom_heap();
    assert_eq!(heap.allocated_slots(base), Ok([0; 8]));
    let layout = Layout::from_pointer_words(CLASS - 40, &[0, 119]).unwrap();
    let slots = [0, 3, 15];
    for i in slots {
        heap.init_object(base + i * CLASS, &layout).unwrap();
    }
    assert_eq!(heap.allocated_slots(base).unwrap()[0], 1 | 1 << 3 | 1 << 15);
    let (keep, drop) = (base + 3 * CLASS, base + 15 * CLASS);
    heap.write_word(base, 119, keep).unwrap();
    heap.mark_reachable(&[base]).unwrap();
    assert!(heap.is_marked(keep).unwrap() && !heap.is_marked(drop).unwrap());
    // Allocated black: init_object between the mark and the sweep.
    heap.init_object(base + 7 * CLASS, &layout).unwrap();
    assert!(heap.is_marked(base + 7 * CLASS).unwrap());
    let swept = heap.sweep().unwrap();
    assert_eq!(
        (swept.freed_medium_objects, swept.live_medium_objects),
        (1, 3)
    );
    assert_eq!(swept.freed_medium_spans, 0, "custom spans stay registered");
    assert_eq!(heap.allocated_slots(base).unwrap()[0], 1 | 1 << 3 | 1 << 7);
    // The freed slot can be placed again, with another layout.
    heap.init_object(drop, &Layout::no_pointers(CLASS).unwrap())
        .unwrap();
    heap.free_object(drop).unwrap();
    assert_eq!(
        heap.object(drop).unwrap_err(),
        Error::NotAnObject { addr: drop }
    );
    // Unmark everything and sweep: the span stays, empty.
    heap.mark_reachable(&[]).unwrap();
    heap.sweep().unwrap();
    assert_eq!(heap.allocated_slots(base), Ok([0; 8]));
    assert_eq!(heap.stats().medium_spans, 1);
    heap.unregister_span(base).unwrap();
    assert_eq!(heap.stats().medium_spans, 0);
    assert!(matches!(heap.resolve(base), Resolved::NotInHeap));
    #[cfg(feature = "testing")]
    sencha_spans::testing::check_heap_invariants(&heap);
}

/// Every bad input of the medium registration calls is a typed error that leaves the heap
/// unchanged.
#[test]
fn medium_registration_errors_are_typed_and_change_nothing() {
    let (mut heap, base) = custom_heap();
    let class = MediumClass::new(CLASS).unwrap();
    let layout = Layout::all_pointers(CLASS).unwrap();
    heap.init_object(base, &layout).unwrap();
    heap.pin(base).unwrap();
    let embedded = heap.alloc(&Layout::no_pointers(700).unwrap()).unwrap();
    let small_span = heap
        .register_span(
            OwnedMemory::from_static(leak_pages(1)),
            sencha_spans::SizeClass::new(64).unwrap(),
            false,
        )
        .unwrap();
    let large_mem = leak_pages(3);
    let large = heap
        .register_large(
            OwnedMemory::from_static(&mut large_mem[..]),
            &Layout::no_pointers(3 * SPAN_BYTES).unwrap(),
        )
        .unwrap();
    let arena = embedded & !(SPAN_BYTES - 1);
    let spare = leak_pages(17).as_mut_ptr() as usize;
    let regions = [
        (base, 2 * SPAN_BYTES),
        (arena, 2 * SPAN_BYTES),
        (spare, SPAN_BYTES),
    ];
    let before = snapshot(&heap, &regions);
    type Call = Box<dyn Fn(&mut Heap) -> Result<(), Error>>;
    let reg = |addr: usize, len: usize| -> Call {
        Box::new(move |h: &mut Heap| h.register_medium_span(claim(addr, len), class).map(drop))
    };
    let cases: Vec<(&str, Call, Error)> = vec![
        ("null", reg(0, SPAN_BYTES), Error::NullAddress),
        (
            "zero length",
            reg(spare, 0),
            Error::InvalidLength { len: 0 },
        ),
        (
            "not whole pages",
            reg(spare, SPAN_BYTES + 8),
            Error::InvalidLength {
                len: SPAN_BYTES + 8,
            },
        ),
        (
            "over 16 pages",
            reg(spare, 17 * SPAN_BYTES),
            Error::InvalidLength {
                len: 17 * SPAN_BYTES,
            },
        ),
        (
            "misaligned",
            reg(spare + 8, SPAN_BYTES),
            Error::Misaligned {
                addr: spare + 8,
                align: SPAN_BYTES,
            },
        ),
        (
            "beyond 2^48",
            reg(1 << 48, SPAN_BYTES),
            Error::OutOfAddressSpace {
                addr: 1 << 48,
                len: SPAN_BYTES,
            },
        ),
        (
            "registered twice",
            reg(base, 2 * SPAN_BYTES),
            Error::AlreadyRegistered { addr: base },
        ),
        (
            "overlapping a medium span",
            reg(base + SPAN_BYTES, SPAN_BYTES),
            Error::Overlap {
                addr: base + SPAN_BYTES,
                existing: base,
            },
        ),
        (
            "overlapping a small span",
            reg(small_span, SPAN_BYTES),
            Error::AlreadyRegistered { addr: small_span },
        ),
        (
            "overlapping a large object",
            reg(large + SPAN_BYTES, SPAN_BYTES),
            Error::Overlap {
                addr: large + SPAN_BYTES,
                existing: large,
            },
        ),
        (
            "inside an arena",
            reg(arena, SPAN_BYTES),
            Error::AlreadyRegistered { addr: arena },
        ),
        (
            "init: interior",
            Box::new(move |h| h.init_object(base + CLASS + 8, &layout)),
            Error::NotAnObject {
                addr: base + CLASS + 8,
            },
        ),
        (
            "init: span tail",
            Box::new(move |h| h.init_object(base + 16 * CLASS, &layout)),
            Error::NotAnObject {
                addr: base + 16 * CLASS,
            },
        ),
        (
            "init: slot in use",
            Box::new(move |h| h.init_object(base, &layout)),
            Error::SlotInUse { addr: base },
        ),
        (
            "init: layout larger than the class",
            Box::new(move |h| h.init_object(base + CLASS, &Layout::no_pointers(CLASS + 8)?)),
            Error::LayoutTooLarge {
                bytes: CLASS + 8,
                limit: CLASS,
            },
        ),
        (
            "init: embedded medium span",
            Box::new(move |h| h.init_object(embedded + 704, &layout)),
            Error::WrongOwner {
                addr: embedded + 704,
            },
        ),
        (
            "free: embedded medium object",
            Box::new(move |h| h.free_object(embedded)),
            Error::WrongOwner { addr: embedded },
        ),
        (
            "free: pinned",
            Box::new(move |h| h.free_object(base)),
            Error::Pinned { addr: base },
        ),
        (
            "free: free slot",
            Box::new(move |h| h.free_object(base + CLASS)),
            Error::NotAnObject { addr: base + CLASS },
        ),
        (
            "unregister: pinned object inside",
            Box::new(move |h| h.unregister_span(base)),
            Error::Pinned { addr: base },
        ),
        (
            "unregister: second page",
            Box::new(move |h| h.unregister_span(base + SPAN_BYTES)),
            Error::NotRegistered {
                addr: base + SPAN_BYTES,
            },
        ),
        (
            "unregister: embedded medium span",
            Box::new(move |h| h.unregister_span(arena)),
            Error::WrongOwner { addr: arena },
        ),
        (
            "unregister_large: custom medium object",
            Box::new(move |h| h.unregister_large(base)),
            Error::NotRegistered { addr: base },
        ),
        (
            "allocated_slots: second page",
            Box::new(move |h| h.allocated_slots(base + SPAN_BYTES).map(drop)),
            Error::NotRegistered {
                addr: base + SPAN_BYTES,
            },
        ),
    ];
    for (what, call, want) in cases {
        assert_eq!(call(&mut heap), Err(want), "{what}");
        assert!(
            snapshot(&heap, &regions) == before,
            "{what} changed the heap"
        );
    }
    for bytes in [0, 512, 513, 8200, usize::MAX] {
        assert_eq!(
            MediumClass::new(bytes),
            Err(Error::InvalidMediumClass { bytes })
        );
    }
}
