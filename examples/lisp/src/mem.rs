//! The runtime's memory and the heap that marks it: the example's only `unsafe`.
//!
//! [`Memory`] reserves one anonymous mapping at start-up (`memmap2`, `MAP_NORESERVE`: address
//! space, not memory; the kernel backs pages on first touch), cut into 8 KiB **pages**. A page
//! is free, an 8 KiB span registered with sencha, or part of a large object registered with
//! sencha. The page-level policy (which page, which size class) is `alloc.rs`'s; this module
//! keeps the promises sencha cannot check (docs/CUSTOM_ALLOCATOR.md §1), in one place:
//!
//! 1. **The memory outlives its registration.** The mapping is a field of [`Memory`] declared
//!    *after* the [`Heap`], so the heap is dropped first; nothing unmaps or remaps it earlier.
//! 2. **Initialised bytes only.** An anonymous mapping reads as zeros until written, and this
//!    module only ever stores whole `u64` values into it.
//! 3. **The runtime never writes a span's last 256 bytes.** [`Memory::write`] checks the page
//!    kind of every store: in a span page only offsets below `OBJECT_BYTES` (7936) are
//!    accepted; a large object's pages hold no sencha metadata (its record is sencha's own).
//! 4. **No store while a mark runs, no load while sencha stores.** [`Memory`] is neither
//!    `Send` nor `Sync` (it holds a raw pointer), so only the thread that owns it can load or
//!    store through it, and that thread is the one that calls `Marker::mark` and waits in it.
//!    sencha's marking threads read objects, and clear dead weak words, only during the mark.
//!    The heap is reachable only inside this crate (`Memory::heap`, `Store::heap` are
//!    crate-private), so no safe caller can start a mark on another thread while this one
//!    keeps running.
//! 5. **No Rust reference to the mapped bytes exists**: the mapping is an `MmapRaw`, never
//!    dereferenced as a slice, so sencha's stores and ours go through raw pointers only.

use std::io;

use memmap2::{MmapOptions, MmapRaw};
use sencha::spans::span::OBJECT_BYTES;
use sencha::spans::{Error as HeapError, Heap, Layout, OwnedMemory, SizeClass};

/// A page: the span size, and the unit of large-object memory.
pub(crate) const PAGE: usize = 8192;

/// What a page of the reservation holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageKind {
    /// Nothing: the runtime's to hand out.
    Free,
    /// A span registered with the heap.
    Span,
    /// A page of a large object registered with the heap.
    Large,
}

/// The reservation, its page kinds, and the heap its spans and large objects are registered
/// with (see the module docs for the contract this type keeps).
#[derive(Debug)]
pub(crate) struct Memory {
    /// Declared first, so dropped first: the heap may read registered memory until it is gone.
    heap: Heap,
    /// The mapping: unmapped when dropped; only its pointer is used (never a slice of it).
    _map: MmapRaw,
    /// The first 8 KiB-aligned byte of the mapping (provenance from `map`).
    base: *mut u8,
    /// Whole pages from `base` that lie in the mapping.
    pages: usize,
    /// One entry per page, grown as pages are first handed out.
    kinds: Vec<PageKind>,
}

impl Memory {
    /// Reserves `bytes` of address space (rounded up to whole pages), with an empty heap.
    ///
    /// # Errors
    /// The operating system's, if it refuses the mapping.
    pub(crate) fn new(bytes: usize) -> io::Result<Memory> {
        let pages = bytes.div_ceil(PAGE).max(1);
        let len = (pages + 1) * PAGE; // one spare page to align the start to 8 KiB
        let map: MmapRaw = MmapOptions::new()
            .len(len)
            .no_reserve_swap()
            .map_anon()?
            .into();
        let raw = map.as_mut_ptr();
        let skip = raw.align_offset(PAGE);
        // `map_anon` returns page-aligned (4 KiB) memory, so at most one 4 KiB step is skipped.
        debug_assert!(skip < PAGE);
        Ok(Memory {
            heap: Heap::new(),
            base: raw.wrapping_add(skip),
            _map: map,
            pages,
            kinds: Vec::new(),
        })
    }

    /// The heap the runtime's memory is registered with (crate-private: module docs,
    /// point 4).
    pub(crate) fn heap(&self) -> &Heap {
        &self.heap
    }

    /// The heap, mutably (sweeps, object records, weak state). Memory is registered and
    /// unregistered only through [`Memory`]'s own methods.
    pub(crate) fn heap_mut(&mut self) -> &mut Heap {
        &mut self.heap
    }

    /// How many pages the reservation holds.
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// The address of page `page`.
    pub(crate) fn page_addr(&self, page: usize) -> usize {
        debug_assert!(page < self.pages);
        self.base as usize + page * PAGE
    }

    /// The page that holds `addr`, if it is in the reservation.
    pub(crate) fn page_of(&self, addr: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base as usize)?;
        (off < self.pages * PAGE).then_some(off / PAGE)
    }

    fn set_kind(&mut self, first: usize, n: usize, kind: PageKind) {
        if self.kinds.len() < first + n {
            self.kinds.resize(first + n, PageKind::Free);
        }
        self.kinds[first..first + n].fill(kind);
    }

    /// The kind of page `page`.
    pub(crate) fn kind(&self, page: usize) -> PageKind {
        self.kinds.get(page).copied().unwrap_or(PageKind::Free)
    }

    /// `n` pages from `first`, as memory the heap may own.
    fn owned(&self, first: usize, n: usize) -> OwnedMemory {
        assert!(
            n > 0 && first + n <= self.pages,
            "pages {first}+{n} outside the reservation"
        );
        assert!(
            (first..first + n).all(|p| self.kind(p) == PageKind::Free),
            "pages {first}+{n} are not free"
        );
        // SAFETY: the pages lie in the mapping (checked above) and are free (checked above:
        // no other span or large object holds them). The contract of `new_unchecked` is kept
        // by this type as the module docs say: the mapping outlives the heap (field order,
        // point 1); its bytes are always initialised (point 2); the runtime's stores never
        // reach a span's last 256 bytes (`write`, point 3) and never overlap a mark (no
        // `Send`/`Sync`, point 4).
        unsafe { OwnedMemory::new_unchecked(self.base.wrapping_add(first * PAGE), n * PAGE) }
    }

    /// Registers free page `page` as a span of `class`; returns its base. sencha zeroes it.
    ///
    /// # Errors
    /// The heap's, if it refuses the registration (a bug here: the page is free and aligned).
    pub(crate) fn register_span(
        &mut self,
        page: usize,
        class: SizeClass,
        noscan: bool,
    ) -> Result<usize, HeapError> {
        let mem = self.owned(page, 1);
        let base = self.heap.register_span(mem, class, noscan)?;
        self.set_kind(page, 1, PageKind::Span);
        Ok(base)
    }

    /// Unregisters the span at `base`; its page is free again.
    ///
    /// # Errors
    /// The heap's (`NotRegistered`, `Pinned`).
    pub(crate) fn unregister_span(&mut self, base: usize) -> Result<(), HeapError> {
        self.heap.unregister_span(base)?;
        let page = self
            .page_of(base)
            .ok_or(HeapError::NotRegistered { addr: base })?;
        self.set_kind(page, 1, PageKind::Free);
        Ok(())
    }

    /// Registers `n` free pages from `first` as one large object of `layout`, after the caller
    /// wrote its words (they are initialised either way). Returns its start.
    ///
    /// # Errors
    /// The heap's, if it refuses the registration (a bug here).
    pub(crate) fn register_large(
        &mut self,
        first: usize,
        n: usize,
        layout: &Layout,
    ) -> Result<usize, HeapError> {
        let mem = self.owned(first, n);
        let start = self.heap.register_large(mem, layout)?;
        self.set_kind(first, n, PageKind::Large);
        Ok(start)
    }

    /// Marks the pages of a large object that a sweep unregistered
    /// (`SweepStats::freed_custom_large`) as free.
    pub(crate) fn forget_large(&mut self, first: usize, n: usize) {
        debug_assert!((first..first + n).all(|p| self.kind(p) == PageKind::Large));
        debug_assert!(self.heap.object(self.page_addr(first)).is_err());
        self.set_kind(first, n, PageKind::Free);
    }

    /// Stores `value` into a page that is not free (the word of an object).
    ///
    /// # Panics
    /// If `addr` is outside the reservation, not 8-aligned, in a free page, or in a span's
    /// last 256 bytes: a bug in the runtime, stopped before it breaks sencha's contract.
    #[inline]
    pub(crate) fn write_raw(&mut self, addr: usize, value: u64) {
        let page = self.page_of(addr).expect("store outside the reservation");
        assert!(addr.is_multiple_of(8), "misaligned store at {addr:#x}");
        match self.kind(page) {
            PageKind::Span => assert!(
                addr % PAGE < OBJECT_BYTES,
                "store into a span's metadata at {addr:#x}"
            ),
            PageKind::Large => {}
            PageKind::Free => panic!("store into a free page at {addr:#x}"),
        }
        let p = self
            .base
            .wrapping_add(addr - self.base as usize)
            .cast::<u64>();
        // SAFETY: `p` is 8-aligned and inside the mapping (both checked above), which is valid
        // for writes while `self` lives (module docs, point 1); it is not sencha's metadata
        // (checked above, point 3); no mark is running, since only this thread can reach
        // `self` and it is here (point 4); no Rust reference to these bytes exists (point 5).
        unsafe { p.write(value) }
    }

    /// Loads the word at `addr`.
    ///
    /// # Panics
    /// If `addr` is outside the reservation or not 8-aligned (a bug in the runtime).
    #[inline]
    pub(crate) fn read_raw(&self, addr: usize) -> u64 {
        let off = addr.wrapping_sub(self.base as usize);
        assert!(
            off < self.pages * PAGE && addr.is_multiple_of(8),
            "load outside the reservation at {addr:#x}"
        );
        let p = self.base.wrapping_add(off).cast::<u64>();
        // SAFETY: `p` is 8-aligned and inside the mapping (checked above), which is valid for
        // reads and initialised (module docs, points 1 and 2); no mark is running, so no
        // sencha store races with this load (point 4).
        unsafe { p.read() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_registers_aligned_spans_and_refuses_metadata_stores() {
        let mut m = Memory::new(4 * PAGE).unwrap();
        let base = m
            .register_span(1, SizeClass::new(24).unwrap(), false)
            .unwrap();
        assert_eq!(base % PAGE, 0);
        assert_eq!(m.page_of(base), Some(1));
        m.heap_mut()
            .init_object(base, &Layout::with_pointers(24, 0b110).unwrap())
            .unwrap();
        m.write_raw(base + 8, 42);
        assert_eq!(m.read_raw(base + 8), 42);
        let tail = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.write_raw(base + OBJECT_BYTES, 1)
        }));
        assert!(
            tail.is_err(),
            "a store into the span's metadata must be refused"
        );
        m.heap_mut().free_object(base).unwrap();
        m.unregister_span(base).unwrap();
        assert_eq!(m.kind(1), PageKind::Free);
    }
}
