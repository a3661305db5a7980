//! Helpers shared by the integration tests: leaked memory, a seeded generator, heap snapshots.
//!
//! These use only the public API (the `testing` feature is not on for a plain
//! `cargo test -p sencha-spans`); `sencha_spans::testing` has richer versions for fuzzing.

use sencha_spans::span::{LINE_WORDS, PTR_BITMAP_WORDS};
use sencha_spans::{Heap, HeapConfig, HeapStats, OwnedMemory, Resolved, SPAN_BYTES};

/// A heap whose arenas are small (2 MiB) and not advised onto huge pages: tests fill them.
pub(crate) fn small_heap() -> Heap {
    Heap::with_config(HeapConfig {
        huge_pages: false,
        arena_bytes: 2 << 20,
    })
    .expect("a valid configuration")
}

/// Marks exactly the objects `roots` (a complete reference mark from them, which the test's
/// objects, holding no pointers into the heap, do not extend), so that a sweep may run.
pub(crate) fn mark_exactly(heap: &Heap, roots: &[usize]) {
    heap.mark_reachable(roots).expect("no other mark runs");
    let mut want = roots.to_vec();
    want.sort_unstable();
    want.dedup();
    assert_eq!(heap.marked_objects(), want, "the roots reach nothing else");
}

/// Leaks `pages` zeroed, contiguous, 8 KiB-aligned pages.
pub(crate) fn leak_pages(pages: usize) -> &'static mut [u8] {
    let raw: &'static mut [u8] = vec![0u8; (pages + 1) * SPAN_BYTES].leak();
    let skip = raw.as_ptr().align_offset(SPAN_BYTES);
    &mut raw[skip..skip + pages * SPAN_BYTES]
}

/// Leaks one span's worth of memory.
pub(crate) fn leak_span() -> OwnedMemory {
    OwnedMemory::from_static(leak_pages(1))
}

/// `OwnedMemory` for a range this test does not exclusively own: leaked memory that is already
/// registered (to provoke `AlreadyRegistered` and `Overlap`), or memory that is not the test's
/// at all (null, beyond 2^48, the embedded allocator's arena), which the heap must reject.
///
/// Leaked memory stays valid for the whole program, so even a wrongly accepted registration
/// of it would touch only live memory; the other ranges are passed only where a test asserts
/// that the heap rejects them, before touching them.
#[allow(unsafe_code)]
pub(crate) fn claim(addr: usize, len: usize) -> OwnedMemory {
    // SAFETY: see above: either leaked (valid for reads and writes for the rest of the
    // program; the exposed provenance came from `OwnedMemory::from_static`'s address cast), or
    // a range the heap rejects before reading or writing it, which the caller asserts.
    unsafe { OwnedMemory::new_unchecked(std::ptr::with_exposed_provenance_mut(addr), len) }
}

/// splitmix64, seeded: reproducible random choices.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 != 0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// What an address resolves to, as comparable data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Nothing,
    /// Span base, slot index, class bytes, noscan, allocated.
    Small(usize, usize, usize, bool, bool),
    /// Start, bytes.
    Large(usize, usize),
}

pub(crate) fn found(heap: &Heap, addr: usize) -> Found {
    match heap.resolve(addr) {
        Resolved::NotInHeap => Found::Nothing,
        Resolved::Small(o) => Found::Small(
            o.span.base(),
            o.index,
            o.class.bytes(),
            o.noscan,
            heap.object(o.addr()).is_ok(),
        ),
        Resolved::Large(l) => Found::Large(l.start(), l.bytes()),
    }
}

type SpanState = (
    usize,
    u8,
    [u64; LINE_WORDS],
    [u64; LINE_WORDS],
    [u64; PTR_BITMAP_WORDS],
    [u64; LINE_WORDS],
);

/// Everything a failed call must leave unchanged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    stats: HeapStats,
    range: (usize, usize),
    /// Base, class byte, marked, scanned, pointer bitmap, allocated slots.
    spans: Vec<SpanState>,
    /// Start, bytes, marked, custom.
    large: Vec<(usize, usize, bool, bool)>,
    /// Lookups every 8 bytes of the probed regions.
    probes: Vec<Found>,
}

/// Snapshots `heap`, resolving every 8th byte of each `(start, len)` region.
pub(crate) fn snapshot(heap: &Heap, regions: &[(usize, usize)]) -> Snapshot {
    let mut spans: Vec<_> = heap
        .spans()
        .map(|s| {
            (
                s.base(),
                s.class_byte(),
                s.marked_bits(),
                s.scanned_bits(),
                s.ptr_bitmap(),
                heap.allocated_slots(s.base())
                    .expect("a listed span is registered"),
            )
        })
        .collect();
    spans.sort_unstable();
    let mut large: Vec<_> = heap
        .large_objects()
        .map(|l| (l.start(), l.bytes(), l.is_marked(), l.is_custom()))
        .collect();
    large.sort_unstable();
    let probes = regions
        .iter()
        .flat_map(|&(start, len)| (start..start + len).step_by(8))
        .map(|a| found(heap, a))
        .collect();
    Snapshot {
        stats: heap.stats(),
        range: heap.address_range(),
        spans,
        large,
        probes,
    }
}
