//! The protocol steps on a span's mark line and scan line (DESIGN §5), written once over any
//! atomic 64-bit word, so that the real code runs both on span memory ([`crate::span`]) and
//! under the loom model checker (`cargo test` with `--cfg loom`, see `loom_tests` below).
//!
//! # Orderings, and why each `SeqCst` is needed
//! Discovery does *mark, then acquire*: set the object's marked bit (a `fetch_or` on its mark
//! word), then read word 7 to take the span (`Unowned -> One`, or `One -> Many`) — and when
//! word 7 already says `Many`, `acquire` returns after that one **load**, writing nothing. The
//! owner does *release, then read marks*: clear the owner bits of word 7 (`fetch_and`), then
//! load the mark words (`take_grey`). Each side writes one word and then reads the word the
//! other writes: the store-buffering shape. With anything weaker than `SeqCst` on all four
//! (the mark `fetch_or`, the word-7 load and CAS of `acquire`, the `fetch_and` of `release`,
//! the mark loads of `marked_bits`), both loads may return the old values: the discoverer
//! sees `Many` and leaves, the owner, having released, does not see the new mark, and the
//! object stays grey forever — lost. (When `acquire` does write word 7, its CAS and the
//! owner's `fetch_and` are ordered by word 7's modification order and a release/acquire pair
//! would do; the read-only `Many` exit is what needs `SeqCst`, which forbids store buffering
//! where acquire/release does not.) The loom tests in `line/loom_tests.rs` check these
//! interleavings on this code.
//!
//! **Loom and `SeqCst`.** Loom models `SeqCst` *accesses* as acquire/release (a documented
//! limitation: it reports false alarms for algorithms that rely on them) but models `SeqCst`
//! *fences* exactly. Run as written, the loom tests report exactly the store-buffering loss
//! described above — the interleaving that real `SeqCst` accesses forbid. So under
//! `cfg(loom)` only, [`sc_point`] puts a `SeqCst` fence between each side's write and read,
//! which forbids the same outcome in loom's model; in real builds it is empty, and the
//! ordering comes from the `SeqCst` accesses themselves (on x86-64 every locked RMW is also a
//! full fence). What loom then checks is the protocol's logic — who queues, who scans, that
//! nothing is scanned twice or left grey — not the choice of access orderings, which rests on
//! the argument above.
//!
//! The scanned bits need only `Relaxed` RMWs: claiming a scan is a `fetch_or` whose result
//! alone decides who scans (each bit is set once per cycle), and the object words a scan then
//! reads were written before the mark started (the mark's thread spawn synchronises them).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::span::{LAST_WORD_MARK_MASK, LINE_WORDS, MANY, OWNED, Owner};

/// The atomic operations the protocol uses on one 64-bit word.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, v: u64, order: Ordering);
    fn fetch_or(&self, v: u64, order: Ordering) -> u64;
    fn fetch_and(&self, v: u64, order: Ordering) -> u64;
    fn compare_exchange_weak(
        &self,
        cur: u64,
        new: u64,
        ok: Ordering,
        err: Ordering,
    ) -> Result<u64, u64>;
}

impl Word for AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, v: u64, order: Ordering) {
        AtomicU64::store(self, v, order)
    }
    #[inline(always)]
    fn fetch_or(&self, v: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_or(self, v, order)
    }
    #[inline(always)]
    fn fetch_and(&self, v: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_and(self, v, order)
    }
    #[inline(always)]
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

/// Under loom, a `SeqCst` fence standing in for the `SeqCst` accesses loom cannot model (see
/// the module docs); nothing otherwise.
#[inline(always)]
fn sc_point() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// `word |= v`, returning the old value: one atomic RMW, or — when `exclusive`, i.e. the
/// caller is the only thread touching this span's lines (a mark with one worker) — a plain
/// load and store, which on x86-64 saves the locked instruction (the dominant cost of a new
/// mark on a chain). Both are data-race free (atomics throughout).
#[inline(always)]
fn or<W: Word>(word: &W, v: u64, exclusive: bool, order: Ordering) -> u64 {
    if exclusive {
        let old = word.load(Ordering::Relaxed);
        word.store(old | v, Ordering::Relaxed);
        old
    } else {
        word.fetch_or(v, order)
    }
}

/// Sets object `index`'s marked bit in `mark`; true if this call set it. The already-marked
/// case is a plain load, no write (DESIGN §5 step 2). `SeqCst`: see the module docs.
#[inline(always)]
pub(crate) fn try_mark<W: Word>(mark: &[W; LINE_WORDS], index: usize, exclusive: bool) -> bool {
    let word = &mark[index / 64];
    let bit = 1u64 << (index % 64);
    if word.load(Ordering::Relaxed) & bit != 0 {
        return false;
    }
    or(word, bit, exclusive, Ordering::SeqCst) & bit == 0
}

/// After a new mark: `Unowned -> One` (true: the caller queues the span) or `One -> Many`
/// (false: the queued scan will see the new mark), decided by one compare-and-swap on word 7.
#[inline(always)]
pub(crate) fn acquire<W: Word>(mark: &[W; LINE_WORDS], exclusive: bool) -> bool {
    sc_point(); // between the mark just set and the owner-state load
    let word = &mark[7];
    let mut cur = word.load(Ordering::SeqCst);
    if exclusive {
        let owned = cur & OWNED != 0;
        word.store(cur | if owned { MANY } else { OWNED }, Ordering::Relaxed);
        return !owned;
    }
    loop {
        let new = if cur & OWNED == 0 {
            cur | OWNED
        } else if cur & MANY == 0 {
            cur | MANY
        } else {
            return false;
        };
        match word.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return cur & OWNED == 0,
            Err(now) => cur = now,
        }
    }
}

/// On taking the span from a queue: clear the owner bits and say what they were.
#[inline(always)]
pub(crate) fn release<W: Word>(mark: &[W; LINE_WORDS]) -> Owner {
    let old = mark[7].fetch_and(!(OWNED | MANY), Ordering::SeqCst);
    owner_of(old)
}

/// The owner state word 7 `w` encodes.
#[inline(always)]
pub(crate) fn owner_of(w: u64) -> Owner {
    match (w & OWNED != 0, w & MANY != 0) {
        (false, _) => Owner::Unowned,
        (true, false) => Owner::One,
        (true, true) => Owner::Many,
    }
}

/// The marked bits (class and owner bits removed). `SeqCst` loads: see the module docs.
#[inline(always)]
pub(crate) fn marked_bits<W: Word>(mark: &[W; LINE_WORDS]) -> [u64; LINE_WORDS] {
    sc_point(); // between the owner's release and its mark loads
    let mut m = [0u64; LINE_WORDS];
    for (w, a) in m.iter_mut().zip(mark) {
        *w = a.load(Ordering::SeqCst);
    }
    m[7] &= LAST_WORD_MARK_MASK;
    m
}

/// Takes the grey objects, `marked & !scanned`, setting `scanned |= grey`: each object is
/// returned by exactly one call per cycle.
#[inline(always)]
pub(crate) fn take_grey<W: Word>(
    mark: &[W; LINE_WORDS],
    scan: &[W; LINE_WORDS],
    exclusive: bool,
) -> [u64; LINE_WORDS] {
    let marked = marked_bits(mark);
    let mut grey = [0u64; LINE_WORDS];
    for i in 0..LINE_WORDS {
        if marked[i] != 0 {
            let old = scan[i].load(Ordering::Relaxed);
            if marked[i] & !old != 0 {
                grey[i] = marked[i] & !or(&scan[i], marked[i], exclusive, Ordering::Relaxed);
            }
        }
    }
    grey
}

/// Sets the scanned bits `mask` of scan-line word `i`; returns the ones this call set.
#[inline(always)]
pub(crate) fn claim_scan<W: Word>(
    scan: &[W; LINE_WORDS],
    i: usize,
    mask: u64,
    exclusive: bool,
) -> u64 {
    mask & !or(&scan[i], mask, exclusive, Ordering::Relaxed)
}

/// Sets object `index`'s scanned bit; true if this call set it.
#[inline(always)]
pub(crate) fn try_scan<W: Word>(scan: &[W; LINE_WORDS], index: usize, exclusive: bool) -> bool {
    let bit = 1u64 << (index % 64);
    or(&scan[index / 64], bit, exclusive, Ordering::Relaxed) & bit == 0
}

#[cfg(all(test, loom))]
mod loom_tests;
