//! The roots of a mark: [`Roots`], and the conservative scanners that fill it from memory
//! ranges, the calling thread's registers and stack, and the machine context of a thread
//! stopped by a signal.
//!
//! # Kinds of roots
//! - **Precise** addresses: null (skipped) or the first byte of an allocated object, else
//!   [`Error::InvalidRoot`] before anything is marked.
//! - **Conservative words**: any value; if it points into an allocated object (interior
//!   addresses included), that object is a root, otherwise it is ignored.
//! - **Conservative ranges** ([`Roots::push_range`], [`Roots::push_words`],
//!   [`Roots::push_range_unchecked`]): memory read as words, each word a conservative word.
//!   Only the whole, 8-byte-aligned words inside a range are read: a pointer stored across an
//!   8-byte boundary is not found (compilers never store one so), and no byte outside the
//!   range is read. The words are filtered against the heap's address range with SIMD
//!   (AVX-512, AVX2, scalar: the [`Kernel`] tiers) as they are read, so only candidates are
//!   kept; the page-map lookup (is it an allocated object?) happens when the mark starts.
//! - **The calling thread** ([`Roots::push_current_thread`]): its callee-saved registers,
//!   spilled with inline assembly on x86-64 (rbx, rbp, r12–r15), and its stack from the current
//!   stack pointer up to a [`StackBase`] recorded at thread start, as bdwgc does at a
//!   collection.
//! - **A thread stopped by a signal** (`ContextWords`, x86-64 Linux): the general registers
//!   and the extended vector state (XMM, YMM and ZMM upper halves, ZMM16–31, opmask
//!   registers) of the `ucontext_t` a `SA_SIGINFO` handler receives, copied without
//!   allocating; then [`Roots::push_context`] and the thread's stack as a range.
//!
//! A range is scanned when it is pushed, against the heap as it is then: push ranges with the
//! world stopped, after the last allocation before the mark. docs/RUNTIME_GUIDE.md shows a
//! runtime's safepoint and signal protocols calling these.
//!
//! # Reading stacks
//! A thread's stack holds the frames of live Rust (and other) code, including bytes Rust
//! considers uninitialized; no Rust type describes that memory. sencha reads it only through
//! raw pointers, with plain (or SIMD) loads of whole aligned words whose values are only
//! compared, never dereferenced — the standing of bdwgc's C stack scan, outside both
//! languages' abstract machines. Miri does not run these paths.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(unsafe_code)] // reads the kernel's ucontext_t and XSAVE area behind raw pointers; CPUID
mod context;
#[allow(unsafe_code)] // raw range reads, and the one dispatch into a detected SIMD filter tier
mod range;
#[cfg(test)]
#[allow(unsafe_code)] // inline asm and raw contexts, to test the above
mod tests;
#[allow(unsafe_code)] // spills registers with inline asm, asks pthread for the stack bounds
mod thread;

use sencha_spans::Heap;

use crate::error::Error;
use crate::kernel::Kernel;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use context::{CONTEXT_WORDS, ContextWords, VectorState};
pub use thread::{StackBase, ThreadScan};

/// The roots of a mark: precise object addresses and conservative words, the latter pushed
/// one by one or found in memory ranges (see the [module docs](self)).
///
/// - A **precise** root must be null (skipped) or the first byte of an allocated object;
///   anything else makes [`Marker::mark`](crate::Marker::mark) fail with
///   [`Error::InvalidRoot`] before it marks.
/// - A **conservative** word is checked against the page map and the allocation bits: if it
///   points into an allocated object (interior addresses included) that object is a root,
///   otherwise the word is ignored.
///
/// # Examples
/// ```
/// use sencha::Roots;
/// let mut roots = Roots::precise([0x1000_0000usize]);
/// roots.push_conservative(0xdead_beef);
/// assert_eq!(roots.len(), 2);
/// ```
///
/// A range of memory, scanned conservatively (the words that lie in the heap's address range
/// are kept as candidates):
/// ```
/// use sencha::{Heap, Layout, Marker, Roots};
/// let mut heap = Heap::new();
/// let obj = heap.alloc(&Layout::no_pointers(32).unwrap()).unwrap();
/// let frame: [usize; 4] = [7, obj + 8, 0, usize::MAX]; // an interior pointer among integers
/// let mut roots = Roots::new();
/// assert_eq!(roots.push_words(&heap, &frame), 1);
/// let stats = Marker::builder().workers(1).build().unwrap().mark(&heap, &roots).unwrap();
/// assert_eq!(stats.objects_marked, 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roots {
    precise: Vec<usize>,
    /// Precise interior (derived) pointers: each must point into an allocated object.
    interior: Vec<usize>,
    conservative: Vec<usize>,
    /// The tier that filters ranges; `None`: `SENCHA_KERNEL`, else the best detected.
    kernel: Option<Kernel>,
}

impl Roots {
    /// No roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Precise roots from an iterator of addresses.
    pub fn precise(addrs: impl IntoIterator<Item = usize>) -> Self {
        Roots {
            precise: addrs.into_iter().collect(),
            ..Roots::default()
        }
    }

    /// Conservative roots from an iterator of words.
    pub fn conservative(words: impl IntoIterator<Item = usize>) -> Self {
        Roots {
            conservative: words.into_iter().collect(),
            ..Roots::default()
        }
    }

    /// Adds a precise root.
    pub fn push_precise(&mut self, addr: usize) {
        self.precise.push(addr);
    }

    /// Adds a precise **interior** (derived) root: `addr` may point anywhere inside an
    /// allocated object (a pointer into the middle of an array, a field address), and roots
    /// that object. Unlike a conservative word, it is checked: an address inside no allocated
    /// object makes [`Marker::mark`](crate::Marker::mark) fail with
    /// [`Error::InvalidRoot`] (its `index` counts after the precise roots), and null is
    /// skipped.
    ///
    /// # Examples
    /// ```
    /// use sencha::{Heap, Layout, Marker, Roots};
    /// let mut heap = Heap::new();
    /// let array = heap.alloc(&Layout::no_pointers(4000).unwrap()).unwrap();
    /// let mut roots = Roots::new();
    /// roots.push_interior(array + 1000);
    /// let stats = Marker::builder().workers(1).build().unwrap().mark(&heap, &roots).unwrap();
    /// assert_eq!(stats.objects_marked, 1);
    /// let mut bad = Roots::new();
    /// bad.push_interior(0x10);
    /// assert!(Marker::builder().workers(1).build().unwrap().mark(&heap, &bad).is_err());
    /// ```
    pub fn push_interior(&mut self, addr: usize) {
        self.interior.push(addr);
    }

    /// Adds a conservative word.
    pub fn push_conservative(&mut self, word: usize) {
        self.conservative.push(word);
    }

    /// Roots of both kinds (for ranges: the candidate words kept from them).
    pub fn len(&self) -> usize {
        self.precise.len() + self.interior.len() + self.conservative.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The precise roots, in the order pushed.
    pub fn precise_roots(&self) -> &[usize] {
        &self.precise
    }

    /// The conservative words: those pushed one by one and the candidates kept from ranges,
    /// in the order pushed.
    pub fn conservative_words(&self) -> &[usize] {
        &self.conservative
    }

    /// Moves every root of `other` to the end of this set, leaving `other` empty (its range
    /// tier stays): to gather the roots each thread pushed for itself.
    ///
    /// # Examples
    /// ```
    /// use sencha::Roots;
    /// let mut all = Roots::precise([0]);
    /// let mut thread = Roots::conservative([8, 16]);
    /// all.append(&mut thread);
    /// assert_eq!((all.len(), thread.len()), (3, 0));
    /// ```
    pub fn append(&mut self, other: &mut Roots) {
        self.precise.append(&mut other.precise);
        self.interior.append(&mut other.interior);
        self.conservative.append(&mut other.conservative);
    }

    /// Removes every root, keeping the memory (for a runtime that reuses one `Roots` per
    /// cycle). The range tier stays.
    pub fn clear(&mut self) {
        self.precise.clear();
        self.interior.clear();
        self.conservative.clear();
    }

    /// Filters ranges with `kernel`'s tier (default: the tier `SENCHA_KERNEL` names, read once
    /// per process, else the best this CPU has; an unknown name means scalar). Every tier
    /// keeps exactly the same words.
    ///
    /// # Examples
    /// ```
    /// use sencha::{Kernel, Roots};
    /// let roots = Roots::new().range_kernel(Kernel::scalar());
    /// assert_eq!(roots.kernel(), Kernel::scalar());
    /// ```
    pub fn range_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// The tier that filters this set's ranges.
    pub fn kernel(&self) -> Kernel {
        self.kernel.unwrap_or_else(range::auto_kernel)
    }

    /// Validates the roots against `heap`: the object addresses to start from.
    pub(crate) fn resolve(&self, heap: &Heap) -> Result<Vec<usize>, Error> {
        let mut out = Vec::with_capacity(self.len());
        for (index, &addr) in self.precise.iter().enumerate() {
            if addr == 0 {
                continue;
            }
            match heap.object(addr) {
                Ok(o) => out.push(o.addr()),
                Err(error) => return Err(Error::InvalidRoot { index, addr, error }),
            }
        }
        for (i, &addr) in self.interior.iter().enumerate() {
            if addr == 0 {
                continue;
            }
            match heap.object_containing(addr) {
                Some(o) => out.push(o.addr()),
                None => {
                    return Err(Error::InvalidRoot {
                        index: self.precise.len() + i,
                        addr,
                        error: sencha_spans::Error::NotAnObject { addr },
                    });
                }
            }
        }
        out.extend(
            self.conservative
                .iter()
                .filter_map(|&w| heap.object_containing(w))
                .map(|o| o.addr()),
        );
        Ok(out)
    }
}
