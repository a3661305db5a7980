//! The embedded default allocator: size classes, typed allocation, page runs for large objects.
//!
//! - Address space comes from the OS in arenas of [`HeapConfig::arena_bytes`](crate::HeapConfig)
//!   (64 MiB by default), 2 MiB-aligned and advised onto huge pages; the OS commits pages when
//!   they are first touched.
//! - Free memory is a map of free page runs (start, pages, dirty), first fit, coalescing on free.
//! - A small object goes to the smallest of Go's 25 classes that holds it, in a *scan* span if
//!   its layout has pointers and a *noscan* span if not. Each class keeps a current span and a
//!   list of partly free spans; a slot is the first zero bit of the span's allocation bitmap.
//!   Allocation zeroes the slot and writes the object's pointer bits into the span's pointer
//!   bitmap, so marking never needs the layout.
//! - A medium object (513 bytes to 8 KiB) goes to the smallest of the 27 default
//!   [`MediumClass`]es that holds it, in a medium span of 1 to 9 pages. Each class keeps a
//!   current span and a list of partly free ones; a slot is the first zero bit of the span's
//!   allocation bits. Allocation zeroes the object and writes its layout into the slot's record.
//! - A large object (over 8 KiB) takes a run of whole pages and a record holding its layout.
//! - Allocation failure is [`Error::OutOfMemory`], never an abort.

mod sweep;

pub use sweep::SweepStats;

use crate::arena::{ARENA_ALIGN, Arena};
use crate::class::SizeClass;
use crate::error::Error;
use crate::heap::{Heap, SpanRecord};
use crate::large::LargeObject;
use crate::layout::{Layout, low_bits};
use crate::medium::{MediumClass, MediumSpan};
use crate::pagemap::{ADDRESS_LIMIT, Entry};
use crate::span::{SPAN_BYTES, SPAN_LOG_BYTES, Span};

/// Index of a default class in [`SizeClass::DEFAULTS`].
fn default_index(class: SizeClass) -> Option<usize> {
    SizeClass::DEFAULTS.iter().position(|&c| c == class)
}

impl Heap {
    /// Allocates a zeroed object of `layout`, returning its address (never 0).
    ///
    /// Objects up to 512 bytes go to a span of the smallest default class that holds them,
    /// objects up to 8 KiB to a medium span of the smallest default [`MediumClass`] that holds
    /// them; larger ones become large objects (whole pages). Between a complete mark and its sweep
    /// ([`MarkState::Marked`](crate::MarkState)) the object is allocated marked (black), so
    /// that sweep keeps it.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] when the OS refuses address space.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout};
    /// let mut heap = Heap::new();
    /// let s = heap.alloc(&Layout::no_pointers(100).unwrap()).unwrap();
    /// let medium = heap.alloc(&Layout::from_pointer_words(600, &[0, 70]).unwrap()).unwrap();
    /// let big = heap.alloc(&Layout::all_pointers(40_000).unwrap()).unwrap();
    /// assert_eq!(heap.object(s).unwrap().bytes(), 112);
    /// assert_eq!(heap.object(medium).unwrap().bytes(), 600);
    /// assert_eq!(heap.object(big).unwrap().bytes(), 40_000);
    /// assert_eq!(heap.stats().medium_bytes, 640); // its slot: 7 % more, not a whole 8 KiB page
    /// ```
    pub fn alloc(&mut self, layout: &Layout) -> Result<usize, Error> {
        if let Some(class) = SizeClass::for_bytes(layout.bytes()) {
            return self.alloc_small(class, layout);
        }
        match MediumClass::for_bytes(layout.bytes()) {
            Some(class) => self.alloc_medium(class, layout),
            None => self.alloc_large(layout),
        }
    }

    fn alloc_medium(&mut self, class: MediumClass, layout: &Layout) -> Result<usize, Error> {
        let ci = MediumClass::DEFAULTS
            .iter()
            .position(|&c| c == class)
            .expect("for_bytes returns a default class");
        loop {
            let rec = match self.medium_classes[ci].current {
                Some(r) => r,
                None => {
                    let r = match self.medium_classes[ci].partial.pop() {
                        Some(r) => r,
                        None => self.new_medium_span(class)?,
                    };
                    self.medium_classes[ci].current = Some(r);
                    r
                }
            };
            let span = &mut self.medium[rec as usize];
            let Some(index) = span.take_free_slot() else {
                self.medium_classes[ci].current = None;
                continue;
            };
            let obj = &mut span.objects[index];
            let fits = obj.set_layout(*layout);
            debug_assert!(fits, "a default class holds the layout it was chosen for");
            obj.zero();
            let addr = obj.start();
            self.mark_new(addr);
            return Ok(addr);
        }
    }

    /// Carves a new medium span for `class` from free pages.
    fn new_medium_span(&mut self, class: MediumClass) -> Result<u32, Error> {
        let pages = class.span_pages();
        let (base, _) = self.alloc_pages(pages)?;
        let objects =
            LargeObject::slots_in_arena(&self.arenas, base, pages * SPAN_BYTES, class.bytes())
                .expect("alloc_pages returns pages of this heap's arenas");
        self.add_medium_record(MediumSpan {
            base,
            pages,
            class,
            custom: false,
            alloc: [0; crate::span::LINE_WORDS],
            live: 0,
            objects,
        })
    }

    fn alloc_small(&mut self, class: SizeClass, layout: &Layout) -> Result<usize, Error> {
        let ci = default_index(class).expect("for_bytes returns a default class");
        let noscan = !layout.has_pointers();
        let kind = noscan as usize;
        loop {
            let rec = match self.classes[ci][kind].current {
                Some(r) => r,
                None => {
                    let r = match self.classes[ci][kind].partial.pop() {
                        Some(r) => r,
                        None => self.new_span(class, noscan)?,
                    };
                    self.classes[ci][kind].current = Some(r);
                    r
                }
            };
            let record = &mut self.spans[rec as usize];
            match take_free_slot(record) {
                Some(index) => {
                    let base = record.base;
                    let (span, _) = Span::in_map(&self.map, base).expect("live span is mapped");
                    let words = class.words();
                    span.zero_words(index * words, words);
                    if !noscan {
                        span.set_object_ptr_bits(index, layout.small_bits());
                    }
                    self.set_small_weak_bits(rec, index, layout.weak_bits());
                    let addr = base + index * class.bytes();
                    self.mark_new(addr);
                    return Ok(addr);
                }
                None => self.classes[ci][kind].current = None,
            }
        }
    }

    /// Carves a new span for `class` from a free page.
    fn new_span(&mut self, class: SizeClass, noscan: bool) -> Result<u32, Error> {
        let (base, _) = self.alloc_pages(1)?;
        self.add_span(base, class, noscan, false)
    }

    fn alloc_large(&mut self, layout: &Layout) -> Result<usize, Error> {
        let pages = layout.bytes().div_ceil(SPAN_BYTES);
        let (start, dirty) = self.alloc_pages(pages)?;
        let mut rec = LargeObject::in_arena(&self.arenas, start, pages * SPAN_BYTES, *layout)
            .expect("alloc_pages returns pages of this heap's arenas");
        if dirty {
            rec.zero();
        }
        let i = self.add_large_record(rec)?;
        self.map
            .set_range(start, pages * SPAN_BYTES, Entry::large(i));
        self.mark_new(start);
        Ok(start)
    }

    /// Takes a run of `pages` free pages (first fit), reserving an arena if none fits.
    /// Returns its start and whether it may hold old data.
    pub(crate) fn alloc_pages(&mut self, pages: usize) -> Result<(usize, bool), Error> {
        let found = self
            .free_pages
            .iter()
            .find(|(_, (n, _))| *n >= pages)
            .map(|(&s, &v)| (s, v));
        let (start, (n, dirty)) = match found {
            Some(f) => f,
            None => {
                let need = pages
                    .checked_mul(SPAN_BYTES)
                    .ok_or(Error::OutOfMemory { bytes: usize::MAX })?;
                let bytes = need
                    .max(self.config.arena_bytes)
                    .checked_next_multiple_of(ARENA_ALIGN)
                    .ok_or(Error::OutOfMemory { bytes: need })?;
                let arena = Arena::reserve(bytes, self.config.huge_pages)?;
                // Never hand out pages past the arena, nor an arena the page map cannot map.
                if arena.len() < need || arena.start().saturating_add(arena.len()) > ADDRESS_LIMIT {
                    return Err(Error::OutOfMemory { bytes });
                }
                let (s, len) = (arena.start(), arena.len());
                self.arenas.push(arena);
                self.widen_range(s, len);
                (s, (len >> SPAN_LOG_BYTES, false))
            }
        };
        self.free_pages.remove(&start);
        if n > pages {
            self.free_pages
                .insert(start + pages * SPAN_BYTES, (n - pages, dirty));
        }
        Ok((start, dirty))
    }

    /// Returns a run of pages to the free map, coalescing with its neighbours.
    pub(crate) fn free_pages(&mut self, start: usize, pages: usize) {
        let (mut start, mut pages) = (start, pages);
        if let Some((&s, &(n, _))) = self.free_pages.range(..start).next_back()
            && s + n * SPAN_BYTES == start
        {
            self.free_pages.remove(&s);
            start = s;
            pages += n;
        }
        let end = start + pages * SPAN_BYTES;
        if let Some((n, _)) = self.free_pages.remove(&end) {
            pages += n;
        }
        self.free_pages.insert(start, (pages, true));
    }
}

/// Takes the first free slot of an embedded span, updating its allocation bits.
fn take_free_slot(rec: &mut SpanRecord) -> Option<usize> {
    let cap = rec.class.capacity();
    let words = cap.div_ceil(64);
    for w in rec.cursor as usize..words {
        let valid = low_bits((cap - w * 64).min(64));
        let free = !rec.alloc[w] & valid;
        if free != 0 {
            let b = free.trailing_zeros() as usize;
            rec.alloc[w] |= 1 << b;
            rec.live += 1;
            rec.cursor = w as u8;
            return Some(w * 64 + b);
        }
    }
    rec.cursor = words as u8;
    None
}
