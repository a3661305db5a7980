//! When is marking over? The idle/termination protocol of the workers.
//!
//! # States
//! A worker is **active** while it holds or may produce work, and **idle** once it has found
//! nothing anywhere. One shared counter, `active`, counts the active workers. It starts at 0, and
//! each worker **enters** (`active += 1`) when it starts running, before it looks at any queue.
//!
//! # Protocol
//! 1. An active worker looks for work in order: its own private buffers and deques (objects
//!    first, then spans), the root injector, then a steal from the others. Only active workers
//!    push work, and only into their own buffers and deques; part of a buffer moves to the
//!    stealable deque when some worker is idle (`has_idle`).
//! 2. Finding nothing, it **goes idle**: `active -= 1` (SeqCst).
//! 3. An idle worker loops: if `active == 0`, marking is over and it returns. Otherwise, if
//!    some queue looks non-empty, it **wakes**: `active += 1` *before* trying to steal; if the
//!    steal fails it goes idle again (`active -= 1`). Between looks it backs off (spin, then
//!    yield, so 16 workers on 2 cores do not starve the one with work).
//!
//! # Why no work is lost and no worker hangs
//! - *Invariant:* a worker that is idle or has not entered yet owns no work, and no one pushes
//!   onto an idle worker's buffers or deques (only the owner pushes, and it is idle). A worker
//!   decrements `active` only after it saw its own buffers and deques empty, and a steal only removes items. So whenever `active == 0`, every
//!   deque is empty, the injector (filled before any worker starts and never again) is empty,
//!   and no worker holds an item that could produce more.
//! - *Nothing is missed:* a worker that wakes increments `active` before stealing, so an item it
//!   steals is always held by a counted worker; a span pushed by the last active worker is on
//!   that worker's deque, which it pops itself before it can go idle.
//! - *It ends:* once `active == 0` no work exists, so a waking worker finds nothing and goes
//!   back to idle; every idle worker then reads `active == 0` and returns. Counting workers
//!   rather than waiting for each one means a worker that rayon starts late (a pool with fewer
//!   threads than workers) simply finds nothing and returns: no one waits for it.
//! - All counter operations are SeqCst read-modify-writes or loads, and crossbeam-deque's push
//!   and steal synchronise the items themselves. Why `SeqCst`: a waking worker does
//!   *increment `active`, then steal*, and an idle worker deciding "done" does *load
//!   `active`*; `SeqCst` puts every counter operation in one total order, so a worker that
//!   reads `active == 0` saw every increment made before a steal, and "all idle" means no
//!   worker holds work. Weaker orders would not lose objects (a worker drains its own queues
//!   before it goes idle, so one that left early would only leave the rest of the work to the
//!   stealer), but they would make the counter's meaning approximate for no gain: it is touched
//!   only on idle transitions, never per object. `has_idle` is a `Relaxed` hint: a stale answer
//!   only delays or hastens publishing. The loom model (`termination/loom_tests.rs`)
//!   checks the protocol on this code.

use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the idle protocol needs of a worker: its own find-work and execute steps, a look at
/// the shared queues, and whether the mark was abandoned.
pub(crate) trait Worker {
    /// A unit of work.
    type Task;
    /// Takes work: own buffers and deques, the injector, a steal (None: found nothing).
    fn find_work(&mut self) -> Option<Self::Task>;
    /// Does it (may push new work onto this worker's own queues).
    fn execute(&mut self, task: Self::Task);
    /// Whether any shared queue looks non-empty (a hint).
    fn any_work(&self) -> bool;
    /// Whether a worker panicked: stop at once.
    fn aborted(&self) -> bool;
}

/// Runs worker `w` under the protocol of the module docs until marking is over (or
/// abandoned); returns the time it spent idle.
pub(crate) fn run<W: Worker>(term: &Termination, w: &mut W) -> Duration {
    term.enter();
    let mut idle = Duration::ZERO;
    loop {
        while let Some(task) = w.find_work() {
            w.execute(task);
        }
        let idle_from = Instant::now();
        term.go_idle();
        let backoff = Backoff::new();
        let found = loop {
            // A worker that panicked never goes idle, so `is_done` would never come: `abort`
            // ends the wait instead.
            if term.is_done() || w.aborted() {
                break None;
            }
            if w.any_work() {
                term.wake();
                if let Some(task) = w.find_work() {
                    break Some(task);
                }
                term.go_idle();
            }
            snooze(&backoff);
        };
        idle += idle_from.elapsed();
        match found {
            Some(task) => w.execute(task),
            None => return idle,
        }
    }
}

/// Backs off between looks: spin, then yield (crossbeam's `Backoff`), so 16 workers on 2 cores
/// do not starve the one with work; under loom, a yield the model checker sees.
#[inline]
fn snooze(backoff: &Backoff) {
    #[cfg(loom)]
    {
        let _ = backoff;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    backoff.snooze();
}

/// The shared active-worker counter (see the module docs).
#[derive(Debug)]
pub(crate) struct Termination {
    active: AtomicUsize,
    entered: AtomicUsize,
}

impl Termination {
    /// A counter with no worker entered yet.
    pub(crate) fn new() -> Self {
        Termination {
            active: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
        }
    }

    /// A worker starts: it is active.
    pub(crate) fn enter(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether some entered worker is idle (and would take work that is shared). A hint, read
    /// when a worker's private buffer grows, to decide whether to publish part of it.
    #[inline]
    pub(crate) fn has_idle(&self) -> bool {
        self.active.load(Ordering::Relaxed) < self.entered.load(Ordering::Relaxed)
    }

    /// The calling worker found nothing: it is idle now.
    pub(crate) fn go_idle(&self) {
        let prev = self.active.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(prev > 0, "more workers went idle than were active");
    }

    /// The calling idle worker saw work and will try to take it: it is active again.
    pub(crate) fn wake(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether every worker is idle, which means marking is over.
    pub(crate) fn is_done(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
