//! The reference marker: single-threaded breadth-first marking with obvious code. The oracle
//! that every other marker and kernel tier is compared against.
//!
//! The marking loop itself is [`Heap::mark_reachable`] in `sencha-spans`, beside the protocol
//! it uses: it shares only the heap's own queries with the other markers (`Heap::resolve`,
//! the mark bits, `Span::object_ptr_bits`, `read_word`), each tested on its own. It applies no
//! address filter: every non-null pointer word is resolved, and anything outside the heap
//! resolves to "not in heap". No span queues, no kernels, no ownership protocol.

use std::time::Instant;

use sencha_spans::Heap;

use crate::error::Error;
use crate::roots::Roots;
use crate::stats::{MarkStats, WorkerStats};

/// Marks every object reachable from `roots` and from the pinned objects, one object at a
/// time, breadth first ([`Heap::mark_reachable`]).
///
/// Marks of an earlier mark are cleared first, as by [`Marker::mark`](crate::Marker::mark).
///
/// # Errors
/// An invalid precise root, as [`Marker::mark`](crate::Marker::mark); a mark of the heap
/// already running.
///
/// # Examples
/// ```
/// use sencha::{Heap, Layout, Roots, reference};
/// let mut heap = Heap::new();
/// let cell = Layout::all_pointers(16).unwrap();
/// let (a, b) = (heap.alloc(&cell).unwrap(), heap.alloc(&cell).unwrap());
/// heap.write_word(a, 1, b).unwrap();
/// let stats = reference::mark(&heap, &Roots::precise([a])).unwrap();
/// assert_eq!(stats.objects_marked, 2);
/// ```
pub fn mark(heap: &Heap, roots: &Roots) -> Result<MarkStats, Error> {
    let start = Instant::now();
    let roots = roots.resolve(heap)?;
    let counts = heap.mark_reachable(&roots)?;
    let busy = WorkerStats {
        objects_scanned: counts.small_scanned,
        large_chunks: counts.large_scanned,
        pointers: counts.pointers,
        busy: start.elapsed(),
        ..WorkerStats::default()
    };
    let mut stats = MarkStats::from_workers(
        "reference",
        "-",
        &[busy],
        heap.marked_totals(),
        start.elapsed(),
    );
    stats.weak_cleared = counts.outcome.weak_cleared;
    stats.ephemeron_rounds = counts.outcome.ephemeron_rounds;
    stats.finalizable = counts.outcome.finalizable;
    Ok(stats)
}
