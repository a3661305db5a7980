//! The `testing` feature's check functions, on fixed inputs (the fuzz targets' regressions).

use sencha_spans::testing::{
    SplitMix64, check_heap_invariants, check_registration_sequence, custom_span, snapshot,
};
use sencha_spans::{Layout, SizeClass};

use crate::support::small_heap;

/// Inputs that once found bugs, and hand-written sequences of each kind of call.
const REGRESSIONS: &[&[u8]] = &[
    // Byte by byte: op 2 = register_large; length 4096 (LARGE_LENS[2]); the pool (0), page 0,
    // offset 8 (OFFSETS[3]); layout: 8 bytes, no pointers. Then op 2 again on the first
    // registered address (range kind 7): AlreadyRegistered, not Overlap with the page's base.
    &[2, 2, 0, 0, 3, 0, 0, 0, 2, 0, 7, 0, 0, 0, 0],
    // The same large object, then op 0 = register_span of 8192 bytes at pool page 0, class
    // 16: an Overlap with the large object, not AlreadyRegistered.
    &[2, 2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    // Every op kind with all-zero arguments.
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
];

#[test]
fn testing_registration_sequence_regressions() {
    for input in REGRESSIONS {
        check_registration_sequence(input);
    }
}

#[test]
fn testing_check_heap_invariants_after_churn() {
    let mut heap = small_heap();
    let mut rng = SplitMix64::new(5);
    let layouts = [
        Layout::with_pointers(24, 0b101).unwrap(),
        Layout::no_pointers(48).unwrap(),
        Layout::all_pointers(512).unwrap(),
        Layout::with_pointers(3000, 1).unwrap(),
    ];
    for c in [40, 136, 504] {
        custom_span(&mut heap, SizeClass::new(c).unwrap(), c == 136).unwrap();
    }
    for round in 0..4 {
        let mut objects = Vec::new();
        for _ in 0..1500 {
            objects.push(heap.alloc(&layouts[rng.below(layouts.len())]).unwrap());
        }
        let roots: Vec<usize> = objects.iter().copied().filter(|_| rng.coin()).collect();
        heap.mark_reachable(&roots).unwrap();
        check_heap_invariants(&heap);
        let before = snapshot(&heap, &[]);
        heap.sweep().unwrap();
        check_heap_invariants(&heap);
        assert_ne!(
            snapshot(&heap, &[]),
            before,
            "round {round}: the sweep changed nothing"
        );
    }
}
