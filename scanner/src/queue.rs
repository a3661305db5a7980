//! Work queues: per-worker span and object deques over crossbeam-deque, and the root injector.
//!
//! Each worker owns
//! - a **span buffer and deque** of [`SpanWork`]: a span queued by the mark that took its
//!   ownership, with the index of that object riding along. The worker takes its own spans in
//!   the order [`OrderState`] decides: oldest first (as in Go's Green Tea, so that a span waits
//!   in the queue and collects more grey objects before it is scanned) or, on heaps that show
//!   allocation order, newest first (DESIGN §5.7); thieves take the oldest;
//! - a **LIFO object deque** of [`ObjWork`]: chunks of large objects (and, for the baseline
//!   marker, every grey object), depth-first as classic markers do;
//!
//! and every worker can steal from every other through the published `Stealer`s; roots come in
//! chunks from one shared `Injector`. The deques are crossbeam-deque's implementation of the
//! Chase–Lev work-stealing deque (Chase and Lev, SPAA 2005) with the memory-model fixes of
//! Lê, Pop, Cohen and Zappa Nardelli (PPoPP 2013) — the same deques rayon schedules with. The
//! span-queue idea is from Go's Green Tea garbage collector (golang/go#73581).

use std::collections::VecDeque;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use sencha_spans::protocol::MarkSpan;
use sencha_spans::{LargeObject, SizeClass, Span};

use crate::mark::SpanOrder;

/// A queued span and the object whose mark queued it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanWork<'h> {
    pub(crate) span: MarkSpan<'h>,
    pub(crate) index: u32,
}

/// A grey object to scan on its own.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ObjWork<'h> {
    /// A small object (baseline marker only), already marked and claimed.
    Small {
        span: Span<'h>,
        index: u32,
        class: SizeClass,
    },
    /// Words `from .. to` of a large object.
    Large {
        obj: &'h LargeObject,
        from: usize,
        to: usize,
    },
}

/// Roots `from .. to` of the validated root list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RootChunk {
    pub(crate) from: usize,
    pub(crate) to: usize,
}

/// Roots per injector chunk.
pub(crate) const ROOT_CHUNK: usize = 512;

/// Anything a worker can take.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Task<'h> {
    Span(SpanWork<'h>),
    Obj(ObjWork<'h>),
    Roots(RootChunk),
}

/// The queues every worker can see.
pub(crate) struct SharedQueues<'h> {
    pub(crate) injector: Injector<RootChunk>,
    pub(crate) spans: Vec<Stealer<SpanWork<'h>>>,
    pub(crate) objects: Vec<Stealer<ObjWork<'h>>>,
}

impl std::fmt::Debug for SharedQueues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQueues")
            .field("workers", &self.spans.len())
            .finish()
    }
}

/// Objects a worker scans between two decisions of [`SpanOrder::Adaptive`].
pub(crate) const ORDER_WINDOW: u32 = 1024;

/// A worker's span order: fixed, or decided from what its span scans observe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OrderState {
    order: SpanOrder,
    /// Newest first now.
    lifo: bool,
    /// Objects scanned since the last decision, and how many of them were found by
    /// following a pointer inside the span being scanned (halved at each decision, so older
    /// windows count half as much).
    scanned: u32,
    followed: u32,
}

impl OrderState {
    pub(crate) fn new(order: SpanOrder) -> Self {
        OrderState {
            order,
            lifo: order == SpanOrder::Lifo,
            scanned: 0,
            followed: 0,
        }
    }

    /// Whether the worker takes its newest span first.
    #[inline]
    pub(crate) fn lifo(&self) -> bool {
        self.lifo
    }

    /// One span scan: `taken` objects were grey when the span was taken from a queue,
    /// `followed` more were found in it by the scan itself. Under [`SpanOrder::Adaptive`],
    /// every [`ORDER_WINDOW`] objects the worker goes newest first when most were followed.
    #[inline]
    pub(crate) fn observe(&mut self, taken: u32, followed: u32) {
        if self.order != SpanOrder::Adaptive {
            return;
        }
        self.scanned += taken + followed;
        self.followed += followed;
        if self.scanned >= ORDER_WINDOW {
            self.lifo = 2 * self.followed > self.scanned;
            self.scanned /= 2;
            self.followed /= 2;
        }
    }
}

/// A worker's own queues: private buffers it pushes to and pops from without atomics, and
/// the public deques others steal from. Work moves from a buffer to its deque (the half of the
/// span buffer the worker would take last, the older half of the object buffer)
/// when the buffer holds at least [`PUBLISH_MIN`] items, some worker is idle and the deque is
/// empty — as Go's per-P work buffers do — so a lone worker pays no fences per item.
pub(crate) struct LocalQueues<'h> {
    pub(crate) span_buf: VecDeque<SpanWork<'h>>,
    pub(crate) obj_buf: Vec<ObjWork<'h>>,
    pub(crate) spans: Worker<SpanWork<'h>>,
    pub(crate) objects: Worker<ObjWork<'h>>,
    pub(crate) order: OrderState,
}

/// Buffered items at which a worker starts sharing with idle workers.
pub(crate) const PUBLISH_MIN: usize = 16;

impl<'h> LocalQueues<'h> {
    /// Queues a span the worker just took ownership of; shares half the span buffer when it
    /// holds [`PUBLISH_MIN`] or more and some worker is idle (`has_idle`).
    #[inline]
    pub(crate) fn push_span(&mut self, w: SpanWork<'h>, has_idle: bool) {
        self.span_buf.push_back(w);
        if self.span_buf.len() >= PUBLISH_MIN && has_idle {
            self.publish_spans();
        }
    }

    /// Pushes a grey object (a large-object chunk, or any object for the baseline); shares
    /// as [`LocalQueues::push_span`] does.
    #[inline]
    pub(crate) fn push_object(&mut self, o: ObjWork<'h>, has_idle: bool) {
        self.obj_buf.push(o);
        if self.obj_buf.len() >= PUBLISH_MIN && has_idle {
            self.publish_objects();
        }
    }

    /// Takes the next item of the worker's own: object buffer, span buffer, object deque,
    /// span deque. First, when some worker is idle (`has_idle`) and a buffer holds a backlog,
    /// shares half of it: a worker working through a long private backlog without pushing
    /// anything new (the spans a root array queued, say) must still feed idle ones.
    #[inline]
    pub(crate) fn pop(&mut self, has_idle: bool) -> Option<Task<'h>> {
        if has_idle && (self.obj_buf.len() >= PUBLISH_MIN || self.span_buf.len() >= PUBLISH_MIN) {
            self.publish_objects();
            self.publish_spans();
        }
        if let Some(o) = self.obj_buf.pop() {
            return Some(Task::Obj(o));
        }
        let span = if self.order.lifo() {
            self.span_buf.pop_back()
        } else {
            self.span_buf.pop_front()
        };
        if let Some(s) = span {
            return Some(Task::Span(s));
        }
        if let Some(o) = self.objects.pop() {
            return Some(Task::Obj(o));
        }
        self.spans.pop().map(Task::Span)
    }

    /// Moves the older half of the object buffer to the stealable deque, if that is empty.
    fn publish_objects(&mut self) {
        if self.objects.is_empty() {
            let half = self.obj_buf.len() / 2;
            for o in self.obj_buf.drain(..half) {
                self.objects.push(o);
            }
        }
    }

    /// Moves the half of the span buffer this worker would take last to the stealable deque,
    /// if that is empty: the newer half when it takes oldest first, the older half when it
    /// takes newest first (it keeps the spans next to where it is working).
    fn publish_spans(&mut self) {
        if self.spans.is_empty() {
            let len = self.span_buf.len();
            let given = if self.order.lifo() {
                0..len / 2
            } else {
                len / 2..len
            };
            for s in self.span_buf.drain(given) {
                self.spans.push(s);
            }
        }
    }
}

/// Makes the deques of `workers` workers and the injector holding `roots` roots in chunks.
pub(crate) fn make<'h>(
    workers: usize,
    roots: usize,
    order: SpanOrder,
) -> (SharedQueues<'h>, Vec<LocalQueues<'h>>) {
    let locals: Vec<LocalQueues<'h>> = (0..workers)
        .map(|_| LocalQueues {
            span_buf: VecDeque::new(),
            obj_buf: Vec::new(),
            spans: Worker::new_fifo(),
            objects: Worker::new_lifo(),
            order: OrderState::new(order),
        })
        .collect();
    let injector = Injector::new();
    for from in (0..roots).step_by(ROOT_CHUNK) {
        injector.push(RootChunk {
            from,
            to: (from + ROOT_CHUNK).min(roots),
        });
    }
    let shared = SharedQueues {
        injector,
        spans: locals.iter().map(|l| l.spans.stealer()).collect(),
        objects: locals.iter().map(|l| l.objects.stealer()).collect(),
    };
    (shared, locals)
}

impl<'h> SharedQueues<'h> {
    /// Whether any queue looks non-empty (a hint: it may change at once).
    pub(crate) fn any_work(&self) -> bool {
        !self.injector.is_empty()
            || self.objects.iter().any(|s| !s.is_empty())
            || self.spans.iter().any(|s| !s.is_empty())
    }

    /// Steals a batch (about half) from another worker, starting at a random victim, or a
    /// root chunk; retries while any attempt said `Retry`.
    pub(crate) fn steal(
        &self,
        me: usize,
        rng: &mut u64,
        local: &LocalQueues<'h>,
    ) -> Option<Task<'h>> {
        let n = self.spans.len();
        loop {
            let mut retry = false;
            match self.injector.steal() {
                Steal::Success(c) => return Some(Task::Roots(c)),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let start = (next_random(rng) % n as u64) as usize;
            for k in 0..n {
                let v = (start + k) % n;
                if v == me {
                    continue;
                }
                match self.objects[v].steal_batch_and_pop(&local.objects) {
                    Steal::Success(o) => return Some(Task::Obj(o)),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
                match self.spans[v].steal_batch_and_pop(&local.spans) {
                    Steal::Success(s) => return Some(Task::Span(s)),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }
}

/// xorshift64*: a worker's victim picker.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(order: SpanOrder, steps: &[(u32, u32)]) -> bool {
        let mut s = OrderState::new(order);
        for &(taken, followed) in steps {
            s.observe(taken, followed);
        }
        s.lifo()
    }

    #[test]
    fn adaptive_order_follows_what_the_scans_observe() {
        // Before a full window: oldest first, whatever was seen.
        assert!(!decide(SpanOrder::Adaptive, &[(1, 30); 30]));
        // Mostly followed in place (a heap in allocation order): newest first.
        assert!(decide(SpanOrder::Adaptive, &[(1, 30); 40]));
        // Mostly taken from queues (batched): oldest first.
        assert!(!decide(SpanOrder::Adaptive, &[(30, 1); 40]));
        // Exactly half followed is not most.
        assert!(!decide(SpanOrder::Adaptive, &[(16, 16); 40]));
        // The heap changes shape: the order follows within a few windows.
        let mut steps = vec![(1, 30); 40];
        steps.extend([(30, 0); 120]);
        assert!(!decide(SpanOrder::Adaptive, &steps));
        steps.extend([(0, 30); 120]);
        assert!(decide(SpanOrder::Adaptive, &steps));
    }

    #[test]
    fn fixed_orders_ignore_observations() {
        assert!(!decide(SpanOrder::Fifo, &[(1, 30); 100]));
        assert!(decide(SpanOrder::Lifo, &[(30, 0); 100]));
    }
}
