//! Loom model checks of the span protocol steps in `line.rs`, on the real functions
//! instantiated with loom's atomics. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p sencha-spans --release --lib line::loom_tests`.
//!
//! Each test is one small scenario of the marking protocol: a span already queued (owned by a
//! queue entry) while discoverers mark objects in it and the queue's owner takes it. The
//! property every interleaving must keep is DESIGN §5's: **every marked object is either
//! scanned by the owner's scan or the span is queued again** — nothing is left grey with no
//! one responsible for it.

use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use std::sync::atomic::Ordering;

use super::{Word, acquire, claim_scan, release, take_grey, try_mark, try_scan};
use crate::span::{LINE_WORDS, OWNED, Owner};

impl Word for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    fn store(&self, v: u64, order: Ordering) {
        AtomicU64::store(self, v, order)
    }
    fn fetch_or(&self, v: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_or(self, v, order)
    }
    fn fetch_and(&self, v: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_and(self, v, order)
    }
    fn compare_exchange_weak(
        &self,
        cur: u64,
        new: u64,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, cur, new, ok, err)
    }
}

/// A span's mark and scan lines, as loom atomics.
struct Lines {
    mark: [AtomicU64; LINE_WORDS],
    scan: [AtomicU64; LINE_WORDS],
}

impl Lines {
    /// A span queued by the mark of `first` (owner `One`), nothing scanned.
    fn queued_by(first: usize) -> Arc<Self> {
        let lines = Lines {
            mark: std::array::from_fn(|_| AtomicU64::new(0)),
            scan: std::array::from_fn(|_| AtomicU64::new(0)),
        };
        assert!(try_mark(&lines.mark, first, false));
        assert!(acquire(&lines.mark, false));
        Arc::new(lines)
    }
}

/// What the owner of the queue entry does with it (the worker's `scan_span`, first part):
/// release, then scan the rider alone (`One`) or take every grey object (`Many`). Returns
/// the objects it took responsibility for.
fn owner_scan(l: &Lines, rider: usize) -> Vec<usize> {
    let mut took = Vec::new();
    match release(&l.mark) {
        Owner::One => {
            if try_scan(&l.scan, rider, false) {
                took.push(rider);
            }
        }
        Owner::Many | Owner::Unowned => {
            let grey = take_grey(&l.mark, &l.scan, false);
            for (w, g) in grey.iter().enumerate() {
                let mut g = *g;
                while g != 0 {
                    took.push(w * 64 + g.trailing_zeros() as usize);
                    g &= g - 1;
                }
            }
        }
    }
    took
}

/// A discoverer marks `index` (the worker's `discover`): true if it must queue the span again.
fn discover(l: &Lines, index: usize) -> bool {
    try_mark(&l.mark, index, false) && acquire(&l.mark, false)
}

/// After the threads ran: every marked object was taken by a scan, or a queue entry exists
/// whose later scan (run here, alone) takes it.
fn assert_nothing_lost(l: &Lines, mut taken: Vec<usize>, requeued: bool, marked: &[usize]) {
    if requeued {
        // The new queue entry's scan runs later; its rider is irrelevant when it finds Many,
        // and when it finds One the rider is the only object marked since it was queued.
        let rider = marked
            .iter()
            .copied()
            .find(|&i| !taken.contains(&i))
            .unwrap_or(marked[0]);
        taken.extend(owner_scan(l, rider));
    }
    for &i in marked {
        assert!(
            taken.contains(&i),
            "object {i} is marked but no scan took it (requeued: {requeued}, taken {taken:?})"
        );
    }
    let mut sorted = taken.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        taken.len(),
        "an object was scanned twice: {taken:?}"
    );
}

/// One discoverer marks object 1 while the owner of the entry queued by object 0 takes the
/// span: the store-buffering race of `line.rs`'s module docs.
#[test]
fn loom_mark_vs_release_loses_nothing() {
    loom::model(|| {
        let l = Lines::queued_by(0);
        let d = {
            let l = l.clone();
            thread::spawn(move || discover(&l, 1))
        };
        let taken = owner_scan(&l, 0);
        let requeued = d.join().unwrap();
        assert_nothing_lost(&l, taken, requeued, &[0, 1]);
    });
}

/// The span is already `Many` (a second mark raised it): a discoverer's `acquire` then only
/// loads word 7 and writes nothing — the read-only exit that needs `SeqCst`.
#[test]
fn loom_mark_into_many_span_loses_nothing() {
    loom::model(|| {
        let l = Lines::queued_by(0);
        assert!(try_mark(&l.mark, 64, false)); // object 64: another word of the mark line
        assert!(!acquire(&l.mark, false)); // raised to Many
        let d = {
            let l = l.clone();
            thread::spawn(move || discover(&l, 130))
        };
        let taken = owner_scan(&l, 0);
        let requeued = d.join().unwrap();
        assert_nothing_lost(&l, taken, requeued, &[0, 64, 130]);
    });
}

/// Two discoverers race each other and the owner; each object is scanned exactly once.
#[test]
fn loom_two_discoverers_and_owner_lose_nothing() {
    loom::model(|| {
        let l = Lines::queued_by(0);
        let spawn = |i| {
            let l = l.clone();
            thread::spawn(move || discover(&l, i))
        };
        let (a, b) = (spawn(5), spawn(300));
        let taken = owner_scan(&l, 0);
        let ra = a.join().unwrap();
        let rb = b.join().unwrap();
        assert!(!(ra && rb), "the span was queued twice at once");
        assert_nothing_lost(&l, taken, ra || rb, &[0, 5, 300]);
    });
}

/// In-place rounds (`worker.rs`, DESIGN §5.5) claim objects through the scanned bits while
/// another worker's dense scan of the same span takes its grey objects: each object goes to
/// exactly one of them.
#[test]
fn loom_round_claim_vs_take_grey_scans_once() {
    loom::model(|| {
        let l = Lines::queued_by(0);
        assert!(try_mark(&l.mark, 1, false));
        assert!(try_mark(&l.mark, 2, false));
        let other = {
            let l = l.clone();
            thread::spawn(move || take_grey(&l.mark, &l.scan, false))
        };
        // This worker marked 1 and 2 while scanning the span in place: it claims them.
        let mine = claim_scan(&l.scan, 0, 0b110, false);
        let theirs = other.join().unwrap()[0];
        assert_eq!(mine & theirs, 0, "an object was claimed twice");
        assert_eq!(
            (mine | theirs) & 0b110,
            0b110,
            "an object was claimed by no one"
        );
        assert_ne!(l.mark[7].load(Ordering::Relaxed) & OWNED, 0, "still queued");
    });
}
