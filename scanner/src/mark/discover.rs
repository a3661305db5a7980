//! Discovery (DESIGN §5): what a worker does with each pointer it finds — resolve it with the
//! page map, test the mark bit (no write if already marked), set it, and for a small scan
//! object take ownership of its span and queue the span once (Green Tea) or push the object
//! itself (baseline); plus the object-at-a-time scans (one small object, a chunk of a large
//! one) that feed discovery. The span scans that feed it in bulk are in `span_scan`.

use sencha_spans::protocol::{MarkSpan, Target};
use sencha_spans::span::{MARK_LINE_OFFSET, SPAN_BYTES};
use sencha_spans::{LargeObject, SizeClass, Span};

use super::Algorithm;
use super::shared::Shared;
use crate::kernel::prefetch;
use crate::queue::{LocalQueues, ObjWork, SpanWork};
use crate::stats::WorkerStats;

/// Large objects are scanned in chunks of this many words (128 KiB), so others can steal parts.
pub(crate) const LARGE_CHUNK_WORDS: usize = (128 << 10) / 8;

/// How far ahead of the pointer being discovered the mark-line prefetch runs.
pub(crate) const PREFETCH_AHEAD: usize = 16;

/// The mark line a small object at `p` would have: the last cache line of its span.
#[inline(always)]
fn mark_line_of(p: usize) -> usize {
    (p & !(SPAN_BYTES - 1)) + MARK_LINE_OFFSET
}

/// The discovery side of a worker: what scanning code pushes new work through.
pub(crate) struct Sink<'s, 'h> {
    pub(crate) shared: &'s Shared<'h>,
    pub(crate) local: LocalQueues<'h>,
    pub(crate) stats: WorkerStats,
    /// The span being scanned and its class (`None`: none, or in-place scanning is off).
    pub(crate) cur: Option<(MarkSpan<'h>, SizeClass)>,
    /// Objects of the current span this worker marked while scanning it.
    pub(crate) found: Vec<u32>,
}

impl<'h> Sink<'_, 'h> {
    /// Discovers pointer `p` (DESIGN §5): mark, and queue what must be scanned.
    #[inline]
    pub(crate) fn discover(&mut self, p: usize) {
        if let Some((span, class)) = self.cur
            && p & !(SPAN_BYTES - 1) == span.span().base()
        {
            let base = span.span().base();
            // A pointer into the span being scanned: address arithmetic, no page-map lookup
            // (the span is registered: it is being scanned). The scan takes it next
            // (DESIGN §5.5).
            if let Some(index) = class.index_of(p - base)
                && span.try_mark(index, self.shared.exclusive)
            {
                if self.shared.prefetch {
                    // Its first line is read by the scan's next round: a miss started now
                    // overlaps with the rest of this round (DESIGN §5.4).
                    prefetch(base + index * class.bytes());
                }
                self.found.push(index as u32);
            }
            return;
        }
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
                        if span.acquire(ex) {
                            let w = SpanWork {
                                span,
                                index: index as u32,
                            };
                            self.local.push_span(w, self.shared.term.has_idle());
                        }
                    }
                    Algorithm::Baseline => {
                        // Prefetch on push, as classic markers (bdwgc) do: by the time the
                        // LIFO stack pops the object, its first line is on its way.
                        prefetch(span.span().base() + index * class.bytes());
                        self.push_object(ObjWork::Small {
                            span: span.span(),
                            index: index as u32,
                            class,
                        })
                    }
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
        self.local.push_object(o, self.shared.term.has_idle());
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
