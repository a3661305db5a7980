//! OS memory for the embedded allocator: anonymous mappings reserved in chunks.
//!
//! The only OS calls in sencha go through `memmap2` here. A chunk is reserved with one anonymous
//! private mapping (the kernel commits pages on first touch, so reserving is cheap), aligned
//! inside the mapping to 2 MiB so that transparent huge pages can back it, and advised with
//! `MADV_HUGEPAGE` when [`HeapConfig::huge_pages`](crate::HeapConfig) is on: marking is
//! dominated by random accesses, and huge pages cut their TLB misses.
//!
//! Invariant: an [`Arena`]'s usable range `start .. start + len` stays mapped, readable and
//! writable until the arena is dropped, and `start` is 2 MiB-aligned (so also span-aligned).

use memmap2::{MmapMut, MmapOptions};

use crate::error::Error;

/// Alignment of an arena's usable range: a transparent huge page.
pub(crate) const ARENA_ALIGN: usize = 2 << 20;

/// One anonymous mapping.
pub(crate) struct Arena {
    map: MmapMut,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arena({:#x}+{:#x})", self.start, self.len)
    }
}

impl Arena {
    /// Reserves `len` bytes (a multiple of [`ARENA_ALIGN`]), aligned to [`ARENA_ALIGN`].
    pub(crate) fn reserve(len: usize, huge_pages: bool) -> Result<Arena, Error> {
        debug_assert!(len.is_multiple_of(ARENA_ALIGN) && len > 0);
        let total = len
            .checked_add(ARENA_ALIGN)
            .ok_or(Error::OutOfMemory { bytes: len })?;
        let map = MmapOptions::new()
            .len(total)
            .no_reserve_swap()
            .map_anon()
            .map_err(|_| Error::OutOfMemory { bytes: total })?;
        let raw = map.as_ptr() as usize;
        let start = raw.next_multiple_of(ARENA_ALIGN);
        if huge_pages {
            // Advice only: a kernel without THP says no, and the arena works the same.
            let _ = map.advise_range(memmap2::Advice::HugePage, start - raw, len);
        }
        Ok(Arena { map, start, len })
    }

    /// The first usable byte.
    pub(crate) fn start(&self) -> usize {
        debug_assert!(self.map.as_ptr() as usize <= self.start);
        self.start
    }

    /// Usable bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}
