//! What a mark did: [`MarkStats`].

use std::fmt;
use std::time::Duration;

use sencha_spans::MarkedTotals;

/// Counters of one worker, summed into [`MarkStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WorkerStats {
    pub(crate) spans_dense: usize,
    pub(crate) spans_sparse: usize,
    pub(crate) spans_single: usize,
    pub(crate) objects_scanned: usize,
    pub(crate) large_chunks: usize,
    pub(crate) pointers: usize,
    pub(crate) steals: usize,
    pub(crate) busy: Duration,
}

impl WorkerStats {
    pub(crate) fn add(&mut self, o: &WorkerStats) {
        self.spans_dense += o.spans_dense;
        self.spans_sparse += o.spans_sparse;
        self.spans_single += o.spans_single;
        self.objects_scanned += o.objects_scanned;
        self.large_chunks += o.large_chunks;
        self.pointers += o.pointers;
        self.steals += o.steals;
        self.busy += o.busy;
    }
}

/// What one mark did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MarkStats {
    /// Which marker ran: `"green-tea"`, `"baseline"` or `"reference"`.
    pub algorithm: &'static str,
    /// The kernel tier (`"scalar"`, `"avx512"`; `"-"` for markers without span kernels).
    pub kernel: &'static str,
    /// Workers that ran.
    pub workers: usize,
    /// Allocated objects marked (small and large): exactly the objects found live; marks
    /// that stale pointer words set on free slots are not counted.
    pub objects_marked: usize,
    /// Bytes of those objects (slot sizes of small objects, sizes of large objects).
    pub bytes_marked: usize,
    /// Of the objects marked, large ones.
    pub large_objects_marked: usize,
    /// Span scans through the kernel (many grey objects at once).
    pub spans_dense: usize,
    /// Span scans object by object (few grey objects).
    pub spans_sparse: usize,
    /// Span scans of the single object that queued the span (owner state `One`).
    pub spans_single: usize,
    /// Small objects whose pointers were visited one object at a time (sparse, single and
    /// baseline scans; dense scans are not counted here).
    pub objects_scanned: usize,
    /// Chunks of large objects scanned.
    pub large_chunks: usize,
    /// Pointer values visited (non-null, inside the heap's address range).
    pub pointers_visited: usize,
    /// Successful steals of work from another worker.
    pub steals: usize,
    /// Busy (not idle) time of each worker.
    pub busy: Vec<Duration>,
    /// Wall-clock time of the mark.
    pub wall: Duration,
    /// Weak words, weak references and ephemerons cleared because their target died.
    pub weak_cleared: usize,
    /// Rounds of the ephemeron fixpoint that traced new values.
    pub ephemeron_rounds: usize,
    /// Objects with a finalizer that this mark found unreachable, in address order: kept
    /// alive one more cycle with everything they reach, their registrations ended, weak
    /// references to them cleared. The runtime runs their finalizers
    /// ([`Heap::register_finalizer`](crate::Heap::register_finalizer)).
    pub finalizable: Vec<usize>,
}

impl MarkStats {
    pub(crate) fn from_workers(
        algorithm: &'static str,
        kernel: &'static str,
        per_worker: &[WorkerStats],
        totals: MarkedTotals,
        wall: Duration,
    ) -> Self {
        let mut t = WorkerStats::default();
        for w in per_worker {
            t.add(w);
        }
        MarkStats {
            algorithm,
            kernel,
            workers: per_worker.len(),
            objects_marked: totals.objects,
            bytes_marked: totals.bytes,
            large_objects_marked: totals.large_objects,
            spans_dense: t.spans_dense,
            spans_sparse: t.spans_sparse,
            spans_single: t.spans_single,
            objects_scanned: t.objects_scanned,
            large_chunks: t.large_chunks,
            pointers_visited: t.pointers,
            steals: t.steals,
            busy: per_worker.iter().map(|w| w.busy).collect(),
            wall,
            weak_cleared: 0,
            ephemeron_rounds: 0,
            finalizable: Vec::new(),
        }
    }

    /// Marked MiB per second of wall time.
    pub fn mib_per_sec(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.bytes_marked as f64 / (1 << 20) as f64 / s
        } else {
            0.0
        }
    }
}

impl fmt::Display for MarkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({} kernel, {} worker{})",
            self.algorithm,
            self.kernel,
            self.workers,
            if self.workers == 1 { "" } else { "s" }
        )?;
        writeln!(
            f,
            "  marked    {:>12} objects  {:>10.1} MiB  ({} large)",
            self.objects_marked,
            self.bytes_marked as f64 / (1 << 20) as f64,
            self.large_objects_marked
        )?;
        writeln!(
            f,
            "  spans     {:>12} dense    {:>10} sparse  {:>10} single",
            self.spans_dense, self.spans_sparse, self.spans_single
        )?;
        writeln!(
            f,
            "  visited   {:>12} pointers {:>10} steals  {:>10} large chunks",
            self.pointers_visited, self.steals, self.large_chunks
        )?;
        if self.weak_cleared + self.ephemeron_rounds + self.finalizable.len() > 0 {
            writeln!(
                f,
                "  weak      {:>12} cleared  {:>10} ephemeron rounds  {:>4} finalizable",
                self.weak_cleared,
                self.ephemeron_rounds,
                self.finalizable.len()
            )?;
        }
        let busy: Vec<String> = self
            .busy
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .collect();
        write!(
            f,
            "  time      {:>12.2} ms wall, busy ms per worker [{}], {:.0} MiB/s",
            self.wall.as_secs_f64() * 1e3,
            busy.join(", "),
            self.mib_per_sec()
        )
    }
}
