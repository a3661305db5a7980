//! The registration API: a custom allocator hands sencha the spans and large objects it owns.
//!
//! A custom allocator keeps its memory and its allocation policy; sencha keeps the marking
//! metadata. The allocator
//! 1. registers each 8 KiB-aligned span with a size class and scan/noscan
//!    ([`Heap::register_span`]); the span's last 256 bytes become sencha's metadata, the first
//!    `capacity * size` bytes stay the allocator's objects;
//! 2. tells sencha about each object it places in a registered span
//!    ([`Heap::init_object`], which records the slot as allocated and writes its pointer bits)
//!    and each object it frees ([`Heap::free_object`]);
//! 3. registers each large object with its layout ([`Heap::register_large`]), or places
//!    objects of 513 bytes to 8 KiB in registered medium spans ([`Heap::register_medium_span`],
//!    then [`Heap::init_object`] and [`Heap::free_object`] as for small spans);
//! 4. after a mark, calls [`Heap::sweep`], then reads which slots are still allocated
//!    ([`Heap::allocated_slots`]) and which large objects were freed
//!    ([`SweepStats::freed_custom_large`](crate::SweepStats)).
//!
//! Every call validates its input and returns a typed [`Error`]; on error the heap is unchanged.
//! What sencha cannot check is that the memory really is the caller's and is used as the
//! contract says (initialised; written by the runtime only while no mark runs; the last 256
//! bytes of a span never): that promise is made once, when building an [`OwnedMemory`]. That
//! promise, and turning it into large-object and medium-slot records, are this module's only
//! `unsafe`.

use crate::class::SizeClass;
use crate::error::Error;
use crate::heap::{Heap, Resolved};
use crate::large::LargeObject;
use crate::layout::Layout;
use crate::medium::{MediumClass, MediumSpan};
use crate::pagemap::{ADDRESS_LIMIT, Entry, EntryKind};
use crate::span::{LINE_WORDS, SPAN_BYTES};

/// Memory a custom allocator owns and hands to a heap.
///
/// Building one with [`OwnedMemory::new_unchecked`] is the caller's promise about the memory
/// (its `# Safety` list, mirrored in `docs/CUSTOM_ALLOCATOR.md` §3, is the whole contract);
/// everything else (alignment, size, overlap) is checked at registration.
#[derive(Debug)]
pub struct OwnedMemory {
    addr: usize,
    len: usize,
}

impl OwnedMemory {
    /// Wraps `len` bytes at `addr`.
    ///
    /// # Safety
    /// From the moment the memory is registered ([`Heap::register_span`],
    /// [`Heap::register_large`]) until it is unregistered, freed by a sweep
    /// ([`SweepStats::freed_custom_large`](crate::SweepStats)) or the heap is dropped:
    /// - `addr .. addr + len` stays valid for reads and writes, and nothing frees or reuses it;
    /// - for a large object, every byte of the object is initialised when it is registered
    ///   (a small or medium span needs nothing: registration zeroes it), and only initialised
    ///   values are written to it afterwards;
    /// - the runtime may read and write its own objects' words (a span's object area, the
    ///   first [`OBJECT_BYTES`](crate::span::OBJECT_BYTES) bytes; a medium span's slots; a
    ///   large object's bytes)
    ///   **except while a mark of the heap runs**, and not concurrently with its own calls
    ///   into the heap that read those words ([`Heap::read_word`], a mark);
    /// - nothing but sencha ever writes a span's last 256 bytes (its metadata).
    pub unsafe fn new_unchecked(addr: *mut u8, len: usize) -> Self {
        OwnedMemory {
            addr: addr as usize,
            len,
        }
    }

    /// Wraps memory leaked for the life of the program (always valid, so this is safe).
    pub fn from_static(mem: &'static mut [u8]) -> Self {
        OwnedMemory {
            addr: mem.as_mut_ptr() as usize,
            len: mem.len(),
        }
    }

    /// The first byte.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Heap {
    /// Checks that `addr .. addr + len` is a sane range no one has registered yet.
    fn check_free_range(&self, addr: usize, len: usize, align: usize) -> Result<(), Error> {
        if addr == 0 {
            return Err(Error::NullAddress);
        }
        if len == 0 || len > crate::layout::MAX_OBJECT_BYTES {
            return Err(Error::InvalidLength { len });
        }
        if !addr.is_multiple_of(align) {
            return Err(Error::Misaligned { addr, align });
        }
        match addr.checked_add(len) {
            Some(end) if end <= ADDRESS_LIMIT => {}
            _ => return Err(Error::OutOfAddressSpace { addr, len }),
        }
        if let Some(page) = self.map.first_used(addr, len) {
            // A large object's entry names its record, whose start may lie anywhere in (or
            // before) this page; resolving the page address would miss a mid-page start.
            let existing = match self.map.get(page).kind() {
                EntryKind::Large { record } => self
                    .large
                    .get(record as usize)
                    .and_then(Option::as_ref)
                    .map_or(page, LargeObject::start),
                EntryKind::Medium { record } => {
                    self.medium.get(record as usize).map_or(page, |m| m.base)
                }
                _ => page,
            };
            return Err(if existing == addr {
                Error::AlreadyRegistered { addr }
            } else {
                Error::Overlap { addr, existing }
            });
        }
        if let Some(a) = self
            .arenas
            .iter()
            .find(|a| addr < a.start() + a.len() && a.start() < addr + len)
        {
            return Err(Error::Overlap {
                addr,
                existing: a.start(),
            });
        }
        Ok(())
    }

    /// Registers an 8 KiB span of a custom allocator, for objects of `class`; `noscan` spans
    /// hold only pointer-free objects. **Zeroes the whole span** (kernels read whole 64-byte
    /// frames, free slots included, so every byte must be initialised) and writes its
    /// metadata (the last 256 bytes): register a span before placing objects in it.
    ///
    /// # Errors
    /// [`Error::NullAddress`], [`Error::InvalidLength`] (not exactly 8 KiB),
    /// [`Error::Misaligned`] (not 8 KiB-aligned), [`Error::OutOfAddressSpace`],
    /// [`Error::AlreadyRegistered`], [`Error::Overlap`].
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, OwnedMemory, SizeClass, Layout};
    /// #[repr(C, align(8192))]
    /// struct SpanMem([u8; 8192]);
    /// let mem: &'static mut SpanMem = Box::leak(Box::new(SpanMem([0; 8192])));
    /// let mut heap = Heap::new();
    /// let base = heap
    ///     .register_span(OwnedMemory::from_static(&mut mem.0), SizeClass::new(40).unwrap(), false)
    ///     .unwrap();
    /// heap.init_object(base + 40, &Layout::with_pointers(40, 0b1).unwrap()).unwrap();
    /// assert!(heap.object(base + 40).is_ok());
    /// assert!(heap.object(base).is_err()); // slot 0 was never handed out
    /// ```
    pub fn register_span(
        &mut self,
        mem: OwnedMemory,
        class: SizeClass,
        noscan: bool,
    ) -> Result<usize, Error> {
        if mem.len != SPAN_BYTES && mem.addr != 0 {
            return Err(Error::InvalidLength { len: mem.len });
        }
        self.check_free_range(mem.addr, mem.len, SPAN_BYTES)?;
        let base = mem.addr;
        self.add_span(base, class, noscan, true)?;
        // Every byte a kernel may read (whole 64-byte frames, free slots included) must be
        // initialised: zero the object area once, here (the metadata was written by add_span).
        if let Some((span, _)) = crate::span::Span::in_map(&self.map, base) {
            span.zero_words(0, crate::span::OBJECT_BYTES / 8);
        }
        self.widen_range(base, SPAN_BYTES);
        Ok(base)
    }

    /// Registers a medium span of a custom allocator, for objects of `class` (520 to 8192
    /// bytes): `mem` is 1 to [`MediumClass::MAX_SPAN_PAGES`] whole 8 KiB pages, 8 KiB-aligned,
    /// cut into `mem.len() / class.bytes()` slots from its first byte (the rest is unused).
    /// **Zeroes the whole span**, so that every object's bytes are initialised; sencha keeps
    /// its metadata beside the span (one record per slot), so every byte is the allocator's.
    /// Then place objects with [`Heap::init_object`] and free them with [`Heap::free_object`],
    /// as in a small span; [`Heap::unregister_span`] and [`Heap::allocated_slots`] take medium
    /// spans too.
    ///
    /// # Errors
    /// [`Error::NullAddress`]; [`Error::InvalidLength`] (not a whole number of pages from 1 to
    /// 16); [`Error::Misaligned`] (not 8 KiB-aligned);
    /// [`Error::OutOfAddressSpace`]; [`Error::AlreadyRegistered`]; [`Error::Overlap`].
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout, MediumClass, OwnedMemory};
    /// #[repr(C, align(8192))]
    /// struct Pages([u8; 2 * 8192]);
    /// let mem: &'static mut Pages = Box::leak(Box::new(Pages([0; 2 * 8192])));
    /// let mut heap = Heap::new();
    /// let class = MediumClass::new(600).unwrap();
    /// let base = heap.register_medium_span(OwnedMemory::from_static(&mut mem.0), class).unwrap();
    /// let obj = base + 600; // slot 1 of 27
    /// heap.init_object(obj, &Layout::from_pointer_words(600, &[0, 70]).unwrap()).unwrap();
    /// assert_eq!(heap.object(obj).unwrap().bytes(), 600);
    /// assert_eq!(heap.allocated_slots(base).unwrap()[0], 0b10);
    /// ```
    pub fn register_medium_span(
        &mut self,
        mem: OwnedMemory,
        class: MediumClass,
    ) -> Result<usize, Error> {
        let pages = mem.len / SPAN_BYTES;
        // A page (8 KiB) holds an object of every class, so one page is always enough.
        if mem.addr != 0
            && (!mem.len.is_multiple_of(SPAN_BYTES)
                || !(1..=MediumClass::MAX_SPAN_PAGES).contains(&pages))
        {
            return Err(Error::InvalidLength { len: mem.len });
        }
        self.check_free_range(mem.addr, mem.len, SPAN_BYTES)?;
        // SAFETY: OwnedMemory's contract (made by the caller in new_unchecked, or by
        // from_static) says `mem` is valid for reads and writes while registered; it is
        // span-aligned (checked above), so 8-byte aligned, and a class's size is a multiple
        // of 8. Its slots are initialised before the records enter the heap: zero_slots
        // below writes every slot byte, and nothing reads a record before that.
        let objects =
            unsafe { LargeObject::slots_unchecked(mem.addr, mem.len, class.bytes(), true) };
        let mut rec = MediumSpan {
            base: mem.addr,
            pages,
            class,
            custom: true,
            alloc: [0; LINE_WORDS],
            live: 0,
            objects,
        };
        rec.zero_slots();
        self.add_medium_record(rec)?;
        self.widen_range(mem.addr, mem.len);
        Ok(mem.addr)
    }

    /// Unregisters a custom span, small or medium; its memory is the allocator's again.
    /// Objects in it are gone from the heap.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] unless `base` is a registered span's base;
    /// [`Error::WrongOwner`] for a span of the embedded allocator; [`Error::Pinned`] while an
    /// object in it is pinned.
    pub fn unregister_span(&mut self, base: usize) -> Result<(), Error> {
        let record = match self.map.get(base).kind() {
            EntryKind::Small { record, .. } if base.is_multiple_of(SPAN_BYTES) => record,
            EntryKind::Medium { record } => {
                let (len, custom) = match self.medium.get(record as usize) {
                    Some(m) if m.base == base => (m.bytes(), m.custom),
                    _ => return Err(Error::NotRegistered { addr: base }),
                };
                if !custom {
                    return Err(Error::WrongOwner { addr: base });
                }
                self.check_unpinned(base, len)?;
                self.remove_medium_record(record);
                return Ok(());
            }
            _ => return Err(Error::NotRegistered { addr: base }),
        };
        if !self.spans[record as usize].custom {
            return Err(Error::WrongOwner { addr: base });
        }
        self.check_unpinned(base, SPAN_BYTES)?;
        for a in self.finalizers() {
            if a & !(SPAN_BYTES - 1) == base {
                self.forget_finalizer(a);
            }
        }
        self.map.set(base, Entry::EMPTY);
        self.remove_span_record(record);
        Ok(())
    }

    /// Registers a large object of a custom allocator: `mem` holds it from its first byte,
    /// `layout` says its size and pointer words. `mem` may be longer than the object, and may
    /// start anywhere 8-byte aligned, but no page of it may be shared with another registered
    /// span or large object (the page map resolves whole 8 KiB pages).
    ///
    /// Returns the object's address. The memory is read as it is: the caller has initialised
    /// every byte of the object ([`OwnedMemory::new_unchecked`]). Between a complete mark and
    /// its sweep the object is registered marked (black), so that sweep keeps it.
    ///
    /// # Errors
    /// As [`Heap::register_span`] (alignment 8), and [`Error::LayoutTooLarge`] when the layout
    /// is longer than `mem`.
    pub fn register_large(&mut self, mem: OwnedMemory, layout: &Layout) -> Result<usize, Error> {
        self.check_free_range(mem.addr, mem.len, 8)?;
        if layout.bytes() > mem.len {
            return Err(Error::LayoutTooLarge {
                bytes: layout.bytes(),
                limit: mem.len,
            });
        }
        // SAFETY: OwnedMemory's contract (made by the caller in new_unchecked, or by
        // from_static) says `mem` is valid for reads and writes while registered; alignment to
        // 8 and layout.bytes() <= mem.len were checked above.
        let rec = unsafe { LargeObject::new_unchecked(mem.addr, mem.len, *layout, true) };
        let i = self.add_large_record(rec)?;
        self.map.set_range(mem.addr, mem.len, Entry::large(i));
        self.widen_range(mem.addr, mem.len);
        self.mark_new(mem.addr);
        Ok(mem.addr)
    }

    /// Unregisters a custom large object; its memory is the allocator's again.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] unless `start` is a registered large object's first byte;
    /// [`Error::WrongOwner`] for an object of the embedded allocator (large or medium);
    /// [`Error::Pinned`] while it is pinned. (A custom medium object is freed with
    /// [`Heap::free_object`]; here it is `NotRegistered`.)
    pub fn unregister_large(&mut self, start: usize) -> Result<(), Error> {
        let record = match self.map.get(start).kind() {
            EntryKind::Large { record } => record as usize,
            EntryKind::Medium { .. } => {
                return Err(match self.object(start) {
                    Ok(crate::Object::Large(l)) if !l.is_custom() => {
                        Error::WrongOwner { addr: start }
                    }
                    _ => Error::NotRegistered { addr: start },
                });
            }
            _ => return Err(Error::NotRegistered { addr: start }),
        };
        let (claim, custom) = match &self.large[record] {
            Some(l) if l.start() == start => (l.claim(), l.is_custom()),
            _ => return Err(Error::NotRegistered { addr: start }),
        };
        if !custom {
            return Err(Error::WrongOwner { addr: start });
        }
        self.check_unpinned(start, 1)?;
        self.forget_finalizer(start);
        self.map.set_range(start, claim, Entry::EMPTY);
        self.large[record] = None;
        self.vacant_large.push(record as u32);
        Ok(())
    }

    /// Records that the custom allocator placed an object of `layout` at `addr`, a slot start
    /// of a registered custom span: marks the slot allocated and writes its pointer bits. The
    /// object's memory is left as the allocator wrote it.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] outside custom spans; [`Error::WrongOwner`] in an embedded
    /// span; [`Error::NotAnObject`] for an address that is not a slot start;
    /// [`Error::SlotInUse`]; [`Error::LayoutTooLarge`] when the layout exceeds the class;
    /// [`Error::InvalidLayout`] for a layout with pointers in a noscan span.
    pub fn init_object(&mut self, addr: usize, layout: &Layout) -> Result<(), Error> {
        let o = match self.resolve(addr) {
            Resolved::Small(o) => o,
            Resolved::Large(l) if l.is_medium() => return self.init_medium_object(addr, layout),
            Resolved::Large(_) => return Err(Error::WrongOwner { addr }),
            Resolved::NotInHeap => {
                return Err(if self.map.get(addr).is_empty() {
                    Error::NotRegistered { addr }
                } else {
                    Error::NotAnObject { addr }
                });
            }
        };
        let rec = self
            .span_record(addr)
            .ok_or(Error::NotRegistered { addr })?;
        if !rec.custom {
            return Err(Error::WrongOwner { addr });
        }
        if o.addr() != addr {
            return Err(Error::NotAnObject { addr });
        }
        if rec.is_allocated(o.index) {
            return Err(Error::SlotInUse { addr });
        }
        if layout.bytes() > o.class.bytes() {
            return Err(Error::LayoutTooLarge {
                bytes: layout.bytes(),
                limit: o.class.bytes(),
            });
        }
        if o.noscan && layout.has_pointers() {
            return Err(Error::InvalidLayout {
                reason: "a layout with pointers in a noscan span",
            });
        }
        if !o.noscan {
            o.span.set_object_ptr_bits(o.index, layout.small_bits());
        }
        let index = o.index;
        let ri = self
            .span_record_index(addr)
            .ok_or(Error::NotRegistered { addr })?;
        let rec = &mut self.spans[ri as usize];
        rec.alloc[index / 64] |= 1 << (index % 64);
        rec.live += 1;
        self.set_small_weak_bits(ri, index, layout.weak_bits());
        self.mark_new(addr);
        Ok(())
    }

    /// [`Heap::init_object`] in a medium span, with the same checks in the same order.
    fn init_medium_object(&mut self, addr: usize, layout: &Layout) -> Result<(), Error> {
        let m = self
            .medium_record(addr)
            .ok_or(Error::NotRegistered { addr })?;
        if !m.custom {
            return Err(Error::WrongOwner { addr });
        }
        let index = m.slot_of(addr).ok_or(Error::NotAnObject { addr })?;
        if m.objects[index].start() != addr {
            return Err(Error::NotAnObject { addr });
        }
        if m.is_allocated(index) {
            return Err(Error::SlotInUse { addr });
        }
        if layout.bytes() > m.class.bytes() {
            return Err(Error::LayoutTooLarge {
                bytes: layout.bytes(),
                limit: m.class.bytes(),
            });
        }
        let m = self
            .medium_record_mut(addr)
            .ok_or(Error::NotRegistered { addr })?;
        if !m.objects[index].set_layout(*layout) {
            return Err(Error::LayoutTooLarge {
                bytes: layout.bytes(),
                limit: m.class.bytes(),
            });
        }
        m.alloc[index / 64] |= 1 << (index % 64);
        m.live += 1;
        self.mark_new(addr);
        Ok(())
    }

    /// Records that the custom allocator freed the object at `addr`.
    ///
    /// # Errors
    /// [`Error::NullAddress`], [`Error::NotRegistered`], [`Error::NotAnObject`] (not an
    /// allocated small object's start), [`Error::WrongOwner`] (an embedded span's object),
    /// [`Error::Pinned`].
    pub fn free_object(&mut self, addr: usize) -> Result<(), Error> {
        let o = match self.object(addr)? {
            crate::Object::Small(o) => o,
            crate::Object::Large(l) if l.is_medium() => {
                if !l.is_custom() {
                    return Err(Error::WrongOwner { addr });
                }
                self.check_unpinned(addr, 1)?;
                let m = self
                    .medium_record_mut(addr)
                    .ok_or(Error::NotRegistered { addr })?;
                let index = m.slot_of(addr).ok_or(Error::NotAnObject { addr })?;
                m.free_slot(index);
                self.forget_finalizer(addr);
                return Ok(());
            }
            crate::Object::Large(_) => return Err(Error::NotAnObject { addr }),
        };
        if !self.span_record(addr).is_some_and(|r| r.custom) {
            return Err(Error::WrongOwner { addr });
        }
        self.check_unpinned(addr, 1)?;
        if !o.noscan {
            o.span.set_object_ptr_bits(o.index, 0);
        }
        let index = o.index;
        let rec = self
            .span_record_mut(addr)
            .ok_or(Error::NotRegistered { addr })?;
        rec.alloc[index / 64] &= !(1 << (index % 64));
        rec.live -= 1;
        self.forget_finalizer(addr);
        Ok(())
    }

    /// The allocated-slot bitmap of the span at `base`, small or medium (bit `i` of word
    /// `i / 64` = slot `i`): after a sweep, a custom allocator reuses the clear bits below the
    /// span's capacity.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] unless `base` is a registered span's base.
    pub fn allocated_slots(&self, base: usize) -> Result<[u64; LINE_WORDS], Error> {
        if !base.is_multiple_of(SPAN_BYTES) {
            return Err(Error::NotRegistered { addr: base });
        }
        if let Some(m) = self.medium_record(base) {
            return if m.base == base {
                Ok(m.alloc)
            } else {
                Err(Error::NotRegistered { addr: base })
            };
        }
        self.span_record(base)
            .map(|r| r.alloc)
            .ok_or(Error::NotRegistered { addr: base })
    }
}
