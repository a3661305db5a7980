//! One marking worker: its context, its find-work step and the idle loop it runs under
//! (`termination::run`). A worker runs [`Ctx::run`]: take work (own private buffers and
//! deques, objects before spans, then the root injector, then a steal), execute it
//! (`span_scan` for spans, `discover` for objects and roots), and when nothing is left follow
//! the idle protocol of [`termination`](crate::termination).

use std::time::Instant;

use sencha_spans::SizeClass;

use super::discover::Sink;
use super::shared::Shared;
use crate::kernel::{GatherBuf, Kernel};
use crate::queue::{LocalQueues, ObjWork, Task};
use crate::stats::WorkerStats;
use crate::termination;

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
                cur: None,
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
        let has_idle = self.sink.shared.term.has_idle();
        if let Some(t) = self.sink.local.pop(has_idle) {
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
