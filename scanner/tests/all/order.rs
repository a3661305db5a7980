//! The adaptive span order (DESIGN §5.7): it goes newest first on a heap laid out in
//! allocation order and stays oldest first on one without, and every order marks exactly what
//! the oracle marks.

use sencha::testing::SplitMix64;
use sencha::{Heap, Layout, MarkStats, Marker, Roots, SpanOrder, reference};

use crate::with_timeout;

/// A perfect binary tree of `2^levels - 1` 32-byte nodes `{left, right, 0, 0}`, allocated
/// depth-first (pre-order) or in a seeded random order; returns its root.
fn tree(heap: &mut Heap, levels: u32, shuffle: bool) -> usize {
    let n = (1usize << levels) - 1;
    let node = Layout::with_pointers(32, 0b11).unwrap();
    // Pre-order of the heap-ordered tree (children of k: 2k+1, 2k+2).
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![0usize];
    while let Some(k) = stack.pop() {
        order.push(k);
        for c in [2 * k + 2, 2 * k + 1] {
            if c < n {
                stack.push(c);
            }
        }
    }
    if shuffle {
        let mut r = SplitMix64::new(11);
        for i in (1..n).rev() {
            order.swap(i, r.below(i + 1));
        }
    }
    let mut addr = vec![0usize; n];
    for k in order {
        addr[k] = heap.alloc(&node).unwrap();
    }
    for k in 0..n {
        for (w, c) in [(0, 2 * k + 1), (1, 2 * k + 2)] {
            if c < n {
                heap.write_word(addr[k], w, addr[c]).unwrap();
            }
        }
    }
    addr[0]
}

fn mark(heap: &mut Heap, root: usize, workers: usize, order: SpanOrder) -> MarkStats {
    let marker = Marker::builder()
        .workers(workers)
        .span_order(order)
        .build()
        .unwrap();
    heap.clear_marks();
    let stats = marker.mark(heap, &Roots::precise([root])).unwrap();
    let got = heap.marked_objects();
    heap.clear_marks();
    reference::mark(heap, &Roots::precise([root])).unwrap();
    assert_eq!(got, heap.marked_objects(), "{order:?} at {workers} workers");
    stats
}

/// One worker marks deterministically, so the scan counters tell which order ran: on the
/// depth-first tree the adaptive order turns newest first (its counters leave the oldest-first
/// ones and come near the newest-first ones); on the shuffled tree it stays oldest first (the
/// same counters exactly).
#[test]
fn adaptive_order_goes_depth_first_only_where_the_heap_has_allocation_order() {
    with_timeout(300, || {
        let counters = |s: &MarkStats| (s.spans_dense, s.spans_sparse, s.spans_single);
        let mut heap = Heap::new();
        let root = tree(&mut heap, 15, false);
        let fifo = mark(&mut heap, root, 1, SpanOrder::Fifo);
        let lifo = mark(&mut heap, root, 1, SpanOrder::Lifo);
        let adaptive = mark(&mut heap, root, 1, SpanOrder::Adaptive);
        assert!(
            lifo.spans_single * 4 < fifo.spans_single,
            "the depth-first tree no longer tells the orders apart: {fifo} / {lifo}"
        );
        assert!(
            adaptive.spans_single * 2 < fifo.spans_single,
            "adaptive stayed oldest first on a depth-first tree: {adaptive} vs {fifo}"
        );

        let mut heap = Heap::new();
        let root = tree(&mut heap, 15, true);
        let fifo = mark(&mut heap, root, 1, SpanOrder::Fifo);
        let adaptive = mark(&mut heap, root, 1, SpanOrder::Adaptive);
        assert_eq!(
            counters(&adaptive),
            counters(&fifo),
            "adaptive left oldest first on a shuffled tree"
        );
    });
}

/// Every order marks what the oracle marks on both trees, at 1 to 16 workers.
#[test]
fn every_span_order_matches_the_oracle_on_ordered_and_shuffled_trees() {
    with_timeout(300, || {
        for shuffle in [false, true] {
            let mut heap = Heap::new();
            let root = tree(&mut heap, 13, shuffle);
            for workers in [1, 2, 3, 8, 16] {
                for order in [SpanOrder::Adaptive, SpanOrder::Fifo, SpanOrder::Lifo] {
                    mark(&mut heap, root, workers, order);
                }
            }
        }
    });
}
