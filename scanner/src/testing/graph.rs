//! `heap_graph`: bytes -> a small heap graph -> one marker variant marks exactly what the
//! reference oracle marks.

use std::sync::Mutex;

use sencha_spans::{Heap, HeapConfig, Layout, SPAN_BYTES, SizeClass};

use super::compare_with_oracle;
use super::source::{PagePool, Source, lock_fixture, low, marker_variant, sweep_everything};
use crate::Roots;

/// Most objects one input allocates (list cells included).
pub const GRAPH_MAX_OBJECTS: usize = 1024;
/// Most custom spans one input registers (pages of the fixture's pool).
const MAX_CUSTOM_SPANS: usize = 4;
/// Most large objects one input allocates.
const MAX_LARGE: usize = 3;
/// Large-object sizes: around one page, several pages, and just over one 128 KiB scan chunk.
const LARGE_BYTES: [usize; 5] = [520, 4096, 9000, 24_008, (128 << 10) + 4096];

/// The heap every input builds its graph in, emptied after each input, and the pages its
/// custom spans use.
struct Fixture {
    heap: Heap,
    pool: PagePool,
    /// Pool pages the last input registered (its first ones), to be zeroed.
    used_pages: usize,
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

impl Fixture {
    fn new() -> Self {
        Fixture {
            // Small arenas: one input's graph fits in one, and a reset leaves it free.
            heap: Heap::with_config(HeapConfig {
                huge_pages: false,
                arena_bytes: 4 << 20,
            })
            .expect("a valid configuration"),
            pool: PagePool::leak(MAX_CUSTOM_SPANS),
            used_pages: 0,
        }
    }

    /// Frees everything: custom spans are unregistered, and a mark from no roots followed by
    /// a sweep frees every other object. Asserts that the heap is empty afterwards.
    fn reset(&mut self) {
        let heap = &mut self.heap;
        heap.clear_marks();
        let bases: Vec<usize> = heap
            .spans()
            .map(|s| s.base())
            .filter(|&b| self.pool.contains(b))
            .collect();
        for base in bases {
            heap.unregister_span(base)
                .expect("a custom span unregisters");
        }
        sweep_everything(heap);
        let used = self.used_pages;
        self.pool.zero(heap, 0..used);
        self.used_pages = 0;
    }
}

/// A heap graph under construction.
struct Graph<'a> {
    heap: &'a mut Heap,
    pool: &'a PagePool,
    /// Every object, in creation order.
    objects: Vec<usize>,
    /// Custom spans: (base, class, noscan, next free slot).
    custom: Vec<(usize, SizeClass, bool, usize)>,
    large: usize,
    roots: Roots,
}

impl Graph<'_> {
    fn object(&self, i: usize) -> Option<usize> {
        (!self.objects.is_empty()).then(|| self.objects[i % self.objects.len()])
    }

    fn words(&self, obj: usize) -> usize {
        self.heap.object(obj).map_or(0, |o| o.bytes() / 8)
    }

    /// A word value: mostly object starts, also interior pointers, nulls and garbage.
    fn value(&self, b: &mut Source<'_>) -> usize {
        let (lo, hi) = self.heap.address_range();
        let kind = b.u8();
        let i = b.u16() as usize;
        let obj = self.object(i).unwrap_or(0);
        match kind % 12 {
            0..=5 => obj,
            6 => obj + 8 * (1 + b.below(8)),
            7 => 0,
            8 => b.below(4096),
            9 => lo.wrapping_sub(8 * (1 + b.below(8))),
            10 => hi + 8 * b.below(8),
            // A span's metadata tail, or the free slots after an object.
            _ => (obj & !(SPAN_BYTES - 1)) + SPAN_BYTES - 8 * (1 + b.below(64)),
        }
    }

    fn push(&mut self, addr: usize) {
        self.objects.push(addr);
    }

    fn alloc_small(&mut self, b: &mut Source<'_>) {
        let class = b.pick(&SizeClass::DEFAULTS);
        let words = class.words();
        let layout = match b.u8() % 4 {
            0 => Layout::no_pointers(class.bytes()),
            1 => Layout::all_pointers(class.bytes()),
            _ => Layout::with_pointers(class.bytes(), b.u64() & low(words)),
        }
        .expect("a default class's layout");
        let addr = self.heap.alloc(&layout).expect("a small allocation");
        self.push(addr);
    }

    fn alloc_large(&mut self, b: &mut Source<'_>) {
        if self.large == MAX_LARGE {
            return;
        }
        self.large += 1;
        let bytes = b.pick(&LARGE_BYTES);
        let layout = match b.u8() % 4 {
            0 => Layout::no_pointers(bytes),
            1 => Layout::all_pointers(bytes),
            2 => Layout::with_pointers(bytes, b.u64()),
            _ => Layout::array(
                Layout::with_pointers(24, 0b101).expect("layout"),
                bytes / 24,
            ),
        }
        .expect("a large layout");
        let addr = self.heap.alloc(&layout).expect("a large allocation");
        self.push(addr);
    }

    /// An object in a custom span of any legal class, registering the span first if needed.
    fn custom_object(&mut self, b: &mut Source<'_>) {
        let class = SizeClass::new(8 * (2 + b.below(63))).expect("legal class");
        let noscan = b.u8().is_multiple_of(4);
        let found = self
            .custom
            .iter()
            .position(|&(_, c, n, next)| c == class && n == noscan && next < c.capacity());
        let k = match found {
            Some(k) => k,
            None if self.custom.len() < MAX_CUSTOM_SPANS => {
                let page = self.custom.len();
                let base = self
                    .heap
                    .register_span(
                        self.pool.owned(page * SPAN_BYTES, SPAN_BYTES),
                        class,
                        noscan,
                    )
                    .expect("a free pool page registers");
                self.custom.push((base, class, noscan, 0));
                self.custom.len() - 1
            }
            None => return,
        };
        let (base, class, noscan, next) = self.custom[k];
        self.custom[k].3 = next + 1 + b.below(3);
        if next >= class.capacity() {
            return;
        }
        let bits = if noscan {
            0
        } else {
            b.u64() & low(class.words())
        };
        let addr = base + next * class.bytes();
        self.heap
            .init_object(
                addr,
                &Layout::with_pointers(class.bytes(), bits).expect("layout"),
            )
            .expect("a free slot of a custom span");
        self.push(addr);
    }

    /// A linked list of fresh cons cells (word 1 = next, word 0 = some object): deep graphs.
    fn list(&mut self, b: &mut Source<'_>) {
        let cons = Layout::all_pointers(16).expect("layout");
        let len = 1 + b.below(256).min(GRAPH_MAX_OBJECTS - self.objects.len());
        let mut head = 0;
        for _ in 0..len {
            let cell = self.heap.alloc(&cons).expect("a cons cell");
            let car = self.value(b);
            self.heap.write_word(cell, 0, car).expect("word 0");
            self.heap.write_word(cell, 1, head).expect("word 1");
            head = cell;
        }
        self.push(head);
    }

    /// Writes one word of an object.
    fn edge(&mut self, b: &mut Source<'_>) {
        let Some(obj) = self.object(b.u16() as usize) else {
            return;
        };
        let words = self.words(obj);
        let w = b.below(words.max(1));
        let v = self.value(b);
        // An object in a noscan span may hold any bits: marking never reads them.
        let _ = self.heap.write_word(obj, w, v);
    }

    /// Writes every word of an object (wide fan-out).
    fn fill(&mut self, b: &mut Source<'_>) {
        let Some(obj) = self.object(b.u16() as usize) else {
            return;
        };
        for w in 0..self.words(obj).min(512) {
            let v = self.value(b);
            let _ = self.heap.write_word(obj, w, v);
        }
    }

    fn root(&mut self, b: &mut Source<'_>) {
        if b.u8().is_multiple_of(4) {
            let v = self.value(b);
            self.roots.push_conservative(v);
        } else if let Some(obj) = self.object(b.u16() as usize) {
            self.roots.push_precise(obj);
        }
    }
}

/// Fuzz check for heap graphs: the first byte picks a marker variant (1 to 4 workers, Green
/// Tea or the baseline, in-place scanning and prefetch on or off, scalar or detected kernel),
/// the rest a sequence of operations that build a small heap (embedded objects of every default
/// class, objects in custom spans of any legal class, large objects up to just over one scan
/// chunk, linked lists, edges, wide objects, precise and conservative roots). The variant must
/// mark exactly what [`reference::mark`](crate::reference::mark) marks, leave no span owned, and count at least the
/// objects it marked.
///
/// The heap is reused from input to input (emptied by a mark from no roots and a sweep, which
/// the check asserts), so an input costs what its graph costs.
///
/// # Panics
/// When the marker disagrees with the oracle.
///
/// # Examples
/// ```
/// sencha::testing::check_graph_from_bytes(&[6, 0, 1, 2, 9, 3, 7, 10, 0]);
/// ```
pub fn check_graph_from_bytes(data: &[u8]) {
    sencha_spans::testing::serial(|| check_graph_from_bytes_inner(data));
}

fn check_graph_from_bytes_inner(data: &[u8]) {
    let mut guard = lock_fixture(&FIXTURE);
    let fixture = guard.get_or_insert_with(Fixture::new);
    let mut b = Source::new(data);
    let marker = marker_variant(b.u8());
    let mut g = Graph {
        heap: &mut fixture.heap,
        pool: &fixture.pool,
        objects: Vec::new(),
        custom: Vec::new(),
        large: 0,
        roots: Roots::new(),
    };
    while b.has_bytes() && g.objects.len() < GRAPH_MAX_OBJECTS {
        match b.u8() % 12 {
            0..=2 => g.alloc_small(&mut b),
            3 => g.alloc_large(&mut b),
            4 => g.custom_object(&mut b),
            5 => g.list(&mut b),
            6..=8 => g.edge(&mut b),
            9 => g.fill(&mut b),
            _ => g.root(&mut b),
        }
    }
    let roots = std::mem::take(&mut g.roots);
    let used_pages = g.custom.len();
    let result = compare_with_oracle(&mut fixture.heap, &roots, marker);
    fixture.used_pages = used_pages;
    fixture.reset();
    if let Err(e) = result {
        panic!("{e}");
    }
}
