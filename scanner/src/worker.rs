//! One marking worker: its queues, its find-work loop, and the discovery of pointers.
//!
//! A worker runs [`Ctx::run`]: take work (own private buffers and deques, objects before
//! spans, then the root injector, then a steal), execute it, and when nothing is left follow the idle protocol of
//! [`termination`](crate::termination). Discovery ([`Sink::discover`]) is DESIGN §5: resolve
//! the pointer with the page map, test the mark bit (no write if already marked), set it, and
//! for a small scan object take ownership of its span and queue the span once (Green Tea) or
//! push the object itself (baseline).

use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};

use sencha_spans::protocol::{MarkSession, Target};
use sencha_spans::span::{LINE_WORDS, MARK_LINE_OFFSET, SPAN_BYTES};
use sencha_spans::{LargeObject, Owner, SizeClass, Span};

use crate::kernel::{GatherBuf, HeapRange, Kernel, prefetch};
use crate::marker::Algorithm;
use crate::queue::{LocalQueues, ObjWork, PUBLISH_MIN, SharedQueues, SpanWork, Task};
use crate::stats::WorkerStats;
use crate::termination::{self, Termination};

/// Large objects are scanned in chunks of this many words (128 KiB), so others can steal parts.
pub(crate) const LARGE_CHUNK_WORDS: usize = (128 << 10) / 8;

/// How far ahead of the pointer being discovered the mark-line prefetch runs.
pub(crate) const PREFETCH_AHEAD: usize = 16;

/// The mark line a small object at `p` would have: the last cache line of its span.
#[inline(always)]
fn mark_line_of(p: usize) -> usize {
    (p & !(SPAN_BYTES - 1)) + MARK_LINE_OFFSET
}

/// What every worker of one mark shares.
pub(crate) struct Shared<'h> {
    pub(crate) session: &'h MarkSession<'h>,
    pub(crate) range: HeapRange,
    pub(crate) kernel: Kernel,
    pub(crate) algorithm: Algorithm,
    pub(crate) roots: Vec<usize>,
    pub(crate) queues: SharedQueues<'h>,
    pub(crate) term: Termination,
    /// Grey objects at or above which a span goes through the kernel, by size in words.
    pub(crate) dense_min: [u16; 65],
    /// Scan pointers into the span being scanned in place (DESIGN §5.5).
    pub(crate) in_place: bool,
    /// Prefetch the mark lines of gathered pointers (DESIGN §5.4).
    pub(crate) prefetch: bool,
    /// One worker: mark-line and scan-line steps use plain loads and stores instead of
    /// atomic read-modify-writes (`protocol::MarkSpan`).
    pub(crate) exclusive: bool,
    /// Set when a worker panicked: every worker stops taking work and returns.
    pub(crate) abort: AtomicBool,
    /// Tests only: the task at which worker 0 panics on purpose.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) panic_at: Option<u64>,
}

impl Shared<'_> {
    /// Whether the mark was abandoned because a worker panicked.
    #[inline]
    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}

/// The discovery side of a worker: what scanning code pushes new work through.
pub(crate) struct Sink<'s, 'h> {
    pub(crate) shared: &'s Shared<'h>,
    pub(crate) local: LocalQueues<'h>,
    pub(crate) stats: WorkerStats,
    /// Base of the span being scanned (0: none, or in-place scanning is off).
    pub(crate) current: usize,
    /// Objects of the current span this worker marked while scanning it.
    pub(crate) found: Vec<u32>,
}

impl<'h> Sink<'_, 'h> {
    /// Discovers pointer `p` (DESIGN §5): mark, and queue what must be scanned.
    #[inline]
    pub(crate) fn discover(&mut self, p: usize) {
        match self.shared.session.resolve(p) {
            Target::NotInHeap => {}
            Target::Small {
                span,
                index,
                class,
                noscan,
            } => {
                let ex = self.shared.exclusive;
                if !span.try_mark(index, ex) || noscan {
                    return;
                }
                match self.shared.algorithm {
                    Algorithm::GreenTea => {
                        if span.span().base() == self.current {
                            // A pointer into the span being scanned: the scan's next round
                            // takes it, without a queue round trip (DESIGN §5.5).
                            self.found.push(index as u32);
                        } else if span.acquire(ex) {
                            let w = SpanWork {
                                span,
                                index: index as u32,
                            };
                            self.local.span_buf.push_back(w);
                            if self.local.span_buf.len() >= PUBLISH_MIN
                                && self.shared.term.has_idle()
                            {
                                self.local.publish_spans();
                            }
                        }
                    }
                    Algorithm::Baseline => self.push_object(ObjWork::Small {
                        span: span.span(),
                        index: index as u32,
                        class,
                    }),
                }
            }
            Target::Large(l) => {
                if l.try_mark() && l.object().layout().has_pointers() {
                    self.push_large(l.object());
                }
            }
        }
    }

    /// Discovers every pointer of a gathered batch. With prefetching on (DESIGN §5.4), the
    /// mark line of the pointer [`PREFETCH_AHEAD`] places ahead is prefetched before each
    /// discovery, so the cache misses on the targets' mark lines overlap instead of queueing
    /// one by one. A small object's mark line is the last cache line of its span, so its
    /// address needs no page-map lookup; for anything else the prefetch is a harmless hint.
    #[inline]
    pub(crate) fn discover_all(&mut self, ptrs: &[usize]) {
        if !self.shared.prefetch {
            for &v in ptrs {
                self.discover(v);
            }
            return;
        }
        for &v in ptrs.iter().take(PREFETCH_AHEAD) {
            prefetch(mark_line_of(v));
        }
        for (i, &v) in ptrs.iter().enumerate() {
            if let Some(&ahead) = ptrs.get(i + PREFETCH_AHEAD) {
                prefetch(mark_line_of(ahead));
            }
            self.discover(v);
        }
    }

    /// Queues a large object in chunks of [`LARGE_CHUNK_WORDS`].
    fn push_large(&mut self, obj: &'h LargeObject) {
        let words = obj.layout().words();
        let mut from = 0;
        while from < words {
            let to = (from + LARGE_CHUNK_WORDS).min(words);
            self.push_object(ObjWork::Large { obj, from, to });
            from = to;
        }
    }

    #[inline]
    fn push_object(&mut self, o: ObjWork<'h>) {
        self.local.obj_buf.push(o);
        if self.local.obj_buf.len() >= PUBLISH_MIN && self.shared.term.has_idle() {
            self.local.publish_objects();
        }
    }

    /// Visits the pointers of object `index` of `span` (one object at a time).
    #[inline]
    pub(crate) fn scan_object(&mut self, span: Span<'h>, index: usize, class: SizeClass) {
        self.stats.objects_scanned += 1;
        let first = index * class.words();
        self.visit(span.ptr_bits(index, class), |k| {
            span.read_word(first + k).unwrap_or(0)
        });
    }

    /// Visits the pointers of words `from .. to` of a large object.
    pub(crate) fn scan_large(&mut self, obj: &'h LargeObject, from: usize, to: usize) {
        self.stats.large_chunks += 1;
        let layout = obj.layout();
        for w in (from..to).step_by(64) {
            let n = (to - w).min(64);
            let bits = layout.pointer_bits(w) & if n == 64 { u64::MAX } else { (1 << n) - 1 };
            self.visit(bits, |k| obj.read_word(w + k).unwrap_or(0));
        }
    }

    /// Discovers the in-range values of the words whose bits are set in `bits` (bit `k` is the
    /// word `read(k)` returns).
    #[inline]
    fn visit(&mut self, mut bits: u64, read: impl Fn(usize) -> usize) {
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let v = read(k);
            if self.shared.range.contains(v) {
                self.stats.pointers += 1;
                self.discover(v);
            }
        }
    }
}

/// A worker.
pub(crate) struct Ctx<'s, 'h> {
    pub(crate) sink: Sink<'s, 'h>,
    pub(crate) id: usize,
    pub(crate) rng: u64,
    pub(crate) buf: Box<GatherBuf>,
    /// Tasks executed (fault injection in tests).
    #[cfg(any(test, feature = "testing"))]
    tasks: u64,
}

impl<'s, 'h> Ctx<'s, 'h> {
    pub(crate) fn new(shared: &'s Shared<'h>, local: LocalQueues<'h>, id: usize) -> Self {
        Ctx {
            sink: Sink {
                shared,
                local,
                stats: WorkerStats::default(),
                current: 0,
                found: Vec::new(),
            },
            id,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            buf: Box::default(),
            #[cfg(any(test, feature = "testing"))]
            tasks: 0,
        }
    }

    /// Marks until every worker is idle, or until a worker panicked ([`Shared::abort`]),
    /// under the protocol of [`termination`](crate::termination); returns this worker's
    /// counters. A panic inside is caught by the caller ([`crate::mark::run`]), which sets
    /// `abort` so that the others stop too.
    pub(crate) fn run(mut self) -> WorkerStats {
        let shared = self.sink.shared;
        let start = Instant::now();
        let idle = termination::run(&shared.term, &mut self);
        self.sink.stats.busy = start.elapsed().saturating_sub(idle);
        self.sink.stats
    }

    /// Own object deque, own span deque, then the injector and the other workers; nothing
    /// once the mark is aborted.
    fn take_work(&mut self) -> Option<Task<'h>> {
        if self.sink.shared.aborted() {
            return None;
        }
        // Share before taking: a worker working through a long private backlog without
        // pushing anything new (the spans a root array queued, say) must still feed idle ones.
        let local = &mut self.sink.local;
        if (local.obj_buf.len() >= PUBLISH_MIN || local.span_buf.len() >= PUBLISH_MIN)
            && self.sink.shared.term.has_idle()
        {
            local.publish_objects();
            local.publish_spans();
        }
        if let Some(t) = self.sink.local.pop() {
            return Some(t);
        }
        let shared = self.sink.shared;
        let task = shared
            .queues
            .steal(self.id, &mut self.rng, &self.sink.local);
        if matches!(task, Some(Task::Obj(_) | Task::Span(_))) {
            self.sink.stats.steals += 1;
        }
        task
    }

    fn execute_task(&mut self, task: Task<'h>) {
        #[cfg(any(test, feature = "testing"))]
        self.maybe_panic();
        match task {
            Task::Span(w) => self.scan_span(w),
            Task::Obj(ObjWork::Small { span, index, class }) => {
                self.sink.scan_object(span, index as usize, class)
            }
            Task::Obj(ObjWork::Large { obj, from, to }) => self.sink.scan_large(obj, from, to),
            Task::Roots(c) => {
                let roots = &self.sink.shared.roots;
                for &r in &roots[c.from..c.to] {
                    self.sink.discover(r);
                }
            }
        }
    }

    /// Scans a span taken from a queue (DESIGN §5, "Scanning a span").
    ///
    /// With in-place scanning on, pointers into this span found while scanning it are only
    /// marked (not queued), and the span is scanned again, round after round, until a round
    /// finds nothing new in it: each round reads its grey objects in address order, so the
    /// loads are independent and prefetchable, where chasing them one by one would wait for
    /// each miss in turn.
    fn scan_span(&mut self, w: SpanWork<'h>) {
        let mark = w.span;
        let span = mark.span();
        let class = span.class();
        if self.sink.shared.in_place {
            self.sink.current = span.base();
        }
        self.sink.found.clear();
        if mark.release() == Owner::One {
            // Nobody marked anything else here since the span was queued: only the object
            // that queued it is new. Its scanned bit still decides, so it is scanned once.
            self.sink.stats.spans_single += 1;
            if mark.try_scan(w.index as usize, self.sink.shared.exclusive) {
                self.sink.scan_object(span, w.index as usize, class);
            }
        } else {
            let grey = mark.take_grey(self.sink.shared.exclusive);
            self.scan_grey(span, class, &grey);
        }
        // Rounds over the objects this worker marked in this span while scanning it. Claiming
        // them through the scanned bits keeps "scanned once" if another worker's dense scan of
        // the same span took some of them first.
        while let Some(&last) = self.sink.found.last() {
            if self.sink.found.len() == 1 {
                // A chain (one new object per step): follow it without building a round.
                self.sink.found.clear();
                if mark.try_scan(last as usize, self.sink.shared.exclusive) {
                    self.sink.scan_object(span, last as usize, class);
                }
                continue;
            }
            let mut found = [0u64; LINE_WORDS];
            for i in self.sink.found.drain(..) {
                found[i as usize / 64] |= 1 << (i % 64);
            }
            let mut grey = [0u64; LINE_WORDS];
            for (i, (&f, g)) in found.iter().zip(grey.iter_mut()).enumerate() {
                if f != 0 {
                    *g = mark.claim_scan(i, f, self.sink.shared.exclusive);
                }
            }
            self.scan_grey(span, class, &grey);
        }
        self.sink.current = 0;
    }

    /// Scans the grey objects `grey` of `span`: through the kernel when dense, one by one when
    /// sparse.
    fn scan_grey(&mut self, span: Span<'h>, class: SizeClass, grey: &[u64; LINE_WORDS]) {
        let n: u32 = grey.iter().map(|g| g.count_ones()).sum();
        if n == 0 {
            return;
        }
        if n as usize >= self.sink.shared.dense_min[class.words()] as usize {
            self.sink.stats.spans_dense += 1;
            let shared = self.sink.shared;
            let count = shared
                .kernel
                .gather(span, grey, shared.range, &mut self.buf);
            self.sink.stats.pointers += count;
            self.sink.discover_all(&self.buf.0[..count]);
        } else {
            self.sink.stats.spans_sparse += 1;
            for (wi, &g) in grey.iter().enumerate() {
                let mut g = g;
                while g != 0 {
                    let i = wi * 64 + g.trailing_zeros() as usize;
                    g &= g - 1;
                    self.sink.scan_object(span, i, class);
                }
            }
        }
    }
}

impl<'h> termination::Worker for Ctx<'_, 'h> {
    type Task = Task<'h>;

    #[inline]
    fn find_work(&mut self) -> Option<Task<'h>> {
        self.take_work()
    }

    #[inline]
    fn execute(&mut self, task: Task<'h>) {
        self.execute_task(task);
    }

    fn any_work(&self) -> bool {
        self.sink.shared.queues.any_work()
    }

    fn aborted(&self) -> bool {
        self.sink.shared.aborted()
    }
}

#[cfg(any(test, feature = "testing"))]
impl Ctx<'_, '_> {
    /// Tests only: worker 0 panics at its `panic_at`-th task (fault injection for the
    /// "a mark always ends" tests).
    fn maybe_panic(&mut self) {
        if let Some(n) = self.sink.shared.panic_at
            && self.id == 0
        {
            self.tasks += 1;
            if self.tasks >= n {
                panic!("sencha test: injected panic in worker 0 at task {n}");
            }
        }
    }
}

/// Dense thresholds of `kernel`, by size in words.
pub(crate) fn dense_min(kernel: Kernel) -> [u16; 65] {
    let mut t = [u16::MAX; 65];
    for c in SizeClass::every_legal() {
        t[c.words()] = kernel.dense_threshold(c) as u16;
    }
    t
}
