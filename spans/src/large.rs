//! Object records: the large-object path, which medium objects share.
//!
//! A **large object** (over 8 KiB, or any custom one registered with `Heap::register_large`)
//! occupies whole 8 KiB pages of the page map (no other span or large object may share one of
//! its pages); every page's entry points to the object's record. A **medium object** (513 bytes
//! to 8 KiB) is a slot of a medium span (`crate::medium`), and each slot has the same record.
//! The record holds the object's start, its [`Layout`] (which words are pointers) and one atomic
//! mark word, so marking treats both alike. Embedded large objects start at a page boundary;
//! custom ones start anywhere 8-byte aligned; medium slots start at `base + n * size`.
//!
//! Invariant: a [`LargeObject`] is reachable only through `&Heap`, and its memory
//! `start .. start + claim` (which holds the `layout.bytes()` the record reads) stays valid for
//! reads while the record is registered; records are removed only through `&mut Heap`.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::arena::Arena;
use crate::layout::Layout;
use crate::span::SPAN_BYTES;

const MARKED: u32 = 1;

/// The record of an object over 512 bytes: a large object, or a medium object's slot
/// ([`LargeObject::is_medium`]). 56 bytes.
#[derive(Debug)]
pub struct LargeObject {
    start: usize,
    /// Bytes of address space it claims (whole pages for embedded large objects, the slot for
    /// medium ones); `layout.bytes() <= claim` always.
    claim: usize,
    layout: Layout,
    mark: AtomicU32,
    custom: bool,
    medium: bool,
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
            mark: AtomicU32::new(0),
            custom,
            medium: false,
        }
    }

    /// Records for the `span_bytes / slot_bytes` slots of a medium span at `base`, each free
    /// (a layout without pointers).
    ///
    /// # Safety
    /// `base .. base + span_bytes` is valid for reads and writes and initialised for as long
    /// as the records are in a heap, and `base` and `slot_bytes` are multiples of 8.
    pub(crate) unsafe fn slots_unchecked(
        base: usize,
        span_bytes: usize,
        slot_bytes: usize,
        custom: bool,
    ) -> Box<[LargeObject]> {
        debug_assert!(base.is_multiple_of(8) && slot_bytes.is_multiple_of(8) && slot_bytes > 0);
        (0..span_bytes / slot_bytes)
            .map(|i| LargeObject {
                start: base + i * slot_bytes,
                claim: slot_bytes,
                layout: Layout::blank(slot_bytes),
                mark: AtomicU32::new(0),
                custom,
                medium: true,
            })
            .collect()
    }

    /// Records for the slots of an embedded medium span at `base`, if `base .. base +
    /// span_bytes` lies inside one of `arenas` and is span-aligned (else `None`).
    pub(crate) fn slots_in_arena(
        arenas: &[Arena],
        base: usize,
        span_bytes: usize,
        slot_bytes: usize,
    ) -> Option<Box<[LargeObject]>> {
        let inside = arenas
            .iter()
            .any(|a| base >= a.start() && base + span_bytes <= a.start() + a.len());
        if !inside || !base.is_multiple_of(SPAN_BYTES) || !slot_bytes.is_multiple_of(8) {
            return None;
        }
        // SAFETY: the range lies inside an arena (checked above), which stays mapped read-write
        // and initialised (zeroed by the OS, then written only with initialised values) until
        // the heap that owns both drops (arena.rs invariant); base and slot_bytes are multiples
        // of 8 (checked above).
        Some(unsafe { Self::slots_unchecked(base, span_bytes, slot_bytes, false) })
    }

    /// Gives a medium slot a new layout (on allocation); false, and nothing changes, if the
    /// layout is longer than the slot.
    pub(crate) fn set_layout(&mut self, layout: Layout) -> bool {
        if layout.bytes() > self.claim {
            return false;
        }
        self.layout = layout;
        true
    }

    /// Gives a medium slot the layout of a free slot: its whole claim, no pointers.
    pub(crate) fn clear_layout(&mut self) {
        self.layout = Layout::blank(self.claim);
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

    /// Whether it was registered by a custom allocator (a custom large object, or a slot of a
    /// custom medium span).
    #[inline]
    pub fn is_custom(&self) -> bool {
        self.custom
    }

    /// Whether it is a medium object (a slot of a medium span) rather than a large one.
    #[inline]
    pub fn is_medium(&self) -> bool {
        self.medium
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

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/SPAN_LAYOUT.md §12 counts a medium slot's record as 64 bytes (one cache line;
    /// the layout's weak-word bitmap took it from 56).
    #[test]
    fn large_record_is_64_bytes() {
        assert_eq!(std::mem::size_of::<LargeObject>(), 64);
        assert_eq!(std::mem::size_of::<Layout>(), 40);
    }
}
