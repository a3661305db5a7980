//! Medium objects: 513 bytes to 8 KiB, several to a multi-page span.
//!
//! Before medium spans, every object over 512 bytes took whole 8 KiB pages of its own (a
//! 600-byte object cost 8 KiB, 13x its size). A **medium span** is a run of 1 to
//! [`MediumClass::MAX_SPAN_PAGES`] pages (8 KiB each, 8 KiB-aligned) cut into equal slots of one
//! [`MediumClass`]; the embedded allocator picks, for each of its 27 default classes, the
//! smallest span that wastes at most 1/32 of itself in the tail.
//!
//! # Metadata: side records, not inline
//! A small span keeps its metadata inline (its last 256 bytes) because a Green Tea scan reads
//! the marked, scanned and pointer bits of *many* objects of the span at once. A medium object
//! is scanned on its own, like a large object, so it gains nothing from span-level bits, and
//! inline metadata would cost every span its tail (and a custom allocator its alignment).
//! Instead each slot has a **record** in the heap — the same [`LargeObject`] record a large
//! object has: its start, its [`Layout`](crate::Layout) (written at allocation; a free slot's
//! says "no pointers"), and its own atomic mark word. The span's record holds the slot
//! allocation bits. So the marker resolves a pointer into a medium span (page map → span record
//! → slot index by a magic multiply → slot record) to the same `Target::Large` it already
//! handles: marking and scanning a medium object *is* the large-object path, object by object,
//! and no marker code changed. The price is one record per slot: 64 bytes (11.1 % of a 576-byte
//! slot, 0.7 % of an 8 KiB one; `docs/SPAN_LAYOUT.md` §12 has the table).
//!
//! # Slot arithmetic
//! Slot `n` of a span at `base` of class `size` occupies `base + n * size .. + size`, for
//! `n < capacity = span_bytes / size`; the bytes past the last slot are the tail (no object).
//! The slot of an offset is `(offset * magic) >> 32` with `magic = ceil(2^32 / size)`, exact for
//! every offset below 2^19 (so every offset of a 16-page span; the argument of
//! `docs/SPAN_LAYOUT.md` §7 with `offset < 2^17` and `size < 2^14`), checked exhaustively by
//! `medium_magic_divides_every_offset`.

use crate::error::Error;
use crate::large::LargeObject;
use crate::layout::low_bits;
use crate::span::{LINE_WORDS, SPAN_BYTES};

/// The object size of a medium span, in bytes: a multiple of 8 from 520 to 8192.
///
/// The embedded allocator uses 27 default classes ([`MediumClass::DEFAULTS`], from 576 to 8192
/// bytes, each at most 12.5 % larger than the smallest request it serves); a custom allocator
/// may register medium spans of any legal size ([`Heap::register_medium_span`]).
///
/// [`Heap::register_medium_span`]: crate::Heap::register_medium_span
///
/// # Examples
/// ```
/// use sencha_spans::MediumClass;
/// let c = MediumClass::for_bytes(600).unwrap();
/// assert_eq!((c.bytes(), c.span_pages()), (640, 2));
/// assert_eq!(c.capacity(c.span_pages() * 8192), 25);
/// assert!(MediumClass::new(600).is_ok() && MediumClass::new(513).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediumClass(u16);

/// Generates the default classes: each the largest multiple of 64 at most 9/8 of the smallest
/// request it serves (one more than the class below; 513 for the first), up to 8192.
const fn default_sizes() -> [u16; DEFAULT_COUNT] {
    let mut t = [0u16; DEFAULT_COUNT];
    let mut prev = SMALL_MAX;
    let mut i = 0;
    while i < DEFAULT_COUNT {
        let limit = 9 * (prev + 1) / 8;
        let c = if limit >= MAX { MAX } else { limit / 64 * 64 };
        t[i] = c as u16;
        prev = c;
        i += 1;
    }
    t
}

const SMALL_MAX: usize = 512;
const MAX: usize = 8192;
const DEFAULT_COUNT: usize = 27;
const DEFAULT_SIZES: [u16; DEFAULT_COUNT] = default_sizes();

/// The span pages the embedded allocator uses for objects of `bytes`: the fewest pages (up to
/// 16) whose tail after the last whole object is at most 1/32 of the span; if none, the span
/// with the smallest tail fraction.
const fn pages_for(bytes: usize) -> usize {
    let mut best = 1;
    let mut p = 1;
    while p <= MediumClass::MAX_SPAN_PAGES {
        let span = p * SPAN_BYTES;
        let tail = span % bytes;
        if span >= bytes && tail * 32 <= span {
            return p;
        }
        let best_span = best * SPAN_BYTES;
        // tail / span < best_tail / best_span, in integers.
        if best_span < bytes || (span >= bytes && tail * best_span < (best_span % bytes) * span) {
            best = p;
        }
        p += 1;
    }
    best
}

const _: () = {
    // The generated table ends exactly at 8 KiB and grows strictly.
    assert!(DEFAULT_SIZES[DEFAULT_COUNT - 1] as usize == MAX);
    assert!(DEFAULT_SIZES[DEFAULT_COUNT - 2] as usize != MAX);
    let mut i = 0;
    let mut prev = SMALL_MAX;
    while i < DEFAULT_COUNT {
        let c = DEFAULT_SIZES[i] as usize;
        // At most 12.5 % internal fragmentation for the smallest request of the class.
        assert!(c > prev && 8 * (c - (prev + 1)) <= prev + 1);
        // The default span wastes at most 1/32 of itself.
        let span = pages_for(c) * SPAN_BYTES;
        assert!(span >= c && (span % c) * 32 <= span);
        prev = c;
        i += 1;
    }
    // One page holds an object of every class, so every legal span has a slot.
    assert!(MediumClass::MAX_BYTES <= SPAN_BYTES);
    // Every legal span's slots fit the allocation bits of a record.
    assert!(MediumClass::MAX_SPAN_PAGES * SPAN_BYTES / MediumClass::MIN_BYTES <= LINE_WORDS * 64);
    // The magic multiply stays exact and in range (see the module docs).
    assert!(MediumClass::MAX_SPAN_PAGES * SPAN_BYTES <= 1 << 19);
};

impl MediumClass {
    /// The smallest legal medium object size (the first multiple of 8 above 512).
    pub const MIN_BYTES: usize = SMALL_MAX + 8;
    /// The largest medium object size; anything larger is a large object.
    pub const MAX_BYTES: usize = MAX;
    /// The most pages (8 KiB each) a medium span may have: 128 KiB.
    pub const MAX_SPAN_PAGES: usize = 16;
    /// The embedded allocator's 27 classes, 576 to 8192 bytes.
    pub const DEFAULTS: [MediumClass; DEFAULT_COUNT] = {
        let mut t = [MediumClass(0); DEFAULT_COUNT];
        let mut i = 0;
        while i < DEFAULT_COUNT {
            t[i] = MediumClass(DEFAULT_SIZES[i] / 8);
            i += 1;
        }
        t
    };

    /// The class of objects of exactly `bytes` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidMediumClass`] unless `bytes` is a multiple of 8 from 520 to 8192.
    pub const fn new(bytes: usize) -> Result<Self, Error> {
        if bytes >= Self::MIN_BYTES && bytes <= Self::MAX_BYTES && bytes.is_multiple_of(8) {
            Ok(MediumClass((bytes / 8) as u16))
        } else {
            Err(Error::InvalidMediumClass { bytes })
        }
    }

    /// The smallest default class that holds `bytes` bytes; `None` above 8192 bytes.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::MediumClass;
    /// assert_eq!(MediumClass::for_bytes(513).unwrap().bytes(), 576);
    /// assert_eq!(MediumClass::for_bytes(8192).unwrap().bytes(), 8192);
    /// assert!(MediumClass::for_bytes(8193).is_none());
    /// ```
    pub fn for_bytes(bytes: usize) -> Option<Self> {
        Self::DEFAULTS.iter().copied().find(|c| c.bytes() >= bytes)
    }

    /// Every legal size, 520 to 8192 in steps of 8 (960 classes).
    pub fn every_legal() -> impl Iterator<Item = MediumClass> + Clone {
        ((Self::MIN_BYTES / 8) as u16..=(Self::MAX_BYTES / 8) as u16).map(MediumClass)
    }

    /// The object size in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.0 as usize * 8
    }

    /// The object size in 8-byte words (65..=1024).
    #[inline]
    pub const fn words(self) -> usize {
        self.0 as usize
    }

    /// The pages of the spans the embedded allocator makes for this class (a good choice for
    /// custom spans too): the fewest, up to 16, that leave at most 1/32 of the span unused
    /// after the last object, or else the least wasteful.
    #[inline]
    pub const fn span_pages(self) -> usize {
        pages_for(self.bytes())
    }

    /// How many objects a span of `span_bytes` holds.
    #[inline]
    pub const fn capacity(self, span_bytes: usize) -> usize {
        span_bytes / self.bytes()
    }

    /// `ceil(2^32 / size)`: `(offset * magic) >> 32 == offset / size` for every offset of a
    /// medium span.
    #[inline]
    pub const fn magic(self) -> u64 {
        (1u64 << 32).div_ceil(self.bytes() as u64)
    }

    /// The slot that holds byte `offset` of a span of `span_bytes` (interior offsets map to their
    /// slot), or `None` in the tail or past the span.
    #[inline]
    pub const fn index_of(self, offset: usize, span_bytes: usize) -> Option<usize> {
        if offset >= span_bytes || span_bytes > Self::MAX_SPAN_PAGES * SPAN_BYTES {
            return None;
        }
        let i = ((offset as u64 * self.magic()) >> 32) as usize;
        if i < self.capacity(span_bytes) {
            Some(i)
        } else {
            None
        }
    }

    /// Whether this is one of the 27 default classes.
    pub fn is_default(self) -> bool {
        Self::DEFAULTS.contains(&self)
    }
}

impl std::fmt::Display for MediumClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}B", self.bytes())
    }
}

/// Book-keeping for one medium span.
#[derive(Debug)]
pub(crate) struct MediumSpan {
    /// The span's first byte; 0 for a vacant record.
    pub(crate) base: usize,
    /// Its length in pages.
    pub(crate) pages: usize,
    pub(crate) class: MediumClass,
    pub(crate) custom: bool,
    /// Allocated slots.
    pub(crate) alloc: [u64; LINE_WORDS],
    /// Number of allocated slots.
    pub(crate) live: u32,
    /// One record per slot: start, layout (no pointers while free), mark word.
    pub(crate) objects: Box<[LargeObject]>,
}

impl MediumSpan {
    /// A vacant record.
    pub(crate) fn vacant() -> Self {
        MediumSpan {
            base: 0,
            pages: 0,
            class: MediumClass::DEFAULTS[0],
            custom: false,
            alloc: [0; LINE_WORDS],
            live: 0,
            objects: Box::new([]),
        }
    }

    /// The span's length in bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.pages * SPAN_BYTES
    }

    /// The slot holding `addr`, if `addr` lies in a slot of this span.
    #[inline]
    pub(crate) fn slot_of(&self, addr: usize) -> Option<usize> {
        let i = self
            .class
            .index_of(addr.wrapping_sub(self.base), self.bytes())?;
        (i < self.objects.len()).then_some(i)
    }

    pub(crate) fn is_allocated(&self, index: usize) -> bool {
        index < self.objects.len() && self.alloc[index / 64] >> (index % 64) & 1 != 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.live as usize == self.objects.len()
    }

    /// Takes the first free slot, updating the allocation bits.
    pub(crate) fn take_free_slot(&mut self) -> Option<usize> {
        let cap = self.objects.len();
        for w in 0..cap.div_ceil(64) {
            let free = !self.alloc[w] & low_bits((cap - w * 64).min(64));
            if free != 0 {
                let b = free.trailing_zeros() as usize;
                self.alloc[w] |= 1 << b;
                self.live += 1;
                return Some(w * 64 + b);
            }
        }
        None
    }

    /// Zeroes every slot (a custom span, at registration).
    pub(crate) fn zero_slots(&mut self) {
        for o in self.objects.iter_mut() {
            o.zero();
        }
    }

    /// Frees slot `index` (allocated): clears its allocation bit and its layout, so a stale
    /// pointer to it finds nothing to follow.
    pub(crate) fn free_slot(&mut self, index: usize) {
        debug_assert!(self.is_allocated(index));
        self.alloc[index / 64] &= !(1 << (index % 64));
        self.live -= 1;
        self.objects[index].clear_layout();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medium_magic_divides_every_offset() {
        let span = MediumClass::MAX_SPAN_PAGES * SPAN_BYTES;
        // Every offset of every size (125 M checks); a sample under Miri.
        let step = if cfg!(miri) { 4093 } else { 1 };
        for c in MediumClass::every_legal().step_by(if cfg!(miri) { 97 } else { 1 }) {
            let m = c.magic();
            for off in (0..span as u64).step_by(step) {
                assert_eq!(
                    ((off * m) >> 32) as usize,
                    off as usize / c.bytes(),
                    "class {c}, offset {off}"
                );
            }
        }
    }

    #[test]
    fn medium_index_of_maps_interior_and_tail() {
        for c in MediumClass::every_legal()
            .step_by(7)
            .chain(MediumClass::DEFAULTS)
        {
            for pages in [1, c.span_pages(), MediumClass::MAX_SPAN_PAGES] {
                let span = pages * SPAN_BYTES;
                let cap = c.capacity(span);
                for i in 0..cap {
                    for off in [i * c.bytes(), i * c.bytes() + 8, (i + 1) * c.bytes() - 1] {
                        assert_eq!(c.index_of(off, span), Some(i), "{c} {pages} {off}");
                    }
                }
                let tail = (cap * c.bytes()..span).step_by(8);
                for off in tail.chain([span, span + 8, usize::MAX]) {
                    assert_eq!(c.index_of(off, span), None, "{c} {pages} tail {off}");
                }
            }
        }
    }

    /// Issue 10: at most 12.5 % internal fragmentation for every request of 513 to 8192 bytes.
    #[test]
    fn medium_every_request_wastes_at_most_an_eighth() {
        for n in 513..=8192 {
            let c = MediumClass::for_bytes(n).unwrap();
            assert!(
                c.bytes() >= n && 8 * (c.bytes() - n) <= n,
                "{n} bytes in {c}"
            );
            if n % 8 == 0 && n > 512 {
                assert!(MediumClass::new(n).is_ok());
            }
        }
        assert!(MediumClass::for_bytes(8193).is_none());
    }

    #[test]
    fn medium_rejects_illegal_sizes() {
        for bytes in [0, 8, 512, 513, 516, 8200, 8193, usize::MAX] {
            assert_eq!(
                MediumClass::new(bytes),
                Err(Error::InvalidMediumClass { bytes })
            );
        }
        assert_eq!(MediumClass::every_legal().count(), 960);
        assert!(MediumClass::DEFAULTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(MediumClass::DEFAULTS[0].bytes(), 576);
    }
}
