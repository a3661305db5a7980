//! Fixtures and check functions for sencha's own tests, benchmarks and fuzzers.
//!
//! Unstable: behind the `testing` feature, not covered by semver.
//!
//! - **Memory fixtures.** [`leak_span_memory`] leaks one zeroed, 8 KiB-aligned span and wraps it
//!   as [`OwnedMemory`] (safe: leaked memory lives forever); [`leak_pages`] leaks a run of such
//!   pages and [`split_pages`] cuts it into spans; [`custom_span`] registers a leaked span of
//!   any of the 63 legal classes.
//! - **Random numbers.** [`SplitMix64`], seeded and reproducible, so that a failing test names
//!   its seed.
//! - **Snapshots.** [`snapshot`] captures everything a heap operation may change (statistics,
//!   span and large-object records, page-map entries, metadata lines), so a test can assert
//!   that a failed call left the heap unchanged.
//! - **Checks.** [`check_heap_invariants`] asserts that a heap is self-consistent;
//!   [`check_registration_sequence`] turns arbitrary bytes into registration calls and asserts
//!   that each returns the success or the error variant a simple model predicts (and never
//!   panics inside sencha), that a failed call changes nothing, and that the heap stays
//!   consistent. Fuzz targets are thin shims over it. It reuses one heap and one pool for the
//!   whole process, emptied and checked after each sequence.
//! - **Running checks.** [`serial`] makes the calling thread a rayon pool of one thread, so that
//!   a check's sweeps run inline rather than waking the global pool.
//!
//! The check functions panic (through `assert!`) when sencha is wrong; that is their purpose.
//!
//! # Unsafe code
//! One block, in [`check_registration_sequence`]'s memory pool: fuzzing runs millions of
//! sequences, so it cannot leak memory for each one. It hands out parts of a buffer it owns
//! through [`OwnedMemory::new_unchecked`]; buffer and heap live together in one process-wide
//! fixture and are never dropped. It also builds
//! [`OwnedMemory`] values for ranges that are *not* the caller's (null, past 2^48, inside the
//! embedded allocator's arenas): the heap must reject those before touching them, and the
//! check asserts exactly that.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::discriminant;
use std::sync::Mutex;

use crate::class::SizeClass;
use crate::error::Error;
use crate::heap::{Heap, HeapConfig, HeapStats, Object, Resolved};
use crate::layout::Layout;
use crate::medium::MediumClass;
use crate::pagemap::{ADDRESS_LIMIT, Entry, EntryKind};
use crate::register::OwnedMemory;
use crate::span::{CLASS_NOSCAN, LINE_WORDS, OBJECT_BYTES, Owner, PTR_BITMAP_WORDS, SPAN_BYTES};

// ---------------------------------------------------------------------------------------------
// Random numbers

/// Sebastiano Vigna's splitmix64: a tiny, seedable, reproducible generator for fixtures.
///
/// # Examples
/// ```
/// use sencha_spans::testing::SplitMix64;
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`; the tiny modulo bias does not matter for fixtures).
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "SplitMix64::below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den` (`den > 0`).
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    /// True with probability `1 / 2`.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 != 0
    }

    /// Shuffles `v` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running checks

/// Runs `f` with the calling thread as the only thread of a rayon pool of its own (built on
/// first use, once per thread), so that what `f` parallelises on the current pool (a sweep)
/// runs inline instead of waking other threads.
///
/// A sweep of a small heap is cheap, but handing it to the global pool costs thread wake-ups,
/// and on two cores the woken threads' spinning takes the time from the check: fuzz checks run
/// their calls through this. Marks on a marker's own pool still run on that pool. If the
/// calling thread already belongs to a pool, `f` just runs.
///
/// # Examples
/// ```
/// let n = sencha_spans::testing::serial(|| rayon::current_num_threads());
/// assert_eq!(n, 1);
/// ```
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    thread_local! {
        static POOL: Option<rayon::ThreadPool> = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build()
            .ok();
    }
    // Building the pool makes the calling thread its worker 0 for as long as the thread
    // lives: from then on, rayon calls on this thread run in that pool, inline.
    POOL.with(|_| ());
    f()
}

// ---------------------------------------------------------------------------------------------
// Memory fixtures

/// One span's worth of memory, aligned like a span.
#[repr(C, align(8192))]
struct SpanMemory([u8; SPAN_BYTES]);

/// Leaks one zeroed, 8 KiB-aligned span of memory.
///
/// # Examples
/// ```
/// use sencha_spans::testing::leak_span_memory;
/// let mem = leak_span_memory();
/// assert_eq!((mem.addr() % 8192, mem.len()), (0, 8192));
/// ```
pub fn leak_span_memory() -> OwnedMemory {
    let mem: &'static mut SpanMemory = Box::leak(Box::new(SpanMemory([0; SPAN_BYTES])));
    OwnedMemory::from_static(&mut mem.0)
}

/// Leaks `pages` zeroed, contiguous, 8 KiB-aligned pages (8 KiB each): memory for a custom
/// large object, or for several spans to be split with [`split_pages`].
///
/// # Panics
/// If `pages` is 0.
pub fn leak_pages(pages: usize) -> &'static mut [u8] {
    assert!(pages > 0, "leak_pages(0)");
    // One spare page, so that an 8 KiB-aligned run of `pages` pages fits anywhere.
    let raw: &'static mut [u8] = vec![0u8; (pages + 1) * SPAN_BYTES].leak();
    let skip = raw.as_ptr().align_offset(SPAN_BYTES);
    &mut raw[skip..skip + pages * SPAN_BYTES]
}

/// Splits leaked memory into its 8 KiB pages, each ready for [`Heap::register_span`].
pub fn split_pages(mem: &'static mut [u8]) -> Vec<OwnedMemory> {
    mem.chunks_exact_mut(SPAN_BYTES)
        .map(OwnedMemory::from_static)
        .collect()
}

/// Registers a fresh leaked span of `class` (any of the 63 legal classes) with `heap`.
///
/// # Errors
/// As [`Heap::register_span`] (a fresh leaked span is never rejected).
///
/// # Examples
/// ```
/// use sencha_spans::{Heap, Layout, SizeClass, testing::custom_span};
/// let mut heap = Heap::new();
/// let base = custom_span(&mut heap, SizeClass::new(72).unwrap(), false).unwrap();
/// heap.init_object(base + 72, &Layout::all_pointers(72).unwrap()).unwrap();
/// assert_eq!(heap.stats().small_objects, 1);
/// ```
pub fn custom_span(heap: &mut Heap, class: SizeClass, noscan: bool) -> Result<usize, Error> {
    heap.register_span(leak_span_memory(), class, noscan)
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// What an address resolves to, as plain data (comparable between snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// [`Resolved::NotInHeap`].
    NotInHeap,
    /// A slot of a span.
    Small {
        /// The span's base.
        base: usize,
        /// The slot index.
        index: usize,
        /// The span's class.
        class: SizeClass,
        /// Whether the span is noscan.
        noscan: bool,
        /// Whether the slot holds an allocated object.
        allocated: bool,
    },
    /// Inside a large object.
    Large {
        /// Its first byte.
        start: usize,
        /// Its size.
        bytes: usize,
    },
}

/// Resolves `addr` in `heap` into a [`Lookup`].
pub fn lookup(heap: &Heap, addr: usize) -> Lookup {
    match heap.resolve(addr) {
        Resolved::NotInHeap => Lookup::NotInHeap,
        Resolved::Small(o) => Lookup::Small {
            base: o.span.base(),
            index: o.index,
            class: o.class,
            noscan: o.noscan,
            allocated: heap.object(o.addr()).is_ok(),
        },
        Resolved::Large(l) => Lookup::Large {
            start: l.start(),
            bytes: l.bytes(),
        },
    }
}

/// The metadata of one span, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanSnapshot {
    /// The span's base.
    pub base: usize,
    /// Its class byte.
    pub class_byte: u8,
    /// Its owner state.
    pub owner: Owner,
    /// Marked bits.
    pub marked: [u64; LINE_WORDS],
    /// Scanned bits.
    pub scanned: [u64; LINE_WORDS],
    /// Pointer bitmap.
    pub ptr_bitmap: [u64; PTR_BITMAP_WORDS],
    /// Allocated slots.
    pub allocated: [u64; LINE_WORDS],
}

/// The book-keeping of one medium span, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediumSnapshot {
    /// The span's base.
    pub base: usize,
    /// Its pages.
    pub pages: usize,
    /// Its class.
    pub class: MediumClass,
    /// Whether a custom allocator registered it.
    pub custom: bool,
    /// Allocated slots.
    pub allocated: [u64; LINE_WORDS],
    /// Per slot: its layout's size, whether its layout has pointers, whether it is marked.
    pub slots: Vec<(usize, bool, bool)>,
}

/// Everything about a heap that a registration call may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapSnapshot {
    /// [`Heap::stats`].
    pub stats: HeapStats,
    /// [`Heap::address_range`].
    pub address_range: (usize, usize),
    /// Every span, sorted by base.
    pub spans: Vec<SpanSnapshot>,
    /// Every large object: start, bytes, marked, custom; sorted.
    pub large: Vec<(usize, usize, bool, bool)>,
    /// Every medium span, sorted by base.
    pub medium: Vec<MediumSnapshot>,
    /// Page-map entries and lookups of the probed addresses.
    pub probes: Vec<(usize, Entry, Lookup)>,
}

/// Snapshots `heap`, probing the page map at two offsets of every page in `regions`
/// (`(start, len)` pairs) and of every page the heap has registered.
pub fn snapshot(heap: &Heap, regions: &[(usize, usize)]) -> HeapSnapshot {
    snapshot_with(heap, regions, true)
}

/// [`snapshot`], probing the pages the heap has registered too only when `registered_pages`:
/// a check that snapshots around each call probes the call's own range, and finds a change to
/// any span or large object through their records.
fn snapshot_with(heap: &Heap, regions: &[(usize, usize)], registered_pages: bool) -> HeapSnapshot {
    let mut spans: Vec<SpanSnapshot> = heap
        .spans()
        .map(|s| SpanSnapshot {
            base: s.base(),
            class_byte: s.class_byte(),
            owner: s.owner(),
            marked: s.marked_bits(),
            scanned: s.scanned_bits(),
            ptr_bitmap: s.ptr_bitmap(),
            allocated: heap
                .allocated_slots(s.base())
                .unwrap_or([u64::MAX; LINE_WORDS]),
        })
        .collect();
    spans.sort_by_key(|s| s.base);
    let mut large: Vec<_> = heap
        .large_objects()
        .map(|l| (l.start(), l.bytes(), l.is_marked(), l.is_custom()))
        .collect();
    large.sort_unstable();
    let mut medium: Vec<MediumSnapshot> = heap
        .medium
        .iter()
        .filter(|m| m.base != 0)
        .map(|m| MediumSnapshot {
            base: m.base,
            pages: m.pages,
            class: m.class,
            custom: m.custom,
            allocated: m.alloc,
            slots: m
                .objects
                .iter()
                .map(|o| (o.bytes(), o.layout().has_pointers(), o.is_marked()))
                .collect(),
        })
        .collect();
    medium.sort_by_key(|m| m.base);
    let mut pages = BTreeSet::new();
    for &(start, len) in regions {
        let first = start / SPAN_BYTES;
        let last = start.saturating_add(len.max(1) - 1) / SPAN_BYTES;
        pages.extend(first..=last.min(first + 4096));
    }
    if registered_pages {
        pages.extend(spans.iter().map(|s| s.base / SPAN_BYTES));
        pages.extend(large.iter().map(|l| l.0 / SPAN_BYTES));
        for m in &medium {
            pages.extend(m.base / SPAN_BYTES..m.base / SPAN_BYTES + m.pages);
        }
    }
    let probes = pages
        .into_iter()
        .flat_map(|p| {
            // One entry per page: a slot near the start and the metadata tail resolve it.
            [8, SPAN_BYTES - 8].map(|off| (p * SPAN_BYTES).wrapping_add(off))
        })
        .map(|a| (a, heap.map.get(a), lookup(heap, a)))
        .collect();
    HeapSnapshot {
        stats: heap.stats(),
        address_range: heap.address_range(),
        spans,
        large,
        medium,
        probes,
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants

/// Asserts that `heap` is self-consistent:
/// - every span resolves to itself, with the class byte of its page-map entry;
/// - every allocated slot (per [`Heap::allocated_slots`]) is an object ([`Heap::object`]) that
///   resolves to itself up to its last byte, and the first, middle and last slot are objects
///   exactly when allocated;
/// - free slots, noscan spans and the metadata tail have no pointer bits; no marked or
///   scanned bit lies past the span's capacity; the tail resolves to nothing;
/// - every large object resolves to itself from its first to its last byte;
/// - every page of a medium span maps to it; a slot is an object exactly when its allocation
///   bit says so, and resolves to its record from its first to its layout's last byte; a free
///   slot's record has no pointers; the tail resolves to nothing;
/// - [`Heap::stats`] agrees with all of the above.
///
/// # Panics
/// When an invariant does not hold, naming it.
pub fn check_heap_invariants(heap: &Heap) {
    let mut small = 0;
    let mut small_bytes = 0;
    let mut spans = 0;
    for span in heap.spans() {
        spans += 1;
        let base = span.base();
        let class = span.class();
        let cap = class.capacity();
        assert_eq!(base % SPAN_BYTES, 0, "span {span:?} misaligned");
        let entry_byte = match heap.map.get(base).kind() {
            crate::pagemap::EntryKind::Small { class_byte, .. } => class_byte,
            k => panic!("span {span:?} has page-map entry {k:?}"),
        };
        assert_eq!(
            entry_byte,
            span.class_byte(),
            "span {span:?}: entry vs mark line"
        );
        let alloc = heap
            .allocated_slots(base)
            .unwrap_or_else(|e| panic!("span {span:?}: allocated_slots: {e}"));
        let marked = span.marked_bits();
        for i in 0..LINE_WORDS * 64 {
            let allocated = alloc[i / 64] >> (i % 64) & 1 != 0;
            if i >= cap {
                assert!(
                    !allocated,
                    "span {span:?}: slot {i} past capacity allocated"
                );
                assert_eq!(marked[i / 64] >> (i % 64) & 1, 0, "span {span:?}: mark {i}");
                continue;
            }
            if allocated {
                small += 1;
                small_bytes += class.bytes();
            }
            if !allocated || span.is_noscan() {
                assert_eq!(
                    span.object_ptr_bits(i),
                    0,
                    "span {span:?}: free or noscan slot {i} has pointer bits"
                );
            }
            // Resolving is the same page lookup and index arithmetic for every slot (the
            // arithmetic is tested exhaustively on its own): resolve each object, and the first,
            // middle and last slot whether allocated or not.
            if !(allocated || i == 0 || i == cap / 2 || i == cap - 1) {
                continue;
            }
            let addr = base + i * class.bytes();
            assert_eq!(
                heap.object(addr).is_ok(),
                allocated,
                "span {span:?}: slot {i} object() vs allocated_slots"
            );
            match heap.resolve(addr + class.bytes() - 1) {
                Resolved::Small(o) => assert_eq!((o.span, o.index), (span, i)),
                r => panic!("span {span:?}: last byte of slot {i} resolves to {r:?}"),
            }
        }
        let scanned = span.scanned_bits();
        for i in cap..LINE_WORDS * 64 {
            assert_eq!(
                scanned[i / 64] >> (i % 64) & 1,
                0,
                "span {span:?}: scan bit {i}"
            );
        }
        let bitmap = span.ptr_bitmap();
        let used_words = cap * class.words();
        for w in used_words..PTR_BITMAP_WORDS * 64 {
            assert_eq!(
                bitmap[w / 64] >> (w % 64) & 1,
                0,
                "span {span:?}: tail word {w}"
            );
        }
        for off in [cap * class.bytes(), OBJECT_BYTES, SPAN_BYTES - 1] {
            assert!(
                matches!(heap.resolve(base + off), Resolved::NotInHeap),
                "span {span:?}: tail offset {off} resolves to an object"
            );
        }
    }
    let mut large = 0;
    let mut large_bytes = 0;
    for l in heap.large_objects() {
        large += 1;
        large_bytes += l.bytes();
        for a in [
            l.start(),
            l.start() + l.bytes() / 2,
            l.start() + l.bytes() - 1,
        ] {
            match heap.resolve(a) {
                Resolved::Large(r) => assert_eq!(r.start(), l.start(), "large {a:#x}"),
                r => panic!("large object {:#x}: {a:#x} resolves to {r:?}", l.start()),
            }
        }
        assert!(matches!(heap.object(l.start()), Ok(Object::Large(_))));
    }
    let (medium_spans, medium, medium_bytes) = check_medium_invariants(heap);
    let s = heap.stats();
    assert_eq!(
        (
            s.spans,
            s.small_objects,
            s.small_bytes,
            s.large_objects,
            s.large_bytes
        ),
        (spans, small, small_bytes, large, large_bytes),
        "stats disagree with the heap's records"
    );
    assert_eq!(
        (s.medium_spans, s.medium_objects, s.medium_bytes),
        (medium_spans, medium, medium_bytes),
        "medium stats disagree with the heap's records"
    );
    assert_eq!(s.page_map_tables, heap.map.chunk_tables());
}

/// The medium-span part of [`check_heap_invariants`]; returns (spans, objects, slot bytes).
fn check_medium_invariants(heap: &Heap) -> (usize, usize, usize) {
    let (mut spans, mut objects, mut bytes) = (0, 0, 0);
    for (i, m) in heap.medium.iter().enumerate().filter(|(_, m)| m.base != 0) {
        spans += 1;
        let (base, class) = (m.base, m.class);
        let what = format!("medium span {base:#x} ({class}, {} pages)", m.pages);
        assert!(base.is_multiple_of(SPAN_BYTES), "{what} misaligned");
        assert!(
            (1..=MediumClass::MAX_SPAN_PAGES).contains(&m.pages),
            "{what}"
        );
        let cap = class.capacity(m.bytes());
        assert_eq!(m.objects.len(), cap, "{what}: records");
        for p in 0..m.pages {
            assert_eq!(
                heap.map.get(base + p * SPAN_BYTES).kind(),
                EntryKind::Medium { record: i as u32 },
                "{what}: page {p}"
            );
        }
        let mut live = 0;
        for (k, o) in m.objects.iter().enumerate() {
            let allocated = m.alloc[k / 64] >> (k % 64) & 1 != 0;
            assert_eq!(o.start(), base + k * class.bytes(), "{what}: slot {k}");
            assert!(
                o.is_medium() && o.is_custom() == m.custom,
                "{what}: slot {k}"
            );
            assert_eq!(
                heap.object(o.start()).is_ok(),
                allocated,
                "{what}: slot {k}"
            );
            assert!(o.bytes() <= class.bytes(), "{what}: slot {k} layout");
            for a in [o.start(), o.start() + o.bytes() - 1] {
                match heap.resolve(a) {
                    Resolved::Large(r) => assert!(std::ptr::eq(r, o), "{what}: {a:#x}"),
                    r => panic!("{what}: slot {k} byte {a:#x} resolves to {r:?}"),
                }
            }
            if allocated {
                live += 1;
                objects += 1;
                bytes += class.bytes();
            } else {
                assert!(
                    !o.layout().has_pointers() && o.bytes() == class.bytes(),
                    "{what}: free slot {k} keeps a layout"
                );
            }
        }
        assert_eq!(m.live, live, "{what}: live count");
        for k in cap..LINE_WORDS * 64 {
            assert_eq!(
                m.alloc[k / 64] >> (k % 64) & 1,
                0,
                "{what}: slot {k} past capacity"
            );
        }
        for off in [cap * class.bytes(), m.bytes() - 1] {
            if off >= cap * class.bytes() && off < m.bytes() {
                assert!(
                    matches!(heap.resolve(base + off), Resolved::NotInHeap),
                    "{what}: tail offset {off} resolves to an object"
                );
            }
        }
    }
    (spans, objects, bytes)
}

// ---------------------------------------------------------------------------------------------
// Registration sequences

const POOL_PAGES: usize = 8;

/// Memory owned by one [`check_registration_sequence`] run.
struct Pool {
    buf: Vec<u8>,
    start: usize,
}

impl Pool {
    fn new() -> Self {
        let buf = vec![0u8; (POOL_PAGES + 1) * SPAN_BYTES];
        let start = buf.as_ptr() as usize;
        let start = start.next_multiple_of(SPAN_BYTES);
        Pool { buf, start }
    }

    fn end(&self) -> usize {
        self.start + POOL_PAGES * SPAN_BYTES
    }

    fn contains(&self, addr: usize) -> bool {
        (self.start..self.end()).contains(&addr)
    }

    /// `addr .. addr + len` as [`OwnedMemory`].
    ///
    /// Inside the pool this keeps `OwnedMemory`'s promise: the buffer is valid for reads and
    /// writes, lives in the same process-wide fixture as the one heap that receives its ranges
    /// (neither is ever dropped), and nothing else touches it while registered (the pool is
    /// zeroed only after every registration of it was undone). Outside the pool the promise is false, and the caller passes
    /// such ranges only where the heap must reject them before any access (null, past 2^48,
    /// the embedded allocator's arenas), which the caller asserts.
    #[allow(unsafe_code)]
    fn memory(&mut self, addr: usize, len: usize) -> OwnedMemory {
        debug_assert!(
            !self.contains(addr) || addr + len <= self.end(),
            "pool ranges stay inside the pool"
        );
        // The pointer is derived from the buffer (not cast from the integer) when it lies in
        // the pool, so it carries the buffer's provenance.
        let ptr = if self.contains(addr) {
            self.buf
                .as_mut_ptr()
                .wrapping_add(addr - self.buf.as_ptr() as usize)
        } else {
            std::ptr::without_provenance_mut(addr)
        };
        // SAFETY: see above: inside the pool the range is the pool's own live buffer, which
        // lives as long as the heap (both in check_registration_sequence's static fixture);
        // outside, the heap rejects the range before reading or writing it, and the caller
        // asserts that it did.
        unsafe { OwnedMemory::new_unchecked(ptr, len) }
    }
}

/// Reads choices from fuzz bytes; zeros when they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u8(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.u8() as usize % from.len()]
    }
}

/// What the check expects a call to return: success, or an error of this variant.
type Expect = Result<(), Error>;

fn same_outcome<T: std::fmt::Debug>(got: &Result<T, Error>, want: &Expect) -> bool {
    match (got, want) {
        (Ok(_), Ok(())) => true,
        (Err(g), Err(w)) => discriminant(g) == discriminant(w),
        _ => false,
    }
}

/// The check's model of the heap: what it registered and allocated, kept in the simplest
/// data structures.
#[derive(Debug, Default)]
struct Model {
    /// Custom spans: base -> (class, noscan, allocated slot indices).
    spans: BTreeMap<usize, (SizeClass, bool, BTreeSet<usize>)>,
    /// Custom large objects: start -> (claimed bytes, object bytes).
    large: BTreeMap<usize, (usize, usize)>,
    /// Embedded small objects: address -> class.
    embedded_small: BTreeMap<usize, SizeClass>,
    /// Embedded large objects: start -> (claimed bytes, object bytes).
    embedded_large: BTreeMap<usize, (usize, usize)>,
    /// Custom medium spans: base -> (class, pages, allocated slot index -> object bytes).
    medium_spans: BTreeMap<usize, (MediumClass, usize, BTreeMap<usize, usize>)>,
    /// Embedded medium objects: address -> (object bytes, class, span base, span pages).
    embedded_medium: BTreeMap<usize, (usize, MediumClass, usize, usize)>,
    /// Marked addresses (small slots keep their mark until sweep, even when freed).
    marked: BTreeSet<usize>,
    /// A complete mark ran since the last sweep (the heap is `MarkState::Marked`): sweep is
    /// allowed, and new objects are allocated marked.
    complete: bool,
}

/// What a registration call is registering.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Span,
    Medium,
    Large,
}

impl Model {
    fn embedded_span_bases(&self) -> BTreeSet<usize> {
        self.embedded_small
            .keys()
            .map(|a| a & !(SPAN_BYTES - 1))
            .collect()
    }

    /// Embedded medium spans: base -> (class, pages). An embedded span lives exactly as long
    /// as one of its objects does (a sweep returns empty ones; embedded objects are freed
    /// only by sweeps).
    fn embedded_medium_spans(&self) -> BTreeMap<usize, (MediumClass, usize)> {
        self.embedded_medium
            .values()
            .map(|&(_, class, base, pages)| (base, (class, pages)))
            .collect()
    }

    /// Every medium span: (base, class, pages, custom).
    fn medium_spans_all(&self) -> Vec<(usize, MediumClass, usize, bool)> {
        let custom = self.medium_spans.iter().map(|(&b, v)| (b, v.0, v.1, true));
        let embedded = self.embedded_medium_spans().into_iter();
        custom
            .chain(embedded.map(|(b, (c, p))| (b, c, p, false)))
            .collect()
    }

    /// The medium span holding `addr`, if any.
    fn medium_span_of(&self, addr: usize) -> Option<(usize, MediumClass, usize, bool)> {
        self.medium_spans_all()
            .into_iter()
            .find(|&(b, _, p, _)| (b..b + p * SPAN_BYTES).contains(&addr))
    }

    /// The start of the registered thing that uses the page of `page`, if any.
    fn page_owner(&self, page: usize) -> Option<usize> {
        let page = page & !(SPAN_BYTES - 1);
        if self.spans.contains_key(&page) || self.embedded_span_bases().contains(&page) {
            return Some(page);
        }
        if let Some((base, ..)) = self.medium_span_of(page) {
            return Some(base);
        }
        self.large
            .iter()
            .chain(&self.embedded_large)
            .find(|&(&s, &(claim, _))| {
                s & !(SPAN_BYTES - 1) <= page && page <= (s + claim - 1) & !(SPAN_BYTES - 1)
            })
            .map(|(&s, _)| s)
    }

    fn mapped(&self, addr: usize) -> bool {
        self.page_owner(addr).is_some()
    }

    /// The documented checks of `register_span`, `register_medium_span` and `register_large`.
    fn expect_register(&self, addr: usize, len: usize, kind: Kind, pool: &Pool) -> Expect {
        let bad_len = match kind {
            Kind::Span => len != SPAN_BYTES,
            Kind::Medium => {
                !len.is_multiple_of(SPAN_BYTES)
                    || !(1..=MediumClass::MAX_SPAN_PAGES).contains(&(len / SPAN_BYTES))
            }
            Kind::Large => false,
        };
        if bad_len && addr != 0 {
            return Err(Error::InvalidLength { len });
        }
        let span = !matches!(kind, Kind::Large);
        if addr == 0 {
            return Err(Error::NullAddress);
        }
        if len == 0 {
            return Err(Error::InvalidLength { len });
        }
        let align = if span { SPAN_BYTES } else { 8 };
        if !addr.is_multiple_of(align) {
            return Err(Error::Misaligned { addr, align });
        }
        if addr.checked_add(len).is_none_or(|e| e > ADDRESS_LIMIT) {
            return Err(Error::OutOfAddressSpace { addr, len });
        }
        let first = addr / SPAN_BYTES;
        let last = (addr + len - 1) / SPAN_BYTES;
        for p in first..=last {
            if let Some(existing) = self.page_owner(p * SPAN_BYTES) {
                return Err(if existing == addr {
                    Error::AlreadyRegistered { addr }
                } else {
                    Error::Overlap { addr, existing }
                });
            }
        }
        if !pool.contains(addr) {
            // Inside an arena (the only other memory this check hands out).
            return Err(Error::Overlap { addr, existing: 0 });
        }
        Ok(())
    }

    /// The custom span holding `addr`, if any.
    fn custom_span_of(&self, addr: usize) -> Option<(usize, SizeClass, bool)> {
        let base = addr & !(SPAN_BYTES - 1);
        self.spans.get(&base).map(|&(c, n, _)| (base, c, n))
    }

    fn large_containing(&self, addr: usize) -> Option<(usize, bool)> {
        let custom = self.large.iter().map(|(&s, &v)| (s, v, true));
        let embedded = self.embedded_large.iter().map(|(&s, &v)| (s, v, false));
        custom
            .chain(embedded)
            .find(|&(s, (_, bytes), _)| (s..s + bytes).contains(&addr))
            .map(|(s, _, custom)| (s, custom))
    }

    /// Whether `addr` is the start of an allocated object, and whether it is custom.
    fn object_at(&self, addr: usize) -> Option<bool> {
        if let Some((base, class, _)) = self.custom_span_of(addr) {
            let off = addr - base;
            let allocated = self.spans[&base].2.contains(&(off / class.bytes()));
            return (off.is_multiple_of(class.bytes()) && allocated).then_some(true);
        }
        if let Some((base, class, _, true)) = self.medium_span_of(addr) {
            let off = addr - base;
            let allocated = self.medium_spans[&base]
                .2
                .contains_key(&(off / class.bytes()));
            return (off.is_multiple_of(class.bytes()) && allocated).then_some(true);
        }
        if self.embedded_small.contains_key(&addr)
            || self.embedded_large.contains_key(&addr)
            || self.embedded_medium.contains_key(&addr)
        {
            return Some(false);
        }
        self.large.contains_key(&addr).then_some(true)
    }

    /// Whether `addr` lies in what the heap resolves as slot `k` of a medium span: the whole
    /// slot while it is free, the object's bytes while it is allocated.
    fn medium_slot_covers(
        &self,
        base: usize,
        class: MediumClass,
        custom: bool,
        addr: usize,
    ) -> bool {
        let k = (addr - base) / class.bytes();
        let start = base + k * class.bytes();
        let object_bytes = if custom {
            self.medium_spans[&base].2.get(&k).copied()
        } else {
            self.embedded_medium.get(&start).map(|v| v.0)
        };
        addr - start < object_bytes.unwrap_or(class.bytes())
    }

    /// The errors of `Heap::object`.
    fn expect_object(&self, addr: usize) -> Expect {
        if addr == 0 {
            return Err(Error::NullAddress);
        }
        if self.object_at(addr).is_some() {
            return Ok(());
        }
        if self.mapped(addr) {
            Err(Error::NotAnObject { addr })
        } else {
            Err(Error::NotRegistered { addr })
        }
    }

    fn expect_init(&self, addr: usize, layout: &Layout) -> Expect {
        if let Some((base, class, pages, custom)) = self.medium_span_of(addr) {
            let off = addr - base;
            if off >= class.capacity(pages * SPAN_BYTES) * class.bytes()
                || !self.medium_slot_covers(base, class, custom, addr)
            {
                return Err(Error::NotAnObject { addr });
            }
            if !custom {
                return Err(Error::WrongOwner { addr });
            }
            if !off.is_multiple_of(class.bytes()) {
                return Err(Error::NotAnObject { addr });
            }
            if self.medium_spans[&base]
                .2
                .contains_key(&(off / class.bytes()))
            {
                return Err(Error::SlotInUse { addr });
            }
            if layout.bytes() > class.bytes() {
                return Err(Error::LayoutTooLarge {
                    bytes: layout.bytes(),
                    limit: class.bytes(),
                });
            }
            return Ok(());
        }
        if let Some((base, class, noscan)) = self.custom_span_of(addr) {
            let off = addr - base;
            if off >= class.capacity() * class.bytes() || !off.is_multiple_of(class.bytes()) {
                return Err(Error::NotAnObject { addr });
            }
            if self.spans[&base].2.contains(&(off / class.bytes())) {
                return Err(Error::SlotInUse { addr });
            }
            if layout.bytes() > class.bytes() {
                return Err(Error::LayoutTooLarge {
                    bytes: layout.bytes(),
                    limit: class.bytes(),
                });
            }
            if noscan && layout.has_pointers() {
                return Err(Error::InvalidLayout { reason: "" });
            }
            return Ok(());
        }
        let base = addr & !(SPAN_BYTES - 1);
        if self.embedded_span_bases().contains(&base) {
            let class = self
                .embedded_small
                .range(base..base + SPAN_BYTES)
                .next()
                .map(|(_, c)| *c);
            let class = class.unwrap_or(SizeClass::DEFAULTS[0]);
            return Err(if addr - base >= class.capacity() * class.bytes() {
                Error::NotAnObject { addr }
            } else {
                Error::WrongOwner { addr }
            });
        }
        if self.large_containing(addr).is_some() {
            return Err(Error::WrongOwner { addr });
        }
        if self.mapped(addr) {
            return Err(Error::NotAnObject { addr });
        }
        Err(Error::NotRegistered { addr })
    }

    fn expect_free(&self, addr: usize) -> Expect {
        self.expect_object(addr)?;
        match self.object_at(addr) {
            Some(true) if self.custom_span_of(addr).is_some() => Ok(()),
            Some(true) if self.medium_span_of(addr).is_some() => Ok(()),
            Some(true) => Err(Error::NotAnObject { addr }), // a custom large object
            _ if self.embedded_large.contains_key(&addr) => Err(Error::NotAnObject { addr }),
            _ => Err(Error::WrongOwner { addr }),
        }
    }
}

/// Runs the registration calls that `bytes` spell out against an empty heap and asserts, after
/// every call, that:
/// - it returned the success or the typed error (the variant) that a simple model of the
///   heap predicts, and never panicked;
/// - a call that returned an error left the heap unchanged ([`snapshot`]);
/// - the heap agrees with the model (registered spans, allocated slots, large objects, sweep
///   results), and is self-consistent ([`check_heap_invariants`]) after every sweep and
///   unregistration and at the end.
///
/// Up to [`REGISTER_MAX_OPS`] calls (the first byte of each, modulo 12, picks one; the next
/// bytes pick its arguments): `register_span`, `register_large`, `register_medium_span`,
/// `unregister_span`, `unregister_large`, `init_object`, `free_object`, `mark_reachable`,
/// `sweep` and embedded `alloc` (small, medium and large), on addresses
/// drawn from a pool of 8 owned pages, the embedded allocator's arenas, null and addresses
/// beyond 2^48, with lengths, classes and layouts both legal and not.
///
/// One heap and one pool serve every call in the process: after the sequence, the heap is
/// emptied (and checked empty) and the pool zeroed, which costs far less than a fresh heap.
///
/// # Panics
/// When sencha disagrees with the model: that is a bug the input has found.
///
/// # Examples
/// ```
/// sencha_spans::testing::check_registration_sequence(&[0, 0, 0, 0, 6, 7, 1, 2, 3]);
/// ```
pub fn check_registration_sequence(bytes: &[u8]) {
    static FIXTURE: Mutex<Option<(Heap, Pool)>> = Mutex::new(None);
    // A check that failed left the heap in an unknown state: start over.
    let mut guard = FIXTURE.lock().unwrap_or_else(|poisoned| {
        let mut g = poisoned.into_inner();
        *g = None;
        FIXTURE.clear_poison();
        g
    });
    let (heap, pool) = guard.get_or_insert_with(|| (fresh_heap(), Pool::new()));
    serial(|| {
        let model = run_sequence(heap, pool, &mut Input(bytes));
        reset(heap, pool, &model);
    });
}

fn fresh_heap() -> Heap {
    Heap::with_config(HeapConfig {
        huge_pages: false,
        arena_bytes: 2 << 20,
    })
    .expect("a valid configuration")
}

/// Empties the heap for the next sequence: custom spans and large objects are unregistered,
/// a mark from no roots and a sweep free every embedded object, and the pool is zeroed. Checks that
/// nothing is left; a heap that cannot be emptied this way is replaced by a fresh one.
///
/// A reused heap keeps its arenas, so sequences never depend on how many there are (see
/// [`pick_range`] and [`pick_addr`]): an input decodes to the same calls on a fresh heap, and a
/// crash replays.
fn reset(heap: &mut Heap, pool: &mut Pool, model: &Model) {
    heap.clear_marks();
    for &base in model.spans.keys() {
        heap.unregister_span(base)
            .expect("a custom span of the model unregisters");
    }
    for &start in model.large.keys() {
        heap.unregister_large(start)
            .expect("a custom large object of the model unregisters");
    }
    for &base in model.medium_spans.keys() {
        heap.unregister_span(base)
            .expect("a custom medium span of the model unregisters");
    }
    heap.mark_reachable(&[]).expect("no other mark runs");
    heap.sweep().expect("a complete mark ran");
    let s = heap.stats();
    if (s.spans, s.objects(), s.custom_spans) != (0, 0, 0) {
        *heap = fresh_heap();
    }
    check_heap_invariants(heap);
    // No registration holds pool memory any more (just unregistered, and checked above).
    pool.buf.fill(0);
}

/// Most calls one sequence makes; the bytes after them are ignored, so inputs stay small.
pub const REGISTER_MAX_OPS: usize = 64;

const SPAN_LENS: [usize; 8] = [
    SPAN_BYTES,
    SPAN_BYTES,
    SPAN_BYTES,
    SPAN_BYTES,
    0,
    4096,
    2 * SPAN_BYTES,
    8,
];
const LARGE_LENS: [usize; 8] = [
    SPAN_BYTES,
    600,
    4096,
    2 * SPAN_BYTES,
    3 * SPAN_BYTES - 8,
    0,
    8,
    5000,
];
const OFFSETS: [usize; 7] = [0, 0, 0, 8, 1, 4096, SPAN_BYTES - 8];
const MEDIUM_LENS: [usize; 8] = [
    SPAN_BYTES,
    2 * SPAN_BYTES,
    3 * SPAN_BYTES,
    0,
    4096,
    17 * SPAN_BYTES,
    SPAN_BYTES + 8,
    8,
];
const MEDIUM_SIZES: [usize; 10] = [520, 576, 600, 640, 1000, 4096, 8192, 512, 8200, 7000];

fn pick_layout(input: &mut Input<'_>) -> Layout {
    let bytes = input.pick(&[
        8, 16, 24, 48, 64, 72, 512, 520, 600, 4096, 9000, 20000, 640, 1000, 8192,
    ]);
    let bits = u64::from(input.u8());
    let layout = match input.u8() % 5 {
        0 => Layout::no_pointers(bytes),
        1 => Layout::all_pointers(bytes),
        2 => Layout::with_pointers(bytes, bits & crate::layout::low_bits(bytes / 8)),
        3 => Layout::from_pointer_words(bytes, &[0, bytes / 8 - 1, bits as usize % (bytes / 8)]),
        _ => Layout::with_pointers(16, bits & 0b11).and_then(|e| Layout::array(e, bytes / 16)),
    };
    // Every size above is legal for `no_pointers`; an array of zero elements falls back to it.
    layout
        .or_else(|_| Layout::no_pointers(bytes))
        .unwrap_or_else(|e| panic!("fixture layout of {bytes} bytes: {e}"))
}

/// A range to register: `(addr, len)`, from the pool, null, past 2^48, an arena or a
/// registered address.
fn pick_range(
    input: &mut Input<'_>,
    heap: &Heap,
    model: &Model,
    pool: &Pool,
    lens: &[usize],
) -> (usize, usize) {
    let len = input.pick(lens);
    match input.u8() % 8 {
        4 => (0, len),
        5 => {
            let addr = input.pick(&[
                ADDRESS_LIMIT,
                ADDRESS_LIMIT + SPAN_BYTES,
                ADDRESS_LIMIT - SPAN_BYTES,
                usize::MAX & !(SPAN_BYTES - 1),
            ]);
            // ADDRESS_LIMIT - 8 KiB is below the limit: only ranges that cross it are used.
            let len = if addr < ADDRESS_LIMIT {
                2 * SPAN_BYTES
            } else {
                len
            };
            (addr, len)
        }
        // An arena page near an embedded object (through the model, not the heap's list of
        // arenas, which a reused heap keeps from earlier sequences).
        6 if model.embedded_small.len() + model.embedded_large.len() > 0 => {
            let objects: Vec<usize> = model
                .embedded_small
                .keys()
                .chain(model.embedded_large.keys())
                .copied()
                .collect();
            let obj = objects[input.u8() as usize % objects.len()];
            let a = arena_of(heap, obj);
            let pages = a.len() / SPAN_BYTES;
            let addr = a.start() + (input.u8() as usize % pages) * SPAN_BYTES;
            let addr = addr + input.pick(&OFFSETS);
            (addr, len.min(a.start() + a.len() - addr))
        }
        7 if !model.spans.is_empty()
            || !model.large.is_empty()
            || !model.medium_spans.is_empty() =>
        {
            let starts: Vec<(usize, usize)> = model
                .spans
                .keys()
                .map(|&b| (b, SPAN_BYTES))
                .chain(model.large.iter().map(|(&s, &(claim, _))| (s, claim)))
                .chain(
                    model
                        .medium_spans
                        .iter()
                        .map(|(&b, v)| (b, v.1 * SPAN_BYTES)),
                )
                .collect();
            starts[input.u8() as usize % starts.len()]
        }
        _ => {
            let page = input.u8() as usize % POOL_PAGES;
            let addr = pool.start + page * SPAN_BYTES + input.pick(&OFFSETS);
            (addr, len.min(pool.end() - addr))
        }
    }
}

/// An address to unregister, free, initialise or mark: starts and interiors of what the heap
/// holds, pool and arena addresses, and null. One byte picks the kind, the next the address.
fn pick_addr(input: &mut Input<'_>, heap: &Heap, model: &Model, pool: &Pool) -> usize {
    let kind = input.u8() % 9;
    let i = input.u8() as usize;
    let spans: Vec<(usize, SizeClass, &BTreeSet<usize>)> = model
        .spans
        .iter()
        .map(|(&b, (c, _, s))| (b, *c, s))
        .collect();
    let cands: Vec<usize> = match kind {
        0 => spans
            .iter()
            .flat_map(|&(b, c, s)| s.iter().map(move |&k| b + k * c.bytes()))
            .collect(),
        1 => spans
            .iter()
            .map(|&(b, c, _)| b + c.bytes() * (i % c.capacity()))
            .collect(),
        2 => spans
            .iter()
            .flat_map(|&(b, c, _)| [b, b + 8, b + c.bytes() + 8, b + c.capacity() * c.bytes()])
            .collect(),
        3 => model.large.keys().flat_map(|&s| [s, s + 8]).collect(),
        4 => model
            .embedded_small
            .keys()
            .flat_map(|&a| [a, a & !(SPAN_BYTES - 1)])
            .collect(),
        5 => model
            .embedded_large
            .keys()
            .flat_map(|&s| [s, s + 8])
            .collect(),
        6 => model
            .medium_spans
            .iter()
            .flat_map(|(&b, (c, p, slots))| {
                let any = b + c.bytes() * (i % c.capacity(p * SPAN_BYTES));
                let tail = b + c.capacity(p * SPAN_BYTES) * c.bytes();
                let live = slots.keys().map(move |&k| b + k * c.bytes());
                live.chain([any, any + 8, b + SPAN_BYTES, tail, b + p * SPAN_BYTES - 8])
            })
            .collect(),
        7 => model
            .embedded_medium
            .iter()
            .flat_map(|(&a, &(bytes, _, base, _))| [a, a + 8, a + bytes, base])
            .collect(),
        _ => Vec::new(),
    };
    if cands.is_empty() {
        let misc = [0, pool.start, pool.start + 3 * SPAN_BYTES + 16];
        let first = model
            .embedded_small
            .keys()
            .chain(model.embedded_large.keys())
            .next();
        let arena = first
            .map(|&o| arena_of(heap, o))
            .map(|a| a.start() + a.len() / 2);
        let misc: Vec<usize> = misc.into_iter().chain(arena).collect();
        return misc[i % misc.len()];
    }
    cands[i % cands.len()]
}

/// The arena holding `addr`, an embedded object's address.
fn arena_of(heap: &Heap, addr: usize) -> &crate::arena::Arena {
    heap.arenas
        .iter()
        .find(|a| (a.start()..a.start() + a.len()).contains(&addr))
        .expect("embedded objects lie in an arena")
}

fn run_sequence(heap: &mut Heap, pool: &mut Pool, input: &mut Input<'_>) -> Model {
    let mut model = Model::default();
    let mut ops = 0;
    while let Some(op) = input.next() {
        ops += 1;
        if ops > REGISTER_MAX_OPS {
            break;
        }
        // Taken before a call the model expects to fail, to show that it changed nothing (a
        // call expected to succeed that fails is caught by the outcome check instead).
        let mut before = None;
        let (what, result): (String, Result<(), Error>) = match op % 12 {
            0 | 1 => {
                let (addr, len) = pick_range(input, heap, &model, pool, &SPAN_LENS);
                let b = input.u8();
                // Mostly legal classes (all 63 of them), sometimes not.
                let bytes = if b < 252 {
                    (b as usize % 63 + 2) * 8
                } else {
                    b as usize
                };
                let noscan = input.u8() & 1 != 0;
                let class = match SizeClass::new(bytes) {
                    Ok(c) => c,
                    Err(e) => {
                        assert_eq!(e, Error::InvalidSizeClass { bytes });
                        continue;
                    }
                };
                let want = model.expect_register(addr, len, Kind::Span, pool);
                if want.is_err() {
                    let r = vec![(addr, len)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.register_span(pool.memory(addr, len), class, noscan);
                let what = format!("register_span({addr:#x}, {len}, {class}, {noscan})");
                check_outcome(&what, &got, &want);
                if let Ok(base) = got {
                    assert_eq!(base, addr, "{what}");
                    model.spans.insert(base, (class, noscan, BTreeSet::new()));
                    model.marked.retain(|a| a & !(SPAN_BYTES - 1) != base);
                }
                (what, got.map(drop))
            }
            2 => {
                let (addr, len) = pick_range(input, heap, &model, pool, &LARGE_LENS);
                let layout = pick_layout(input);
                let mut want = model.expect_register(addr, len, Kind::Large, pool);
                if want.is_ok() && layout.bytes() > len {
                    want = Err(Error::LayoutTooLarge {
                        bytes: layout.bytes(),
                        limit: len,
                    });
                }
                if want.is_err() {
                    let r = vec![(addr, len)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.register_large(pool.memory(addr, len), &layout);
                let what = format!("register_large({addr:#x}, {len}, {layout:?})");
                check_outcome(&what, &got, &want);
                if let Ok(start) = got {
                    assert_eq!(start, addr, "{what}");
                    model.large.insert(start, (len, layout.bytes()));
                    model.marked.remove(&start);
                    if model.complete {
                        model.marked.insert(start); // allocated black
                    }
                }
                (what, got.map(drop))
            }
            3 => {
                let addr = pick_addr(input, heap, &model, pool);
                let want =
                    if model.spans.contains_key(&addr) || model.medium_spans.contains_key(&addr) {
                        Ok(())
                    } else if model.embedded_span_bases().contains(&addr)
                        || model.embedded_medium_spans().contains_key(&addr)
                    {
                        Err(Error::WrongOwner { addr })
                    } else {
                        Err(Error::NotRegistered { addr })
                    };
                if want.is_err() {
                    let r = vec![(addr, SPAN_BYTES)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.unregister_span(addr);
                let what = format!("unregister_span({addr:#x})");
                check_outcome(&what, &got, &want);
                if got.is_ok() {
                    let len = match model.medium_spans.remove(&addr) {
                        Some((_, pages, _)) => pages * SPAN_BYTES,
                        None => SPAN_BYTES,
                    };
                    model.spans.remove(&addr);
                    model.marked.retain(|a| !(addr..addr + len).contains(a));
                }
                (what, got)
            }
            4 => {
                let addr = pick_addr(input, heap, &model, pool);
                let want = if model.large.contains_key(&addr) {
                    Ok(())
                } else if model.embedded_large.contains_key(&addr)
                    || model.embedded_medium.contains_key(&addr)
                {
                    Err(Error::WrongOwner { addr })
                } else {
                    Err(Error::NotRegistered { addr })
                };
                if want.is_err() {
                    let r = vec![(addr, 1)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.unregister_large(addr);
                let what = format!("unregister_large({addr:#x})");
                check_outcome(&what, &got, &want);
                if got.is_ok() {
                    model.large.remove(&addr);
                    model.marked.remove(&addr);
                }
                (what, got)
            }
            5 | 6 => {
                let addr = pick_addr(input, heap, &model, pool);
                let layout = pick_layout(input);
                let want = model.expect_init(addr, &layout);
                if want.is_err() {
                    let r = vec![(addr, 1)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.init_object(addr, &layout);
                let what = format!("init_object({addr:#x}, {layout:?})");
                check_outcome(&what, &got, &want);
                if got.is_ok() {
                    if model.complete {
                        model.marked.insert(addr); // allocated black
                    }
                    if let Some((base, class, ..)) = model.medium_span_of(addr) {
                        let index = (addr - base) / class.bytes();
                        if let Some(e) = model.medium_spans.get_mut(&base) {
                            e.2.insert(index, layout.bytes());
                        }
                        check_medium_layout(heap, addr, &layout);
                    } else {
                        let (base, class, noscan) = model
                            .custom_span_of(addr)
                            .expect("predicted from the model");
                        let index = (addr - base) / class.bytes();
                        if let Some(e) = model.spans.get_mut(&base) {
                            e.2.insert(index);
                        }
                        check_ptr_bits(heap, addr, if noscan { 0 } else { layout_bits(&layout) });
                    }
                }
                (what, got)
            }
            7 => {
                let addr = pick_addr(input, heap, &model, pool);
                let want = model.expect_free(addr);
                if want.is_err() {
                    let r = vec![(addr, 1)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.free_object(addr);
                let what = format!("free_object({addr:#x})");
                check_outcome(&what, &got, &want);
                if got.is_ok() {
                    if let Some((base, class, ..)) = model.medium_span_of(addr) {
                        if let Some(e) = model.medium_spans.get_mut(&base) {
                            e.2.remove(&((addr - base) / class.bytes()));
                        }
                        check_medium_layout(heap, addr, &Layout::blank(class.bytes()));
                    } else {
                        let (base, class, _) = model.custom_span_of(addr).expect("predicted");
                        if let Some(e) = model.spans.get_mut(&base) {
                            e.2.remove(&((addr - base) / class.bytes()));
                        }
                        check_ptr_bits(heap, addr, 0);
                    }
                }
                (what, got)
            }
            8 => {
                // A complete mark from one root (objects here hold no pointers but by chance):
                // the model takes the heap's marked set after checking the root is in it.
                let addr = pick_addr(input, heap, &model, pool);
                let want = model.expect_object(addr);
                if want.is_err() {
                    let r = vec![(addr, 1)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.object(addr).map(drop);
                let what = format!("mark_reachable([{addr:#x}])");
                check_outcome(&what, &got, &want);
                if got.is_ok() {
                    heap.mark_reachable(&[addr]).expect("no other mark runs");
                    let marked = heap.marked_objects();
                    assert!(marked.contains(&addr), "{what}: root not marked");
                    model.marked = marked.into_iter().collect();
                    model.complete = true;
                }
                (what, got)
            }
            9 => {
                if !model.complete {
                    // A refused sweep must change nothing: every span, large and medium
                    // record and the statistics are in any snapshot; the pool's pages too.
                    let r = vec![(pool.start, POOL_PAGES * SPAN_BYTES)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.sweep();
                if model.complete {
                    let s = got.expect("sweep after a complete mark");
                    sweep_model(&mut model, &s);
                    model.complete = false;
                    ("sweep()".into(), Ok(()))
                } else {
                    assert_eq!(got, Err(Error::NoCompleteMark), "sweep without a mark");
                    ("sweep()".into(), Err(Error::NoCompleteMark))
                }
            }
            11 => {
                let (addr, len) = pick_range(input, heap, &model, pool, &MEDIUM_LENS);
                let bytes = input.pick(&MEDIUM_SIZES);
                let class = match MediumClass::new(bytes) {
                    Ok(c) => c,
                    Err(e) => {
                        assert_eq!(e, Error::InvalidMediumClass { bytes });
                        continue;
                    }
                };
                let want = model.expect_register(addr, len, Kind::Medium, pool);
                if want.is_err() {
                    let r = vec![(addr, len)];
                    before = Some((snapshot_with(heap, &r, false), r));
                }
                let got = heap.register_medium_span(pool.memory(addr, len), class);
                let what = format!("register_medium_span({addr:#x}, {len}, {class})");
                check_outcome(&what, &got, &want);
                if let Ok(base) = got {
                    assert_eq!(base, addr, "{what}");
                    let pages = len / SPAN_BYTES;
                    model
                        .medium_spans
                        .insert(base, (class, pages, BTreeMap::new()));
                    model.marked.retain(|a| !(base..base + len).contains(a));
                }
                (what, got.map(drop))
            }
            _ => {
                let layout = pick_layout(input);
                let got = heap.alloc(&layout);
                let what = format!("alloc({layout:?})");
                match got {
                    Ok(addr) => {
                        assert!(!pool.contains(addr), "{what} returned pool memory");
                        let medium = MediumClass::for_bytes(layout.bytes());
                        match SizeClass::for_bytes(layout.bytes()) {
                            Some(c) => {
                                model.embedded_small.insert(addr, c);
                                check_ptr_bits(heap, addr, layout_bits(&layout));
                            }
                            None if medium.is_some() => {
                                let class = medium.expect("checked");
                                let m = heap.medium_record(addr).expect("a medium span");
                                assert_eq!(m.class, class, "{what}: class");
                                assert_eq!(m.pages, class.span_pages(), "{what}: pages");
                                assert!((addr - m.base).is_multiple_of(class.bytes()), "{what}");
                                model
                                    .embedded_medium
                                    .insert(addr, (layout.bytes(), class, m.base, m.pages));
                                check_medium_layout(heap, addr, &layout);
                            }
                            None => {
                                let claim = layout.bytes().next_multiple_of(SPAN_BYTES);
                                model.embedded_large.insert(addr, (claim, layout.bytes()));
                            }
                        }
                        model.marked.remove(&addr);
                        if model.complete {
                            model.marked.insert(addr); // allocated black
                        }
                        (what, Ok(()))
                    }
                    Err(e) => (what, Err(e)),
                }
            }
        };
        if let Err(e) = &result {
            let (before, regions) =
                before.unwrap_or_else(|| panic!("{what} failed unexpectedly: {e:?}"));
            assert_eq!(
                snapshot_with(heap, &regions, false),
                before,
                "{what} returned {e:?} but changed the heap"
            );
            // Unchanged, so as consistent as after the last call, which was checked.
            continue;
        }
        // The model check (statistics, every object, every custom span's slots) runs after
        // every call; the full slot-by-slot invariants after the calls that reshape the heap
        // most (sweep, unregistration) and at the end, so that a sequence costs time linear in
        // its length.
        check_model(heap, &model);
        if matches!(op % 12, 3 | 4 | 9) {
            check_heap_invariants(heap);
        }
    }
    check_heap_invariants(heap);
    model
}

fn check_outcome<T: std::fmt::Debug>(what: &str, got: &Result<T, Error>, want: &Expect) {
    assert!(
        same_outcome(got, want),
        "{what} returned {got:?}; the model expects {want:?}"
    );
}

/// The pointer bits a small object of `layout` gets.
fn layout_bits(layout: &Layout) -> u64 {
    layout.pointer_bits(0) & crate::layout::low_bits(layout.words())
}

/// The record of the medium slot at `addr` holds `layout`.
fn check_medium_layout(heap: &Heap, addr: usize, layout: &Layout) {
    let m = heap.medium_record(addr).expect("a medium span");
    let k = m.slot_of(addr).expect("a slot");
    assert_eq!(
        m.objects[k].layout(),
        layout,
        "layout of medium slot {addr:#x}"
    );
}

fn check_ptr_bits(heap: &Heap, addr: usize, want: u64) {
    match heap.resolve(addr) {
        Resolved::Small(o) => assert_eq!(
            o.span.object_ptr_bits(o.index),
            want,
            "pointer bits of {addr:#x}"
        ),
        r => panic!("{addr:#x} should be a small object, resolves to {r:?}"),
    }
}

fn sweep_model(model: &mut Model, s: &crate::SweepStats) {
    let marked = std::mem::take(&mut model.marked);
    let mut freed = 0;
    let mut live = 0;
    for (&base, (class, _, slots)) in model.spans.iter_mut() {
        let before = slots.len();
        slots.retain(|&i| marked.contains(&(base + i * class.bytes())));
        freed += before - slots.len();
        live += slots.len();
    }
    let spans_before = model.embedded_span_bases();
    let before = model.embedded_small.len();
    model.embedded_small.retain(|a, _| marked.contains(a));
    freed += before - model.embedded_small.len();
    live += model.embedded_small.len();
    let freed_spans = spans_before.len() - model.embedded_span_bases().len();
    let (mut medium_freed, mut medium_live) = (0, 0);
    for (&base, (class, _, slots)) in model.medium_spans.iter_mut() {
        let before = slots.len();
        slots.retain(|&k, _| marked.contains(&(base + k * class.bytes())));
        medium_freed += before - slots.len();
        medium_live += slots.len();
    }
    let medium_spans_before = model.embedded_medium_spans().len();
    let before = model.embedded_medium.len();
    model.embedded_medium.retain(|a, _| marked.contains(a));
    medium_freed += before - model.embedded_medium.len();
    medium_live += model.embedded_medium.len();
    let medium_spans_freed = medium_spans_before - model.embedded_medium_spans().len();
    assert_eq!(
        (
            s.freed_medium_objects,
            s.live_medium_objects,
            s.freed_medium_spans
        ),
        (medium_freed, medium_live, medium_spans_freed),
        "sweep: freed / live medium objects, freed medium spans; {s:?}"
    );
    let freed_custom: BTreeSet<usize> = model
        .large
        .keys()
        .copied()
        .filter(|a| !marked.contains(a))
        .collect();
    let large_before = model.large.len() + model.embedded_large.len();
    model.large.retain(|a, _| marked.contains(a));
    model.embedded_large.retain(|a, _| marked.contains(a));
    let large_live = model.large.len() + model.embedded_large.len();
    assert_eq!(
        (s.freed_objects, s.live_objects, s.freed_spans),
        (freed, live, freed_spans),
        "sweep: freed / live small objects, freed spans; {s:?}"
    );
    assert_eq!(
        (s.freed_large_objects, s.live_large_objects),
        (large_before - large_live, large_live),
        "sweep: large objects; {s:?}"
    );
    let got: BTreeSet<usize> = s.freed_custom_large.iter().copied().collect();
    assert_eq!(got.len(), s.freed_custom_large.len(), "duplicates in {s:?}");
    assert_eq!(got, freed_custom, "sweep: freed_custom_large");
}

fn check_model(heap: &Heap, model: &Model) {
    let s = heap.stats();
    let custom_small: usize = model.spans.values().map(|v| v.2.len()).sum();
    assert_eq!(s.custom_spans, model.spans.len(), "custom spans");
    assert_eq!(
        s.small_objects,
        custom_small + model.embedded_small.len(),
        "small objects"
    );
    assert_eq!(
        s.large_objects,
        model.large.len() + model.embedded_large.len(),
        "large objects"
    );
    for (&base, (class, noscan, slots)) in &model.spans {
        let alloc = heap
            .allocated_slots(base)
            .unwrap_or_else(|e| panic!("custom span {base:#x}: {e}"));
        let got: BTreeSet<usize> = (0..LINE_WORDS * 64)
            .filter(|&i| alloc[i / 64] >> (i % 64) & 1 != 0)
            .collect();
        assert_eq!(&got, slots, "allocated slots of {base:#x}");
        let want_byte = class.words() as u8 | if *noscan { CLASS_NOSCAN } else { 0 };
        match heap.resolve(base) {
            Resolved::Small(o) => assert_eq!(o.span.class_byte(), want_byte),
            r => panic!("custom span {base:#x} resolves to {r:?}"),
        }
    }
    let custom_medium: usize = model.medium_spans.values().map(|v| v.2.len()).sum();
    assert_eq!(
        (s.medium_spans, s.medium_objects),
        (
            model.medium_spans.len() + model.embedded_medium_spans().len(),
            custom_medium + model.embedded_medium.len()
        ),
        "medium spans and objects"
    );
    for (&base, (_, _, slots)) in &model.medium_spans {
        let alloc = heap
            .allocated_slots(base)
            .unwrap_or_else(|e| panic!("custom medium span {base:#x}: {e}"));
        let got: BTreeSet<usize> = (0..LINE_WORDS * 64)
            .filter(|&i| alloc[i / 64] >> (i % 64) & 1 != 0)
            .collect();
        let want: BTreeSet<usize> = slots.keys().copied().collect();
        assert_eq!(got, want, "allocated slots of medium span {base:#x}");
    }
    let medium_objects = model.medium_spans.iter().flat_map(|(&b, (c, _, slots))| {
        slots
            .iter()
            .map(move |(&k, &bytes)| (b + k * c.bytes(), bytes))
    });
    let medium_objects = medium_objects.chain(model.embedded_medium.iter().map(|(&a, v)| (a, v.0)));
    for (addr, bytes) in medium_objects {
        match heap.object(addr) {
            Ok(Object::Large(l)) if l.is_medium() => {
                assert_eq!(l.bytes(), bytes, "medium {addr:#x}")
            }
            r => panic!("medium object {addr:#x}: {r:?}"),
        }
    }
    for (&start, &(_, bytes)) in model.large.iter().chain(&model.embedded_large) {
        match heap.object(start) {
            Ok(Object::Large(l)) => assert_eq!(l.bytes(), bytes, "large {start:#x}"),
            r => panic!("large object {start:#x}: {r:?}"),
        }
    }
    for (&addr, &class) in &model.embedded_small {
        match heap.object(addr) {
            Ok(Object::Small(o)) => assert_eq!(o.class, class, "embedded {addr:#x}"),
            r => panic!("embedded object {addr:#x}: {r:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sequences that spell out each kind of call at least once, with registrations first so
    /// that later calls find something to act on.
    fn seeded_sequence(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = SplitMix64::new(seed);
        let mut v = Vec::with_capacity(len);
        for i in 0..len {
            // Early on, favour registrations (ops 0, 1) and allocations (op 8).
            let b = rng.next_u64() as u8;
            v.push(if i % 8 == 0 && i < len / 2 {
                [0, 1, 2, 10, 11][rng.below(5)]
            } else {
                b
            });
        }
        v
    }

    #[test]
    fn testing_registration_sequence_seeded() {
        for seed in 0..48 {
            check_registration_sequence(&seeded_sequence(seed, 600));
        }
    }

    #[test]
    fn testing_registration_sequence_empty_and_short() {
        check_registration_sequence(&[]);
        // Each call costs a fresh heap (about 9 ms, mostly dropping the page map's top level),
        // so cover each op kind (the first byte modulo 12) twice rather than every byte value.
        for b in 0..24u8 {
            check_registration_sequence(&[b]);
            check_registration_sequence(&[b, b, b, b]);
        }
    }

    #[test]
    fn testing_custom_span_every_class() {
        let mut heap = Heap::new();
        for (i, class) in SizeClass::every_legal().enumerate() {
            let base = custom_span(&mut heap, class, i % 2 == 0).unwrap();
            assert_eq!(base % SPAN_BYTES, 0);
            match heap.resolve(base) {
                Resolved::Small(o) => assert_eq!((o.class, o.noscan), (class, i % 2 == 0)),
                r => panic!("{r:?}"),
            }
        }
        check_heap_invariants(&heap);
        assert_eq!(heap.stats().custom_spans, 63);
    }

    #[test]
    fn testing_leak_pages_aligned_and_split() {
        let mem = leak_pages(3);
        assert_eq!(
            (mem.as_ptr() as usize % SPAN_BYTES, mem.len()),
            (0, 3 * SPAN_BYTES)
        );
        let pages = split_pages(mem);
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[1].addr(), pages[0].addr() + SPAN_BYTES);
    }

    #[test]
    fn testing_splitmix_is_reproducible() {
        // Reference values of splitmix64 seeded with 0 (Vigna's C implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let mut v: Vec<u32> = (0..100).collect();
        SplitMix64::new(3).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn testing_registration_sequence_random(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
            check_registration_sequence(&bytes);
        }
    }
}
