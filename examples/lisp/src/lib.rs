//! An example runtime on sencha: a small Scheme whose values live in **its own allocator**, and
//! which sencha marks and sweeps.
//!
//! The crate shows, end to end, what docs/RUNTIME_GUIDE.md explains step by step:
//! - `mem` reserves memory with `memmap2` and keeps the memory contract (the crate's only
//!   `unsafe`: three blocks, each with its `SAFETY` argument);
//! - `alloc` carves 8 KiB spans per size class, places objects as docs/SPAN_LAYOUT.md says,
//!   registers spans and large objects, and turns sweeps back into free slots and pages;
//! - `object` and `value` define the object kinds and their `Layout`s;
//! - `vm` (with `compiler` and `reader`) is the interpreter, whose value stack and globals are
//!   the precise roots, and which collects only at safe points;
//! - `gc` drives sencha's mark and sweep, weak tables (ephemerons), weak boxes (weak words) and
//!   finalizers (`on-collect`), and in checking mode compares every mark with the
//!   interpreter's own reachability walk.
//!
//! # Example
//! ```
//! use lisp_example::{Interp, Options};
//! let out: Box<dyn std::io::Write> = Box::new(Vec::new());
//! let mut it = Interp::new(&Options { check: true, ..Options::default() }, out).unwrap();
//! let v = it.eval_source("(define (f n) (if (= n 0) '() (cons n (f (- n 1))))) (length (f 1000))").unwrap();
//! assert_eq!(v.as_fixnum(), Some(1000));
//! ```
//!
//! # Unsafe code
//! `unsafe` is denied crate-wide and allowed only in `mem`.
#![deny(missing_docs)]

mod alloc;
mod compiler;
mod gc;
#[allow(unsafe_code)]
mod mem;
mod object;
mod prims;
mod print;
mod reader;
mod run;
mod value;
mod vm;

pub use alloc::{AllocError, Backend, HeapFigures, Store};
pub use gc::{GcState, summary};
pub use object::Kind;
pub use run::{Report, run_file, run_source};
pub use value::{FIXNUM_MAX, FIXNUM_MIN, Value};
pub use vm::{Interp, LispError, Options};

// The workspace README's example is a doctest here: this crate is in the workspace and never
// published, so it may include a file from outside its folder.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadmeDoctests;
