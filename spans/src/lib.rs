//! The heap side of [sencha](https://docs.rs/sencha), a Green Tea–style span marker.
//!
//! # Overview
//! Objects of up to 512 bytes live in **spans**: 8 KiB, 8 KiB-aligned blocks of one
//! [`SizeClass`] each, whose last 256 bytes are inline metadata — a pointer bitmap (one bit per
//! word), the scanned bits, and one 64-byte *mark line* with the marked bits, the class byte and
//! the owner byte. Address arithmetic alone finds an object's span (`addr & !8191`), its index
//! (a multiply and a shift) and its mark bit. Objects of 513 bytes to 8 KiB live in **medium
//! spans** of 1 to 16 pages, several to a span ([`MediumClass`]: 27 classes, at most 12.5 %
//! wasted per object); each medium slot and each larger object has its own record
//! ([`LargeObject`]) with its [`Layout`], which can say any pointer set. The
//! [`PageMap`](pagemap::PageMap) resolves any address to its span, its medium slot, its large
//! object or "not in the heap" in O(1). The byte-exact layout is in `docs/SPAN_LAYOUT.md` and in
//! the [`span`] module docs.
//!
//! A [`Heap`] holds spans and large objects from two sources side by side:
//! - the **embedded allocator** ([`Heap::alloc`] with a [`Layout`], then [`Heap::sweep`]), for
//!   users without an allocator of their own;
//! - a **custom allocator**, which registers memory it owns ([`Heap::register_span`],
//!   [`Heap::register_medium_span`], [`Heap::register_large`]); every registration is
//!   validated and bad input is a typed [`Error`].
//!
//! The marker itself is the `sencha` crate, which re-exports this one.
//!
//! # Example: allocate, mark by hand, sweep
//! ```
//! use sencha_spans::{Heap, Layout};
//! let mut heap = Heap::new();
//! let pair = Layout::all_pointers(16).unwrap();
//! let a = heap.alloc(&pair).unwrap();
//! let b = heap.alloc(&pair).unwrap();
//! let c = heap.alloc(&pair).unwrap();
//! heap.write_word(a, 0, b).unwrap();
//! heap.mark_reachable(&[a]).unwrap(); // the reference mark; the `sencha` crate's are faster
//! let swept = heap.sweep().unwrap();
//! assert_eq!(swept.freed_objects, 1); // c was not reachable
//! assert!(heap.object(c).is_err());
//! ```
//!
//! # Example: register a custom allocator's span
//! ```
//! use sencha_spans::{Error, Heap, OwnedMemory, SizeClass};
//! #[repr(C, align(8192))]
//! struct SpanMem([u8; 8192]);
//! let mut heap = Heap::new();
//! let mem = Box::leak(Box::new(SpanMem([0; 8192])));
//! let base = heap.register_span(OwnedMemory::from_static(&mut mem.0), SizeClass::new(64).unwrap(), false);
//! assert!(base.is_ok());
//! assert!(matches!(SizeClass::new(20), Err(Error::InvalidSizeClass { bytes: 20 })));
//! ```
//!
//! # Crate features
//! - `testing` (unstable, for sencha's own tests, benchmarks and fuzzers): the [`testing`]
//!   module with heap fixtures and check functions.
//!
//! # Unsafe code
//! `unsafe` is denied crate-wide and allowed only in the modules marked below: `span` (views of
//! span memory), `large` (reads and writes of large-object and medium-slot memory), `register`
//! (the caller's promise that handed-over memory is theirs) and `protocol` (the `unsafe` door
//! through which a marker changes mark state, and the reference mark that opens it), plus,
//! behind the `testing` feature, the one function of `testing` that hands out pooled test
//! memory. Every block carries a `// SAFETY:` comment.
//!
//! # What is not public
//! The marking protocol's steps (set a marked bit, take a span's grey objects, take or give up
//! a span's ownership) can make a sweep free live objects if misused, so they are not safe
//! API: a marker reaches them only through the `unsafe` `Heap::begin_mark_unchecked` (hidden
//! from these docs; the `sencha` crate is its caller). Everything public is safe to call in
//! any order with any arguments.
#![deny(missing_docs)]

// The crate README's example is a doctest (`cargo test --doc`), so it always compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod alloc;
mod arena;
mod class;
mod error;
mod heap;
#[allow(unsafe_code)]
mod large;
mod layout;
mod line;
mod medium;
#[cfg(any(test, feature = "testing"))]
pub mod pagemap;
#[cfg(not(any(test, feature = "testing")))]
#[allow(unreachable_pub, dead_code)] // public only to sencha's own tests (`testing`)
mod pagemap;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod protocol;
#[allow(unsafe_code)]
mod register;
#[allow(unsafe_code)]
pub mod span;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod weak;

pub use alloc::SweepStats;
pub use class::SizeClass;
pub use error::Error;
pub use heap::{
    Heap, HeapConfig, HeapStats, MarkState, MarkedTotals, Object, Resolved, SmallObject,
};
pub use large::LargeObject;
pub use layout::{Layout, MAX_BITMAP_WORDS, MAX_OBJECT_BYTES};
pub use medium::MediumClass;
pub use protocol::{MarkOutcome, ReachableCounts};
pub use register::OwnedMemory;
pub use span::{Owner, SPAN_BYTES, Span};
pub use weak::{Ephemeron, WeakRef};
