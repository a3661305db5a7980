//! Scanning a span taken from a queue (DESIGN §5, "Scanning a span"): release ownership, take
//! the grey objects (or only the one that queued the span), scan them through the kernel when
//! dense or one by one when sparse, and — with in-place scanning — go round again over the
//! objects this scan marked in the same span (DESIGN §5.5).

use sencha_spans::span::LINE_WORDS;
use sencha_spans::{Owner, SizeClass, Span};

use super::worker::Ctx;
use crate::queue::SpanWork;

impl<'h> Ctx<'_, 'h> {
    /// Scans a span taken from a queue (DESIGN §5, "Scanning a span").
    ///
    /// With in-place scanning on, pointers into this span found while scanning it are only
    /// marked (not queued), and the span is scanned again, round after round, until a round
    /// finds nothing new in it: each round reads its grey objects in address order, so the
    /// loads are independent and prefetchable, where chasing them one by one would wait for
    /// each miss in turn.
    pub(super) fn scan_span(&mut self, w: SpanWork<'h>) {
        let mark = w.span;
        let span = mark.span();
        let class = span.class();
        if self.sink.shared.in_place {
            self.sink.cur = Some((mark, class));
        }
        self.sink.found.clear();
        // Objects grey when the span was taken, and objects this scan found in it itself:
        // what the span order adapts to (`queue::OrderState`).
        let mut taken = 1;
        let mut followed = 0;
        if mark.release() == Owner::One {
            // Nobody marked anything else here since the span was queued: only the object
            // that queued it is new. Its scanned bit still decides, so it is scanned once.
            self.sink.stats.spans_single += 1;
            if mark.try_scan(w.index as usize, self.sink.shared.exclusive) {
                self.sink.scan_object(span, w.index as usize, class);
            }
        } else {
            let grey = mark.take_grey(self.sink.shared.exclusive);
            taken = self.scan_grey(span, class, &grey);
        }
        // Rounds over the objects this worker marked in this span while scanning it. Claiming
        // them through the scanned bits keeps "scanned once" if another worker's dense scan of
        // the same span took some of them first.
        while let Some(&last) = self.sink.found.last() {
            followed += self.sink.found.len() as u32;
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
        self.sink.cur = None;
        self.sink.local.order.observe(taken, followed);
    }

    /// Scans the grey objects `grey` of `span`: through the kernel when dense, one by one when
    /// sparse. Returns how many there were.
    fn scan_grey(&mut self, span: Span<'h>, class: SizeClass, grey: &[u64; LINE_WORDS]) -> u32 {
        let n: u32 = grey.iter().map(|g| g.count_ones()).sum();
        if n == 0 {
            return 0;
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
        n
    }
}
