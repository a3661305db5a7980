//! The markers: the Green Tea span marker and the classic baseline run on the same workers
//! ([`crate::worker`]); the reference oracle is [`reference`].

pub mod reference;

use std::time::Instant;

use rayon::ThreadPool;
use sencha_spans::Heap;

use crate::kernel::{HeapRange, Kernel};
use crate::marker::Algorithm;
use crate::queue;
use crate::stats::{MarkStats, WorkerStats};
use crate::termination::Termination;
use crate::worker::{Ctx, Shared, dense_min};

/// How one mark runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) kernel: Kernel,
    pub(crate) algorithm: Algorithm,
    pub(crate) in_place: bool,
    pub(crate) prefetch: bool,
}

/// Runs one parallel mark of `heap` from `roots` (validated object addresses).
/// Without a pool, the one worker runs on the calling thread.
pub(crate) fn run(
    heap: &Heap,
    roots: &[usize],
    pool: Option<&ThreadPool>,
    cfg: Config,
) -> MarkStats {
    let Config {
        workers,
        kernel,
        algorithm,
        in_place,
        prefetch,
    } = cfg;
    let start = Instant::now();
    let (lo, hi) = heap.address_range();
    let (queues, locals) = queue::make(workers, roots.len());
    let shared = Shared {
        heap,
        range: HeapRange::new(lo, hi),
        kernel,
        algorithm,
        roots,
        queues,
        term: Termination::new(),
        dense_min: dense_min(kernel),
        in_place,
        prefetch,
    };
    let mut per_worker = vec![WorkerStats::default(); workers];
    match pool {
        Some(pool) => pool.scope(|s| {
            for ((id, local), out) in locals.into_iter().enumerate().zip(per_worker.iter_mut()) {
                let shared = &shared;
                s.spawn(move |_| *out = Ctx::new(shared, local, id).run());
            }
        }),
        None => {
            for ((id, local), out) in locals.into_iter().enumerate().zip(per_worker.iter_mut()) {
                *out = Ctx::new(&shared, local, id).run();
            }
        }
    }
    let kernel_name = match algorithm {
        Algorithm::GreenTea => kernel.name(),
        Algorithm::Baseline => "-",
    };
    MarkStats::from_workers(algorithm.name(), kernel_name, &per_worker, start.elapsed())
}
