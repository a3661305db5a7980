//! Sweep: after a mark, free every allocated object that was not marked.
//!
//! For each span, in parallel (rayon): `live = allocated & marked`; the other allocated slots
//! are freed (their pointer bits cleared, so a stale pointer to a free slot finds no pointers to
//! follow); marks, scanned bits and owner state reset for the next cycle. Marks on free slots
//! (a garbage pointer may have set one) are ignored and cleared. Then, in one sequential pass,
//! empty embedded spans return their page to the free map, and the allocator's per-class lists
//! are rebuilt from the spans with free slots.
//!
//! Medium spans likewise, slot by slot: an allocated, unmarked slot is freed (its allocation
//! bit cleared, its record's layout reset to "no pointers"); every slot's mark word is reset;
//! empty embedded medium spans return their pages; the per-class lists are rebuilt.
//!
//! Unmarked large objects are freed too: embedded ones return their pages; custom ones are
//! unregistered and listed in [`SweepStats::freed_custom_large`] so their allocator can reuse
//! the memory. Custom spans stay registered even when empty: their memory is their allocator's.

use rayon::prelude::*;

use crate::class::SizeClass;
use crate::heap::{Heap, MarkState, SpanRecord};
use crate::medium::{MediumClass, MediumSpan};
use crate::pagemap::{Entry, PageMap};
use crate::span::{SPAN_BYTES, Span};

/// What a sweep reclaimed, and what survived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Small objects freed.
    pub freed_objects: usize,
    /// Bytes of small-object slots freed.
    pub freed_bytes: usize,
    /// Large objects freed (embedded and custom).
    pub freed_large_objects: usize,
    /// Bytes of large objects freed.
    pub freed_large_bytes: usize,
    /// Empty embedded spans returned to the page pool.
    pub freed_spans: usize,
    /// Medium objects freed.
    pub freed_medium_objects: usize,
    /// Bytes of medium-object slots freed.
    pub freed_medium_bytes: usize,
    /// Empty embedded medium spans returned to the page pool.
    pub freed_medium_spans: usize,
    /// Medium objects that survived.
    pub live_medium_objects: usize,
    /// Bytes of surviving medium-object slots.
    pub live_medium_bytes: usize,
    /// Small objects that survived.
    pub live_objects: usize,
    /// Bytes of surviving small-object slots.
    pub live_bytes: usize,
    /// Large objects that survived.
    pub live_large_objects: usize,
    /// Starts of unmarked custom large objects, now unregistered: their memory is the custom
    /// allocator's to reuse.
    pub freed_custom_large: Vec<usize>,
}

impl Heap {
    /// Frees every allocated object that the last complete mark did not mark, and resets
    /// all marks: the heap is [`MarkState::Clean`](crate::MarkState) again.
    ///
    /// # Errors
    /// [`Error::NoCompleteMark`](crate::Error::NoCompleteMark) unless a complete mark ran
    /// since the last sweep (a new heap, a failed mark, [`Heap::clear_marks`]): nothing is
    /// freed then, because the marks would not say what is live.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Error, Heap, Layout};
    /// let mut heap = Heap::new();
    /// let l = Layout::no_pointers(16).unwrap();
    /// let (a, _b) = (heap.alloc(&l).unwrap(), heap.alloc(&l).unwrap());
    /// assert_eq!(heap.sweep(), Err(Error::NoCompleteMark)); // no mark ran: nothing freed
    /// assert_eq!(heap.stats().small_objects, 2);
    /// ```
    pub fn sweep(&mut self) -> Result<SweepStats, crate::Error> {
        if self.mark_state() != MarkState::Marked {
            return Err(crate::Error::NoCompleteMark);
        }
        let map = &self.map;
        let mut stats = self
            .spans
            .par_iter_mut()
            .filter(|r| r.base != 0)
            .map(|r| sweep_span(map, r))
            .reduce(SweepStats::default, add);

        // Sequential pass: empty embedded spans go back to the pool; lists are rebuilt.
        for c in &mut self.classes {
            for k in c.iter_mut() {
                k.current = None;
                k.partial.clear();
            }
        }
        for i in 0..self.spans.len() {
            let r = &self.spans[i];
            if r.base == 0 || r.custom {
                continue;
            }
            if r.live == 0 {
                let base = r.base;
                self.map.set(base, Entry::EMPTY);
                self.remove_span_record(i as u32);
                self.free_pages(base, 1);
                stats.freed_spans += 1;
            } else if !r.is_full() {
                let ci = SizeClass::DEFAULTS.iter().position(|&c| c == r.class);
                if let Some(ci) = ci {
                    self.classes[ci][r.noscan as usize].partial.push(i as u32);
                }
            }
        }

        let medium = self
            .medium
            .par_iter_mut()
            .filter(|m| m.base != 0)
            .map(sweep_medium)
            .reduce(SweepStats::default, add);
        stats = add(stats, medium);
        for c in &mut self.medium_classes {
            c.current = None;
            c.partial.clear();
        }
        for i in 0..self.medium.len() {
            let m = &self.medium[i];
            if m.base == 0 || m.custom {
                continue;
            }
            if m.live == 0 {
                let (base, pages) = (m.base, m.pages);
                self.remove_medium_record(i as u32);
                self.free_pages(base, pages);
                stats.freed_medium_spans += 1;
            } else if !m.is_full() {
                let ci = MediumClass::DEFAULTS.iter().position(|&c| c == m.class);
                if let Some(ci) = ci {
                    self.medium_classes[ci].partial.push(i as u32);
                }
            }
        }

        for i in 0..self.large.len() {
            let Some(l) = self.large[i].as_mut() else {
                continue;
            };
            if l.is_marked() {
                l.reset_mark();
                stats.live_large_objects += 1;
                continue;
            }
            let (start, claim, bytes, custom) = (l.start(), l.claim(), l.bytes(), l.is_custom());
            self.map.set_range(start, claim, Entry::EMPTY);
            self.large[i] = None;
            self.vacant_large.push(i as u32);
            stats.freed_large_objects += 1;
            stats.freed_large_bytes += bytes;
            if custom {
                stats.freed_custom_large.push(start);
            } else {
                self.free_pages(start, claim / SPAN_BYTES);
            }
        }
        *self.mark_state.get_mut() = MarkState::Clean as u8;
        self.sweep_ephemerons();
        Ok(stats)
    }
}

fn sweep_span(map: &PageMap, r: &mut SpanRecord) -> SweepStats {
    let Some((span, _)) = Span::in_map(map, r.base) else {
        return SweepStats::default();
    };
    let marked = span.marked_bits();
    let mut freed = 0usize;
    let mut live = 0u32;
    for (w, (alloc, mark)) in r.alloc.iter_mut().zip(marked).enumerate() {
        let dead = *alloc & !mark;
        let mut d = dead;
        if !r.noscan {
            while d != 0 {
                span.set_object_ptr_bits(w * 64 + d.trailing_zeros() as usize, 0);
                d &= d - 1;
            }
        }
        freed += dead.count_ones() as usize;
        *alloc &= mark;
        live += alloc.count_ones();
    }
    span.reset_marks();
    r.live = live;
    r.cursor = 0;
    let bytes = r.class.bytes();
    SweepStats {
        freed_objects: freed,
        freed_bytes: freed * bytes,
        live_objects: live as usize,
        live_bytes: live as usize * bytes,
        ..SweepStats::default()
    }
}

/// Frees the allocated, unmarked slots of a medium span and resets every slot's mark.
fn sweep_medium(m: &mut MediumSpan) -> SweepStats {
    let mut freed = 0;
    for i in 0..m.objects.len() {
        if m.is_allocated(i) && !m.objects[i].is_marked() {
            m.free_slot(i);
            freed += 1;
        }
        m.objects[i].reset_mark();
    }
    let bytes = m.class.bytes();
    let live = m.live as usize;
    SweepStats {
        freed_medium_objects: freed,
        freed_medium_bytes: freed * bytes,
        live_medium_objects: live,
        live_medium_bytes: live * bytes,
        ..SweepStats::default()
    }
}

fn add(mut a: SweepStats, b: SweepStats) -> SweepStats {
    a.freed_objects += b.freed_objects;
    a.freed_bytes += b.freed_bytes;
    a.live_objects += b.live_objects;
    a.live_bytes += b.live_bytes;
    a.freed_medium_objects += b.freed_medium_objects;
    a.freed_medium_bytes += b.freed_medium_bytes;
    a.live_medium_objects += b.live_medium_objects;
    a.live_medium_bytes += b.live_medium_bytes;
    a
}
