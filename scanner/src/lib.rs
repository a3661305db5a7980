//! sencha: a Green Tea–style span marker for garbage collectors.
//!
//! # Overview
//! sencha finds every live object of a heap, fast, on many cores. Objects of up to 512 bytes
//! live in 8 KiB spans with their mark metadata inline ([`spans`], the `sencha-spans` crate,
//! re-exported here). Marking follows Go's Green Tea design: finding a pointer to a small
//! object only sets its marked bit and, the first time, queues its **span**; when a worker takes
//! the span it scans every grey object in it at once, through a SIMD span kernel when there
//! are many. Each worker has its own span queue; idle workers steal.
//!
//! - [`Marker`] runs the Green Tea marker ([`Algorithm::GreenTea`]) or the classic
//!   object-at-a-time baseline ([`Algorithm::Baseline`]) on a rayon pool.
//! - [`reference::mark`] is the obviously-correct single-threaded oracle.
//! - [`Kernel`] is the span-kernel tier (`scalar` everywhere, `avx2` and `avx512` on x86_64 CPUs
//!   that have them), detected once per marker.
//!
//! # Example: mark a small heap, then sweep
//! ```
//! use sencha::{Heap, Layout, Marker, Roots};
//! let mut heap = Heap::new();
//! let cons = Layout::all_pointers(16).unwrap();
//! let list = (0..1000).try_fold(0usize, |next, _| {
//!     let cell = heap.alloc(&cons)?;
//!     heap.write_word(cell, 1, next)?;
//!     Ok::<_, sencha::spans::Error>(cell)
//! }).unwrap();
//! let _garbage = heap.alloc(&cons).unwrap();
//! let marker = Marker::builder().build().unwrap();
//! let stats = marker.mark(&heap, &Roots::precise([list])).unwrap();
//! assert_eq!(stats.objects_marked, 1000);
//! assert_eq!(heap.sweep().unwrap().freed_objects, 1);
//! ```
//!
//! # Example: force the scalar kernel
//! ```
//! use sencha::{KernelChoice, Marker};
//! let m = Marker::builder().kernel(KernelChoice::Scalar).build().unwrap();
//! assert_eq!(m.kernel().name(), "scalar");
//! ```
//! The environment variable `SENCHA_KERNEL=scalar|avx2|avx512|auto` steers markers built with
//! [`KernelChoice::Auto`] (the default); an explicit builder choice wins. Asking for a tier the
//! CPU lacks ([`KernelChoice::Avx2`], `SENCHA_KERNEL=avx2`, ...) is
//! [`Error::KernelUnavailable`].
//!
//! # Which kernel runs?
//! [`Marker::kernel`] says. Detection prefers `avx512` (needs AVX-512 F, BW, VL, DQ, VBMI,
//! GFNI, BITALG, BMI1 and POPCNT: Zen 4 and later, Ice Lake and later Xeons), then `avx2`
//! (needs AVX2, BMI1, BMI2 and POPCNT: Haswell and later Intel cores, Zen 1 and later, and
//! AVX-512 CPUs without VBMI such as Skylake-X), then `scalar`. Every tier returns exactly the
//! same results. `docs/KERNELS.md` has the table of CPU families.
//!
//! # Custom allocators
//! A runtime with its own allocator registers its spans and large objects with the heap
//! ([`Heap::register_span`], [`Heap::register_large`]); see `docs/CUSTOM_ALLOCATOR.md`.
//!
//! # Conservative roots
//! [`Roots`] also takes memory to scan conservatively: ranges ([`Roots::push_range`], filtered
//! against the heap's address range by the SIMD tiers), the calling thread's callee-saved
//! registers and stack ([`Roots::push_current_thread`]), and on x86-64 Linux the registers of a
//! thread stopped by a signal, vector registers included (`roots::ContextWords`). See
//! [`roots`] and `docs/RUNTIME_GUIDE.md`.
//!
//! # Unsafe code
//! `unsafe` is denied crate-wide and allowed only in these modules, each block with a
//! `// SAFETY:` comment: `kernel` (the one dispatch into a detected SIMD tier, and the
//! prefetch hint), `kernel::avx2` and `kernel::avx512` (the SIMD tiers), `mark::session` (the
//! one call that opens a mark session: the markers' promise to be complete), `roots::range`
//! (reads of raw memory ranges, the SIMD range filters and their one dispatch),
//! `roots::thread` (the naked register spill, the pthread stack query), `roots::context` (the
//! kernel's `ucontext_t` and XSAVE area behind raw pointers) and, for tests only, `testing`.
//! Reading stacks is outside Rust's abstract machine, as it is outside C's for bdwgc: see
//! [`roots`].
//!
//! # Crate features
//! - `testing` (unstable): the [`testing`] module, random heap builders and check functions
//!   for sencha's own tests, benchmarks and fuzzers.
#![deny(missing_docs)]

// The crate README's example is a doctest (`cargo test --doc`), so it always compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
pub mod kernel;
mod mark;
mod marker;
mod queue;
pub mod roots;
mod stats;
mod termination;
#[cfg(any(test, feature = "testing"))]
#[allow(unsafe_code)] // owns the custom span memory of test heaps; see TestHeap
pub mod testing;

pub use error::Error;
pub use kernel::{Kernel, KernelChoice};
pub use mark::reference;
pub use mark::{Algorithm, SpanOrder};
pub use marker::{Marker, MarkerBuilder};
pub use roots::Roots;
pub use sencha_spans as spans;
pub use sencha_spans::{
    Ephemeron, Heap, HeapConfig, Layout, MarkState, OwnedMemory, SizeClass, SweepStats, WeakRef,
};
pub use stats::MarkStats;

/// The most workers a marker may run.
pub const MAX_WORKERS: usize = 256;
