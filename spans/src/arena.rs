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
    /// Reserves `len` bytes (a positive multiple of [`ARENA_ALIGN`]), aligned to
    /// [`ARENA_ALIGN`].
    ///
    /// # Errors
    /// [`Error::InvalidLength`] for 0 or a length that is not a multiple of [`ARENA_ALIGN`];
    /// [`Error::OutOfMemory`] when the OS refuses.
    pub(crate) fn reserve(len: usize, huge_pages: bool) -> Result<Arena, Error> {
        if len == 0 || !len.is_multiple_of(ARENA_ALIGN) {
            return Err(Error::InvalidLength { len });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_reserve_rejects_empty_and_unaligned_lengths() {
        assert_eq!(
            Arena::reserve(0, false).err(),
            Some(Error::InvalidLength { len: 0 })
        );
        assert_eq!(
            Arena::reserve(ARENA_ALIGN + 8192, false).err(),
            Some(Error::InvalidLength {
                len: ARENA_ALIGN + 8192
            })
        );
        let a = Arena::reserve(ARENA_ALIGN, false).unwrap();
        assert_eq!((a.len(), a.start() % ARENA_ALIGN), (ARENA_ALIGN, 0));
    }
}
