//! Weak references, ephemerons and finalization: what a runtime's `WeakRef`, `WeakMap` and
//! finalizers need from its collector. The heap keeps their state; a mark processes it in
//! phases (`protocol::MarkSession::run_phases`, DESIGN §6 "Weak, ephemeron, finalizer").
//!
//! - **Weak words** in objects: declared per object through the layout
//!   ([`Layout::with_weak`](crate::Layout::with_weak)); small objects' weak words are kept in a
//!   side bitmap of their span's record (the span tail has no room, and only the clearing pass
//!   reads it), large objects' in their layout.
//! - **Weak references** ([`WeakRef`]): heap-owned cells holding one weak pointer each, for
//!   weak roots that live outside the heap.
//! - **Ephemerons** ([`Ephemeron`]): `(owner, key, value)`; the value is kept alive only while
//!   the owner (a weak map) and the key are reachable by other paths.
//! - **Finalizers** ([`Heap::register_finalizer`]): objects the runtime wants to hear about
//!   once when they become unreachable; they are kept one more cycle, with everything they
//!   reach, and returned in the mark's result.
//!
//! Clearing rule (the same for all three): after the ordinary closure and the ephemeron
//! fixpoint, every weak word of a marked object, every weak reference and every ephemeron of a
//! marked owner whose target (key) is not marked is cleared to 0 — *before* unreachable
//! finalizable objects are resurrected, so weak references to an object are cleared before its
//! finalizer is reported. After resurrection the clearing pass runs once more, so that no weak
//! word of a resurrected object points at an object that stays dead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::heap::{Heap, MarkState, Object, Resolved, SpanRecord};
use crate::span::{PTR_BITMAP_WORDS, Span};

/// A handle to a heap-owned weak reference ([`Heap::new_weak_ref`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WeakRef {
    index: u32,
    generation: u32,
}

/// A handle to a heap-owned ephemeron ([`Heap::new_ephemeron`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ephemeron {
    index: u32,
    generation: u32,
}

/// One slot of a handle table: a generation (odd while live) guards against stale handles.
#[derive(Debug, Default)]
pub(crate) struct Slot<T> {
    generation: u32,
    value: T,
}

/// A weak reference's target (0 once cleared).
pub(crate) type WeakCell = AtomicUsize;

/// An ephemeron's words: owner (fixed), key and value (0 once cleared).
#[derive(Debug, Default)]
pub(crate) struct EphemeronCell {
    owner: usize,
    key: AtomicUsize,
    value: AtomicUsize,
}

/// The weak, ephemeron and finalizer state of a heap.
#[derive(Debug, Default)]
pub(crate) struct WeakState {
    refs: Vec<Slot<WeakCell>>,
    vacant_refs: Vec<u32>,
    ephemerons: Vec<Slot<EphemeronCell>>,
    vacant_ephemerons: Vec<u32>,
    /// Objects with a registered finalizer not yet reported.
    finalizers: Mutex<std::collections::BTreeSet<usize>>,
    /// Span records that have a weak-word bitmap.
    pub(crate) weak_spans: usize,
}

fn live<T>(s: &Slot<T>) -> bool {
    s.generation & 1 == 1
}

/// Takes a vacant slot (or a new one) and makes it live.
fn claim<T: Default>(slots: &mut Vec<Slot<T>>, vacant: &mut Vec<u32>) -> Result<(u32, u32), Error> {
    let index = match vacant.pop() {
        Some(i) => i,
        None => {
            let i = u32::try_from(slots.len()).map_err(|_| Error::OutOfMemory { bytes: 0 })?;
            slots.push(Slot::default());
            i
        }
    };
    let s = &mut slots[index as usize];
    s.generation = s.generation.wrapping_add(1) | 1;
    Ok((index, s.generation))
}

fn get<T>(slots: &[Slot<T>], index: u32, generation: u32) -> Result<&T, Error> {
    match slots.get(index as usize) {
        Some(s) if s.generation == generation && live(s) => Ok(&s.value),
        _ => Err(Error::InvalidHandle),
    }
}

fn release<T: Default>(
    slots: &mut [Slot<T>],
    vacant: &mut Vec<u32>,
    index: u32,
    generation: u32,
) -> Result<(), Error> {
    match slots.get_mut(index as usize) {
        Some(s) if s.generation == generation && live(s) => {
            s.generation = s.generation.wrapping_add(1);
            s.value = T::default();
            vacant.push(index);
            Ok(())
        }
        _ => Err(Error::InvalidHandle),
    }
}

impl Heap {
    /// The object `addr` points into (interior included), checked to be alive: allocated, and
    /// marked if a complete mark's results are pending (an unmarked object then is dead).
    fn live_target(&self, addr: usize) -> Result<Object<'_>, Error> {
        let o = self.object_containing(addr).ok_or(if addr == 0 {
            Error::NullAddress
        } else {
            Error::NotAnObject { addr }
        })?;
        if self.mark_state() == MarkState::Marked && !o.is_marked() {
            return Err(Error::Unreachable { addr });
        }
        Ok(o)
    }

    /// A weak reference to the object `target` points into (interior pointers keep their
    /// offset): [`Heap::weak_ref`] returns `target` until a mark finds the object unreachable,
    /// then `None`.
    ///
    /// # Errors
    /// [`Error::NullAddress`]; [`Error::NotAnObject`] unless `target` points into an allocated
    /// object; [`Error::Unreachable`] for an object the last complete mark found dead.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout};
    /// let mut heap = Heap::new();
    /// let a = heap.alloc(&Layout::no_pointers(16).unwrap()).unwrap();
    /// let w = heap.new_weak_ref(a).unwrap();
    /// assert_eq!(heap.weak_ref(w).unwrap(), Some(a));
    /// heap.mark_reachable(&[]).unwrap(); // `a` is unreachable
    /// assert_eq!(heap.weak_ref(w).unwrap(), None);
    /// ```
    pub fn new_weak_ref(&mut self, target: usize) -> Result<WeakRef, Error> {
        self.live_target(target)?;
        let w = &mut self.weak;
        let (index, generation) = claim(&mut w.refs, &mut w.vacant_refs)?;
        w.refs[index as usize].value = AtomicUsize::new(target);
        Ok(WeakRef { index, generation })
    }

    /// The target of a weak reference: `None` once a mark cleared it.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`] for a dropped reference (or one of another heap).
    pub fn weak_ref(&self, r: WeakRef) -> Result<Option<usize>, Error> {
        let v = get(&self.weak.refs, r.index, r.generation)?.load(Ordering::Relaxed);
        Ok((v != 0).then_some(v))
    }

    /// Drops a weak reference.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`] for a reference dropped already.
    pub fn drop_weak_ref(&mut self, r: WeakRef) -> Result<(), Error> {
        let w = &mut self.weak;
        release(&mut w.refs, &mut w.vacant_refs, r.index, r.generation)
    }

    /// An ephemeron: `value` is kept alive by this pair only while both `owner` (the weak map
    /// or table holding the pair, an object start) and `key` are reachable by other paths. A
    /// mark processes ephemerons to the fixpoint (a value may be the key of another pair);
    /// afterwards a pair of a live owner whose key died is cleared ([`Heap::ephemeron`] returns
    /// `None`), and a pair whose owner died is dropped by the sweep that frees the owner.
    /// `key` and `value` may be interior pointers; `value` may be 0.
    ///
    /// # Errors
    /// As [`Heap::object`] for `owner`; [`Error::NullAddress`] / [`Error::NotAnObject`] for a
    /// `key` (or non-zero `value`) that does not point into an allocated object;
    /// [`Error::Unreachable`] for any of them that the last complete mark found dead.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout};
    /// let mut heap = Heap::new();
    /// let l = Layout::no_pointers(16).unwrap();
    /// let (map, key, value) = (heap.alloc(&l).unwrap(), heap.alloc(&l).unwrap(), heap.alloc(&l).unwrap());
    /// let e = heap.new_ephemeron(map, key, value).unwrap();
    /// heap.mark_reachable(&[map, key]).unwrap(); // the key is alive, so the value is
    /// assert_eq!(heap.ephemeron(e).unwrap(), Some((key, value)));
    /// assert!(heap.is_marked(value).unwrap());
    /// heap.mark_reachable(&[map]).unwrap(); // the key died: the pair is cleared
    /// assert_eq!(heap.ephemeron(e).unwrap(), None);
    /// ```
    pub fn new_ephemeron(
        &mut self,
        owner: usize,
        key: usize,
        value: usize,
    ) -> Result<Ephemeron, Error> {
        let o = self.object(owner)?;
        if self.mark_state() == MarkState::Marked && !o.is_marked() {
            return Err(Error::Unreachable { addr: owner });
        }
        self.live_target(key)?;
        if value != 0 {
            self.live_target(value)?;
        }
        let w = &mut self.weak;
        let (index, generation) = claim(&mut w.ephemerons, &mut w.vacant_ephemerons)?;
        w.ephemerons[index as usize].value = EphemeronCell {
            owner,
            key: AtomicUsize::new(key),
            value: AtomicUsize::new(value),
        };
        Ok(Ephemeron { index, generation })
    }

    /// An ephemeron's `(key, value)`: `None` once a mark found its key dead.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`] for a dropped pair, or one dropped by a sweep because its
    /// owner died.
    pub fn ephemeron(&self, e: Ephemeron) -> Result<Option<(usize, usize)>, Error> {
        let c = get(&self.weak.ephemerons, e.index, e.generation)?;
        let key = c.key.load(Ordering::Relaxed);
        Ok((key != 0).then(|| (key, c.value.load(Ordering::Relaxed))))
    }

    /// Drops an ephemeron.
    ///
    /// # Errors
    /// [`Error::InvalidHandle`] for a pair dropped already.
    pub fn drop_ephemeron(&mut self, e: Ephemeron) -> Result<(), Error> {
        let w = &mut self.weak;
        release(
            &mut w.ephemerons,
            &mut w.vacant_ephemerons,
            e.index,
            e.generation,
        )
    }

    /// Asks to be told, once, when the object at `addr` becomes unreachable: the mark that
    /// finds it unreachable keeps it (and everything it reaches) for one more cycle and lists
    /// it in its result (`MarkStats::finalizable` in the `sencha` crate,
    /// [`MarkOutcome::finalizable`](crate::protocol::MarkOutcome) here), after clearing every
    /// weak reference to it. The registration then ends; the runtime runs its finalizer and,
    /// if the object stays unreachable, the next cycle frees it. Objects finalized in the same
    /// cycle come in no particular order, even when they reach each other (docs/DESIGN.md §6).
    ///
    /// # Errors
    /// As [`Heap::object`]; [`Error::AlreadyRegistered`]; [`Error::Unreachable`] for an object
    /// the last complete mark found dead.
    pub fn register_finalizer(&mut self, addr: usize) -> Result<(), Error> {
        let o = self.object(addr)?;
        if self.mark_state() == MarkState::Marked && !o.is_marked() {
            return Err(Error::Unreachable { addr });
        }
        let set = self
            .weak
            .finalizers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        if !set.insert(addr) {
            return Err(Error::AlreadyRegistered { addr });
        }
        Ok(())
    }

    /// Withdraws a finalizer registration.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] if `addr` has none.
    pub fn unregister_finalizer(&mut self, addr: usize) -> Result<(), Error> {
        let set = self
            .weak
            .finalizers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        if set.remove(&addr) {
            Ok(())
        } else {
            Err(Error::NotRegistered { addr })
        }
    }

    /// Objects with a finalizer registration, in address order.
    pub fn finalizers(&self) -> Vec<usize> {
        let set = self
            .weak
            .finalizers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.iter().copied().collect()
    }

    // --- used by allocation, sweep and the mark phases ----------------------------------

    /// Records the weak words of small object `index` of span record `rec` (0 clears them).
    pub(crate) fn set_small_weak_bits(&mut self, rec: u32, index: usize, bits: u64) {
        let r = &mut self.spans[rec as usize];
        if bits == 0 && r.weak.is_none() {
            return;
        }
        if r.weak.is_none() {
            self.weak.weak_spans += 1;
        }
        let words = r.class.words();
        let map = r
            .weak
            .get_or_insert_with(|| Box::new([0; PTR_BITMAP_WORDS]));
        for k in 0..words {
            let w = index * words + k;
            let bit = 1u64 << (w % 64);
            if k < 64 && bits >> k & 1 != 0 {
                map[w / 64] |= bit;
            } else {
                map[w / 64] &= !bit;
            }
        }
    }

    /// Whether the object `addr` resolves to (interior included) is unmarked: a dead target.
    /// Words that point nowhere in the heap are not targets.
    fn target_dead(&self, v: usize) -> bool {
        match self.resolve(v) {
            Resolved::NotInHeap => false,
            Resolved::Small(o) => !o.span.is_marked(o.index),
            Resolved::Large(l) => !l.is_marked(),
        }
    }

    /// Values of ephemerons whose owner and key are marked and whose value is not: what the
    /// next round of the fixpoint traces.
    /// With `parallel`, a large table is scanned on the current rayon pool.
    pub(crate) fn ephemeron_values(&self, parallel: bool) -> Vec<usize> {
        let ready = |s: &Slot<EphemeronCell>| {
            let c = &s.value;
            let key = c.key.load(Ordering::Relaxed);
            let value = c.value.load(Ordering::Relaxed);
            let owner_live = self.object(c.owner).is_ok_and(|o| o.is_marked());
            (live(s)
                && owner_live
                && key != 0
                && value != 0
                && !self.target_dead(key)
                && self.target_dead(value))
            .then_some(value)
        };
        let table = &self.weak.ephemerons;
        if parallel && table.len() >= 4096 {
            use rayon::prelude::*;
            table
                .par_iter()
                .with_min_len(1024)
                .filter_map(ready)
                .collect()
        } else {
            table.iter().filter_map(ready).collect()
        }
    }

    /// Registered finalizable objects that are not marked.
    pub(crate) fn unmarked_finalizable(&self) -> Vec<usize> {
        let set = self
            .weak
            .finalizers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.iter()
            .copied()
            .filter(|&a| self.object(a).is_ok_and(|o| !o.is_marked()))
            .collect()
    }

    /// Ends the registrations of `objects` (they are being reported).
    pub(crate) fn take_finalizers(&self, objects: &[usize]) {
        let mut set = self
            .weak
            .finalizers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for a in objects {
            set.remove(a);
        }
    }

    /// Clears every weak word of a marked object, weak reference and ephemeron of a marked
    /// owner whose target is dead; returns how many. Spans with weak words are processed in
    /// parallel when `parallel` (on the current rayon pool).
    pub(crate) fn clear_weak(&self, parallel: bool) -> usize {
        let spans = self
            .spans
            .iter()
            .filter(|r| r.base != 0 && r.weak.is_some());
        let mut n = if parallel && self.weak.weak_spans > 1 {
            use rayon::prelude::*;
            let recs: Vec<&SpanRecord> = spans.collect();
            recs.par_iter().map(|r| self.clear_span_weak(r)).sum()
        } else {
            spans.map(|r| self.clear_span_weak(r)).sum()
        };
        for l in self.large.iter().flatten() {
            n += self.clear_record_weak(l);
        }
        for m in self.medium.iter().filter(|m| m.base != 0) {
            for (i, l) in m.objects.iter().enumerate() {
                if m.is_allocated(i) {
                    n += self.clear_record_weak(l);
                }
            }
        }
        for s in self.weak.refs.iter().filter(|s| live(s)) {
            let v = s.value.load(Ordering::Relaxed);
            if v != 0 && self.target_dead(v) {
                s.value.store(0, Ordering::Relaxed);
                n += 1;
            }
        }
        for s in self.weak.ephemerons.iter().filter(|s| live(s)) {
            let c = &s.value;
            let key = c.key.load(Ordering::Relaxed);
            let owner_live = self.object(c.owner).is_ok_and(|o| o.is_marked());
            if owner_live && key != 0 && self.target_dead(key) {
                c.key.store(0, Ordering::Relaxed);
                c.value.store(0, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// The weak-word pass over one large or medium object: if it is marked, its weak words
    /// whose target is dead are set to 0.
    fn clear_record_weak(&self, l: &crate::large::LargeObject) -> usize {
        let weak = l.layout().weak_bits();
        if weak == 0 || !l.is_marked() {
            return 0;
        }
        let mut n = 0;
        let mut bits = weak;
        while bits != 0 {
            let w = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(v) = l.read_word(w)
                && v != 0
                && self.target_dead(v)
            {
                l.clear_word_in_mark(w);
                n += 1;
            }
        }
        n
    }

    /// The weak-word pass over one span: weak words of marked, allocated objects whose
    /// target is dead are set to 0.
    fn clear_span_weak(&self, r: &SpanRecord) -> usize {
        let (Some(weak), Some((span, _))) = (&r.weak, Span::in_map(&self.map, r.base)) else {
            return 0;
        };
        let marked = span.marked_bits();
        let words = r.class.words();
        let mut n = 0;
        for (wi, &bits) in weak.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let w = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let index = w / words;
                let live = (r.alloc[index / 64] & marked[index / 64]) >> (index % 64) & 1 != 0;
                if !live {
                    continue;
                }
                if let Some(v) = span.read_word(w)
                    && v != 0
                    && self.target_dead(v)
                {
                    span.write_word(w, 0);
                    n += 1;
                }
            }
        }
        n
    }

    /// After a sweep: drops ephemerons whose owner is gone.
    pub(crate) fn sweep_ephemerons(&mut self) {
        let dead: Vec<(u32, u32)> = self
            .weak
            .ephemerons
            .iter()
            .enumerate()
            .filter(|(_, s)| live(s) && self.object(s.value.owner).is_err())
            .map(|(i, s)| (i as u32, s.generation))
            .collect();
        let w = &mut self.weak;
        for (i, g) in dead {
            let _ = release(&mut w.ephemerons, &mut w.vacant_ephemerons, i, g);
        }
    }

    /// Removes `addr` from the finalizer set (the object is being freed by its allocator).
    pub(crate) fn forget_finalizer(&mut self, addr: usize) {
        self.weak
            .finalizers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}
