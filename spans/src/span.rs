//! The span: 8 KiB, 8 KiB-aligned, one size class, metadata inline in its last 256 bytes.
//!
//! ```text
//!  offset  0                                 7936        8064        8128       8192
//!          +---------------------------------+-----------+-----------+----------+
//!          | objects: slot n at n * size,    | pointer   | scan line | mark line|
//!          | n < capacity = 7936 / size      | bitmap    | scanned   | marked   |
//!          |                                 | 1024 bits | bits      | bits +   |
//!          |                                 | 16 x u64  | 8 x u64   | class +  |
//!          |                                 |           |           | owner    |
//!          +---------------------------------+-----------+-----------+----------+
//!  mark line word 7:  bits 0..47 marked bits 448..495 | bits 48..55 class | 56..63 owner
//!  class byte:        bits 0..6 size in words (2..=64), bit 7 noscan
//!  owner byte:        bit 0 OWNED (queued), bit 1 MANY (marked again since queued)
//! ```
//! `docs/SPAN_LAYOUT.md` is the normative copy of this layout.
//!
//! Invariants:
//! - A [`Span`] handle exists only for a span registered in a live heap, and it borrows that heap
//!   (`'h`), so the 8 KiB it points to stay valid, readable and writable for as long as it lives.
//!   Memory is released or unregistered only through `&mut Heap`, which no `Span<'h>` outlives.
//! - Every access to the mark line, scan line and pointer bitmap goes through an [`AtomicU64`]
//!   on a whole aligned word, never through a narrower atomic (mixed-size atomics are unsound).
//!
//! One of the few modules of sencha-spans allowed `unsafe`; `lib.rs` lists them.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::class::SizeClass;
use crate::line;
use crate::pagemap::{EntryKind, PageMap};

/// log2 of [`SPAN_BYTES`].
pub const SPAN_LOG_BYTES: u32 = 13;
/// The size and alignment of a span: 8 KiB.
pub const SPAN_BYTES: usize = 1 << SPAN_LOG_BYTES;
/// Words (8 bytes each) in a span.
pub const SPAN_WORDS: usize = SPAN_BYTES / 8;
/// Bytes at the start of a span available to objects.
pub const OBJECT_BYTES: usize = SPAN_BYTES - METADATA_BYTES;
/// Bytes of inline metadata at the end of a span.
pub const METADATA_BYTES: usize = 256;
/// Offset of the pointer bitmap (1024 bits, one per word, LSB-first `u64` words).
pub const PTR_BITMAP_OFFSET: usize = OBJECT_BYTES;
/// `u64` words in the pointer bitmap.
pub const PTR_BITMAP_WORDS: usize = SPAN_WORDS / 64;
/// Offset of the scan line (scanned bits).
pub const SCAN_LINE_OFFSET: usize = PTR_BITMAP_OFFSET + PTR_BITMAP_WORDS * 8;
/// Offset of the mark line (marked bits, class byte, owner byte).
pub const MARK_LINE_OFFSET: usize = SCAN_LINE_OFFSET + LINE_BYTES;
/// Size of the scan line and of the mark line: one cache line each.
pub const LINE_BYTES: usize = 64;
/// `u64` words in a line.
pub const LINE_WORDS: usize = LINE_BYTES / 8;
/// Bit position of the class byte in mark-line word 7.
pub const CLASS_SHIFT: u32 = 48;
/// Class byte flag: the span's objects hold no pointers.
pub const CLASS_NOSCAN: u8 = 0x80;
/// Owner bit (in mark-line word 7): the span is queued for scanning.
pub const OWNED: u64 = 1 << 56;
/// Owner bit (in mark-line word 7): more objects were marked since the span was queued.
pub const MANY: u64 = 1 << 57;
/// The bits of mark-line word 7 that hold marked bits (objects 448..495).
pub const LAST_WORD_MARK_MASK: u64 = (1 << CLASS_SHIFT) - 1;

const _: () = {
    assert!(PTR_BITMAP_OFFSET == 7936);
    assert!(SCAN_LINE_OFFSET == 8064);
    assert!(MARK_LINE_OFFSET == 8128);
    assert!(MARK_LINE_OFFSET + LINE_BYTES == SPAN_BYTES);
    assert!(PTR_BITMAP_WORDS == 16);
    // Every object bit fits in the low 62 bytes of a line; class and owner take bytes 62, 63.
    assert!(SizeClass::MAX_OBJECTS <= 7 * 64 + CLASS_SHIFT as usize);
    assert!(SizeClass::MAX_OBJECTS == 496);
    assert!(
        MARK_LINE_OFFSET.is_multiple_of(LINE_BYTES) && SCAN_LINE_OFFSET.is_multiple_of(LINE_BYTES)
    );
};

/// A page-map lookup, decoded once (see [`Span::lookup`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum MapHit<'h> {
    Empty,
    Small(Span<'h>, u8),
    Large(u32),
    Medium(u32),
}

/// The owner state of a span, as returned when a marker takes it from a queue (`release`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Not queued.
    Unowned,
    /// Queued by one mark; nothing else was marked in the span since.
    One,
    /// Queued, and more objects were marked since.
    Many,
}

/// A handle to a registered span, borrowed from its heap for `'h`.
///
/// Cheap to copy (one word). Obtain one from `Heap::resolve` or the heap's span iterator; it
/// cannot be built by hand, and it cannot outlive the heap it borrows:
///
/// ```compile_fail
/// use sencha_spans::{Heap, Layout, Resolved};
/// let span = {
///     let mut heap = Heap::new();
///     let a = heap.alloc(&Layout::no_pointers(16).unwrap()).unwrap();
///     match heap.resolve(a) {
///         Resolved::Small(o) => o.span, // error: `heap` does not live long enough
///         _ => unreachable!(),
///     }
/// };
/// let _ = span.base();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span<'h> {
    base: NonZeroUsize,
    _heap: PhantomData<&'h ()>,
}

impl std::fmt::Debug for Span<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Span({:#x}, {})", self.base, self.class())
    }
}

impl<'h> Span<'h> {
    /// Makes a handle.
    ///
    /// # Safety
    /// - `base` is a multiple of [`SPAN_BYTES`];
    /// - the 8 KiB at `base` are valid for reads and writes for `'h`, and accessed only as
    ///   the layout says (metadata only through `AtomicU64`);
    /// - the class byte was written by [`Span::init`] (or is being written by it).
    #[inline]
    pub(crate) unsafe fn from_base_unchecked(base: NonZeroUsize) -> Self {
        debug_assert!(base.get().is_multiple_of(SPAN_BYTES));
        Span {
            base,
            _heap: PhantomData,
        }
    }

    /// The span that holds `addr`, if the page map says a small span is registered there,
    /// with the class byte from the map entry.
    #[inline]
    pub(crate) fn in_map(map: &'h PageMap, addr: usize) -> Option<(Self, u8)> {
        match Self::lookup(map, addr) {
            MapHit::Small(span, class_byte) => Some((span, class_byte)),
            _ => None,
        }
    }

    /// What the page map says about `addr`, with a span handle for a small span: one lookup.
    #[inline]
    pub(crate) fn lookup(map: &'h PageMap, addr: usize) -> MapHit<'h> {
        // `map` must be the page map of the heap that 'h borrows (every caller passes
        // `&heap.map`): a foreign map would name spans no heap keeps alive.
        match map.get(addr).kind() {
            EntryKind::Small { class_byte, .. } => {
                let base = addr & !(SPAN_BYTES - 1);
                let Some(base) = NonZeroUsize::new(base) else {
                    return MapHit::Empty;
                };
                // SAFETY: the heap writes a Small entry only for a span it has initialised and
                // whose memory it keeps valid until the entry is cleared (alloc::new_span,
                // register::register_span); entries are cleared only through `&mut Heap`, and
                // `map` is borrowed from that heap for 'h. `base` is span-aligned by masking.
                let span = unsafe { Span::from_base_unchecked(base) };
                MapHit::Small(span, class_byte)
            }
            EntryKind::Large { record } => MapHit::Large(record),
            EntryKind::Medium { record } => MapHit::Medium(record),
            EntryKind::Empty => MapHit::Empty,
        }
    }

    /// The span's first byte.
    #[inline]
    pub fn base(self) -> usize {
        self.base.get()
    }

    /// A pointer to the span's first byte, for kernels that load whole frames. It is valid for
    /// reads of [`SPAN_BYTES`] for `'h`; object words may be read with plain loads while no
    /// mutator runs, metadata only as `AtomicU64`.
    #[inline]
    pub fn as_ptr(self) -> *const u8 {
        self.base.get() as *const u8
    }

    #[inline]
    fn word_at(self, offset: usize) -> &'h AtomicU64 {
        debug_assert!(
            (PTR_BITMAP_OFFSET..SPAN_BYTES).contains(&offset) && offset.is_multiple_of(8)
        );
        // SAFETY: `offset` is inside the metadata tail (checked above in debug builds; every
        // caller passes a constant offset plus an index below LINE_WORDS or PTR_BITMAP_WORDS).
        // The span memory is valid for 'h and 8-byte aligned (Span::from_base_unchecked's
        // contract, established by the heap at registration), and the metadata is only ever
        // accessed as AtomicU64, so a shared reference to an AtomicU64 there is sound.
        unsafe { &*((self.base.get() + offset) as *const AtomicU64) }
    }

    /// Mark-line word `i` (0..8): marked bits; word 7 also holds the class and owner bytes.
    #[inline]
    pub(crate) fn mark_word(self, i: usize) -> &'h AtomicU64 {
        &self.mark_line()[i]
    }

    /// Scan-line word `i` (0..8): scanned bits.
    #[inline]
    pub(crate) fn scan_word(self, i: usize) -> &'h AtomicU64 {
        &self.scan_line()[i]
    }

    /// The mark line as eight atomic words.
    #[inline]
    pub(crate) fn mark_line(self) -> &'h [AtomicU64; LINE_WORDS] {
        // SAFETY: as in word_at: the eight words at MARK_LINE_OFFSET lie inside the metadata
        // tail of a span valid for 'h (Span::from_base_unchecked's contract), are 64-byte
        // aligned, and are only ever accessed as AtomicU64.
        unsafe { &*((self.base.get() + MARK_LINE_OFFSET) as *const [AtomicU64; LINE_WORDS]) }
    }

    /// The scan line as eight atomic words.
    #[inline]
    pub(crate) fn scan_line(self) -> &'h [AtomicU64; LINE_WORDS] {
        // SAFETY: as in mark_line, for the eight words at SCAN_LINE_OFFSET.
        unsafe { &*((self.base.get() + SCAN_LINE_OFFSET) as *const [AtomicU64; LINE_WORDS]) }
    }

    /// Pointer-bitmap word `i` (0..16): bit `b` says whether span word `64 * i + b` holds a
    /// pointer.
    #[inline]
    pub(crate) fn ptr_bitmap_word(self, i: usize) -> &'h AtomicU64 {
        assert!(i < PTR_BITMAP_WORDS);
        self.word_at(PTR_BITMAP_OFFSET + i * 8)
    }

    /// The class byte (size in words, plus [`CLASS_NOSCAN`]).
    #[inline]
    pub fn class_byte(self) -> u8 {
        (self.mark_word(7).load(Ordering::Relaxed) >> CLASS_SHIFT) as u8
    }

    /// The span's size class.
    #[inline]
    pub fn class(self) -> SizeClass {
        // The class byte was written by init() from a valid SizeClass and never changes while
        // the span is registered; fall back to the smallest class rather than panic.
        SizeClass::from_words(self.class_byte() & !CLASS_NOSCAN).unwrap_or(SizeClass::DEFAULTS[0])
    }

    /// Whether the span holds only pointer-free objects.
    #[inline]
    pub fn is_noscan(self) -> bool {
        self.class_byte() & CLASS_NOSCAN != 0
    }

    /// The address of object `index`.
    #[inline]
    pub fn object_addr(self, index: usize) -> usize {
        self.base.get() + index * self.class().bytes()
    }

    /// Reads word `w` (0..992) of the object area with a plain load; `None` past the object
    /// area.
    ///
    /// Every byte of a span is initialised (the embedded allocator's arenas come zeroed from
    /// the OS; a custom span is zeroed when it is registered), so any word may be read.
    /// Meant for marking and for the runtime's own reads while no thread writes the word.
    #[inline]
    pub fn read_word(self, w: usize) -> Option<usize> {
        if w >= OBJECT_BYTES / 8 {
            return None;
        }
        // SAFETY: `w` indexes the object area (checked above), which is valid for reads for
        // 'h (Span contract, established at registration), initialised (zeroed by the OS or
        // by Heap::register_span) and 8-byte aligned.
        Some(unsafe { ((self.base.get() + w * 8) as *const usize).read() })
    }

    /// Writes word `w` (0..992) of the object area. Same rules as [`Span::read_word`].
    #[inline]
    pub(crate) fn write_word(self, w: usize, value: usize) {
        assert!(w < OBJECT_BYTES / 8);
        // SAFETY: as in read_word; writes are allowed by the Span contract, and the heap calls
        // this only through `&mut Heap`, or from the weak-clearing pass of an open mark session
        // (weak.rs), when nothing else reads or writes object words (the scans are over, and
        // the runtime's own accesses are excluded by the OwnedMemory contract).
        unsafe { ((self.base.get() + w * 8) as *mut usize).write(value) }
    }

    /// Zeroes the `words` words starting at word `first`.
    pub(crate) fn zero_words(self, first: usize, words: usize) {
        assert!(first + words <= OBJECT_BYTES / 8);
        // SAFETY: the range lies in the object area (asserted), valid for writes for 'h.
        unsafe { std::ptr::write_bytes((self.base.get() + first * 8) as *mut u64, 0, words) }
    }

    /// Writes a fresh span header: the class byte, no marks, no scans, no owner, no pointers.
    pub(crate) fn init(self, class: SizeClass, noscan: bool) {
        for i in 0..LINE_WORDS {
            self.mark_word(i).store(0, Ordering::Relaxed);
            self.scan_word(i).store(0, Ordering::Relaxed);
        }
        for i in 0..PTR_BITMAP_WORDS {
            self.ptr_bitmap_word(i).store(0, Ordering::Relaxed);
        }
        let byte = class.words() as u64 | if noscan { CLASS_NOSCAN as u64 } else { 0 };
        self.mark_word(7)
            .store(byte << CLASS_SHIFT, Ordering::Relaxed);
    }

    /// The marked bits (owner and class bits removed).
    #[inline]
    pub fn marked_bits(self) -> [u64; LINE_WORDS] {
        line::marked_bits(self.mark_line())
    }

    /// The scanned bits.
    #[inline]
    pub fn scanned_bits(self) -> [u64; LINE_WORDS] {
        let mut s = [0u64; LINE_WORDS];
        for (w, a) in s.iter_mut().zip(self.scan_line()) {
            *w = a.load(Ordering::Relaxed);
        }
        s
    }

    /// Whether object `index` is marked (false past the class's capacity).
    #[inline]
    pub fn is_marked(self, index: usize) -> bool {
        index < self.class().capacity()
            && self.mark_word(index / 64).load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }

    /// The owner state, without changing it.
    pub fn owner(self) -> Owner {
        line::owner_of(self.mark_word(7).load(Ordering::SeqCst))
    }

    // The protocol steps (DESIGN §5) are crate-private: the marker reaches them only through
    // `protocol::MarkSpan`, inside a mark session (see the `protocol` module docs).

    /// Sets object `index`'s marked bit; true if this call set it (it was white).
    #[inline]
    pub(crate) fn try_mark(self, index: usize) -> bool {
        debug_assert!(index < self.class().capacity());
        line::try_mark(self.mark_line(), index, false)
    }

    /// The pointer bitmap as 16 words.
    #[inline]
    pub fn ptr_bitmap(self) -> [u64; PTR_BITMAP_WORDS] {
        let mut b = [0u64; PTR_BITMAP_WORDS];
        for (i, w) in b.iter_mut().enumerate() {
            *w = self.ptr_bitmap_word(i).load(Ordering::Relaxed);
        }
        b
    }

    /// The pointer bits of object `index` (bit `k` = word `k` of the object), at most 64.
    #[inline]
    pub fn object_ptr_bits(self, index: usize) -> u64 {
        self.ptr_bits(index, self.class())
    }

    /// The pointer bits of object `index` when the caller already knows the span's `class`
    /// (saves reading the class byte again on the marking path).
    #[inline]
    pub fn ptr_bits(self, index: usize, class: SizeClass) -> u64 {
        debug_assert_eq!(class, self.class());
        let words = class.words();
        read_bits(self, index * words, words)
    }

    /// Sets the pointer bits of object `index` (bit `k` = word `k` of the object).
    pub(crate) fn set_object_ptr_bits(self, index: usize, bits: u64) {
        let words = self.class().words();
        let mask = if words == 64 {
            u64::MAX
        } else {
            (1u64 << words) - 1
        };
        let first = index * words;
        let (w, b) = (first / 64, first % 64);
        let lo = self.ptr_bitmap_word(w);
        lo.store(
            (lo.load(Ordering::Relaxed) & !(mask << b)) | ((bits & mask) << b),
            Ordering::Relaxed,
        );
        if b != 0 && b + words > 64 {
            let hi = self.ptr_bitmap_word(w + 1);
            let sh = 64 - b;
            hi.store(
                (hi.load(Ordering::Relaxed) & !(mask >> sh)) | ((bits & mask) >> sh),
                Ordering::Relaxed,
            );
        }
    }

    /// Clears every marked and scanned bit, keeping the class byte; the owner must be idle.
    pub(crate) fn reset_marks(self) {
        for i in 0..LINE_WORDS {
            self.scan_word(i).store(0, Ordering::Relaxed);
        }
        for i in 0..7 {
            self.mark_word(i).store(0, Ordering::Relaxed);
        }
        let w7 = self.mark_word(7);
        w7.store(
            w7.load(Ordering::Relaxed) & !(LAST_WORD_MARK_MASK | OWNED | MANY),
            Ordering::Relaxed,
        );
    }
}

/// Reads `len` (<= 64) bits of the pointer bitmap starting at span word `first`.
#[inline]
fn read_bits(span: Span<'_>, first: usize, len: usize) -> u64 {
    let (w, b) = (first / 64, first % 64);
    let mut v = span.ptr_bitmap_word(w).load(Ordering::Relaxed) >> b;
    if b != 0 && b + len > 64 && w + 1 < PTR_BITMAP_WORDS {
        v |= span.ptr_bitmap_word(w + 1).load(Ordering::Relaxed) << (64 - b);
    }
    if len == 64 {
        v
    } else {
        v & ((1u64 << len) - 1)
    }
}
