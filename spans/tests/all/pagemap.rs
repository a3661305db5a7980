//! The page map against a `BTreeMap<page, Entry>` model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sencha_spans::SPAN_BYTES;
use sencha_spans::pagemap::{ADDRESS_LIMIT, CHUNK_LOG_BYTES, CHUNK_PAGES, Entry, PageMap};

const CHUNK_BYTES: usize = 1 << CHUNK_LOG_BYTES;
const TOP_CHUNKS: usize = ADDRESS_LIMIT / CHUNK_BYTES;

#[derive(Clone, Debug)]
enum Op {
    /// Set the page holding this address.
    Set(usize, Entry),
    /// Set every page of `start .. start + len`.
    SetRange(usize, usize, Entry),
    /// Look up an address.
    Get(usize),
    /// First used page of a range.
    FirstUsed(usize, usize),
}

/// Pages clustered in a few chunks (the first, the second, one in the middle and the last
/// below 2^48), near chunk edges, so that sets collide and ranges cross chunk boundaries.
fn page() -> impl Strategy<Value = usize> {
    let chunk = prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(TOP_CHUNKS / 2),
        Just(TOP_CHUNKS - 1)
    ];
    let in_chunk = prop_oneof![0..16usize, (CHUNK_PAGES - 16)..CHUNK_PAGES, 0..CHUNK_PAGES];
    (chunk, in_chunk).prop_map(|(c, p)| c * CHUNK_PAGES + p)
}

fn addr() -> impl Strategy<Value = usize> {
    (page(), 0..SPAN_BYTES).prop_map(|(p, off)| p * SPAN_BYTES + off)
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        1 => Just(Entry::EMPTY),
        3 => (any::<u8>(), any::<u32>()).prop_map(|(c, r)| Entry::small(c, r)),
        2 => any::<u32>().prop_map(Entry::large),
    ]
}

/// A range inside the address space: a start and a length of up to 40 pages.
fn range() -> impl Strategy<Value = (usize, usize)> {
    (addr(), 1..40 * SPAN_BYTES).prop_map(|(a, len)| (a, len.min(ADDRESS_LIMIT - a)))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (addr(), entry()).prop_map(|(a, e)| Op::Set(a, e)),
        2 => (range(), entry()).prop_map(|((a, l), e)| Op::SetRange(a, l, e)),
        3 => prop_oneof![
            addr(),
            Just(0usize),
            Just(ADDRESS_LIMIT),
            Just(usize::MAX),
            any::<usize>()
        ]
        .prop_map(Op::Get),
        1 => range().prop_map(|(a, l)| Op::FirstUsed(a, l)),
    ]
}

struct Model {
    pages: BTreeMap<usize, Entry>,
    /// Chunks that ever got a non-empty entry (a chunk table, once made, stays).
    chunks: BTreeSet<usize>,
}

impl Model {
    fn set(&mut self, page: usize, e: Entry) {
        if e.is_empty() {
            self.pages.remove(&page);
        } else {
            self.pages.insert(page, e);
            self.chunks.insert(page / CHUNK_PAGES);
        }
    }

    fn get(&self, addr: usize) -> Entry {
        if addr >= ADDRESS_LIMIT {
            return Entry::EMPTY;
        }
        self.pages
            .get(&(addr / SPAN_BYTES))
            .copied()
            .unwrap_or(Entry::EMPTY)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pagemap_matches_btreemap_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut map = PageMap::new();
        let mut model = Model { pages: BTreeMap::new(), chunks: BTreeSet::new() };
        for op in &ops {
            match *op {
                Op::Set(a, e) => {
                    map.set(a, e);
                    model.set(a / SPAN_BYTES, e);
                }
                Op::SetRange(a, len, e) => {
                    map.set_range(a, len, e);
                    for p in a / SPAN_BYTES..=(a + len - 1) / SPAN_BYTES {
                        model.set(p, e);
                    }
                }
                Op::Get(a) => prop_assert_eq!(map.get(a), model.get(a), "get({:#x})", a),
                Op::FirstUsed(a, len) => {
                    let want = (a / SPAN_BYTES..=(a + len - 1) / SPAN_BYTES)
                        .find(|p| model.pages.contains_key(p))
                        .map(|p| p * SPAN_BYTES);
                    prop_assert_eq!(map.first_used(a, len), want, "first_used({:#x}, {})", a, len);
                }
            }
            prop_assert_eq!(map.chunk_tables(), model.chunks.len());
        }
        // Every entry the model holds, every byte offset class of those pages, and their
        // neighbours (which the model may or may not hold).
        for &p in model.pages.keys() {
            for q in [p.wrapping_sub(1), p, p + 1] {
                for off in [0, 8, SPAN_BYTES / 2, SPAN_BYTES - 1] {
                    let a = q.wrapping_mul(SPAN_BYTES).wrapping_add(off);
                    prop_assert_eq!(map.get(a), model.get(a), "get({:#x})", a);
                }
            }
        }
    }
}

/// An address and its page's last byte share an entry; the next page does not.
#[test]
fn pagemap_entry_covers_exactly_its_page() {
    let mut map = PageMap::new();
    let last_page = ADDRESS_LIMIT - SPAN_BYTES;
    let e = Entry::small(0x86, 3);
    for base in [
        0,
        SPAN_BYTES,
        CHUNK_BYTES - SPAN_BYTES,
        CHUNK_BYTES,
        last_page,
    ] {
        map.set(base + 123, e);
        assert_eq!(map.get(base), e);
        assert_eq!(map.get(base + SPAN_BYTES - 1), e);
        if base + SPAN_BYTES < ADDRESS_LIMIT {
            assert_eq!(map.get(base + SPAN_BYTES), Entry::EMPTY, "{base:#x}");
        }
        map.set(base, Entry::EMPTY);
        assert_eq!(map.get(base + 5), Entry::EMPTY);
    }
    // A range ending exactly at a page boundary does not spill into the next page.
    map.set_range(CHUNK_BYTES - 2 * SPAN_BYTES, 2 * SPAN_BYTES, e);
    assert_eq!(map.get(CHUNK_BYTES - 1), e);
    assert_eq!(map.get(CHUNK_BYTES), Entry::EMPTY);
    assert_eq!(map.get(ADDRESS_LIMIT), Entry::EMPTY);
    assert_eq!(map.get(usize::MAX), Entry::EMPTY);
}
