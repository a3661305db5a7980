//! `span_layout`: span bytes -> a span of any legal class -> every kernel tier returns exactly
//! what the scalar tier returns.

use std::sync::Mutex;

use sencha_spans::{Heap, HeapConfig, Layout, Resolved, SPAN_BYTES, SizeClass};

use super::SplitMix64;
use super::source::{PagePool, Source, lock_fixture, low};
use crate::kernel::{GatherBuf, HeapRange, Kernel};

/// One heap with one custom span per legal class (page `i` of the pool for class
/// `8 * (2 + i)`), registered on first use and reused by every input: each input frees the
/// span's objects, initialises them again and writes their words as a custom allocator does,
/// which costs far less than a fresh heap and a thousand `write_word` calls.
struct Fixture {
    heap: Heap,
    pool: PagePool,
    /// Base of the span of class index `i`, once registered.
    bases: [Option<usize>; 63],
    /// The words an input writes (kept to save an allocation per input).
    values: Vec<usize>,
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

impl Fixture {
    fn new() -> Self {
        Fixture {
            heap: Heap::with_config(HeapConfig {
                huge_pages: false,
                arena_bytes: 2 << 20,
            })
            .expect("a valid configuration"),
            pool: PagePool::leak(63),
            bases: [None; 63],
            values: Vec::with_capacity(SPAN_BYTES / 8),
        }
    }

    /// The span of class index `i`, emptied: registered afresh (every slot free, no pointer
    /// bits, fresh metadata), its memory as the last input left it.
    fn empty_span(&mut self, i: usize, class: SizeClass) -> usize {
        if let Some(base) = self.bases[i].take() {
            self.heap
                .unregister_span(base)
                .expect("the fixture's span unregisters");
        }
        let base = self
            .heap
            .register_span(self.pool.owned(i * SPAN_BYTES, SPAN_BYTES), class, false)
            .expect("a free pool page registers");
        self.bases[i] = Some(base);
        base
    }
}

/// Fuzz check for span layouts: bytes choose a size class (any of the 63), per-object pointer
/// bits, word values (null, in the span, its metadata tail, out of it) and a grey mask; every
/// available kernel tier must return exactly the scalar tier's output.
///
/// Inputs shorter than a span's worth of choices are completed by a splitmix64 stream, so a
/// few bytes still give a full span.
///
/// # Panics
/// When a tier disagrees with the scalar tier (that is the bug the fuzzer looks for).
///
/// # Examples
/// ```
/// sencha::testing::check_kernels_from_bytes(&[3, 0xff, 0x0f, 7]);
/// ```
pub fn check_kernels_from_bytes(data: &[u8]) {
    let mut guard = lock_fixture(&FIXTURE);
    let fixture = guard.get_or_insert_with(Fixture::new);
    let mut b = Source::new(data);
    let ci = b.below(63);
    let class = SizeClass::new(8 * (2 + ci)).expect("legal class");
    let base = fixture.empty_span(ci, class);
    let heap = &mut fixture.heap;
    let words = class.words();
    for i in 0..class.capacity() {
        let bits = b.u64() & low(words);
        let addr = base + i * class.bytes();
        heap.init_object(
            addr,
            &Layout::with_pointers(class.bytes(), bits).expect("layout"),
        )
        .expect("init");
    }
    // Every word of every slot, pointer word or not: null, into the span (its objects, free
    // tail and metadata), just outside it, or anything.
    let mut r = SplitMix64::new(b.u64());
    let values = &mut fixture.values;
    values.clear();
    values.extend((0..class.capacity() * words).map(|_| {
        let x = r.next_u64() as usize;
        let word = 8 * (x >> 8);
        match x & 7 {
            0 | 1 => 0,
            2 => base + word % SPAN_BYTES,
            3 => x,
            4 => base.wrapping_sub(8 + word % 32),
            5 => base + SPAN_BYTES - 256 + word % 256,
            6 => base + word % (class.capacity() * class.bytes()),
            _ => base + SPAN_BYTES + word % 32,
        }
    }));
    fixture.pool.write_words(ci * SPAN_BYTES, values);
    let values = &fixture.values;
    let heap = &fixture.heap;
    let last = class.capacity() * words - 1;
    assert_eq!(
        (
            heap.read_word(base, 0),
            heap.read_word(base + (last / words) * class.bytes(), last % words)
        ),
        (Ok(values[0]), Ok(values[last])),
        "the pool page is the span"
    );
    let grey: [u64; 8] = std::array::from_fn(|_| b.u64());
    let range = HeapRange::new(base + 8 * b.below(64), base + SPAN_BYTES - 8 * b.below(64));
    let span = match heap.resolve(base) {
        Resolved::Small(o) => o.span,
        r => panic!("a registered span resolves to itself, not {r:?}"),
    };
    let mut want = GatherBuf::default();
    let n = Kernel::scalar().gather(span, &grey, range, &mut want);
    for k in Kernel::available() {
        let mut got = GatherBuf::default();
        let m = k.gather(span, &grey, range, &mut got);
        assert_eq!(
            &got.0[..m],
            &want.0[..n],
            "tier {k} disagrees with scalar on class {class}"
        );
    }
}
