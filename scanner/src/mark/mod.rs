//! The markers: the Green Tea span marker and the classic baseline run on the same workers;
//! the reference oracle is [`reference`].
//!
//! Follow a pointer in one pass, imports pointing one way (`marker` → `mark` → the rest):
//! - [`run`] (here): opens the mark session (`session`, the one `unsafe` door), runs the
//!   phases (`MarkSession::run_phases`: closure, ephemerons, weak clearing, finalizers), each
//!   closure one parallel run of the workers (`closure`), and builds `MarkStats`;
//! - `shared`: what the workers of one closure share;
//! - `worker`: a worker's context, its find-work step, the idle loop (`termination::run`);
//! - `span_scan`: a span taken from a queue — release, grey objects, kernel or one by one,
//!   in-place rounds — hands the gathered pointers to
//! - `discover`: page map, mark bit, span ownership, queues (`queue`, which also holds the
//!   publish rules); and the object-at-a-time scans.

mod discover;
pub mod reference;
#[allow(unsafe_code)]
mod session;
mod shared;
mod span_scan;
mod worker;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::ThreadPool;
use sencha_spans::Heap;
use sencha_spans::protocol::MarkSession;

use crate::error::Error;
use crate::kernel::{HeapRange, Kernel};
use crate::queue;
use crate::stats::{MarkStats, WorkerStats};
use crate::termination::Termination;
use shared::Shared;
use worker::{Ctx, dense_min};

/// Which parallel marker runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// The Green Tea span marker: a new mark queues the object's *span*, and a worker scans
    /// all grey objects of a span at once, with the span kernel when there are many.
    #[default]
    GreenTea,
    /// The classic object-at-a-time marker: every grey object goes on a LIFO mark stack and is
    /// scanned on its own. The baseline every speed-up is measured against.
    Baseline,
}

impl Algorithm {
    /// `"green-tea"` or `"baseline"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::GreenTea => "green-tea",
            Algorithm::Baseline => "baseline",
        }
    }
}

/// The order in which a Green Tea worker takes the spans it queued itself (DESIGN §5.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanOrder {
    /// Oldest first while the heap shows no allocation order, newest first while it does: each
    /// worker watches where the objects it scans come from, and when most were found by
    /// following pointers inside the span being scanned (a heap laid out in the order its
    /// program allocated and links it: trees built depth-first, lists built in order), it
    /// takes its newest span first, which continues the walk where it is while its lines are
    /// still in cache. Otherwise it takes its oldest first, so queued spans wait and gather
    /// grey objects for one batched scan. Decided again every 1024 objects a worker scans.
    #[default]
    Adaptive,
    /// Always oldest first (Go's Green Tea): the most batching.
    Fifo,
    /// Always newest first: depth-first across spans. Loses the batching on heaps without
    /// allocation order (measured: the shuffled tree 8× slower).
    Lifo,
}

impl SpanOrder {
    /// `"adaptive"`, `"fifo"` or `"lifo"`.
    pub fn name(self) -> &'static str {
        match self {
            SpanOrder::Adaptive => "adaptive",
            SpanOrder::Fifo => "fifo",
            SpanOrder::Lifo => "lifo",
        }
    }
}

/// How one mark runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) kernel: Kernel,
    pub(crate) algorithm: Algorithm,
    pub(crate) in_place: bool,
    pub(crate) prefetch: bool,
    pub(crate) span_order: SpanOrder,
    /// Tests only: worker 0 panics at this task.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) panic_at: Option<u64>,
}

/// Runs one parallel mark of `heap` from `roots` (validated object addresses) and the heap's
/// pinned objects, with the weak, ephemeron and finalizer phases
/// ([`MarkSession::run_phases`]): each phase's transitive closure is one parallel run of the
/// workers. Without a pool, the one worker runs on the calling thread.
///
/// A mark always ends: a panic inside a worker is caught, the other workers stop taking work
/// and return, the session is dropped unfinished (the heap is then
/// [`MarkState::Aborted`](sencha_spans::MarkState), so no sweep frees anything on its
/// partial marks), and the caller gets [`Error::MarkPanicked`].
pub(crate) fn run(
    heap: &Heap,
    roots: &[usize],
    pool: Option<&ThreadPool>,
    cfg: Config,
) -> Result<MarkStats, Error> {
    let start = Instant::now();
    let session = session::open(heap)?;
    let mut per_worker = vec![WorkerStats::default(); cfg.workers];
    let outcome = session.run_phases(roots, pool.is_some(), |from| {
        let stats = closure(&session, from, pool, cfg)?;
        for (total, w) in per_worker.iter_mut().zip(&stats) {
            total.add(w);
        }
        Ok::<(), Error>(())
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            drop(session); // unfinished: the heap is Aborted
            return Err(e);
        }
    };
    let totals = heap.marked_totals();
    session.finish();
    let kernel_name = match cfg.algorithm {
        Algorithm::GreenTea => cfg.kernel.name(),
        Algorithm::Baseline => "-",
    };
    let mut stats = MarkStats::from_workers(
        cfg.algorithm.name(),
        kernel_name,
        &per_worker,
        totals,
        start.elapsed(),
    );
    stats.weak_cleared = outcome.weak_cleared;
    stats.ephemeron_rounds = outcome.ephemeron_rounds;
    stats.finalizable = outcome.finalizable;
    Ok(stats)
}

/// One transitive closure: the workers mark everything reachable from `from` (each resolved
/// like a pointer word) and return their counters, or the first panic's message.
fn closure(
    session: &MarkSession<'_>,
    from: &[usize],
    pool: Option<&ThreadPool>,
    cfg: Config,
) -> Result<Vec<WorkerStats>, Error> {
    let Config {
        workers,
        kernel,
        algorithm,
        in_place,
        prefetch,
        span_order,
        #[cfg(any(test, feature = "testing"))]
        panic_at,
    } = cfg;
    let (lo, hi) = session.heap().address_range();
    let (queues, locals) = queue::make(workers, from.len(), span_order);
    let shared = Shared {
        session,
        range: HeapRange::new(lo, hi),
        kernel,
        algorithm,
        roots: from.to_vec(),
        queues,
        term: Termination::new(),
        dense_min: dense_min(kernel),
        in_place,
        prefetch,
        exclusive: workers == 1,
        abort: AtomicBool::new(false),
        #[cfg(any(test, feature = "testing"))]
        panic_at,
    };
    let panic = Mutex::new(None::<String>);
    let mut per_worker = vec![WorkerStats::default(); workers];
    let work = |id: usize, local, out: &mut WorkerStats| {
        // AssertUnwindSafe: after a panic nothing of this worker is used again; the shared
        // queues may hold half-done work, but the mark is abandoned (abort) and its session
        // dropped unfinished, so no result of it is trusted.
        match catch_unwind(AssertUnwindSafe(|| Ctx::new(&shared, local, id).run())) {
            Ok(stats) => *out = stats,
            Err(payload) => {
                shared.abort.store(true, Ordering::Relaxed);
                let mut first = panic.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| panic_message(payload.as_ref()));
            }
        }
    };
    match pool {
        Some(pool) => pool.scope(|s| {
            for ((id, local), out) in locals.into_iter().enumerate().zip(per_worker.iter_mut()) {
                let work = &work;
                s.spawn(move |_| work(id, local, out));
            }
        }),
        None => {
            for ((id, local), out) in locals.into_iter().enumerate().zip(per_worker.iter_mut()) {
                work(id, local, out);
            }
        }
    }
    match panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(message) => Err(Error::MarkPanicked { message }),
        None => Ok(per_worker),
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}
