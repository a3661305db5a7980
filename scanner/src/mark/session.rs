//! The one place the `sencha` crate opens a mark session: the `unsafe` door of
//! `sencha_spans::protocol` through which the markers change mark state.
//!
//! A fence of its own (STYLE 2.4) because its `SAFETY` argument is about the markers as a
//! whole, not about memory: the caller must be a complete marker.

use sencha_spans::Heap;
use sencha_spans::protocol::MarkSession;

use crate::error::Error;

/// Opens a mark of `heap` for [`crate::mark::run`].
pub(super) fn open(heap: &Heap) -> Result<MarkSession<'_>, Error> {
    // SAFETY: the only caller, mark::run, runs the Green Tea or the baseline marker to
    // completion before finishing the session: every object they mark is scanned (the
    // protocol of DESIGN §5, argued in termination.rs and model-checked by the loom tests;
    // every marker and variant is compared with the reference oracle on random heaps at 1-16
    // workers), the pinned objects are among the roots, and no MarkSpan escapes the workers,
    // which all return before the session ends. A mark that panics drops the session
    // unfinished, which leaves the heap Aborted (no sweep), not falsely Marked.
    unsafe { heap.begin_mark_unchecked() }.map_err(Error::Heap)
}
