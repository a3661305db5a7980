//! The public marker: [`Marker`] and its [`MarkerBuilder`] ([`Roots`] live in `crate::roots`).

use std::sync::Arc;

use rayon::{ThreadPool, ThreadPoolBuilder};
use sencha_spans::Heap;

use crate::error::Error;
use crate::kernel::{Kernel, KernelChoice};
use crate::mark::{Algorithm, SpanOrder};
use crate::roots::Roots;
use crate::stats::MarkStats;

/// Builds a [`Marker`].
///
/// # Examples
/// ```
/// use sencha::{Algorithm, KernelChoice, Marker};
/// let marker = Marker::builder()
///     .workers(2)
///     .kernel(KernelChoice::Scalar)
///     .algorithm(Algorithm::GreenTea)
///     .build()
///     .unwrap();
/// assert_eq!(marker.kernel().name(), "scalar");
/// assert!(Marker::builder().workers(0).build().is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MarkerBuilder {
    workers: Option<usize>,
    pool: Option<Arc<ThreadPool>>,
    kernel: KernelChoice,
    algorithm: Algorithm,
    no_in_place: bool,
    no_prefetch: bool,
    span_order: SpanOrder,
    #[cfg(any(test, feature = "testing"))]
    panic_at: Option<u64>,
}

impl MarkerBuilder {
    /// Whether the Green Tea marker scans objects it finds in the span it is scanning right
    /// away, instead of queueing that span again (default: on; DESIGN §5.5). Off gives the
    /// plain Green Tea protocol, for measuring what this buys.
    pub fn in_place_scanning(mut self, on: bool) -> Self {
        self.no_in_place = !on;
        self
    }

    /// Whether the Green Tea marker prefetches the mark lines of the pointers a dense span
    /// scan gathered before marking them (default: on; DESIGN §5.4). Off, for measuring.
    pub fn prefetch(mut self, on: bool) -> Self {
        self.no_prefetch = !on;
        self
    }

    /// The order in which a Green Tea worker takes the spans it queued (default:
    /// [`SpanOrder::Adaptive`]; DESIGN §5.7). The fixed orders are for measuring.
    pub fn span_order(mut self, order: SpanOrder) -> Self {
        self.span_order = order;
        self
    }

    /// Unstable, tests only (`testing` feature): worker 0 panics when it takes its `task`-th
    /// task, to test that a mark always ends.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn inject_panic_at(mut self, task: u64) -> Self {
        self.panic_at = Some(task);
        self
    }

    /// How many workers mark (default: the pool's thread count, else the machine's cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Run on the caller's rayon pool instead of building one. Workers beyond the pool's
    /// threads simply start late; marking never waits for them. Without a pool, a marker of
    /// one worker runs on the calling thread.
    pub fn thread_pool(mut self, pool: Arc<ThreadPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Which span-kernel tier to use (default [`KernelChoice::Auto`]).
    pub fn kernel(mut self, choice: KernelChoice) -> Self {
        self.kernel = choice;
        self
    }

    /// Which marker runs (default [`Algorithm::GreenTea`]).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Detects the kernel tier and builds the thread pool if none was given.
    ///
    /// # Errors
    /// [`Error::InvalidWorkers`], [`Error::KernelUnavailable`], [`Error::InvalidKernelName`]
    /// (from `SENCHA_KERNEL`), [`Error::ThreadPool`].
    pub fn build(self) -> Result<Marker, Error> {
        let kernel = Kernel::from_choice(self.kernel)?;
        let workers = match (self.workers, &self.pool) {
            (Some(n), _) => n,
            (None, Some(p)) => p.current_num_threads(),
            (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers == 0 || workers > crate::MAX_WORKERS {
            return Err(Error::InvalidWorkers { workers });
        }
        let pool = match self.pool {
            Some(p) => Some(p),
            // One worker runs on the calling thread: no pool, no hand-off.
            None if workers == 1 => None,
            None => Some(Arc::new(
                ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("sencha-mark-{i}"))
                    .build()
                    .map_err(|e| Error::ThreadPool {
                        message: e.to_string(),
                    })?,
            )),
        };
        Ok(Marker {
            workers,
            pool,
            kernel,
            algorithm: self.algorithm,
            in_place: !self.no_in_place,
            prefetch: !self.no_prefetch,
            span_order: self.span_order,
            #[cfg(any(test, feature = "testing"))]
            panic_at: self.panic_at,
        })
    }
}

/// A parallel marker: a worker count, a thread pool, a kernel tier and an algorithm.
///
/// # Examples
/// ```
/// use sencha::{Heap, Layout, Marker, Roots};
/// let mut heap = Heap::new();
/// let node = Layout::with_pointers(32, 0b11).unwrap();
/// let root = heap.alloc(&node).unwrap();
/// let child = heap.alloc(&node).unwrap();
/// let garbage = heap.alloc(&node).unwrap();
/// heap.write_word(root, 0, child).unwrap();
///
/// let marker = Marker::builder().workers(2).build().unwrap();
/// let stats = marker.mark(&heap, &Roots::precise([root])).unwrap();
/// assert_eq!(stats.objects_marked, 2);
/// assert!(!heap.is_marked(garbage).unwrap());
/// assert_eq!(heap.sweep().unwrap().freed_objects, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Marker {
    workers: usize,
    /// None: one worker, run on the calling thread.
    pool: Option<Arc<ThreadPool>>,
    kernel: Kernel,
    algorithm: Algorithm,
    in_place: bool,
    prefetch: bool,
    span_order: SpanOrder,
    #[cfg(any(test, feature = "testing"))]
    panic_at: Option<u64>,
}

impl Marker {
    /// A builder with the defaults.
    pub fn builder() -> MarkerBuilder {
        MarkerBuilder::default()
    }

    /// The kernel tier this marker runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// How many workers it runs.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Which algorithm it runs.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Marks every object reachable from `roots` and from the heap's pinned objects
    /// ([`Heap::pin`]).
    ///
    /// Marks of an earlier mark are cleared first. Afterwards exactly the reachable objects
    /// are marked, the heap is [`MarkState::Marked`](crate::spans::MarkState) (objects
    /// allocated from then on are allocated marked), and [`Heap::sweep`] frees the rest. No
    /// mutator may write to the heap while it runs (the `&Heap` borrow keeps the heap's own
    /// API from doing so; a custom allocator's writes are ruled out by its
    /// [`OwnedMemory`](crate::OwnedMemory) contract).
    ///
    /// Pointer words are trusted to hold null or heap addresses, but any other value is safe:
    /// it resolves to "not in the heap" and is ignored, or to some object, which is then kept
    /// alive (as a conservative collector would).
    ///
    /// # Errors
    /// - [`Error::InvalidRoot`] for a precise root that is not null and not an allocated
    ///   object's first byte: nothing is marked and the heap is unchanged.
    /// - [`Error::Heap`] with [`MarkInProgress`](crate::spans::Error::MarkInProgress) if
    ///   another thread is marking the same heap.
    /// - [`Error::MarkPanicked`] if a worker panicked: the mark always ends, the heap is left
    ///   [`Aborted`](crate::spans::MarkState) (a sweep is refused until a mark completes).
    pub fn mark(&self, heap: &Heap, roots: &Roots) -> Result<MarkStats, Error> {
        let roots = roots.resolve(heap)?;
        let cfg = crate::mark::Config {
            workers: self.workers,
            kernel: self.kernel,
            algorithm: self.algorithm,
            in_place: self.in_place,
            prefetch: self.prefetch,
            span_order: self.span_order,
            #[cfg(any(test, feature = "testing"))]
            panic_at: self.panic_at,
        };
        crate::mark::run(heap, &roots, self.pool.as_deref(), cfg)
    }
}
