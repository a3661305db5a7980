//! Random heaps and check functions for sencha's own tests, benchmarks and fuzzers.
//!
//! Unstable: behind the `testing` feature, not covered by semver.
//!
//! [`random_heap`] builds a seeded heap that mixes everything a marker must handle: all 25
//! default classes, custom spans of odd sizes, noscan objects, large objects and chunked
//! arrays, cycles, self-pointers, interior pointers, long linked lists, wide fan-out, and
//! garbage words (small integers, addresses outside the heap, free slots, span metadata).
//! [`check_marker`] marks it with a marker and with the reference oracle and compares the exact
//! marked sets ([`compare_with_oracle`] does that on any heap).
//!
//! The fuzz targets' check functions (one submodule each, over shared fixtures in `source`):
//! - [`check_kernels_from_bytes`] (`span_layout`): every kernel tier against the scalar tier;
//! - [`check_graph_from_bytes`] (`heap_graph`): a marker variant against the oracle;
//! - [`check_api`] (`api`): the public API as a runtime drives it, against a model and the
//!   oracle, with [`ApiGates`] for calls that reach bugs being fixed.
//!
//! Each keeps its heap, pool memory and markers for the life of the process (emptied and checked
//! after every input), because fuzzing calls it millions of times.
//!
//! # Unsafe code
//! `SpanMemory` (the custom spans of [`TestHeap`]) and `source::PagePool` (leaked, span-aligned
//! memory the fuzz fixtures register, write as a custom allocator does, and zero between
//! inputs); every block names the invariant it relies on.

use std::alloc::{Layout as AllocLayout, alloc_zeroed, dealloc};

use sencha_spans::{Heap, Layout, OwnedMemory, SPAN_BYTES, SizeClass};

use crate::{MarkStats, Marker, Roots, reference};

mod api;
mod graph;
mod kernels;
mod source;

pub use api::{API_MAX_OPS, ApiGates, check_api, check_api_gated};
pub use graph::{GRAPH_MAX_OBJECTS, check_graph_from_bytes};
pub use kernels::check_kernels_from_bytes;

pub use sencha_spans::testing::SplitMix64;

/// Span-aligned memory owned by a test heap, freed after the heap.
struct SpanMemory {
    ptr: *mut u8,
}

const SPAN_LAYOUT: AllocLayout = match AllocLayout::from_size_align(SPAN_BYTES, SPAN_BYTES) {
    Ok(l) => l,
    Err(_) => panic!("8 KiB at 8 KiB alignment is a valid layout"),
};

impl SpanMemory {
    fn new() -> Self {
        // SAFETY: SPAN_LAYOUT has a non-zero size.
        let ptr = unsafe { alloc_zeroed(SPAN_LAYOUT) };
        assert!(!ptr.is_null(), "out of memory for a test span");
        SpanMemory { ptr }
    }

    fn owned(&self) -> OwnedMemory {
        // SAFETY: `ptr` is a live allocation of SPAN_BYTES (made in new()); it is freed only in
        // Drop. Only a TestHeap's private heap receives this OwnedMemory, and TestHeap drops
        // that heap before its SpanMemory (field order); the heap is never handed out by value
        // or by `&mut`, so it cannot outlive the memory.
        unsafe { OwnedMemory::new_unchecked(self.ptr, SPAN_BYTES) }
    }
}

impl Drop for SpanMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from alloc_zeroed(SPAN_LAYOUT) and is freed once, here.
        unsafe { dealloc(self.ptr, SPAN_LAYOUT) }
    }
}

/// A heap built by [`random_heap`], its objects and its roots.
///
/// The heap is reachable only through `&self` and a few delegating methods, so it can never
/// be moved out and outlive the custom span memory this struct owns (fields drop in order:
/// the heap first).
pub struct TestHeap {
    heap: Heap,
    /// Every allocated object, in allocation order.
    pub objects: Vec<usize>,
    /// The roots to mark from.
    pub roots: Roots,
    memory: Vec<SpanMemory>,
}

impl std::fmt::Debug for TestHeap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHeap")
            .field("objects", &self.objects.len())
            .field("roots", &self.roots.len())
            .field("custom_spans", &self.memory.len())
            .finish()
    }
}

impl TestHeap {
    /// The heap.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// [`Heap::clear_marks`].
    pub fn clear_marks(&mut self) {
        self.heap.clear_marks();
    }

    /// [`Heap::sweep`].
    ///
    /// # Errors
    /// As [`Heap::sweep`].
    pub fn sweep(&mut self) -> Result<sencha_spans::SweepStats, sencha_spans::Error> {
        self.heap.sweep()
    }

    /// [`Heap::alloc`].
    pub fn alloc(&mut self, layout: &Layout) -> Result<usize, sencha_spans::Error> {
        self.heap.alloc(layout)
    }

    /// [`Heap::write_word`].
    pub fn write_word(
        &mut self,
        addr: usize,
        w: usize,
        v: usize,
    ) -> Result<(), sencha_spans::Error> {
        self.heap.write_word(addr, w, v)
    }
}

/// The shape of a random heap.
#[derive(Clone, Debug)]
pub struct HeapSpec {
    /// Seed of the splitmix64 generator.
    pub seed: u64,
    /// Small objects to allocate from the embedded allocator.
    pub objects: usize,
    /// Custom spans to register (odd size classes, some noscan).
    pub custom_spans: usize,
    /// Large objects (some arrays over 128 KiB, scanned in chunks).
    pub large: usize,
    /// Length of one linked list threaded through the heap (a deep graph).
    pub list: usize,
    /// Precise roots drawn at random (besides the list head).
    pub roots: usize,
}

impl HeapSpec {
    /// A small random spec for seed `seed`.
    pub fn small(seed: u64) -> Self {
        let mut r = SplitMix64::new(seed ^ 0x5eed);
        HeapSpec {
            seed,
            objects: 1 + r.below(3000),
            custom_spans: r.below(4),
            large: r.below(4),
            list: r.below(1500),
            roots: r.below(8),
        }
    }
}

/// Builds a random heap (see the module docs).
pub fn random_heap(spec: &HeapSpec) -> TestHeap {
    let mut r = SplitMix64::new(spec.seed);
    let mut t = TestHeap {
        heap: Heap::new(),
        objects: Vec::new(),
        roots: Roots::new(),
        memory: Vec::new(),
    };
    // Embedded small objects of every default class, with random pointer words.
    for _ in 0..spec.objects {
        let class = SizeClass::DEFAULTS[r.below(SizeClass::DEFAULTS.len())];
        let words = class.words();
        let layout = match r.below(4) {
            0 => Layout::no_pointers(class.bytes()),
            1 => Layout::all_pointers(class.bytes()),
            _ => Layout::with_pointers(class.bytes(), r.next_u64() & low(words)),
        }
        .expect("valid layout");
        t.objects.push(t.heap.alloc(&layout).expect("allocation"));
    }
    // Custom spans of odd sizes, partly filled.
    for _ in 0..spec.custom_spans {
        let class = SizeClass::new(8 * (2 + r.below(63))).expect("legal class");
        let noscan = r.chance(1, 4);
        let mem = SpanMemory::new();
        let base = t
            .heap
            .register_span(mem.owned(), class, noscan)
            .expect("register span");
        t.memory.push(mem);
        for i in 0..class.capacity() {
            if r.chance(2, 3) {
                let bits = if noscan {
                    0
                } else {
                    r.next_u64() & low(class.words())
                };
                let layout = Layout::with_pointers(class.bytes(), bits).expect("valid layout");
                let addr = base + i * class.bytes();
                t.heap.init_object(addr, &layout).expect("init object");
                t.objects.push(addr);
            }
        }
    }
    // Large objects: structs, pointer arrays (some over 128 KiB), noscan blobs.
    for _ in 0..spec.large {
        let layout = match r.below(4) {
            0 => Layout::no_pointers(513 + r.below(20_000)),
            1 => Layout::all_pointers(8 * (65 + r.below(40_000))),
            2 => Layout::array(
                Layout::with_pointers(24, 0b101).expect("valid layout"),
                22 + r.below(8_000),
            ),
            _ => Layout::with_pointers(520 + 8 * r.below(100), r.next_u64()),
        }
        .expect("valid layout");
        t.objects
            .push(t.heap.alloc(&layout).expect("large allocation"));
    }
    let n = t.objects.len();
    // Fill pointer words: mostly object starts, some interior pointers, nulls and garbage.
    let (lo, hi) = t.heap.address_range();
    for k in 0..n {
        let obj = t.objects[k];
        let words = t.heap.object(obj).expect("object").bytes() / 8;
        for w in 0..words.min(64) {
            let v = match r.below(16) {
                0..=7 => t.objects[r.below(n)],
                8 => t.objects[r.below(n)] + 8 * r.below(2),
                9 => obj,
                10 => r.below(4096),
                11 => lo.wrapping_sub(8 + 8 * r.below(64)),
                12 => hi + 8 * r.below(1024),
                13 => lo + 8 * r.below((hi - lo) / 8),
                _ => 0,
            };
            let _ = t.heap.write_word(obj, w, v);
        }
        // A few wide objects: pointers to many objects from one large array.
        if words > 64 && r.chance(1, 2) {
            for w in (64..words).step_by(1 + r.below(3)) {
                let _ = t.heap.write_word(obj, w, t.objects[r.below(n)]);
            }
        }
    }
    // One long linked list through fresh cons cells (word 1 = next), rooted at its head.
    let cons = Layout::all_pointers(16).expect("valid layout");
    let mut head = 0usize;
    for _ in 0..spec.list {
        let cell = t.heap.alloc(&cons).expect("allocation");
        t.heap.write_word(cell, 1, head).expect("write");
        t.heap
            .write_word(cell, 0, t.objects[r.below(n)])
            .expect("write");
        t.objects.push(cell);
        head = cell;
    }
    if head != 0 {
        t.roots.push_precise(head);
    }
    for _ in 0..spec.roots {
        t.roots.push_precise(t.objects[r.below(t.objects.len())]);
    }
    t.roots.push_precise(0);
    for _ in 0..4 {
        t.roots.push_conservative(match r.below(3) {
            0 => t.objects[r.below(t.objects.len())] + 8,
            1 => r.next_u64() as usize,
            _ => lo + 8 * r.below((hi - lo) / 8),
        });
    }
    t
}

fn low(words: usize) -> u64 {
    if words >= 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    }
}

/// Marks `t` with `marker` and with the reference oracle; `Err` describes the first difference.
/// Leaves the heap's marks cleared.
pub fn check_marker(t: &mut TestHeap, marker: &Marker) -> Result<(), String> {
    let result = compare_with_oracle(&mut t.heap, &t.roots, marker);
    t.clear_marks();
    match result? {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("both the oracle and the marker failed: {e}")),
    }
}

/// Marks `heap` from `roots` with the reference oracle, clears the marks, then marks with
/// `marker`, and compares: the same outcome (both succeed, or both fail with the same error),
/// exactly the same marked objects, no span left owned, statistics that count exactly the
/// objects marked, and a heap left `Marked`. Returns the marker's outcome, or `Err` describing the first difference.
/// Leaves the marker's marks in place.
pub fn compare_with_oracle(
    heap: &mut Heap,
    roots: &Roots,
    marker: &Marker,
) -> Result<Result<MarkStats, crate::Error>, String> {
    heap.clear_marks();
    let want = reference::mark(heap, roots).map(|_| heap.marked_objects());
    heap.clear_marks();
    let got = marker.mark(heap, roots);
    let (want, stats) = match (want, got) {
        (Ok(w), Ok(s)) => (w, s),
        (Err(a), Err(b)) if a == b => return Ok(Err(b)),
        (a, b) => {
            return Err(format!(
                "{}: the oracle returned {:?}, the marker {:?}",
                describe(marker),
                a.map(|v| v.len()),
                b.map(|s| s.objects_marked)
            ));
        }
    };
    let got = heap.marked_objects();
    if got != want {
        let missing: Vec<_> = want
            .iter()
            .filter(|a| got.binary_search(a).is_err())
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|a| want.binary_search(a).is_err())
            .take(5)
            .collect();
        return Err(format!(
            "{}: marked {} objects, oracle {}; missing {:x?}, extra {:x?}",
            describe(marker),
            got.len(),
            want.len(),
            missing,
            extra
        ));
    }
    if !heap
        .spans()
        .all(|s| s.owner() == sencha_spans::Owner::Unowned)
    {
        return Err(format!("{}: a span was left owned", describe(marker)));
    }
    if stats.objects_marked != got.len() {
        return Err(format!(
            "{}: stats count {} marked objects, heap has {}",
            describe(marker),
            stats.objects_marked,
            got.len()
        ));
    }
    let state = heap.mark_state();
    if state != sencha_spans::MarkState::Marked {
        return Err(format!(
            "{}: the heap is {state:?} after a complete mark",
            describe(marker)
        ));
    }
    Ok(Ok(stats))
}

fn describe(m: &Marker) -> String {
    format!(
        "{} {} x{} ({m:?})",
        m.algorithm().name(),
        m.kernel(),
        m.workers()
    )
}
