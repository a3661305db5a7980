//! The heap: the page map, the records of every span and large object, and the queries a
//! marker and a mutator make of them.
//!
//! One [`Heap`] holds memory from the embedded allocator (`alloc`) and memory handed over by a
//! custom allocator (`register`) side by side; a marker treats both alike.
//!
//! Ownership rules, which make the public API safe:
//! - everything that changes the heap's shape (allocation, registration, sweep, clearing
//!   marks, writing object words) takes `&mut Heap`;
//! - marking takes `&Heap` and touches only the atomic mark and scan lines;
//! - [`Span`] handles and `&LargeObject`s borrow the heap, so they cannot outlive a change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::arena::Arena;
use crate::class::SizeClass;
use crate::error::Error;
use crate::large::LargeObject;
use crate::medium::{MediumClass, MediumSpan};
use crate::pagemap::{ADDRESS_LIMIT, Entry, EntryKind, PageMap};
use crate::span::{CLASS_NOSCAN, LINE_WORDS, MapHit, SPAN_BYTES, Span};

/// Settings of a heap's embedded allocator.
///
/// Every field is checked by [`Heap::with_config`] ([`HeapConfig::validate`]); a value outside
/// its limits is [`Error::InvalidConfig`], never a silently different heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapConfig {
    /// Advise arenas onto transparent huge pages (`MADV_HUGEPAGE`). Default: on. Marking is
    /// dominated by random accesses, and huge pages cut their TLB misses.
    pub huge_pages: bool,
    /// Bytes reserved from the OS at a time: from 1 to [`HeapConfig::MAX_ARENA_BYTES`] (1 TiB),
    /// rounded up to a multiple of 2 MiB. Default: 64 MiB. A large object bigger than this
    /// gets an arena of its own size. (There is no "unlimited": address space is reserved, not
    /// committed, so a large value only costs address space.)
    pub arena_bytes: usize,
}

impl HeapConfig {
    /// The largest [`HeapConfig::arena_bytes`]: 1 TiB.
    pub const MAX_ARENA_BYTES: usize = 1 << 40;

    /// Checks every field against its documented limits.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of its limits.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Error, HeapConfig};
    /// assert!(HeapConfig::default().validate().is_ok());
    /// let unlimited = HeapConfig { arena_bytes: usize::MAX, ..HeapConfig::default() };
    /// assert!(matches!(unlimited.validate(), Err(Error::InvalidConfig { field: "arena_bytes", .. })));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if self.arena_bytes == 0 || self.arena_bytes > Self::MAX_ARENA_BYTES {
            return Err(Error::InvalidConfig {
                field: "arena_bytes",
                value: self.arena_bytes,
                reason: "must be from 1 byte to 1 TiB (HeapConfig::MAX_ARENA_BYTES)",
            });
        }
        Ok(())
    }
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig {
            huge_pages: true,
            arena_bytes: 64 << 20,
        }
    }
}

/// Where a heap stands between marks. [`Heap::mark_state`] reads it.
///
/// ```text
///            mark starts               mark completes
///   Clean ------------------> Marking ----------------> Marked --- sweep ---> Clean
///     ^   (Marked, Aborted:     |   fails or panics        |
///     |    marks cleared first) +-------------> Aborted     +--- clear_marks -> Clean
///     +--------------------------- clear_marks ---------------+
/// ```
/// - Only [`Heap::sweep`] frees objects, and only in `Marked`: a sweep after no mark, or
///   after a failed one, is [`Error::NoCompleteMark`] and frees nothing.
/// - In `Marked`, objects allocated or registered (embedded [`Heap::alloc`], custom
///   [`Heap::init_object`] and [`Heap::register_large`]) are **allocated black**: marked at
///   once, so the sweep that ends the cycle keeps them.
/// - A new mark in `Marked` or `Aborted` clears the old marks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MarkState {
    /// No marks: a new heap, or one just swept or cleared.
    Clean = 0,
    /// A mark is running.
    Marking = 1,
    /// A complete mark ran; its results wait for the sweep.
    Marked = 2,
    /// A mark started but did not complete (it failed or panicked); its marks are partial.
    Aborted = 3,
}

impl MarkState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => MarkState::Clean,
            1 => MarkState::Marking,
            2 => MarkState::Marked,
            _ => MarkState::Aborted,
        }
    }
}

/// Book-keeping for one span.
#[derive(Clone, Debug)]
pub(crate) struct SpanRecord {
    /// The span's base; 0 for a vacant record.
    pub(crate) base: usize,
    pub(crate) class: SizeClass,
    pub(crate) noscan: bool,
    pub(crate) custom: bool,
    /// Allocated slots.
    pub(crate) alloc: [u64; LINE_WORDS],
    /// Number of allocated slots.
    pub(crate) live: u32,
    /// Weak words of the span's objects (one bit per span word), if any object has some:
    /// read only by the weak-clearing pass after a mark (`weak.rs`).
    pub(crate) weak: Option<Box<[u64; crate::span::PTR_BITMAP_WORDS]>>,
    /// First alloc word that may have a free slot (embedded allocation cursor).
    pub(crate) cursor: u8,
}

impl SpanRecord {
    pub(crate) fn is_allocated(&self, index: usize) -> bool {
        self.alloc[index / 64] >> (index % 64) & 1 != 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.live as usize == self.class.capacity()
    }
}

/// What an address resolves to.
#[derive(Clone, Copy, Debug)]
pub enum Resolved<'h> {
    /// Not an object of this heap: null, unmapped, free pages, a span's metadata tail, past
    /// the end of a large object, or past the layout of a medium object in its slot.
    NotInHeap,
    /// A slot of a small-object span (allocated or not: [`Heap::object`] checks that).
    Small(SmallObject<'h>),
    /// Inside an object with its own record: a large object, or a medium object's slot
    /// ([`LargeObject::is_medium`]; allocated or not, like small slots: [`Heap::object`]
    /// checks that, and a free slot's record has no pointers).
    Large(&'h LargeObject),
}

/// A slot in a span, as [`Heap::resolve`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallObject<'h> {
    /// The span.
    pub span: Span<'h>,
    /// The slot's index in the span.
    pub index: usize,
    /// The span's size class.
    pub class: SizeClass,
    /// Whether the span holds pointer-free objects.
    pub noscan: bool,
}

impl SmallObject<'_> {
    /// The slot's first byte.
    #[inline]
    pub fn addr(&self) -> usize {
        self.span.base() + self.index * self.class.bytes()
    }
}

/// An allocated object, as [`Heap::object`] finds it.
#[derive(Clone, Copy, Debug)]
pub enum Object<'h> {
    /// A small object.
    Small(SmallObject<'h>),
    /// A large or medium object ([`LargeObject::is_medium`] tells them apart).
    Large(&'h LargeObject),
}

impl Object<'_> {
    /// The object's first byte.
    pub fn addr(&self) -> usize {
        match self {
            Object::Small(o) => o.addr(),
            Object::Large(l) => l.start(),
        }
    }

    /// The object's size in bytes (its slot size for small objects, its layout's size for
    /// medium and large ones).
    pub fn bytes(&self) -> usize {
        match self {
            Object::Small(o) => o.class.bytes(),
            Object::Large(l) => l.bytes(),
        }
    }

    /// Whether it is marked.
    pub fn is_marked(&self) -> bool {
        match self {
            Object::Small(o) => o.span.is_marked(o.index),
            Object::Large(l) => l.is_marked(),
        }
    }
}

/// The marked, allocated objects of a heap ([`Heap::marked_totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MarkedTotals {
    /// Objects, small, medium and large.
    pub objects: usize,
    /// Bytes: slot sizes of small and medium objects, sizes of large ones.
    pub bytes: usize,
    /// Of the objects, large ones.
    pub large_objects: usize,
    /// Of the objects, medium ones.
    pub medium_objects: usize,
}

/// Figures about a heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Registered small-object spans (embedded and custom).
    pub spans: usize,
    /// Of which registered by a custom allocator.
    pub custom_spans: usize,
    /// Allocated small objects.
    pub small_objects: usize,
    /// Bytes of allocated small-object slots.
    pub small_bytes: usize,
    /// Registered large objects.
    pub large_objects: usize,
    /// Bytes of large objects.
    pub large_bytes: usize,
    /// Registered medium spans (embedded and custom).
    pub medium_spans: usize,
    /// Allocated medium objects.
    pub medium_objects: usize,
    /// Bytes of allocated medium-object slots.
    pub medium_bytes: usize,
    /// Address space reserved from the OS by the embedded allocator.
    pub reserved_bytes: usize,
    /// Page-map chunk tables allocated (64 KiB each).
    pub page_map_tables: usize,
}

impl HeapStats {
    /// Allocated objects, small, medium and large.
    pub fn objects(&self) -> usize {
        self.small_objects + self.medium_objects + self.large_objects
    }

    /// Allocated bytes, small, medium and large.
    pub fn bytes(&self) -> usize {
        self.small_bytes + self.medium_bytes + self.large_bytes
    }
}

/// Per default class and kind (scan, noscan): where the embedded allocator takes slots from.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClassState {
    pub(crate) current: Option<u32>,
    pub(crate) partial: Vec<u32>,
}

/// A heap of spans and large objects, with its page map.
///
/// # Examples
/// ```
/// use sencha_spans::{Heap, Layout};
/// let mut heap = Heap::new();
/// let node = Layout::with_pointers(32, 0b11).unwrap();
/// let a = heap.alloc(&node).unwrap();
/// let b = heap.alloc(&node).unwrap();
/// heap.write_word(a, 0, b).unwrap();
/// assert_eq!(heap.read_word(a, 0).unwrap(), b);
/// assert_eq!(heap.stats().small_objects, 2);
/// ```
#[derive(Debug)]
pub struct Heap {
    pub(crate) config: HeapConfig,
    pub(crate) map: PageMap,
    pub(crate) spans: Vec<SpanRecord>,
    pub(crate) vacant_spans: Vec<u32>,
    pub(crate) large: Vec<Option<LargeObject>>,
    pub(crate) vacant_large: Vec<u32>,
    /// Medium spans (vacant records have base 0).
    pub(crate) medium: Vec<MediumSpan>,
    pub(crate) vacant_medium: Vec<u32>,
    /// Embedded medium allocation state, by default medium class index.
    pub(crate) medium_classes: Vec<ClassState>,
    pub(crate) arenas: Vec<Arena>,
    /// Free page runs of the embedded allocator: start -> (pages, dirty).
    pub(crate) free_pages: BTreeMap<usize, (usize, bool)>,
    /// Embedded allocation state, `[default class index][noscan as usize]`.
    pub(crate) classes: Vec<[ClassState; 2]>,
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    /// A [`MarkState`]; changed by marks through `&Heap`, hence atomic.
    pub(crate) mark_state: AtomicU8,
    /// Pinned objects (roots of every mark) and their pin counts.
    pub(crate) pins: BTreeMap<usize, usize>,
    /// Weak references, ephemerons, finalizers (`weak.rs`).
    pub(crate) weak: crate::weak::WeakState,
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    /// An empty heap with the default configuration. Reserves nothing until the first
    /// allocation.
    pub fn new() -> Self {
        Self::unchecked(HeapConfig::default())
    }

    /// An empty heap with `config`, once [`HeapConfig::validate`] accepts it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a field outside its limits.
    pub fn with_config(config: HeapConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self::unchecked(config))
    }

    fn unchecked(config: HeapConfig) -> Self {
        Heap {
            config,
            map: PageMap::new(),
            spans: Vec::new(),
            vacant_spans: Vec::new(),
            large: Vec::new(),
            vacant_large: Vec::new(),
            medium: Vec::new(),
            vacant_medium: Vec::new(),
            medium_classes: vec![ClassState::default(); MediumClass::DEFAULTS.len()],
            arenas: Vec::new(),
            free_pages: BTreeMap::new(),
            classes: vec![Default::default(); SizeClass::DEFAULTS.len()],
            lo: usize::MAX,
            hi: 0,
            mark_state: AtomicU8::new(MarkState::Clean as u8),
            pins: BTreeMap::new(),
            weak: Default::default(),
        }
    }

    /// Where the heap stands between marks (see [`MarkState`]).
    pub fn mark_state(&self) -> MarkState {
        MarkState::from_u8(self.mark_state.load(Ordering::Acquire))
    }

    /// Whether new objects must be allocated black (marked): a complete mark's results are
    /// waiting for the sweep.
    #[inline]
    pub(crate) fn allocates_black(&self) -> bool {
        self.mark_state.load(Ordering::Relaxed) == MarkState::Marked as u8
    }

    /// Marks a just-allocated or just-registered object if [`Heap::allocates_black`].
    pub(crate) fn mark_new(&self, addr: usize) {
        if !self.allocates_black() {
            return;
        }
        match self.resolve(addr) {
            Resolved::Small(o) => {
                o.span.try_mark(o.index);
            }
            Resolved::Large(l) => {
                l.try_mark();
            }
            Resolved::NotInHeap => debug_assert!(false, "a new object resolves"),
        }
    }

    /// Pins the object at `addr`: it is a root of every mark until as many
    /// [`Heap::unpin`]s as pins, and it cannot be freed or unregistered meanwhile.
    ///
    /// # Errors
    /// As [`Heap::object`]; [`Error::Unreachable`] for an object the last complete mark found
    /// unreachable (in [`MarkState::Marked`]: the sweep may free what it points to).
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Heap, Layout};
    /// let mut heap = Heap::new();
    /// let a = heap.alloc(&Layout::all_pointers(16).unwrap()).unwrap();
    /// heap.pin(a).unwrap();
    /// assert_eq!(heap.pinned().collect::<Vec<_>>(), [a]);
    /// heap.unpin(a).unwrap();
    /// assert!(heap.unpin(a).is_err());
    /// ```
    pub fn pin(&mut self, addr: usize) -> Result<(), Error> {
        let o = self.object(addr)?;
        if self.mark_state() == MarkState::Marked && !o.is_marked() {
            return Err(Error::Unreachable { addr });
        }
        *self.pins.entry(addr).or_insert(0) += 1;
        Ok(())
    }

    /// Undoes one [`Heap::pin`] of `addr`.
    ///
    /// # Errors
    /// [`Error::NotPinned`] if `addr` is not pinned.
    pub fn unpin(&mut self, addr: usize) -> Result<(), Error> {
        match self.pins.get_mut(&addr) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.pins.remove(&addr);
            }
            None => return Err(Error::NotPinned { addr }),
        }
        Ok(())
    }

    /// The pinned objects, in address order.
    pub fn pinned(&self) -> impl Iterator<Item = usize> + '_ {
        self.pins.keys().copied()
    }

    /// Fails with [`Error::Pinned`] if a pinned object lies in `start .. start + len`.
    pub(crate) fn check_unpinned(&self, start: usize, len: usize) -> Result<(), Error> {
        match self.pins.range(start..start.saturating_add(len)).next() {
            Some((&addr, _)) => Err(Error::Pinned { addr }),
            None => Ok(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HeapConfig {
        &self.config
    }

    /// What `addr` points into, in O(1): the hot lookup of marking.
    ///
    /// Interior addresses resolve to their object; addresses in a span's metadata tail, in free
    /// pages or outside the heap resolve to [`Resolved::NotInHeap`]. A small slot is returned
    /// whether allocated or not (marking does not read the allocation bits; sweep ignores marks
    /// on free slots).
    #[inline]
    pub fn resolve(&self, addr: usize) -> Resolved<'_> {
        match Span::lookup(&self.map, addr) {
            MapHit::Small(span, class_byte) => {
                let Some(class) = SizeClass::from_words(class_byte & !CLASS_NOSCAN) else {
                    return Resolved::NotInHeap;
                };
                match class.index_of(addr - span.base()) {
                    Some(index) => Resolved::Small(SmallObject {
                        span,
                        index,
                        class,
                        noscan: class_byte & CLASS_NOSCAN != 0,
                    }),
                    None => Resolved::NotInHeap,
                }
            }
            MapHit::Large(record) => match self.large.get(record as usize) {
                Some(Some(l)) if l.contains(addr) => Resolved::Large(l),
                _ => Resolved::NotInHeap,
            },
            MapHit::Medium(record) => {
                let Some(m) = self.medium.get(record as usize) else {
                    return Resolved::NotInHeap;
                };
                match m.slot_of(addr).map(|i| &m.objects[i]) {
                    Some(o) if o.contains(addr) => Resolved::Large(o),
                    _ => Resolved::NotInHeap,
                }
            }
            MapHit::Empty => Resolved::NotInHeap,
        }
    }

    /// The allocated object that starts exactly at `addr`: what a precise root must be.
    ///
    /// # Errors
    /// [`Error::NullAddress`] for 0; [`Error::NotRegistered`] outside the heap;
    /// [`Error::NotAnObject`] for interior addresses, free slots and metadata.
    pub fn object(&self, addr: usize) -> Result<Object<'_>, Error> {
        if addr == 0 {
            return Err(Error::NullAddress);
        }
        match self.resolve(addr) {
            Resolved::NotInHeap => {
                if self.map.get(addr).is_empty() {
                    Err(Error::NotRegistered { addr })
                } else {
                    Err(Error::NotAnObject { addr })
                }
            }
            Resolved::Small(o) => {
                let rec = self
                    .span_record(addr)
                    .ok_or(Error::NotRegistered { addr })?;
                if o.addr() == addr && rec.is_allocated(o.index) {
                    Ok(Object::Small(o))
                } else {
                    Err(Error::NotAnObject { addr })
                }
            }
            Resolved::Large(l) if l.start() == addr && self.is_allocated_record(l) => {
                Ok(Object::Large(l))
            }
            Resolved::Large(_) => Err(Error::NotAnObject { addr }),
        }
    }

    /// Whether a record that [`Heap::resolve`] returned is an allocated object: always for a
    /// large object, when its slot is allocated for a medium one.
    fn is_allocated_record(&self, l: &LargeObject) -> bool {
        !l.is_medium()
            || self
                .medium_record(l.start())
                .and_then(|m| Some(m.is_allocated(m.slot_of(l.start())?)))
                .unwrap_or(false)
    }

    /// The allocated object that contains `addr`, interior addresses included: what a
    /// conservative root may point to. `None` for everything else.
    pub fn object_containing(&self, addr: usize) -> Option<Object<'_>> {
        match self.resolve(addr) {
            Resolved::NotInHeap => None,
            Resolved::Small(o) => {
                let rec = self.span_record(addr)?;
                rec.is_allocated(o.index).then_some(Object::Small(o))
            }
            Resolved::Large(l) => self.is_allocated_record(l).then_some(Object::Large(l)),
        }
    }

    /// The index of the record of the span holding `addr`.
    pub(crate) fn span_record_index(&self, addr: usize) -> Option<u32> {
        match self.map.get(addr).kind() {
            EntryKind::Small { record, .. } => Some(record),
            _ => None,
        }
    }

    pub(crate) fn span_record(&self, addr: usize) -> Option<&SpanRecord> {
        match self.map.get(addr).kind() {
            EntryKind::Small { record, .. } => self.spans.get(record as usize),
            _ => None,
        }
    }

    pub(crate) fn span_record_mut(&mut self, addr: usize) -> Option<&mut SpanRecord> {
        match self.map.get(addr).kind() {
            EntryKind::Small { record, .. } => self.spans.get_mut(record as usize),
            _ => None,
        }
    }

    /// The record of the large object, or of the medium slot, at `addr`.
    pub(crate) fn large_record_mut(&mut self, addr: usize) -> Option<&mut LargeObject> {
        match self.map.get(addr).kind() {
            EntryKind::Large { record } => self.large.get_mut(record as usize)?.as_mut(),
            EntryKind::Medium { record } => {
                let m = self.medium.get_mut(record as usize)?;
                let i = m.slot_of(addr)?;
                m.objects.get_mut(i)
            }
            _ => None,
        }
    }

    pub(crate) fn medium_record(&self, addr: usize) -> Option<&MediumSpan> {
        match self.map.get(addr).kind() {
            EntryKind::Medium { record } => self.medium.get(record as usize),
            _ => None,
        }
    }

    pub(crate) fn medium_record_mut(&mut self, addr: usize) -> Option<&mut MediumSpan> {
        match self.map.get(addr).kind() {
            EntryKind::Medium { record } => self.medium.get_mut(record as usize),
            _ => None,
        }
    }

    /// Reads word `w` of the object at `addr`.
    ///
    /// # Errors
    /// As [`Heap::object`], and [`Error::WordOutOfRange`].
    pub fn read_word(&self, addr: usize, w: usize) -> Result<usize, Error> {
        match self.object(addr)? {
            Object::Small(o) => {
                check_word(w, o.class.words())?;
                o.span
                    .read_word(o.index * o.class.words() + w)
                    .ok_or(Error::WordOutOfRange {
                        word: w,
                        words: o.class.words(),
                    })
            }
            Object::Large(l) => {
                check_word(w, l.layout().words())?;
                l.read_word(w).ok_or(Error::WordOutOfRange {
                    word: w,
                    words: l.layout().words(),
                })
            }
        }
    }

    /// Writes word `w` of the object at `addr` (for example a pointer field).
    ///
    /// # Errors
    /// As [`Heap::read_word`].
    pub fn write_word(&mut self, addr: usize, w: usize, value: usize) -> Result<(), Error> {
        match self.object(addr)? {
            Object::Small(o) => {
                check_word(w, o.class.words())?;
                o.span.write_word(o.index * o.class.words() + w, value);
                Ok(())
            }
            Object::Large(l) => {
                check_word(w, l.layout().words())?;
                self.large_record_mut(addr)
                    .ok_or(Error::NotRegistered { addr })?
                    .write_word(w, value);
                Ok(())
            }
        }
    }

    /// Whether the object at `addr` is marked.
    ///
    /// # Errors
    /// As [`Heap::object`].
    pub fn is_marked(&self, addr: usize) -> Result<bool, Error> {
        Ok(self.object(addr)?.is_marked())
    }

    /// The lowest and one past the highest address of memory the heap holds: every pointer into
    /// the heap lies in `lo .. hi` (a range filter for kernels; `(0, 0)` when empty).
    #[inline]
    pub fn address_range(&self) -> (usize, usize) {
        if self.lo < self.hi {
            (self.lo, self.hi)
        } else {
            (0, 0)
        }
    }

    pub(crate) fn widen_range(&mut self, start: usize, len: usize) {
        debug_assert!(len > 0, "an empty range widens nothing");
        self.lo = self.lo.min(start);
        self.hi = self.hi.max(start.saturating_add(len)).min(ADDRESS_LIMIT);
    }

    /// Every registered span.
    pub fn spans(&self) -> impl Iterator<Item = Span<'_>> + '_ {
        self.spans
            .iter()
            .filter(|r| r.base != 0)
            .filter_map(|r| Span::in_map(&self.map, r.base).map(|(s, _)| s))
    }

    /// Every registered large object (not the medium ones: [`Heap::medium_objects`]).
    pub fn large_objects(&self) -> impl Iterator<Item = &LargeObject> + '_ {
        self.large.iter().flatten()
    }

    /// Every allocated medium object.
    pub fn medium_objects(&self) -> impl Iterator<Item = &LargeObject> + '_ {
        self.medium.iter().filter(|m| m.base != 0).flat_map(|m| {
            m.objects
                .iter()
                .enumerate()
                .filter(|&(i, _)| m.is_allocated(i))
                .map(|(_, o)| o)
        })
    }

    /// Every allocated object, small, medium and large, in no particular order.
    pub fn objects(&self) -> impl Iterator<Item = Object<'_>> + '_ {
        let small = self
            .spans
            .iter()
            .filter(|r| r.base != 0)
            .flat_map(move |r| {
                let (span, class_byte) =
                    Span::in_map(&self.map, r.base).expect("a live record's span is in the map");
                let class = r.class;
                (0..class.capacity())
                    .filter(|&i| r.is_allocated(i))
                    .map(move |index| {
                        Object::Small(SmallObject {
                            span,
                            index,
                            class,
                            noscan: class_byte & CLASS_NOSCAN != 0,
                        })
                    })
            });
        small
            .chain(self.medium_objects().map(Object::Large))
            .chain(self.large_objects().map(Object::Large))
    }

    /// The addresses of every marked, allocated object, sorted: what tests compare between
    /// markers.
    pub fn marked_objects(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .objects()
            .filter(|o| o.is_marked())
            .map(|o| o.addr())
            .collect();
        v.sort_unstable();
        v
    }

    /// Clears every mark (and scanned bit): the heap is [`MarkState::Clean`] again, as if no
    /// mark had run (a later sweep is then [`Error::NoCompleteMark`]). Marking again does
    /// this by itself; this is for dropping a mark's results on purpose.
    pub fn clear_marks(&mut self) {
        self.clear_marks_shared();
        *self.mark_state.get_mut() = MarkState::Clean as u8;
    }

    /// Clears every mark through the atomic metadata; for a mark that is about to start.
    pub(crate) fn clear_marks_shared(&self) {
        for r in self.spans.iter().filter(|r| r.base != 0) {
            if let Some((s, _)) = Span::in_map(&self.map, r.base) {
                s.reset_marks();
            }
        }
        for l in self.large.iter().flatten() {
            l.reset_mark();
        }
        for m in &self.medium {
            for o in &m.objects {
                o.reset_mark();
            }
        }
    }

    /// The allocated objects that are marked: exactly what the last mark found live, not
    /// counting marks that stale words set on free slots.
    pub fn marked_totals(&self) -> MarkedTotals {
        let mut t = MarkedTotals::default();
        for r in self.spans.iter().filter(|r| r.base != 0) {
            if let Some((s, _)) = Span::in_map(&self.map, r.base) {
                let n: u32 = s
                    .marked_bits()
                    .iter()
                    .zip(&r.alloc)
                    .map(|(m, a)| (m & a).count_ones())
                    .sum();
                t.objects += n as usize;
                t.bytes += n as usize * r.class.bytes();
            }
        }
        for l in self.large.iter().flatten().filter(|l| l.is_marked()) {
            t.objects += 1;
            t.large_objects += 1;
            t.bytes += l.bytes();
        }
        for m in self.medium.iter().filter(|m| m.base != 0) {
            let n = (0..m.objects.len())
                .filter(|&i| m.is_allocated(i) && m.objects[i].is_marked())
                .count();
            t.objects += n;
            t.medium_objects += n;
            t.bytes += n * m.class.bytes();
        }
        t
    }

    /// Figures about the heap.
    pub fn stats(&self) -> HeapStats {
        let mut s = HeapStats {
            reserved_bytes: self.arenas.iter().map(Arena::len).sum(),
            page_map_tables: self.map.chunk_tables(),
            ..HeapStats::default()
        };
        for r in self.spans.iter().filter(|r| r.base != 0) {
            s.spans += 1;
            s.custom_spans += r.custom as usize;
            s.small_objects += r.live as usize;
            s.small_bytes += r.live as usize * r.class.bytes();
        }
        for l in self.large_objects() {
            s.large_objects += 1;
            s.large_bytes += l.bytes();
        }
        for m in self.medium.iter().filter(|m| m.base != 0) {
            s.medium_spans += 1;
            s.medium_objects += m.live as usize;
            s.medium_bytes += m.live as usize * m.class.bytes();
        }
        s
    }

    /// Makes the 8 KiB at `base` (memory the heap keeps valid while the span is registered) a
    /// span of `class`: its record, its page-map entry, its fresh header. Returns the record.
    pub(crate) fn add_span(
        &mut self,
        base: usize,
        class: SizeClass,
        noscan: bool,
        custom: bool,
    ) -> Result<u32, Error> {
        let rec = SpanRecord {
            base,
            class,
            noscan,
            custom,
            alloc: [0; LINE_WORDS],
            weak: None,
            live: 0,
            cursor: 0,
        };
        let i = self.add_span_record(rec)?;
        let class_byte = class.words() as u8 | if noscan { CLASS_NOSCAN } else { 0 };
        self.map.set(base, Entry::small(class_byte, i));
        let (span, _) = Span::in_map(&self.map, base).expect("entry was just set");
        span.init(class, noscan);
        Ok(i)
    }

    /// Adds a span record, reusing a vacant one.
    pub(crate) fn add_span_record(&mut self, rec: SpanRecord) -> Result<u32, Error> {
        if let Some(i) = self.vacant_spans.pop() {
            self.spans[i as usize] = rec;
            return Ok(i);
        }
        let i = u32::try_from(self.spans.len())
            .map_err(|_| Error::OutOfMemory { bytes: SPAN_BYTES })?;
        self.spans.push(rec);
        Ok(i)
    }

    /// Vacates span record `i`.
    pub(crate) fn remove_span_record(&mut self, i: u32) {
        if self.spans[i as usize].weak.take().is_some() {
            self.weak.weak_spans -= 1;
        }
        self.spans[i as usize].base = 0;
        self.spans[i as usize].live = 0;
        self.vacant_spans.push(i);
    }

    /// Adds a medium-span record, reusing a vacant one, and maps its pages to it.
    pub(crate) fn add_medium_record(&mut self, rec: MediumSpan) -> Result<u32, Error> {
        let (base, len) = (rec.base, rec.bytes());
        let i = if let Some(i) = self.vacant_medium.pop() {
            self.medium[i as usize] = rec;
            i
        } else {
            let i =
                u32::try_from(self.medium.len()).map_err(|_| Error::OutOfMemory { bytes: len })?;
            self.medium.push(rec);
            i
        };
        self.map.set_range(base, len, Entry::medium(i));
        Ok(i)
    }

    /// Unmaps medium span record `i` and vacates it.
    pub(crate) fn remove_medium_record(&mut self, i: u32) {
        let m = std::mem::replace(&mut self.medium[i as usize], MediumSpan::vacant());
        self.map.set_range(m.base, m.bytes(), Entry::EMPTY);
        self.vacant_medium.push(i);
    }

    /// Adds a large-object record, reusing a vacant one.
    pub(crate) fn add_large_record(&mut self, rec: LargeObject) -> Result<u32, Error> {
        if let Some(i) = self.vacant_large.pop() {
            self.large[i as usize] = Some(rec);
            return Ok(i);
        }
        let i = u32::try_from(self.large.len())
            .map_err(|_| Error::OutOfMemory { bytes: rec.bytes() })?;
        self.large.push(Some(rec));
        Ok(i)
    }
}

fn check_word(w: usize, words: usize) -> Result<(), Error> {
    if w < words {
        Ok(())
    } else {
        Err(Error::WordOutOfRange { word: w, words })
    }
}
