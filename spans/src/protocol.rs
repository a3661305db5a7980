//! The marking protocol's side of the heap: the one door through which a marker sets marked,
//! scanned and owner bits. **Internal to sencha**: hidden from the docs, outside semver, and
//! reachable only through `unsafe` ([`Heap::begin_mark_unchecked`]).
//!
//! # Why a door, and why `unsafe`
//! The protocol steps (DESIGN §5) are individually harmless atomic operations, but a caller
//! that takes a span's grey objects without scanning them, marks an object without tracing its
//! children, or releases a span it does not own makes the next sweep free live objects — memory
//! corruption in the runtime that trusted sencha. So none of them is safe, public API: the
//! read-only views ([`Span`], [`Heap::resolve`], [`Heap::is_marked`]) are public; the steps
//! that change mark state are methods of [`MarkSpan`] and [`MarkLarge`], which exist only
//! inside a [`MarkSession`], which only the `unsafe` [`Heap::begin_mark_unchecked`] opens. The
//! `sencha` crate's markers are its callers (one call, in `sencha::mark::session`).
//!
//! A session also keeps the heap's **mark state** (see [`MarkState`]) honest: opening one
//! clears the marks of an earlier mark, [`MarkSession::finish`] records a complete mark (what
//! [`Heap::sweep`] requires), and dropping an unfinished session (a failed or panicking mark)
//! leaves the heap marked as aborted, so a sweep refuses to run rather than free live objects.
//!
//! Two crates need this door because the heap (`sencha-spans`) and the marker (`sencha`) are
//! separate crates; a sealed trait or `pub(crate)` cannot span a crate boundary, and a
//! `#[doc(hidden)]` safe API would still be safe to call. DESIGN §2 records the choice.

use std::sync::atomic::Ordering;

use crate::class::SizeClass;
use crate::error::Error;
use crate::heap::{Heap, MarkState, Resolved};
use crate::large::LargeObject;
use crate::line;
use crate::span::{LINE_WORDS, Owner, Span};

/// An open mark of one heap (see the module docs). Dropping it without
/// [`MarkSession::finish`] leaves the heap in [`MarkState::Aborted`].
#[derive(Debug)]
pub struct MarkSession<'h> {
    heap: &'h Heap,
    finished: bool,
}

impl Heap {
    /// Opens a mark of this heap: clears the marks of any earlier mark and moves the heap to
    /// [`MarkState::Marking`].
    ///
    /// # Safety
    /// For sencha's markers only. The caller must
    /// - mark every object reachable from its roots and from every pinned object
    ///   ([`MarkSession::pinned`]), following the protocol of DESIGN §5 (every object whose
    ///   marked bit it sets is eventually scanned: each grey object taken by
    ///   [`MarkSpan::take_grey`], [`MarkSpan::claim_scan`] or [`MarkSpan::try_scan`] has its
    ///   pointers visited), before calling [`MarkSession::finish`];
    /// - not use a [`MarkSpan`] or [`MarkLarge`] after the session ends;
    /// - pass `exclusive = true` to [`MarkSpan`] steps only while it is the only thread
    ///   marking the heap.
    ///
    /// Breaking these cannot cause undefined behaviour inside sencha, but it makes the next
    /// [`Heap::sweep`] free live objects, which the runtime then uses.
    ///
    /// # Errors
    /// [`Error::MarkInProgress`] if a mark of this heap is already open.
    #[doc(hidden)]
    pub unsafe fn begin_mark_unchecked(&self) -> Result<MarkSession<'_>, Error> {
        let prev = self.enter_marking()?;
        if prev != MarkState::Clean {
            self.clear_marks_shared();
        }
        Ok(MarkSession {
            heap: self,
            finished: false,
        })
    }
}

impl<'h> MarkSession<'h> {
    /// The heap being marked.
    #[inline]
    pub fn heap(&self) -> &'h Heap {
        self.heap
    }

    /// The pinned objects: roots of every mark ([`Heap::pin`]).
    pub fn pinned(&self) -> impl Iterator<Item = usize> + '_ {
        self.heap.pins.keys().copied()
    }

    /// What `addr` points into, with the handles that may change mark state.
    #[inline]
    pub fn resolve(&self, addr: usize) -> Target<'h> {
        match self.heap.resolve(addr) {
            Resolved::NotInHeap => Target::NotInHeap,
            Resolved::Small(o) => Target::Small {
                span: MarkSpan(o.span),
                index: o.index,
                class: o.class,
                noscan: o.noscan,
            },
            Resolved::Large(l) => Target::Large(MarkLarge(l)),
        }
    }

    /// The marking handle of `span` (a span of this heap, as every [`Span<'h>`] is).
    #[inline]
    pub fn span(&self, span: Span<'h>) -> MarkSpan<'h> {
        MarkSpan(span)
    }

    /// Ends the mark as complete: the heap moves to [`MarkState::Marked`], so a sweep may run
    /// and new objects are allocated marked until then.
    pub fn finish(mut self) {
        self.finished = true;
        self.heap.set_mark_state(MarkState::Marked);
    }
}

impl Drop for MarkSession<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.heap.set_mark_state(MarkState::Aborted);
        }
    }
}

/// What an address resolves to during a mark.
#[derive(Clone, Copy, Debug)]
pub enum Target<'h> {
    /// Not an object of the heap.
    NotInHeap,
    /// Slot `index` of a small-object span.
    Small {
        /// The span.
        span: MarkSpan<'h>,
        /// The slot.
        index: usize,
        /// The span's class.
        class: SizeClass,
        /// Whether the span holds pointer-free objects.
        noscan: bool,
    },
    /// A large object, or a medium object (a slot of a medium span: it has the same record,
    /// and is marked and scanned the same way).
    Large(MarkLarge<'h>),
}

/// A span, with the protocol steps that change its marked, scanned and owner bits.
///
/// Each step takes `exclusive`: true when the calling thread is the only one marking this heap
/// (a one-worker mark, the reference mark): the step then uses plain atomic loads and stores
/// instead of read-modify-writes (no locked instruction on x86-64). With more than one marking
/// thread it must be false, or marks can be lost (not undefined behaviour: every access is
/// still atomic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkSpan<'h>(Span<'h>);

impl<'h> MarkSpan<'h> {
    /// The read-only handle.
    #[inline]
    pub fn span(self) -> Span<'h> {
        self.0
    }

    /// Sets object `index`'s marked bit; true if this call set it (it was white).
    #[inline]
    pub fn try_mark(self, index: usize, exclusive: bool) -> bool {
        debug_assert!(index < self.0.class().capacity());
        line::try_mark(self.0.mark_line(), index, exclusive)
    }

    /// After a new mark: take ownership of the span (true: the caller queues it) or raise it
    /// to `Many` (false: the queued scan will see the new object).
    #[inline]
    pub fn acquire(self, exclusive: bool) -> bool {
        line::acquire(self.0.mark_line(), exclusive)
    }

    /// On taking the span from a queue: give up ownership and say what it was.
    #[inline]
    pub fn release(self) -> Owner {
        line::release(self.0.mark_line())
    }

    /// Takes the grey objects (`marked & !scanned`) and marks them scanned: the caller must
    /// scan every one.
    #[inline]
    pub fn take_grey(self, exclusive: bool) -> [u64; LINE_WORDS] {
        line::take_grey(self.0.mark_line(), self.0.scan_line(), exclusive)
    }

    /// Claims the scans of the objects `mask` of scan-line word `i`; returns the ones this
    /// call claimed (the caller must scan them).
    #[inline]
    pub fn claim_scan(self, i: usize, mask: u64, exclusive: bool) -> u64 {
        line::claim_scan(self.0.scan_line(), i, mask, exclusive)
    }

    /// Claims object `index`'s scan; true if this call did (the caller must scan it).
    #[inline]
    pub fn try_scan(self, index: usize, exclusive: bool) -> bool {
        line::try_scan(self.0.scan_line(), index, exclusive)
    }
}

/// A large or medium object's record, with the step that marks it.
#[derive(Clone, Copy, Debug)]
pub struct MarkLarge<'h>(&'h LargeObject);

impl<'h> MarkLarge<'h> {
    /// The read-only record.
    #[inline]
    pub fn object(self) -> &'h LargeObject {
        self.0
    }

    /// Marks it; true if this call did (the caller must scan it if it has pointers).
    #[inline]
    pub fn try_mark(self) -> bool {
        self.0.try_mark()
    }
}

impl Heap {
    /// Moves `Clean | Marked | Aborted -> Marking`; returns the state it left.
    fn enter_marking(&self) -> Result<MarkState, Error> {
        let mut cur = self.mark_state.load(Ordering::Acquire);
        loop {
            if cur == MarkState::Marking as u8 {
                return Err(Error::MarkInProgress);
            }
            match self.mark_state.compare_exchange_weak(
                cur,
                MarkState::Marking as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(MarkState::from_u8(cur)),
                Err(now) => cur = now,
            }
        }
    }

    fn set_mark_state(&self, s: MarkState) {
        self.mark_state.store(s as u8, Ordering::Release);
    }
}

/// What a mark's phases after the first closure did (weak, ephemeron, finalizer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MarkOutcome {
    /// Weak words, weak references and ephemerons cleared because their target died.
    pub weak_cleared: usize,
    /// Rounds of the ephemeron fixpoint that found values to trace.
    pub ephemeron_rounds: usize,
    /// Objects with a finalizer that the mark found unreachable: kept alive (with everything
    /// they reach) for one more cycle, their registration ended, in address order. Weak
    /// references to them were cleared first.
    pub finalizable: Vec<usize>,
}

impl<'h> MarkSession<'h> {
    /// Runs a whole mark's phases with `closure` as the transitive closure (mark everything
    /// reachable from the given addresses, each resolved like a pointer word):
    /// 1. the closure from `roots` and the pinned objects;
    /// 2. the ephemeron fixpoint: while some ephemeron of a marked owner has a marked key and
    ///    an unmarked value, the closure from those values (each round costs one pass over
    ///    the pairs; a chain of `n` pairs, each value the next key, takes `n` rounds: O(n²)
    ///    in the worst case, O(pairs) per round);
    /// 3. finalizable objects still unmarked are noted; then every weak word of a marked
    ///    object, weak reference and ephemeron of a marked owner whose target is unmarked is
    ///    cleared (so weak references to an object are gone before its finalizer is
    ///    reported);
    /// 4. if any were noted: the closure from them (they and what they reach survive this
    ///    cycle), the ephemeron fixpoint again, the clearing pass again (now only targets that
    ///    stay dead), and their registrations end.
    ///
    /// `parallel`: the clearing pass and the ephemeron scans may use the current rayon pool.
    ///
    /// # Errors
    /// The first error `closure` returns (the phases stop there; the session is then not
    /// finished by this function).
    pub fn run_phases<E>(
        &self,
        roots: &[usize],
        parallel: bool,
        mut closure: impl FnMut(&[usize]) -> Result<(), E>,
    ) -> Result<MarkOutcome, E> {
        let mut all = roots.to_vec();
        all.extend(self.pinned());
        closure(&all)?;
        let mut out = MarkOutcome::default();
        self.ephemeron_fixpoint(parallel, &mut closure, &mut out)?;
        let dead = self.heap.unmarked_finalizable();
        out.weak_cleared += self.heap.clear_weak(parallel);
        if !dead.is_empty() {
            closure(&dead)?;
            self.ephemeron_fixpoint(parallel, &mut closure, &mut out)?;
            out.weak_cleared += self.heap.clear_weak(parallel);
            self.heap.take_finalizers(&dead);
        }
        out.finalizable = dead;
        Ok(out)
    }

    fn ephemeron_fixpoint<E>(
        &self,
        parallel: bool,
        closure: &mut impl FnMut(&[usize]) -> Result<(), E>,
        out: &mut MarkOutcome,
    ) -> Result<(), E> {
        loop {
            let values = self.heap.ephemeron_values(parallel);
            if values.is_empty() {
                return Ok(());
            }
            out.ephemeron_rounds += 1;
            closure(&values)?;
        }
    }
}

/// What [`Heap::mark_reachable`] did, beyond the marks themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReachableCounts {
    /// Small objects whose pointer words were visited.
    pub small_scanned: usize,
    /// Large objects whose pointer words were visited.
    pub large_scanned: usize,
    /// Non-null pointer words visited.
    pub pointers: usize,
    /// The weak, ephemeron and finalizer phases.
    pub outcome: MarkOutcome,
}

impl Heap {
    /// The reference mark: marks every object reachable from `roots` and from the pinned
    /// objects, then runs the weak, ephemeron and finalizer phases
    /// ([`MarkSession::run_phases`]), single-threaded, breadth first, with obvious code — the oracle that sencha's
    /// parallel markers are tested against (`sencha::reference::mark` wraps it), and a safe way
    /// to mark a heap without the `sencha` crate.
    ///
    /// Each root is resolved like a pointer word: an address inside an object (interior
    /// included) keeps that object, anything else is ignored. No address filter, no queues of
    /// spans, no kernels. Afterwards the heap is [`MarkState::Marked`], ready to sweep.
    ///
    /// # Errors
    /// [`Error::MarkInProgress`] if a mark of this heap is already running.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout};
    /// let mut heap = Heap::new();
    /// let cell = Layout::all_pointers(16).unwrap();
    /// let (a, b, c) = (heap.alloc(&cell).unwrap(), heap.alloc(&cell).unwrap(), heap.alloc(&cell).unwrap());
    /// heap.write_word(a, 1, b).unwrap();
    /// heap.mark_reachable(&[a]).unwrap();
    /// assert_eq!(heap.marked_totals().objects, 2);
    /// assert_eq!(heap.sweep().unwrap().freed_objects, 1); // c
    /// ```
    pub fn mark_reachable(&self, roots: &[usize]) -> Result<ReachableCounts, Error> {
        // SAFETY: the closure below is a complete marker: every object it marks goes on its
        // queue and has all its pointer words visited before it returns; run_phases adds the
        // pinned objects to the roots; it scans objects one at a time, so it never sets scanned
        // or owner bits, and no handle outlives the session.
        let session = unsafe { self.begin_mark_unchecked() }?;
        let mut counts = ReachableCounts::default();
        let outcome = session.run_phases(roots, false, |from| {
            let mut queue = std::collections::VecDeque::new();
            for &r in from {
                grey(&session, r, &mut queue);
            }
            while let Some(t) = queue.pop_front() {
                scan(&session, t, &mut queue, &mut counts);
            }
            Ok::<(), Error>(())
        })?;
        counts.outcome = outcome;
        session.finish();
        Ok(counts)
    }
}

/// Visits the pointer words of grey object `t`, greying what they point to.
fn scan<'h>(
    session: &MarkSession<'h>,
    t: Target<'h>,
    queue: &mut std::collections::VecDeque<Target<'h>>,
    counts: &mut ReachableCounts,
) {
    match t {
        Target::Small {
            span, index, class, ..
        } => {
            counts.small_scanned += 1;
            let span = span.span();
            let bits = span.object_ptr_bits(index);
            for k in (0..class.words()).filter(|k| bits >> k & 1 == 1) {
                let v = span.read_word(index * class.words() + k).unwrap_or(0);
                if v != 0 {
                    counts.pointers += 1;
                    grey(session, v, queue);
                }
            }
        }
        Target::Large(l) => {
            counts.large_scanned += 1;
            let l = l.object();
            for w in (0..l.layout().words()).filter(|&w| l.layout().is_pointer_word(w)) {
                let v = l.read_word(w).unwrap_or(0);
                if v != 0 {
                    counts.pointers += 1;
                    grey(session, v, queue);
                }
            }
        }
        Target::NotInHeap => {}
    }
}

/// Marks what `p` points to; queues it if it was white and may hold pointers.
fn grey<'h>(
    session: &MarkSession<'h>,
    p: usize,
    queue: &mut std::collections::VecDeque<Target<'h>>,
) {
    let t = session.resolve(p);
    let queue_it = match t {
        Target::NotInHeap => false,
        Target::Small {
            span,
            index,
            noscan,
            ..
        } => span.try_mark(index, true) && !noscan, // single-threaded: exclusive
        Target::Large(l) => l.try_mark() && l.object().layout().has_pointers(),
    };
    if queue_it {
        queue.push_back(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    #[test]
    fn session_refuses_a_second_mark() {
        let mut heap = Heap::new();
        let a = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
        // SAFETY: the session is finished after marking `a`, which holds no pointers to follow
        // (zeroed words), so the mark is complete.
        let s = unsafe { heap.begin_mark_unchecked() }.unwrap();
        assert_eq!(heap.mark_state(), MarkState::Marking);
        assert_eq!(heap.mark_reachable(&[a]), Err(Error::MarkInProgress));
        // SAFETY: as above; a second door stays shut while the first is open.
        let second = unsafe { heap.begin_mark_unchecked() };
        assert!(matches!(second, Err(Error::MarkInProgress)));
        drop(second);
        match s.resolve(a) {
            Target::Small { span, index, .. } => assert!(span.try_mark(index, false)),
            t => panic!("{t:?}"),
        }
        s.finish();
        assert_eq!(heap.mark_state(), MarkState::Marked);
        assert_eq!(heap.sweep().unwrap().live_objects, 1);
    }

    #[test]
    fn unfinished_session_leaves_heap_aborted() {
        let mut heap = Heap::new();
        heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
        // SAFETY: dropped unfinished: nothing claims the mark is complete.
        drop(unsafe { heap.begin_mark_unchecked() }.unwrap());
        assert_eq!(heap.mark_state(), MarkState::Aborted);
        assert_eq!(heap.sweep(), Err(Error::NoCompleteMark));
        assert_eq!(heap.stats().small_objects, 1);
    }

    /// The owner bits live at bits 56 and 57 of mark-line word 7, above the class byte.
    #[test]
    fn span_owner_bits_in_word_7() {
        use crate::span::{MANY, OWNED};
        let mut heap = Heap::new();
        let a = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
        let s = heap.resolve(a);
        let crate::Resolved::Small(o) = s else {
            panic!("{s:?}")
        };
        let span = MarkSpan(o.span);
        assert!(span.try_mark(495, false));
        assert!(span.acquire(false));
        assert!(!span.acquire(false)); // raised to Many
        let span = span.span();
        let w7 = span.mark_word(7).load(Ordering::Relaxed);
        assert_eq!(w7, 1 << 47 | 0x02 << 48 | OWNED | MANY);
        assert_eq!(span.owner(), Owner::Many);
        assert_eq!(MarkSpan(span).release(), Owner::Many);
        assert!(!span.is_marked(496) && !span.is_marked(usize::MAX));
        assert_eq!(span.read_word(992), None);
        assert_eq!(span.read_word(0), Some(0));
        heap.clear_marks();
    }
}
