//! The large-object path: objects over 512 bytes, each with its own record.
//!
//! A large object occupies whole 8 KiB pages of the page map (no other span or large object may
//! share one of its pages); every page's entry points to the object's record. The record holds
//! the object's start, its [`Layout`] (which words are pointers) and one atomic mark word.
//! Embedded large objects start at a page boundary; custom ones start anywhere 8-byte aligned.
//!
//! Invariant: a [`LargeObject`] is reachable only through `&Heap`, and its memory
//! `start .. start + bytes` stays valid for reads while the record is registered; records are
//! removed only through `&mut Heap`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::arena::Arena;
use crate::layout::Layout;
use crate::span::SPAN_BYTES;

const MARKED: u64 = 1;

/// A large object's record.
#[derive(Debug)]
pub struct LargeObject {
    start: usize,
    /// Bytes of address space it claims (whole pages for embedded objects).
    claim: usize,
    layout: Layout,
    mark: AtomicU64,
    custom: bool,
}

impl LargeObject {
    /// A record for an object at `start` of `layout`, claiming `claim >= layout.bytes()` bytes.
    ///
    /// # Safety
    /// `start .. start + layout.bytes()` is valid for reads and initialised for as long as the
    /// record is in a heap, and is 8-byte aligned.
    pub(crate) unsafe fn new_unchecked(
        start: usize,
        claim: usize,
        layout: Layout,
        custom: bool,
    ) -> Self {
        debug_assert!(start.is_multiple_of(8) && claim >= layout.bytes());
        LargeObject {
            start,
            claim,
            layout,
            mark: AtomicU64::new(0),
            custom,
        }
    }

    /// A record for an embedded object at `start` claiming `claim` bytes, if that range lies
    /// inside one of `arenas` and is span-aligned (else `None`).
    pub(crate) fn in_arena(
        arenas: &[Arena],
        start: usize,
        claim: usize,
        layout: Layout,
    ) -> Option<Self> {
        let inside = arenas
            .iter()
            .any(|a| start >= a.start() && start + claim <= a.start() + a.len());
        if !inside || !start.is_multiple_of(SPAN_BYTES) || claim < layout.bytes() {
            return None;
        }
        // SAFETY: the range lies inside an arena (checked above), which stays mapped read-write
        // until the heap that owns both the arena and this record drops (arena.rs invariant),
        // and it is span-aligned, so 8-byte aligned.
        Some(unsafe { Self::new_unchecked(start, claim, layout, false) })
    }

    /// The object's first byte.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The object's size in bytes.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.layout.bytes()
    }

    /// The bytes of address space the object claims in the page map.
    #[inline]
    pub(crate) fn claim(&self) -> usize {
        self.claim
    }

    /// The object's layout.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether it was registered by a custom allocator.
    #[inline]
    pub fn is_custom(&self) -> bool {
        self.custom
    }

    /// Whether `addr` lies inside the object.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.start) < self.bytes()
    }

    /// Whether it is marked.
    #[inline]
    pub fn is_marked(&self) -> bool {
        self.mark.load(Ordering::Relaxed) & MARKED != 0
    }

    /// Marks it; true if this call did (it was white). Marking protocol: see
    /// `protocol::MarkLarge`.
    #[inline]
    pub(crate) fn try_mark(&self) -> bool {
        if self.is_marked() {
            return false;
        }
        self.mark.fetch_or(MARKED, Ordering::SeqCst) & MARKED == 0
    }

    /// Clears the mark for the next cycle.
    pub(crate) fn reset_mark(&self) {
        self.mark.store(0, Ordering::Relaxed);
    }

    /// Reads word `w` of the object with a plain load (marking time: no mutator runs);
    /// `None` past the end of the object.
    #[inline]
    pub fn read_word(&self, w: usize) -> Option<usize> {
        if w >= self.layout.words() {
            return None;
        }
        // SAFETY: `w` is inside the object (checked above); the object memory is valid for
        // reads and initialised while the record is in the heap (new_unchecked's contract,
        // from the embedded allocator's zeroed arenas or from OwnedMemory's contract) and
        // 8-byte aligned, and `&self` borrows the heap.
        Some(unsafe { ((self.start + w * 8) as *const usize).read() })
    }

    /// Writes word `w` of the object (mutator time, through `&mut Heap`).
    pub(crate) fn write_word(&mut self, w: usize, value: usize) {
        assert!(w < self.layout.words());
        // SAFETY: as in read_word; `&mut self` comes from `&mut Heap`, so no marker reads it,
        // and the memory is writable (embedded arenas are read-write; custom memory was handed
        // over as writable through OwnedMemory).
        unsafe { ((self.start + w * 8) as *mut usize).write(value) }
    }

    /// Sets word `w` to 0 during a mark's weak-clearing pass (through `&Heap`).
    pub(crate) fn clear_word_in_mark(&self, w: usize) {
        assert!(w < self.layout.words());
        // SAFETY: `w` is inside the object (asserted) and the memory is valid for writes while
        // the record is registered (as in write_word). Only the weak-clearing pass of an open
        // mark session calls this, one pass at a time over disjoint objects; while a mark runs
        // nothing else reads or writes object words (the marker's scans are over, and the
        // runtime's own accesses are excluded by the OwnedMemory contract / `&mut Heap`).
        unsafe { ((self.start + w * 8) as *mut usize).write(0) }
    }

    /// Zeroes the object.
    pub(crate) fn zero(&mut self) {
        // SAFETY: the object's bytes are valid for writes, as in write_word.
        unsafe { std::ptr::write_bytes(self.start as *mut u8, 0, self.layout.bytes()) }
    }
}
