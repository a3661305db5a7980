//! What every worker of one transitive closure shares: the mark session, the filter, the
//! kernel, the roots, the queues, the termination counter and the abort flag.

use std::sync::atomic::{AtomicBool, Ordering};

use sencha_spans::protocol::MarkSession;

use super::Algorithm;
use crate::kernel::{HeapRange, Kernel};
use crate::queue::SharedQueues;
use crate::termination::Termination;

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
