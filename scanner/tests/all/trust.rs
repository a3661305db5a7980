//! Issue 8's findings, one test each (each failed before its fix), and the marker variants
//! against the oracle.
//!
//! 1. `HeapConfig { arena_bytes: usize::MAX }` built a heap whose spans lay outside its
//!    address range, so marks missed objects: now a typed error, and every accepted size marks
//!    everything reachable.
//! 3. A panic in a worker hung `Marker::mark`: now the mark ends with `MarkPanicked`.
//! 4. `Heap::mark_object` ("pinning") left the pinned object's children unscanned: replaced by
//!    `Heap::pin`, a root of every mark.
//! 5. `Layout::array` of an array reached `unreachable!`: see the proptest in
//!    `spans/tests/all/layout.rs`.
//! 6. Objects allocated between a mark and its sweep were freed: now allocated black.
//! 8. A sweep with no complete mark freed everything: now `NoCompleteMark`.
//! 9. `MarkStats::objects_marked` counted free slots reached through stale words.

use sencha::spans::{Error as HeapError, MarkState, OwnedMemory};
use sencha::testing::{HeapSpec, check_marker, random_heap};
use sencha::{
    Algorithm, Error, Heap, HeapConfig, KernelChoice, Layout, Marker, Roots, SizeClass, SpanOrder,
    reference,
};

use crate::{scaled, with_timeout};

/// A linked list of `n` 32-byte cells (word 0: next) in `heap`; returns the head.
fn list(heap: &mut Heap, n: usize) -> usize {
    let cell = Layout::with_pointers(32, 0b1).unwrap();
    let mut next = 0;
    for _ in 0..n {
        let c = heap.alloc(&cell).unwrap();
        heap.write_word(c, 0, next).unwrap();
        next = c;
    }
    next
}

fn marker(workers: usize) -> Marker {
    Marker::builder().workers(workers).build().unwrap()
}

#[test]
fn heap_config_out_of_limits_is_a_typed_error() {
    for bytes in [0, usize::MAX, HeapConfig::MAX_ARENA_BYTES + 1] {
        let config = HeapConfig {
            arena_bytes: bytes,
            ..HeapConfig::default()
        };
        assert!(
            matches!(
                Heap::with_config(config),
                Err(HeapError::InvalidConfig {
                    field: "arena_bytes",
                    ..
                })
            ),
            "arena_bytes {bytes}"
        );
    }
}

/// The heap of finding 1 (2,000 reachable objects), at the extreme accepted arena sizes: every
/// object is marked, and a sweep frees none.
#[test]
fn heap_config_extreme_arenas_mark_everything() {
    for bytes in [1, 8192, 3 << 20] {
        let mut heap = Heap::with_config(HeapConfig {
            arena_bytes: bytes,
            huge_pages: false,
        })
        .unwrap();
        let head = list(&mut heap, 2000);
        let stats = marker(2).mark(&heap, &Roots::precise([head])).unwrap();
        assert_eq!(stats.objects_marked, 2000, "arena_bytes {bytes}");
        assert_eq!(
            heap.sweep().unwrap().freed_objects,
            0,
            "arena_bytes {bytes}"
        );
    }
}

/// A mark always ends: a worker that panics stops the others, the caller gets a typed error,
/// the heap refuses a sweep on the partial marks, and the next mark is exact.
#[test]
fn mark_with_panicking_worker_ends_with_typed_error() {
    with_timeout(120, || {
        for workers in [1, 2, 4, 16] {
            for algorithm in [Algorithm::GreenTea, Algorithm::Baseline] {
                for at in [1, 5, 40] {
                    let mut t = random_heap(&HeapSpec::small(workers as u64 * 7 + at));
                    let m = Marker::builder()
                        .workers(workers)
                        .algorithm(algorithm)
                        .inject_panic_at(at)
                        .build()
                        .unwrap();
                    let what = format!("{algorithm:?} x{workers}, panic at task {at}");
                    match m.mark(t.heap(), &t.roots) {
                        Err(Error::MarkPanicked { message }) => {
                            assert!(message.contains("injected panic"), "{what}: {message}")
                        }
                        // The heap ran out of tasks before worker 0 reached task `at`.
                        Ok(_) => continue,
                        Err(e) => panic!("{what}: {e}"),
                    }
                    assert_eq!(t.heap().mark_state(), MarkState::Aborted, "{what}");
                    assert_eq!(t.sweep(), Err(HeapError::NoCompleteMark), "{what}");
                    check_marker(&mut t, &marker(workers))
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                }
            }
        }
    });
}

/// A pinned object is a root of every mark: it and everything it reaches survive; unpinned,
/// they are freed by the next cycle.
#[test]
fn pinned_object_keeps_its_children() {
    let mut heap = Heap::new();
    let head = list(&mut heap, 100);
    heap.pin(head).unwrap();
    let m = marker(2);
    let stats = m.mark(&heap, &Roots::new()).unwrap();
    assert_eq!(stats.objects_marked, 100);
    assert_eq!(heap.sweep().unwrap().freed_objects, 0);
    assert_eq!(heap.stats().small_objects, 100);
    heap.unpin(head).unwrap();
    assert_eq!(heap.unpin(head), Err(HeapError::NotPinned { addr: head }));
    m.mark(&heap, &Roots::new()).unwrap();
    assert_eq!(heap.sweep().unwrap().freed_objects, 100);
}

#[test]
fn pinned_custom_object_cannot_be_freed() {
    #[repr(C, align(8192))]
    struct SpanMem([u8; 8192]);
    let mem = Box::leak(Box::new(SpanMem([0; 8192])));
    let mut heap = Heap::new();
    let class = SizeClass::new(32).unwrap();
    let base = heap
        .register_span(OwnedMemory::from_static(&mut mem.0), class, false)
        .unwrap();
    heap.init_object(base, &Layout::all_pointers(32).unwrap())
        .unwrap();
    heap.pin(base).unwrap();
    assert_eq!(
        heap.free_object(base),
        Err(HeapError::Pinned { addr: base })
    );
    assert_eq!(
        heap.unregister_span(base),
        Err(HeapError::Pinned { addr: base })
    );
    heap.unpin(base).unwrap();
    heap.free_object(base).unwrap();
}

/// Pinning an object the last complete mark found dead is refused: its children may be swept.
#[test]
fn pin_of_unreachable_object_after_mark_is_refused() {
    let mut heap = Heap::new();
    let dead = list(&mut heap, 3);
    marker(1).mark(&heap, &Roots::new()).unwrap();
    assert_eq!(heap.pin(dead), Err(HeapError::Unreachable { addr: dead }));
}

/// Objects allocated or registered between a mark and its sweep survive that sweep, with what
/// they point to (allocated black), embedded and custom alike.
#[test]
fn objects_allocated_after_mark_survive_sweep() {
    let mut heap = Heap::new();
    let root = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    let rest = list(&mut heap, 9);
    heap.write_word(root, 1, rest).unwrap();
    let m = marker(2);
    assert_eq!(
        m.mark(&heap, &Roots::precise([root]))
            .unwrap()
            .objects_marked,
        10
    );
    // New embedded small and large objects, linked from the live root.
    let small = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    let large = heap.alloc(&Layout::all_pointers(4096).unwrap()).unwrap();
    heap.write_word(small, 0, large).unwrap();
    heap.write_word(root, 0, small).unwrap();
    // A custom span's new object and a custom large object.
    #[repr(C, align(8192))]
    struct Pages([u8; 3 * 8192]);
    let mem = Box::leak(Box::new(Pages([0; 3 * 8192])));
    let (span_mem, large_mem) = mem.0.split_at_mut(8192);
    let base = heap
        .register_span(
            OwnedMemory::from_static(span_mem),
            SizeClass::new(48).unwrap(),
            false,
        )
        .unwrap();
    heap.init_object(base, &Layout::all_pointers(48).unwrap())
        .unwrap();
    let custom_large = heap
        .register_large(
            OwnedMemory::from_static(large_mem),
            &Layout::no_pointers(1000).unwrap(),
        )
        .unwrap();
    heap.write_word(large, 0, base).unwrap();
    heap.write_word(large, 1, custom_large).unwrap();
    let swept = heap.sweep().unwrap();
    assert!(swept.freed_custom_large.is_empty(), "{swept:?}");
    for a in [small, large, base, custom_large] {
        assert!(heap.object(a).is_ok(), "{a:#x} was freed");
    }
    // Next cycle: all of them are reachable from the root, and marked as such.
    let stats = m.mark(&heap, &Roots::precise([root])).unwrap();
    assert_eq!(stats.objects_marked, 10 + 4);
}

#[test]
fn sweep_without_complete_mark_is_refused() {
    let mut heap = Heap::new();
    let head = list(&mut heap, 50);
    assert_eq!(heap.mark_state(), MarkState::Clean);
    assert_eq!(heap.sweep(), Err(HeapError::NoCompleteMark));
    // An invalid root fails the mark before it starts: nothing changes.
    let bad = Roots::precise([head + 8]);
    assert!(matches!(
        marker(2).mark(&heap, &bad),
        Err(Error::InvalidRoot { .. })
    ));
    assert_eq!(heap.mark_state(), MarkState::Clean);
    assert_eq!(heap.sweep(), Err(HeapError::NoCompleteMark));
    assert_eq!(heap.stats().small_objects, 50);
    // After a complete mark, one sweep; a second needs a new mark.
    marker(2).mark(&heap, &Roots::precise([head])).unwrap();
    assert_eq!(heap.mark_state(), MarkState::Marked);
    assert_eq!(heap.sweep().unwrap().freed_objects, 0);
    assert_eq!(heap.sweep(), Err(HeapError::NoCompleteMark));
    // clear_marks drops a mark's results: no sweep on them.
    marker(2).mark(&heap, &Roots::precise([head])).unwrap();
    heap.clear_marks();
    assert_eq!(heap.sweep(), Err(HeapError::NoCompleteMark));
}

/// Marking a marked heap again gives exactly the new mark (old marks are cleared first).
#[test]
fn mark_of_marked_heap_starts_afresh() {
    let mut heap = Heap::new();
    let a = list(&mut heap, 20);
    let b = list(&mut heap, 30);
    let m = marker(2);
    assert_eq!(
        m.mark(&heap, &Roots::precise([a, b]))
            .unwrap()
            .objects_marked,
        50
    );
    assert_eq!(
        m.mark(&heap, &Roots::precise([b])).unwrap().objects_marked,
        30
    );
    assert_eq!(heap.sweep().unwrap().freed_objects, 20);
}

/// A stale word pointing at a free slot marks that slot, but the stats count only objects.
#[test]
fn mark_stats_count_only_allocated_objects() {
    let mut heap = Heap::new();
    let l = Layout::all_pointers(16).unwrap();
    let root = heap.alloc(&l).unwrap();
    let freed = heap.alloc(&l).unwrap();
    heap.mark_reachable(&[root]).unwrap();
    heap.sweep().unwrap(); // `freed` is free now
    heap.write_word(root, 0, freed).unwrap(); // a stale pointer to a free slot
    for m in [marker(1), marker(2)] {
        let stats = m.mark(&heap, &Roots::precise([root])).unwrap();
        assert_eq!(
            (stats.objects_marked, stats.bytes_marked),
            (1, 16),
            "{stats}"
        );
    }
}

/// Every marker variant (in-place scanning and prefetch off, each fixed span order, each
/// kernel) agrees with the oracle at 1 to 16 workers.
#[test]
fn marker_variants_match_oracle() {
    with_timeout(300, || {
        let mut markers = Vec::new();
        for workers in [1, 2, 4, 8, 16] {
            for (in_place, prefetch, order) in [
                (false, true, SpanOrder::Adaptive),
                (true, false, SpanOrder::Adaptive),
                (false, false, SpanOrder::Adaptive),
                (true, true, SpanOrder::Fifo),
                (true, true, SpanOrder::Lifo),
            ] {
                markers.push(
                    Marker::builder()
                        .workers(workers)
                        .in_place_scanning(in_place)
                        .prefetch(prefetch)
                        .span_order(order)
                        .kernel(KernelChoice::Scalar)
                        .build()
                        .unwrap(),
                );
                markers.push(
                    Marker::builder()
                        .workers(workers)
                        .in_place_scanning(in_place)
                        .prefetch(prefetch)
                        .span_order(order)
                        .build()
                        .unwrap(),
                );
            }
        }
        for seed in 0..scaled(60) as u64 {
            let mut t = random_heap(&HeapSpec::small(seed ^ 0x5eed));
            for m in &markers {
                check_marker(&mut t, m).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
        }
    });
}

/// Finding 2: kernels read whole 64-byte frames, free slots included, so a custom span's bytes
/// must all be initialised: registration zeroes the span, whatever the memory held.
#[test]
fn custom_span_is_zeroed_at_registration() {
    #[repr(C, align(8192))]
    struct SpanMem([u8; 8192]);
    let mem = Box::leak(Box::new(SpanMem([0xa5; 8192])));
    let mut heap = Heap::new();
    let base = heap
        .register_span(
            OwnedMemory::from_static(&mut mem.0),
            SizeClass::new(64).unwrap(),
            false,
        )
        .unwrap();
    let span = heap.spans().find(|s| s.base() == base).unwrap();
    assert!((0..992).all(|w| span.read_word(w) == Some(0)));
    assert_eq!(span.marked_bits(), [0; 8]);
}

/// Issue 10 item 4: a precise root may be an interior (derived) pointer when the caller says
/// so; it roots its object (and what it reaches), and one that points nowhere is refused.
#[test]
fn interior_precise_roots_root_their_object() {
    let mut heap = Heap::new();
    let head = list(&mut heap, 50);
    for m in [marker(1), marker(4)] {
        let mut roots = Roots::new();
        roots.push_interior(head + 17);
        assert_eq!(m.mark(&heap, &roots).unwrap().objects_marked, 50);
        assert_eq!(reference::mark(&heap, &roots).unwrap().objects_marked, 50);
        let mut bad = Roots::precise([head]);
        bad.push_interior(head + (1 << 20) * 4096);
        assert!(matches!(
            m.mark(&heap, &bad),
            Err(Error::InvalidRoot { index: 1, .. })
        ));
    }
}
