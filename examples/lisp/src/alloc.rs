//! The runtime's allocator: pages from its own reservation, 8 KiB spans per size class, large
//! objects in whole pages, and what a sweep leaves behind turned back into free slots, free
//! spans and free pages.
//!
//! - **Size classes.** An object of `w` words (2 ..= 64) goes into a span of exactly `8 * w`
//!   bytes: sencha accepts every multiple of 8 from 16 to 512 (docs/SPAN_LAYOUT.md §2), so the
//!   runtime needs no rounding table and wastes only the span tail. Objects with pointer words
//!   and objects without (strings, floats) go into different spans, *scan* and *noscan*, so
//!   the marker never reads the latter.
//! - **Slots.** Each span keeps a copy of its free slots (a bitmap); allocation takes the
//!   lowest free slot of the class's current span, then of the next partly free span, then a
//!   fresh span. After every sweep the copies are rebuilt from `Heap::allocated_slots`.
//! - **Pages.** Spans and large objects share one page pool (free runs, address-ordered first
//!   fit, and a bump pointer). A span that a sweep empties is unregistered and its page goes
//!   back to the pool, for any class or a large object.
//! - **Large objects** (over 64 words) get whole pages of their own (no page may hold parts of
//!   two registered regions); a sweep that frees one lists it in
//!   `SweepStats::freed_custom_large`, and its pages go back to the pool.
//!
//! The `Embedded` backend allocates from sencha's own allocator instead (`Heap::alloc`), for
//! comparison: the same interpreter, the same marker, another heap.

use std::collections::{BTreeMap, HashMap};

use sencha::spans::{Error as HeapError, Heap, Layout, SizeClass, SweepStats};

use crate::mem::{Memory, PAGE, PageKind};
use crate::object::Kind;
use crate::value::{TAG_HEADER, Value};

/// The most words of a small object (512 bytes).
pub(crate) const MAX_SMALL_WORDS: usize = 64;

/// Where objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The runtime's own allocator: spans and large objects registered with sencha.
    Custom,
    /// sencha's embedded allocator (`Heap::alloc`), as a yardstick.
    Embedded,
}

/// An allocation failed.
#[derive(Debug)]
pub enum AllocError {
    /// The reservation has no room left.
    OutOfMemory {
        /// The request, in bytes.
        bytes: usize,
    },
    /// The heap refused a call (a bug in the runtime: its calls are valid by construction).
    Heap(HeapError),
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::OutOfMemory { bytes } => {
                write!(
                    f,
                    "out of memory: no room for {bytes} bytes in the reservation"
                )
            }
            AllocError::Heap(e) => write!(f, "heap error: {e}"),
        }
    }
}

impl From<HeapError> for AllocError {
    fn from(e: HeapError) -> Self {
        AllocError::Heap(e)
    }
}

/// Free page runs and a bump pointer over the reservation.
#[derive(Debug, Default)]
struct PagePool {
    /// Pages at or above `top` were never handed out.
    top: usize,
    /// How many pages the reservation has.
    limit: usize,
    /// Free runs below `top`: first page -> length.
    free: BTreeMap<usize, usize>,
}

impl PagePool {
    fn alloc(&mut self, n: usize) -> Option<usize> {
        let fit = self
            .free
            .iter()
            .find(|&(_, &len)| len >= n)
            .map(|(&s, &l)| (s, l));
        if let Some((start, len)) = fit {
            self.free.remove(&start);
            if len > n {
                self.free.insert(start + n, len - n);
            }
            return Some(start);
        }
        if self.top + n <= self.limit {
            self.top += n;
            return Some(self.top - n);
        }
        None
    }

    fn free(&mut self, mut start: usize, mut n: usize) {
        if let Some((&s, &l)) = self.free.range(..start).next_back()
            && s + l == start
        {
            self.free.remove(&s);
            start = s;
            n += l;
        }
        if let Some(l) = self.free.remove(&(start + n)) {
            n += l;
        }
        if start + n == self.top {
            self.top = start;
        } else {
            self.free.insert(start, n);
        }
    }
}

/// The runtime's copy of one span's state.
#[derive(Clone, Copy, Debug)]
struct SpanInfo {
    words: u8,
    noscan: bool,
    /// Bit `i % 64` of word `i / 64`: slot `i` is free.
    free: [u64; 8],
}

/// The spans of one size class and kind.
#[derive(Clone, Debug, Default)]
struct ClassList {
    current: Option<usize>,
    /// Spans with free slots, highest address first (allocation pops the lowest).
    partial: Vec<usize>,
}

/// Figures the runtime reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapFigures {
    /// Bytes of pages holding spans or large objects now.
    pub in_use: usize,
    /// The most `in_use` ever was.
    pub peak: usize,
    /// Bytes allocated since the last collection.
    pub since_gc: usize,
    /// Bytes allocated since start.
    pub total: u64,
    /// Objects allocated since start.
    pub objects: u64,
    /// Spans registered now.
    pub spans: usize,
    /// Large objects registered now.
    pub large: usize,
}

/// The object store: allocation, word access, and the bookkeeping after a sweep.
#[derive(Debug)]
pub struct Store {
    mem: Memory,
    backend: Backend,
    pool: PagePool,
    /// `[words][noscan]`.
    classes: Vec<[ClassList; 2]>,
    spans: HashMap<usize, SpanInfo>,
    /// Large object start -> pages.
    large: HashMap<usize, usize>,
    /// Figures.
    pub figures: HeapFigures,
    /// Allocation budget: a collection is wanted once `figures.since_gc` reaches it.
    pub budget: usize,
    /// Set by allocation when the budget is spent; the interpreter collects at its next
    /// safe point and clears it.
    pub gc_wanted: bool,
}

/// The bits of slot-bitmap word `i` that name slots below `cap`.
fn valid_bits(cap: usize, i: usize) -> u64 {
    match cap.saturating_sub(i * 64) {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

fn header(kind: Kind, len: usize) -> u64 {
    debug_assert!(len < 1 << 40);
    TAG_HEADER << 48 | (kind as u64) << 40 | len as u64
}

/// The layout of an object of `kind` with `words` words (header included).
pub(crate) fn layout(kind: Kind, words: usize) -> Result<Layout, HeapError> {
    let bytes = words * 8;
    let fields = |skip: u32| -> Result<Layout, HeapError> {
        if words <= MAX_SMALL_WORDS {
            let all = if words == 64 {
                u64::MAX
            } else {
                (1u64 << words) - 1
            };
            Layout::with_pointers(bytes, all & !((1u64 << skip) - 1))
        } else {
            // Large: every word is declared a pointer word. The header (word 0) and a
            // closure's prototype (word 1) are immediates, at or above 2^48, which the marker
            // resolves to "not in the heap" and skips (value.rs).
            Layout::all_pointers(bytes)
        }
    };
    match kind {
        Kind::Pair | Kind::Vector | Kind::Box => fields(1),
        Kind::Closure => fields(2),
        Kind::WeakBox => Layout::with_pointers(bytes, 0)?.with_weak(0b10),
        Kind::Flonum | Kind::String | Kind::F64Vector | Kind::Table => Layout::no_pointers(bytes),
    }
}

impl Store {
    /// A store over a fresh reservation of `reserve` bytes.
    ///
    /// # Errors
    /// The operating system's, if it refuses the mapping.
    pub fn new(backend: Backend, reserve: usize, budget: usize) -> std::io::Result<Store> {
        let mem = Memory::new(if backend == Backend::Custom {
            reserve
        } else {
            PAGE
        })?;
        let limit = mem.pages();
        Ok(Store {
            mem,
            backend,
            pool: PagePool {
                limit,
                ..PagePool::default()
            },
            classes: vec![Default::default(); MAX_SMALL_WORDS + 1],
            spans: HashMap::new(),
            large: HashMap::new(),
            figures: HeapFigures::default(),
            budget,
            gc_wanted: false,
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The heap. Crate-private on purpose: with a `&Heap` in hand, safe code could run a mark
    /// on another thread while this thread reads objects through [`Store::read`], and sencha
    /// clears weak words during a mark (a data race). Inside the crate, marks run only on the
    /// interpreter's thread, which waits in `Marker::mark` (mem.rs, point 4).
    pub(crate) fn heap(&self) -> &Heap {
        self.mem.heap()
    }

    /// The heap, mutably.
    pub(crate) fn heap_mut(&mut self) -> &mut Heap {
        self.mem.heap_mut()
    }

    /// Loads word `w` of the object at `obj`.
    #[inline]
    pub fn read(&self, obj: usize, w: usize) -> u64 {
        match self.backend {
            Backend::Custom => self.mem.read_raw(obj + 8 * w),
            Backend::Embedded => {
                self.mem
                    .heap()
                    .read_word(obj, w)
                    .expect("the runtime reads only words of live objects") as u64
            }
        }
    }

    /// Stores word `w` of the object at `obj`.
    #[inline]
    pub fn write(&mut self, obj: usize, w: usize, v: u64) {
        match self.backend {
            Backend::Custom => self.mem.write_raw(obj + 8 * w, v),
            Backend::Embedded => self
                .mem
                .heap_mut()
                .write_word(obj, w, v as usize)
                .expect("the runtime writes only words of live objects"),
        }
    }

    /// A new object of `kind`, `words` words long (at least 2, header included): word 0 is
    /// its header (with `len`), the other words are `fill`. Every word is written before this
    /// returns, so the next mark reads only values the runtime stored.
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when the reservation is full.
    pub fn alloc(
        &mut self,
        kind: Kind,
        len: usize,
        words: usize,
        fill: u64,
    ) -> Result<usize, AllocError> {
        let words = words.max(2);
        let layout = layout(kind, words)?;
        let obj = match self.backend {
            Backend::Embedded => {
                // `in_use` and `peak` come from the heap's figures (`sample`).
                self.mem.heap_mut().alloc(&layout)?
            }
            Backend::Custom if words <= MAX_SMALL_WORDS => self.alloc_small(
                words,
                !layout.has_pointers() && kind != Kind::WeakBox,
                &layout,
            )?,
            Backend::Custom => self.alloc_large(words, &layout)?,
        };
        self.write(obj, 0, header(kind, len));
        for w in 1..words {
            self.write(obj, w, fill);
        }
        self.figures.since_gc += words * 8;
        self.figures.total += words as u64 * 8;
        self.figures.objects += 1;
        self.figures.peak = self.figures.peak.max(self.figures.in_use);
        if self.figures.since_gc >= self.budget {
            self.gc_wanted = true;
        }
        Ok(obj)
    }

    fn alloc_small(
        &mut self,
        words: usize,
        noscan: bool,
        layout: &Layout,
    ) -> Result<usize, AllocError> {
        let cap = SizeClass::new(words * 8)?.capacity();
        loop {
            let list = &mut self.classes[words][noscan as usize];
            if let Some(base) = list.current {
                let info = self
                    .spans
                    .get_mut(&base)
                    .expect("current span has a record");
                if let Some((i, word)) = info.free.iter().enumerate().find(|(_, w)| **w != 0) {
                    let slot = i * 64 + word.trailing_zeros() as usize;
                    debug_assert!(slot < cap);
                    info.free[i] &= info.free[i] - 1;
                    let obj = base + slot * words * 8;
                    self.mem.heap_mut().init_object(obj, layout)?;
                    return Ok(obj);
                }
                list.current = None;
            }
            if let Some(base) = list.partial.pop() {
                list.current = Some(base);
                continue;
            }
            let page = self
                .pool
                .alloc(1)
                .ok_or(AllocError::OutOfMemory { bytes: PAGE })?;
            let base = self
                .mem
                .register_span(page, SizeClass::new(words * 8)?, noscan)?;
            let free: [u64; 8] = std::array::from_fn(|i| valid_bits(cap, i));
            self.spans.insert(
                base,
                SpanInfo {
                    words: words as u8,
                    noscan,
                    free,
                },
            );
            self.figures.in_use += PAGE;
            self.figures.spans += 1;
            self.classes[words][noscan as usize].current = Some(base);
        }
    }

    fn alloc_large(&mut self, words: usize, layout: &Layout) -> Result<usize, AllocError> {
        let bytes = words * 8;
        let n = bytes.div_ceil(PAGE);
        let first = self
            .pool
            .alloc(n)
            .ok_or(AllocError::OutOfMemory { bytes })?;
        let start = self.mem.register_large(first, n, layout)?;
        self.large.insert(start, n);
        self.figures.in_use += n * PAGE;
        self.figures.large += 1;
        Ok(start)
    }

    /// With the embedded backend, reads the in-use bytes (spans and large objects) from the
    /// heap's figures and updates the peak; the interpreter calls it before every mark (when
    /// the heap is fullest) and at the end. The custom backend counts its pages exactly.
    pub fn sample(&mut self) {
        if self.backend == Backend::Embedded {
            let s = self.mem.heap().stats();
            self.figures.in_use = s.spans * PAGE + s.large_bytes;
            self.figures.spans = s.spans;
            self.figures.large = s.large_objects;
            self.figures.peak = self.figures.peak.max(self.figures.in_use);
        }
    }

    /// After a sweep: frees the pages of large objects the sweep freed, unregisters the spans
    /// it emptied and returns their pages, and rebuilds every span's free slots from
    /// `Heap::allocated_slots`.
    ///
    /// # Errors
    /// The heap's (a bug: every base asked about is registered).
    pub fn after_sweep(&mut self, swept: &SweepStats) -> Result<(), AllocError> {
        self.figures.since_gc = 0;
        if self.backend == Backend::Embedded {
            self.sample();
            return Ok(());
        }
        for &start in &swept.freed_custom_large {
            let n = self
                .large
                .remove(&start)
                .expect("a freed large object is ours");
            let first = self.mem.page_of(start).expect("in the reservation");
            self.mem.forget_large(first, n);
            self.pool.free(first, n);
            self.figures.in_use -= n * PAGE;
            self.figures.large -= 1;
        }
        for c in &mut self.classes {
            for l in c.iter_mut() {
                l.current = None;
                l.partial.clear();
            }
        }
        let mut empty = Vec::new();
        for (&base, info) in &mut self.spans {
            let used = self.mem.heap().allocated_slots(base)?;
            if used.iter().all(|&w| w == 0) {
                empty.push(base);
                continue;
            }
            let cap = SizeClass::new(usize::from(info.words) * 8)?.capacity();
            for (i, f) in info.free.iter_mut().enumerate() {
                *f = !used[i] & valid_bits(cap, i);
            }
            if info.free.iter().any(|&w| w != 0) {
                self.classes[usize::from(info.words)][info.noscan as usize]
                    .partial
                    .push(base);
            }
        }
        for base in empty {
            self.mem.unregister_span(base)?;
            self.spans.remove(&base);
            let page = self.mem.page_of(base).expect("in the reservation");
            self.pool.free(page, 1);
            self.figures.in_use -= PAGE;
            self.figures.spans -= 1;
        }
        for c in &mut self.classes {
            for l in c.iter_mut() {
                l.partial.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        Ok(())
    }

    /// Checks the runtime's copy of every span against the heap (after a sweep): a slot is
    /// free in the copy exactly when the heap says it is not allocated, every span page is a
    /// registered span and every large object is registered. Returns a description of the
    /// first disagreement.
    pub fn check_consistency(&self) -> Result<(), String> {
        if self.backend == Backend::Embedded {
            return Ok(());
        }
        let heap = self.mem.heap();
        for (&base, info) in &self.spans {
            let used = heap
                .allocated_slots(base)
                .map_err(|e| format!("span {base:#x}: {e}"))?;
            let cap = SizeClass::new(usize::from(info.words) * 8)
                .map_err(|e| e.to_string())?
                .capacity();
            for (i, (u, f)) in used.iter().zip(&info.free).enumerate() {
                if !u & valid_bits(cap, i) != *f {
                    return Err(format!(
                        "span {base:#x}: the free slots differ from the heap's allocated slots"
                    ));
                }
            }
            let page = self
                .mem
                .page_of(base)
                .ok_or("span outside the reservation")?;
            if self.mem.kind(page) != PageKind::Span {
                return Err(format!(
                    "span {base:#x}: page kind {:?}",
                    self.mem.kind(page)
                ));
            }
        }
        for (&start, &n) in &self.large {
            heap.object(start)
                .map_err(|e| format!("large object {start:#x}: {e}"))?;
            let first = self
                .mem
                .page_of(start)
                .ok_or("large object outside the reservation")?;
            if (first..first + n).any(|p| self.mem.kind(p) != PageKind::Large) {
                return Err(format!(
                    "large object {start:#x}: a page is not marked large"
                ));
            }
        }
        let st = heap.stats();
        if st.custom_spans != self.spans.len() || st.large_objects != self.large.len() {
            return Err(format!(
                "the heap has {} spans and {} large objects, the runtime {} and {}",
                st.custom_spans,
                st.large_objects,
                self.spans.len(),
                self.large.len()
            ));
        }
        if self.figures.in_use != (self.spans.len() + self.large.values().sum::<usize>()) * PAGE {
            return Err("in-use bytes disagree with the pages held".into());
        }
        Ok(())
    }

    /// Whether `v` is a heap pointer to an object of this store (allocated now).
    pub fn is_object(&self, v: Value) -> bool {
        v.addr().is_some_and(|a| self.heap().object(a).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_pool_coalesces_and_lowers_top() {
        let mut p = PagePool {
            limit: 10,
            ..PagePool::default()
        };
        let a = p.alloc(1).unwrap();
        let b = p.alloc(3).unwrap();
        let c = p.alloc(1).unwrap();
        assert_eq!((a, b, c), (0, 1, 4));
        p.free(b, 3);
        assert_eq!(p.alloc(2), Some(1)); // first fit inside the freed run
        p.free(1, 2);
        p.free(a, 1);
        assert_eq!(p.free.get(&0), Some(&4)); // 0..4 coalesced
        p.free(c, 1);
        assert_eq!((p.top, p.free.len()), (0, 0)); // everything back, top lowered
        assert_eq!(p.alloc(11), None);
    }

    #[test]
    fn layout_declares_fields_but_not_headers() {
        let pair = layout(Kind::Pair, 3).unwrap();
        assert!(!pair.is_pointer_word(0) && pair.is_pointer_word(1) && pair.is_pointer_word(2));
        let clo = layout(Kind::Closure, 4).unwrap();
        assert!(!clo.is_pointer_word(1) && clo.is_pointer_word(3));
        let weak = layout(Kind::WeakBox, 2).unwrap();
        assert!(weak.is_weak_word(1) && !weak.is_pointer_word(1));
        assert!(!layout(Kind::String, 5).unwrap().has_pointers());
        let big = layout(Kind::Vector, 1000).unwrap();
        assert!(big.is_pointer_word(999));
        let full = layout(Kind::Vector, 64).unwrap();
        assert!(full.is_pointer_word(63) && !full.is_pointer_word(0));
    }
}
