//! The registration API: every bad input returns its typed error and leaves the heap
//! unchanged; custom spans and large objects through a sweep.

use std::collections::BTreeSet;

use sencha_spans::{Error, Heap, Layout, OwnedMemory, Resolved, SPAN_BYTES, SizeClass};

use crate::support::{Rng, claim, leak_pages, leak_span, mark_exactly, small_heap, snapshot};

/// A heap with something of every kind registered, and the addresses of each.
struct Fixture {
    heap: Heap,
    /// Custom 48-byte scan span.
    scan: usize,
    /// Custom 16-byte noscan span.
    noscan: usize,
    /// Custom large object over two whole pages.
    large: usize,
    /// Custom large object starting 8 bytes into a page, 4096 bytes long.
    mid: usize,
    /// An embedded small object, its span (the arena's first page) and an embedded large one.
    embedded: usize,
    embedded_span: usize,
    embedded_large: usize,
    /// Memory the probes of the snapshot cover.
    regions: Vec<(usize, usize)>,
}

fn fixture() -> Fixture {
    let mut heap = small_heap();
    let embedded = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    let embedded_span = embedded & !(SPAN_BYTES - 1);
    let embedded_large = heap.alloc(&Layout::all_pointers(600).unwrap()).unwrap();
    let pages = leak_pages(5);
    let region = (pages.as_ptr() as usize, pages.len());
    let (p01, rest) = pages.split_at_mut(2 * SPAN_BYTES);
    let (p2, rest) = rest.split_at_mut(SPAN_BYTES);
    let (p3, p4) = rest.split_at_mut(SPAN_BYTES);
    let scan = heap
        .register_span(
            OwnedMemory::from_static(p2),
            SizeClass::new(48).unwrap(),
            false,
        )
        .unwrap();
    let noscan = heap
        .register_span(
            OwnedMemory::from_static(p3),
            SizeClass::new(16).unwrap(),
            true,
        )
        .unwrap();
    let large = heap
        .register_large(
            OwnedMemory::from_static(p01),
            &Layout::all_pointers(2 * SPAN_BYTES).unwrap(),
        )
        .unwrap();
    let mid = heap
        .register_large(
            OwnedMemory::from_static(&mut p4[8..8 + 4096]),
            &Layout::with_pointers(600, 0b11).unwrap(),
        )
        .unwrap();
    heap.init_object(scan + 48, &Layout::with_pointers(48, 0b10_0101).unwrap())
        .unwrap();
    heap.init_object(noscan, &Layout::no_pointers(16).unwrap())
        .unwrap();
    heap.mark_reachable(&[scan + 48, large]).unwrap();
    let regions = vec![region, (embedded_span, 4 * SPAN_BYTES)];
    Fixture {
        heap,
        scan,
        noscan,
        large,
        mid,
        embedded,
        embedded_span,
        embedded_large,
        regions,
    }
}

impl Fixture {
    /// Runs `call`, asserts that it returns `want`, and that the heap is unchanged.
    fn rejects<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        want: Error,
        call: impl FnOnce(&mut Heap) -> Result<T, Error>,
    ) {
        let before = snapshot(&self.heap, &self.regions);
        let got = call(&mut self.heap);
        assert_eq!(got.unwrap_err(), want, "{what}");
        assert!(
            snapshot(&self.heap, &self.regions) == before,
            "{what}: the heap changed although the call failed"
        );
    }
}

#[test]
fn register_span_rejects_bad_input() {
    let mut f = fixture();
    let c48 = SizeClass::new(48).unwrap();
    f.rejects("null", Error::NullAddress, |h| {
        h.register_span(claim(0, SPAN_BYTES), c48, false)
    });
    let two = leak_pages(2);
    let addr = two.as_ptr() as usize + 8;
    f.rejects(
        "misaligned",
        Error::Misaligned {
            addr,
            align: SPAN_BYTES,
        },
        |h| {
            h.register_span(
                OwnedMemory::from_static(&mut two[8..8 + SPAN_BYTES]),
                c48,
                false,
            )
        },
    );
    for len in [0, 8, 4096, SPAN_BYTES - 8, SPAN_BYTES + 8, 2 * SPAN_BYTES] {
        let mem = leak_pages(2);
        f.rejects(
            &format!("length {len}"),
            Error::InvalidLength { len },
            |h| h.register_span(OwnedMemory::from_static(&mut mem[..len]), c48, false),
        );
    }
    for addr in [
        1 << 48,
        (1 << 48) + SPAN_BYTES,
        usize::MAX & !(SPAN_BYTES - 1),
    ] {
        f.rejects(
            &format!("beyond 2^48 at {addr:#x}"),
            Error::OutOfAddressSpace {
                addr,
                len: SPAN_BYTES,
            },
            |h| h.register_span(claim(addr, SPAN_BYTES), c48, false),
        );
    }
    let (scan, large, mid) = (f.scan, f.large, f.mid);
    f.rejects("twice", Error::AlreadyRegistered { addr: scan }, |h| {
        h.register_span(claim(scan, SPAN_BYTES), SizeClass::new(16).unwrap(), true)
    });
    f.rejects(
        "at a large object's start",
        Error::AlreadyRegistered { addr: large },
        |h| h.register_span(claim(large, SPAN_BYTES), c48, false),
    );
    let addr = large + SPAN_BYTES;
    f.rejects(
        "in a large object's second page",
        Error::Overlap {
            addr,
            existing: large,
        },
        |h| h.register_span(claim(addr, SPAN_BYTES), c48, false),
    );
    // The page where a large object starts mid-page: an overlap with that object, not a
    // double registration of a span (nothing is registered at the page's base itself).
    let addr = mid - 8;
    f.rejects(
        "on the page of a mid-page large object",
        Error::Overlap {
            addr,
            existing: mid,
        },
        |h| h.register_span(claim(addr, SPAN_BYTES), c48, false),
    );
    let es = f.embedded_span;
    f.rejects(
        "an embedded span",
        Error::AlreadyRegistered { addr: es },
        |h| h.register_span(claim(es, SPAN_BYTES), c48, false),
    );
    // A free page of the embedded allocator's arena (the arena starts at its first span).
    let addr = es + 100 * SPAN_BYTES;
    f.rejects(
        "a free arena page",
        Error::Overlap { addr, existing: es },
        |h| h.register_span(claim(addr, SPAN_BYTES), c48, false),
    );
    assert!(matches!(
        SizeClass::new(20),
        Err(Error::InvalidSizeClass { bytes: 20 })
    ));
}

#[test]
fn register_large_rejects_bad_input() {
    let mut f = fixture();
    let l = Layout::all_pointers(600).unwrap();
    f.rejects("null", Error::NullAddress, |h| {
        h.register_large(claim(0, SPAN_BYTES), &l)
    });
    let page = leak_pages(1);
    let addr = page.as_ptr() as usize + 4;
    f.rejects("misaligned", Error::Misaligned { addr, align: 8 }, |h| {
        h.register_large(OwnedMemory::from_static(&mut page[4..]), &l)
    });
    let page = leak_pages(1);
    f.rejects("empty", Error::InvalidLength { len: 0 }, |h| {
        h.register_large(OwnedMemory::from_static(&mut page[..0]), &l)
    });
    for (addr, len) in [
        (1 << 48, 4096),
        ((1 << 48) - 8, 16),
        ((1 << 48) - SPAN_BYTES, SPAN_BYTES + 8),
        (usize::MAX - 4095, 4096),
    ] {
        f.rejects(
            &format!("beyond 2^48 at {addr:#x}+{len}"),
            Error::OutOfAddressSpace { addr, len },
            |h| h.register_large(claim(addr, len), &l),
        );
    }
    let page = leak_pages(1);
    f.rejects(
        "layout longer than the memory",
        Error::LayoutTooLarge {
            bytes: 9000,
            limit: SPAN_BYTES,
        },
        |h| {
            h.register_large(
                OwnedMemory::from_static(page),
                &Layout::no_pointers(9000).unwrap(),
            )
        },
    );
    let (scan, noscan, large, mid) = (f.scan, f.noscan, f.large, f.mid);
    f.rejects("a span", Error::AlreadyRegistered { addr: scan }, |h| {
        h.register_large(claim(scan, 4096), &l)
    });
    let addr = scan + 64;
    f.rejects(
        "inside a span",
        Error::Overlap {
            addr,
            existing: scan,
        },
        |h| h.register_large(claim(addr, 4096), &l),
    );
    // Two spans covered: the first one is named.
    let addr = noscan - SPAN_BYTES + 8;
    f.rejects(
        "over two spans",
        Error::Overlap {
            addr,
            existing: scan,
        },
        |h| h.register_large(claim(addr, 2 * SPAN_BYTES), &l),
    );
    f.rejects("twice", Error::AlreadyRegistered { addr: large }, |h| {
        h.register_large(claim(large, 2 * SPAN_BYTES), &l)
    });
    f.rejects(
        "twice, mid-page",
        Error::AlreadyRegistered { addr: mid },
        |h| h.register_large(claim(mid, 4096), &l),
    );
    // The no-shared-page rule: the rest of the mid-page object's page is not free either.
    let addr = mid + 4096;
    f.rejects(
        "sharing a page",
        Error::Overlap {
            addr,
            existing: mid,
        },
        |h| h.register_large(claim(addr, 1000), &l),
    );
    let addr = large + 96;
    f.rejects(
        "inside a large object",
        Error::Overlap {
            addr,
            existing: large,
        },
        |h| h.register_large(claim(addr, 1000), &l),
    );
    let (es, el) = (f.embedded_span, f.embedded_large);
    f.rejects(
        "an embedded large object",
        Error::AlreadyRegistered { addr: el },
        |h| h.register_large(claim(el, SPAN_BYTES), &l),
    );
    let addr = es + 8;
    f.rejects(
        "an embedded span",
        Error::Overlap { addr, existing: es },
        |h| h.register_large(claim(addr, 1000), &l),
    );
    let addr = es + 100 * SPAN_BYTES;
    f.rejects(
        "free arena pages",
        Error::Overlap { addr, existing: es },
        |h| h.register_large(claim(addr, 3 * SPAN_BYTES), &l),
    );
}

#[test]
fn unregister_rejects_unknown_and_embedded() {
    let mut f = fixture();
    let unknown = leak_pages(1).as_ptr() as usize;
    let (scan, large, mid, es, el) = (f.scan, f.large, f.mid, f.embedded_span, f.embedded_large);
    for addr in [0, unknown, scan + 16, scan + SPAN_BYTES - 8, large, mid] {
        f.rejects(
            &format!("unregister_span({addr:#x})"),
            Error::NotRegistered { addr },
            |h| h.unregister_span(addr),
        );
    }
    f.rejects(
        "unregister_span(embedded)",
        Error::WrongOwner { addr: es },
        |h| h.unregister_span(es),
    );
    for addr in [0, unknown, large + 8, mid - 8, scan, f.embedded] {
        f.rejects(
            &format!("unregister_large({addr:#x})"),
            Error::NotRegistered { addr },
            |h| h.unregister_large(addr),
        );
    }
    f.rejects(
        "unregister_large(embedded)",
        Error::WrongOwner { addr: el },
        |h| h.unregister_large(el),
    );
    f.rejects(
        "allocated_slots(interior)",
        Error::NotRegistered { addr: scan + 8 },
        |h| h.allocated_slots(scan + 8),
    );
    f.rejects(
        "allocated_slots(unknown)",
        Error::NotRegistered { addr: unknown },
        |h| h.allocated_slots(unknown),
    );

    // And the good calls work, after all those failures.
    f.heap.unregister_span(scan).unwrap();
    f.heap.unregister_large(mid).unwrap();
    assert!(matches!(f.heap.resolve(scan + 48), Resolved::NotInHeap));
    assert!(matches!(f.heap.resolve(mid), Resolved::NotInHeap));
    assert_eq!(f.heap.stats().custom_spans, 1);
    // Unregistered memory can be registered again (here: the same leaked memory).
    let again = f
        .heap
        .register_span(claim(scan, SPAN_BYTES), SizeClass::new(24).unwrap(), false)
        .unwrap();
    assert_eq!(
        f.heap.allocated_slots(again).unwrap(),
        [0; 8],
        "fresh metadata"
    );
    f.heap
        .register_large(
            claim(mid - 8, SPAN_BYTES),
            &Layout::no_pointers(8000).unwrap(),
        )
        .unwrap();
}

#[test]
fn init_object_rejects_bad_input() {
    let mut f = fixture();
    let (scan, noscan) = (f.scan, f.noscan);
    let l48 = Layout::with_pointers(48, 0b11).unwrap();
    let cap48 = SizeClass::new(48).unwrap().capacity();
    for addr in [
        scan + 8,
        scan + 47,
        scan + 49,
        scan + cap48 * 48,
        scan + 8000,
        scan + 8184,
    ] {
        f.rejects(
            &format!("init_object(+{})", addr - scan),
            Error::NotAnObject { addr },
            |h| h.init_object(addr, &l48),
        );
    }
    f.rejects("slot in use", Error::SlotInUse { addr: scan + 48 }, |h| {
        h.init_object(scan + 48, &l48)
    });
    f.rejects(
        "layout too large",
        Error::LayoutTooLarge {
            bytes: 56,
            limit: 48,
        },
        |h| h.init_object(scan + 96, &Layout::all_pointers(56).unwrap()),
    );
    f.rejects(
        "pointers in a noscan span",
        Error::InvalidLayout {
            reason: "a layout with pointers in a noscan span",
        },
        |h| h.init_object(noscan + 16, &Layout::with_pointers(16, 0b10).unwrap()),
    );
    let (e, el, large) = (f.embedded, f.embedded_large, f.large);
    let next = e + 16; // a free slot of the embedded span
    for addr in [e, next] {
        f.rejects(
            &format!("embedded slot {addr:#x}"),
            Error::WrongOwner { addr },
            |h| h.init_object(addr, &Layout::all_pointers(16).unwrap()),
        );
    }
    for addr in [large, large + 64, el] {
        f.rejects(
            &format!("large object {addr:#x}"),
            Error::WrongOwner { addr },
            |h| h.init_object(addr, &l48),
        );
    }
    let unknown = leak_pages(1).as_ptr() as usize;
    for addr in [0, unknown] {
        f.rejects(
            &format!("unregistered {addr:#x}"),
            Error::NotRegistered { addr },
            |h| h.init_object(addr, &l48),
        );
    }

    // A smaller layout than the class is fine, and its pointer bits are exactly its own.
    f.heap
        .init_object(scan + 96, &Layout::with_pointers(24, 0b100).unwrap())
        .unwrap();
    let Resolved::Small(o) = f.heap.resolve(scan + 96) else {
        panic!("a slot")
    };
    assert_eq!(o.span.object_ptr_bits(2), 0b100);
    assert_eq!(o.span.object_ptr_bits(1), 0b10_0101);
    assert_eq!(o.span.object_ptr_bits(3), 0);
}

#[test]
fn free_object_rejects_bad_input() {
    let mut f = fixture();
    let (scan, noscan, large, mid) = (f.scan, f.noscan, f.large, f.mid);
    for addr in [
        scan,
        scan + 96,
        scan + 56,
        noscan + 8,
        large + 8,
        mid - 8,
        scan + 7936,
    ] {
        f.rejects(
            &format!("free_object(not an object {addr:#x})"),
            Error::NotAnObject { addr },
            |h| h.free_object(addr),
        );
    }
    for addr in [large, mid] {
        f.rejects(
            &format!("free_object(large {addr:#x})"),
            Error::NotAnObject { addr },
            |h| h.free_object(addr),
        );
    }
    f.rejects("null", Error::NullAddress, |h| h.free_object(0));
    let e = f.embedded;
    f.rejects("embedded", Error::WrongOwner { addr: e }, |h| {
        h.free_object(e)
    });
    let unknown = leak_pages(1).as_ptr() as usize;
    f.rejects("unknown", Error::NotRegistered { addr: unknown }, |h| {
        h.free_object(unknown)
    });

    // Freeing works once, then the slot is free.
    let objects = f.heap.stats().small_objects;
    f.heap.free_object(scan + 48).unwrap();
    assert_eq!(f.heap.stats().small_objects, objects - 1);
    assert_eq!(f.heap.allocated_slots(scan).unwrap(), [0; 8]);
    let Resolved::Small(o) = f.heap.resolve(scan + 48) else {
        panic!("a slot")
    };
    assert_eq!(
        o.span.object_ptr_bits(1),
        0,
        "freeing clears the pointer bits"
    );
    f.rejects("freed twice", Error::NotAnObject { addr: scan + 48 }, |h| {
        h.free_object(scan + 48)
    });
}

/// A custom heap through a sweep: unmarked custom large objects are listed and unregistered;
/// custom spans stay registered, even when emptied, with exactly the marked slots allocated.
#[test]
fn sweep_custom_heap_frees_large_and_keeps_spans() {
    let mut heap = Heap::new();
    let mut rng = Rng::new(42);
    let specs = [
        (48, false, 0b10_0101u64),
        (16, true, 0),
        (40, false, 0b11),
        (504, false, 1 << 62),
    ];
    let mut spans = Vec::new();
    let mut all = Vec::new();
    for &(bytes, noscan, bits) in &specs {
        let class = SizeClass::new(bytes).unwrap();
        let base = heap.register_span(leak_span(), class, noscan).unwrap();
        let layout = Layout::with_pointers(bytes, bits).unwrap();
        for i in (0..class.capacity()).filter(|i| i % 3 != 2) {
            heap.init_object(base + i * bytes, &layout).unwrap();
            all.push((base, i, bits));
        }
        spans.push(base);
    }
    let mut larges = Vec::new();
    for (pages, offset, bytes) in [(1, 0, 600), (2, 0, 9000), (1, 16, 4000), (3, 8, 20_000)] {
        let mem = leak_pages(pages);
        let mem = &mut mem[offset..];
        let start = heap
            .register_large(
                OwnedMemory::from_static(mem),
                &Layout::all_pointers(bytes).unwrap(),
            )
            .unwrap();
        larges.push((start, bytes));
    }
    // Mark about half the small objects except in the 40-byte span, and large objects 0, 3.
    let mut live = BTreeSet::new();
    let mut roots = Vec::new();
    for &(base, i, _) in &all {
        if base != spans[2] && rng.coin() {
            let class = heap.spans().find(|s| s.base() == base).unwrap().class();
            roots.push(base + i * class.bytes());
            live.insert((base, i));
        }
    }
    roots.extend([larges[0].0, larges[3].0]);
    mark_exactly(&heap, &roots);

    let swept = heap.sweep().unwrap();
    assert_eq!(swept.freed_objects, all.len() - live.len());
    assert_eq!(swept.live_objects, live.len());
    assert_eq!(swept.freed_spans, 0, "custom spans are never freed");
    assert_eq!(
        (swept.freed_large_objects, swept.live_large_objects),
        (2, 2)
    );
    assert_eq!(swept.freed_large_bytes, larges[1].1 + larges[2].1);
    let freed: BTreeSet<usize> = swept.freed_custom_large.iter().copied().collect();
    assert_eq!(freed, BTreeSet::from([larges[1].0, larges[2].0]));
    for (start, _) in [larges[1], larges[2]] {
        assert!(matches!(heap.resolve(start), Resolved::NotInHeap));
        assert_eq!(
            heap.object(start).unwrap_err(),
            Error::NotRegistered { addr: start }
        );
        assert_eq!(
            heap.unregister_large(start).unwrap_err(),
            Error::NotRegistered { addr: start }
        );
    }
    for (start, _) in [larges[0], larges[3]] {
        assert!(!heap.is_marked(start).unwrap());
    }

    let s = heap.stats();
    assert_eq!((s.spans, s.custom_spans), (4, 4));
    assert_eq!((s.small_objects, s.large_objects), (live.len(), 2));
    for (&base, &(bytes, noscan, bits)) in spans.iter().zip(&specs) {
        let slots = heap.allocated_slots(base).unwrap();
        let span = heap.spans().find(|s| s.base() == base).unwrap();
        for i in 0..SizeClass::new(bytes).unwrap().capacity() {
            let alive = live.contains(&(base, i));
            assert_eq!(
                slots[i / 64] >> (i % 64) & 1 != 0,
                alive,
                "{base:#x} slot {i}"
            );
            let want = if alive && !noscan { bits } else { 0 };
            assert_eq!(
                span.object_ptr_bits(i),
                want,
                "{base:#x} slot {i} pointer bits"
            );
        }
    }
    assert_eq!(
        heap.allocated_slots(spans[2]).unwrap(),
        [0; 8],
        "emptied, still registered"
    );

    // The allocator reuses a freed slot and the freed large object's memory.
    let (base, i, bits) = *all
        .iter()
        .find(|&&(b, i, _)| !live.contains(&(b, i)))
        .unwrap();
    let bytes = heap
        .spans()
        .find(|s| s.base() == base)
        .unwrap()
        .class()
        .bytes();
    heap.init_object(
        base + i * bytes,
        &Layout::with_pointers(bytes, bits).unwrap(),
    )
    .unwrap();
    let start = larges[1].0;
    heap.register_large(
        claim(start, 2 * SPAN_BYTES),
        &Layout::no_pointers(100).unwrap(),
    )
    .unwrap();
}
