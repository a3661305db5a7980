//! The reference marker: single-threaded breadth-first marking with obvious code. The oracle
//! that every other marker and kernel tier is compared against.
//!
//! It shares only the heap's own queries with the other markers (`Heap::resolve`, the mark
//! bits, `Span::object_ptr_bits`, `read_word`), each tested on its own. It applies no address
//! filter: every non-null pointer word is resolved, and anything outside the heap resolves to
//! "not in heap". No span queues, no kernels, no ownership protocol.

use std::collections::VecDeque;
use std::time::Instant;

use sencha_spans::{Heap, LargeObject, Resolved, SmallObject};

use crate::error::Error;
use crate::marker::Roots;
use crate::stats::{MarkStats, WorkerStats};

enum Grey<'h> {
    Small(SmallObject<'h>),
    Large(&'h LargeObject),
}

/// Marks every object reachable from `roots`, one object at a time, breadth first.
///
/// The heap must have no marks (new, swept, or [`Heap::clear_marks`]).
///
/// # Errors
/// An invalid precise root, as [`Marker::mark`](crate::Marker::mark).
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
    let mut stats = WorkerStats::default();
    let mut queue = VecDeque::new();
    for &r in &roots {
        visit(heap, r, &mut queue, &mut stats);
    }
    while let Some(g) = queue.pop_front() {
        match g {
            Grey::Small(o) => {
                stats.objects_scanned += 1;
                let words = o.class.words();
                for k in 0..words {
                    if o.span.object_ptr_bits(o.index) >> k & 1 == 1 {
                        let v = o.span.read_word(o.index * words + k);
                        if v != 0 {
                            stats.pointers += 1;
                            visit(heap, v, &mut queue, &mut stats);
                        }
                    }
                }
            }
            Grey::Large(l) => {
                stats.large_chunks += 1;
                for w in 0..l.layout().words() {
                    if l.layout().is_pointer_word(w) {
                        let v = l.read_word(w);
                        if v != 0 {
                            stats.pointers += 1;
                            visit(heap, v, &mut queue, &mut stats);
                        }
                    }
                }
            }
        }
    }
    stats.busy = start.elapsed();
    Ok(MarkStats::from_workers(
        "reference",
        "-",
        &[stats],
        start.elapsed(),
    ))
}

fn visit<'h>(heap: &'h Heap, p: usize, queue: &mut VecDeque<Grey<'h>>, stats: &mut WorkerStats) {
    match heap.resolve(p) {
        Resolved::NotInHeap => {}
        Resolved::Small(o) => {
            if o.span.try_mark(o.index) {
                stats.objects += 1;
                stats.bytes += o.class.bytes();
                if !o.noscan {
                    queue.push_back(Grey::Small(o));
                }
            }
        }
        Resolved::Large(l) => {
            if l.try_mark() {
                stats.objects += 1;
                stats.large_objects += 1;
                stats.bytes += l.bytes();
                queue.push_back(Grey::Large(l));
            }
        }
    }
}
