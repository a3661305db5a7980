//! The page map: any address to "not in the heap", a small span, or a large object, in O(1).
//!
//! Two levels. The top level has one `u32` slot per 64 MiB chunk of the 48-bit address space
//! (2^22 slots, 16 MiB of virtual memory allocated zeroed, so the OS commits only the pages that
//! are written): 0 for "no table", else 1 + the index of the chunk's table. A chunk table holds
//! one [`Entry`] per 8 KiB page (8192 entries, 64 KiB), allocated when the first page in its
//! chunk is registered. A lookup is a shift, a bounds check, the slot load, the table pointer
//! (a short vector, hot in L1) and the entry load; null, low addresses, addresses above 2^48 and
//! pages no one registered all read as an empty entry. Slots are plain integers rather than
//! `Option<Box<_>>` so that dropping a map does not walk all 4 Mi slots (that made dropping a
//! heap cost 9 ms).
//!
//! An entry is one `u64`:
//! ```text
//!   0                                   empty: not in the heap
//!   tag 1 | class byte << 8 | idx << 32  a small span (class byte as in the span's mark line)
//!   tag 2 | idx << 32                     a page of large object `idx`
//!   tag 3 | idx << 32                     a page of medium span `idx`
//! ```
//! The class byte rides in the entry so that a marker can compute the object index and go
//! straight to the right mark-line word, without first loading the class from the mark line.
//!
//! The map is changed only through `&mut` (registration, allocation, sweep), so it needs no
//! atomics: lookups during marking share `&self`.

use crate::span::SPAN_LOG_BYTES;

/// log2 of the bytes one chunk table covers (64 MiB).
pub const CHUNK_LOG_BYTES: u32 = 26;
/// Pages (8 KiB) per chunk table.
pub const CHUNK_PAGES: usize = 1 << (CHUNK_LOG_BYTES - SPAN_LOG_BYTES);
/// The highest address sencha maps, exclusive: 2^48.
pub const ADDRESS_LIMIT: usize = 1 << 48;
const TOP_SLOTS: usize = ADDRESS_LIMIT >> CHUNK_LOG_BYTES;

const TAG_MASK: u64 = 0xff;
const TAG_SMALL: u64 = 1;
const TAG_LARGE: u64 = 2;
const TAG_MEDIUM: u64 = 3;

/// One page's entry. See the module docs for the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Entry(u64);

/// What an entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Not in the heap.
    Empty,
    /// A small span: its class byte and its record index in the heap.
    Small {
        /// The class byte (size in words, plus the noscan flag).
        class_byte: u8,
        /// Index of the span's record.
        record: u32,
    },
    /// A page of a large object: its record index in the heap.
    Large {
        /// Index of the large object's record.
        record: u32,
    },
    /// A page of a medium span: its record index in the heap.
    Medium {
        /// Index of the medium span's record.
        record: u32,
    },
}

impl Entry {
    /// The empty entry.
    pub const EMPTY: Entry = Entry(0);

    /// An entry for a small span.
    #[inline]
    pub const fn small(class_byte: u8, record: u32) -> Entry {
        Entry(TAG_SMALL | (class_byte as u64) << 8 | (record as u64) << 32)
    }

    /// An entry for a page of a large object.
    #[inline]
    pub const fn large(record: u32) -> Entry {
        Entry(TAG_LARGE | (record as u64) << 32)
    }

    /// An entry for a page of a medium span.
    #[inline]
    pub const fn medium(record: u32) -> Entry {
        Entry(TAG_MEDIUM | (record as u64) << 32)
    }

    /// Decodes the entry.
    #[inline]
    pub const fn kind(self) -> EntryKind {
        match self.0 & TAG_MASK {
            TAG_SMALL => EntryKind::Small {
                class_byte: (self.0 >> 8) as u8,
                record: (self.0 >> 32) as u32,
            },
            TAG_LARGE => EntryKind::Large {
                record: (self.0 >> 32) as u32,
            },
            TAG_MEDIUM => EntryKind::Medium {
                record: (self.0 >> 32) as u32,
            },
            _ => EntryKind::Empty,
        }
    }

    /// Whether the entry is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

type ChunkTable = [Entry; CHUNK_PAGES];

/// The two-level map from pages to entries.
pub struct PageMap {
    /// Per 64 MiB chunk: 0, or 1 + the index of its table in `tables`.
    top: Box<[u32]>,
    tables: Vec<Box<ChunkTable>>,
}

impl std::fmt::Debug for PageMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageMap")
            .field("chunk_tables", &self.tables.len())
            .finish()
    }
}

impl Default for PageMap {
    fn default() -> Self {
        Self::new()
    }
}

impl PageMap {
    /// An empty map. Costs 16 MiB of zeroed virtual memory, committed only where used.
    pub fn new() -> Self {
        // `vec![0; n]` is allocated zeroed, so untouched top-level pages are never committed.
        PageMap {
            top: vec![0u32; TOP_SLOTS].into_boxed_slice(),
            tables: Vec::new(),
        }
    }

    /// The entry for the page holding `addr` (empty outside the map).
    #[inline]
    pub fn get(&self, addr: usize) -> Entry {
        match self.top.get(addr >> CHUNK_LOG_BYTES) {
            Some(&t) if t != 0 => match self.tables.get(t as usize - 1) {
                Some(table) => table[(addr >> SPAN_LOG_BYTES) & (CHUNK_PAGES - 1)],
                None => Entry::EMPTY,
            },
            _ => Entry::EMPTY,
        }
    }

    /// Sets the entry of the page holding `addr`, which must be below [`ADDRESS_LIMIT`].
    ///
    /// # Panics
    /// If `addr >= ADDRESS_LIMIT`; callers validate addresses first.
    pub fn set(&mut self, addr: usize, entry: Entry) {
        let slot = &mut self.top[addr >> CHUNK_LOG_BYTES];
        if *slot == 0 {
            if entry.is_empty() {
                return;
            }
            self.tables.push(new_table());
            *slot = u32::try_from(self.tables.len()).expect("at most 2^22 chunk tables");
        }
        self.tables[*slot as usize - 1][(addr >> SPAN_LOG_BYTES) & (CHUNK_PAGES - 1)] = entry;
    }

    /// Sets the entries of every page from `start` to `start + len - 1`.
    pub fn set_range(&mut self, start: usize, len: usize, entry: Entry) {
        let first = start >> SPAN_LOG_BYTES;
        let last = (start + len - 1) >> SPAN_LOG_BYTES;
        for page in first..=last {
            self.set(page << SPAN_LOG_BYTES, entry);
        }
    }

    /// The first page in `start .. start + len` with a non-empty entry, if any. Chunks without
    /// a table are skipped whole, so a long empty range costs little.
    pub fn first_used(&self, start: usize, len: usize) -> Option<usize> {
        let mut page = start >> SPAN_LOG_BYTES;
        let last = (start + len - 1) >> SPAN_LOG_BYTES;
        let pages_per_chunk_log = CHUNK_LOG_BYTES - SPAN_LOG_BYTES;
        while page <= last {
            let addr = page << SPAN_LOG_BYTES;
            if self
                .top
                .get(addr >> CHUNK_LOG_BYTES)
                .is_none_or(|&t| t == 0)
            {
                page = ((page >> pages_per_chunk_log) + 1) << pages_per_chunk_log;
                continue;
            }
            if !self.get(addr).is_empty() {
                return Some(addr);
            }
            page += 1;
        }
        None
    }

    /// How many chunk tables are allocated.
    pub fn chunk_tables(&self) -> usize {
        self.tables.len()
    }
}

fn new_table() -> Box<ChunkTable> {
    vec![Entry::EMPTY; CHUNK_PAGES]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("the vector has exactly CHUNK_PAGES entries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_empty_everywhere() {
        let m = PageMap::new();
        for a in [
            0,
            1,
            8191,
            1 << 30,
            ADDRESS_LIMIT - 1,
            ADDRESS_LIMIT,
            usize::MAX,
        ] {
            assert_eq!(m.get(a), Entry::EMPTY);
        }
    }

    #[test]
    fn pagemap_entry_roundtrip() {
        let e = Entry::small(0x82, 77);
        assert_eq!(
            e.kind(),
            EntryKind::Small {
                class_byte: 0x82,
                record: 77
            }
        );
        assert_eq!(
            Entry::large(u32::MAX).kind(),
            EntryKind::Large { record: u32::MAX }
        );
        assert_eq!(
            Entry::medium(u32::MAX).kind(),
            EntryKind::Medium { record: u32::MAX }
        );
        let mut m = PageMap::new();
        m.set(0x1234_0000_2000, e);
        assert_eq!(m.get(0x1234_0000_2fff), e);
        assert_eq!(m.get(0x1234_0000_1fff), Entry::EMPTY);
        assert_eq!(m.get(0x1234_0000_4000), Entry::EMPTY);
    }
}
