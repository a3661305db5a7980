//! Conservative range scanning: read the whole aligned words of a memory range, keep those in
//! the heap's address range.
//!
//! # Algorithm
//! ```text
//! first = align_up(start, 8); end = align_down(start + len, 8)
//! for each word v at first, first + 8, .. < end:     -- nothing outside the range is read
//!     if lo <= v < hi: candidates.push(v)             -- HeapRange::contains, lo >= 1
//! ```
//! The page-map lookup of each candidate ([`Heap::object_containing`]) happens when the mark
//! resolves its roots. A stack is mostly small integers, return addresses and stack addresses:
//! the range compare drops nearly every word, so the filter is the loop that matters, and the
//! SIMD tiers ([`avx512`], [`avx2`]) run it many words per compare, behind the same [`Kernel`]
//! tokens as the span kernels (one dispatch per range). Every tier keeps exactly the scalar
//! tier's words, in order.

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;
pub(super) mod scalar;

use std::sync::OnceLock;

use sencha_spans::Heap;

use super::Roots;
#[cfg(target_arch = "x86_64")]
use crate::kernel::CpuFeatures;
use crate::kernel::{HeapRange, Kernel, KernelChoice, Tier};

/// Bytes per word: ranges are read in whole words of this size and alignment.
pub(crate) const WORD: usize = size_of::<usize>();

/// The tier of a [`Roots`] built without one: `SENCHA_KERNEL` (read once per process; an
/// unknown or unavailable name falls back to scalar, which keeps the same words), else the
/// best tier this CPU has.
pub(super) fn auto_kernel() -> Kernel {
    static AUTO: OnceLock<Kernel> = OnceLock::new();
    *AUTO.get_or_init(|| Kernel::from_choice(KernelChoice::Auto).unwrap_or(Kernel::scalar()))
}

/// The heap's address range as a filter (empty for an empty heap).
pub(super) fn heap_range(heap: &Heap) -> HeapRange {
    let (lo, hi) = heap.address_range();
    HeapRange::new(lo, hi)
}

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order, with `kernel`'s
/// tier.
///
/// # Safety
/// - `words` is 8-byte aligned and valid for reads of `n` words (for `n == 0`, any pointer);
/// - no other thread writes those words during the call.
///
/// The bytes may be uninitialized as far as Rust knows (a stack): they are loaded as integers
/// and only compared (see the module docs of `roots`).
pub(super) unsafe fn filter_raw(
    kernel: Kernel,
    words: *const usize,
    n: usize,
    range: HeapRange,
    out: &mut Vec<usize>,
) {
    debug_assert!(n == 0 || words.is_aligned(), "range words are aligned");
    if n == 0 {
        return;
    }
    match kernel.tier() {
        // SAFETY: the caller's contract is scalar::filter's.
        Tier::Scalar => unsafe { scalar::filter(words, n, range, out) },
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => {
            debug_assert!(CpuFeatures::detect().has_all(avx2::FEATURES));
            // SAFETY: the caller's contract is avx2::filter's; Tier::Avx2 is built only from
            // CpuFeatures::detect() holding every feature of kernel::avx2::FEATURES
            // (kernel/mod.rs: Kernel::avx2, Tier::available), a superset of
            // range::avx2::FEATURES (checked by the unit test
            // range_filter_features_are_a_subset_of_their_kernel_tier), the set avx2::filter
            // enables.
            unsafe { avx2::filter(words, n, range, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => {
            debug_assert!(CpuFeatures::detect().has_all(avx512::FEATURES));
            // SAFETY: as for Avx2, with kernel::avx512::FEATURES ⊇ range::avx512::FEATURES.
            unsafe { avx512::filter(words, n, range, out) }
        }
    }
}

/// Appends to `out` the words of `words` that `range` keeps, in order, with `kernel`'s tier:
/// the safe form of [`filter_raw`], for tests.
#[cfg(test)]
pub(super) fn filter(kernel: Kernel, words: &[usize], range: HeapRange, out: &mut Vec<usize>) {
    // SAFETY: a slice is aligned and readable for its length, and not written while borrowed.
    unsafe { filter_raw(kernel, words.as_ptr(), words.len(), range, out) }
}

/// The whole aligned words inside `start .. start + len`: their first address and count.
pub(super) fn aligned_words(start: usize, len: usize) -> (usize, usize) {
    let Some(end) = start.checked_add(len) else {
        return (start, 0);
    };
    let Some(first) = start.checked_next_multiple_of(WORD) else {
        return (start, 0);
    };
    let last = end & !(WORD - 1);
    (first, last.saturating_sub(first) / WORD)
}

impl Roots {
    /// Scans `words` conservatively: each that lies in the heap's address range is kept as a
    /// conservative word (it roots the object it points into, if any, when the mark starts).
    /// Returns how many were kept.
    ///
    /// # Examples
    /// ```
    /// use sencha::{Heap, Layout, Roots};
    /// let mut heap = Heap::new();
    /// let a = heap.alloc(&Layout::no_pointers(16).unwrap()).unwrap();
    /// let mut roots = Roots::new();
    /// assert_eq!(roots.push_words(&heap, &[0, 1, a, a + 15, usize::MAX]), 2);
    /// assert_eq!(roots.conservative_words(), [a, a + 15]);
    /// ```
    pub fn push_words(&mut self, heap: &Heap, words: &[usize]) -> usize {
        let before = self.conservative.len();
        let kernel = self.kernel();
        // SAFETY: a slice is aligned and readable for its length, and not written while
        // borrowed.
        unsafe {
            filter_raw(
                kernel,
                words.as_ptr(),
                words.len(),
                heap_range(heap),
                &mut self.conservative,
            )
        };
        self.conservative.len() - before
    }

    /// Scans the memory of `range` conservatively (a register save area, a data segment, a
    /// copy of a stack): only the whole 8-byte-aligned words inside it are read, each as by
    /// [`Roots::push_words`]. Returns how many words were kept.
    ///
    /// No `Result`: a slice is always a valid range, so there is nothing to reject.
    ///
    /// # Examples
    /// ```
    /// use sencha::{Heap, Layout, Roots};
    /// let mut heap = Heap::new();
    /// let a = heap.alloc(&Layout::no_pointers(16).unwrap()).unwrap();
    /// let mut bytes = [0u8; 48];
    /// let at = bytes.as_ptr().align_offset(8) + 8; // an aligned word inside the array
    /// bytes[at..at + 8].copy_from_slice(&a.to_ne_bytes());
    /// let mut roots = Roots::new();
    /// assert_eq!(roots.push_range(&heap, &bytes), 1);
    /// // A range that cuts the word in two reads neither half.
    /// assert_eq!(roots.push_range(&heap, &bytes[at + 1..]), 0);
    /// ```
    pub fn push_range(&mut self, heap: &Heap, range: &[u8]) -> usize {
        // SAFETY: a slice is readable for its length and not written while borrowed.
        unsafe { self.push_range_unchecked(heap, range.as_ptr(), range.len()) }
    }

    /// Scans `len` bytes from `start` conservatively, as [`Roots::push_range`], for memory
    /// no Rust reference describes: another thread's stack while that thread is stopped, the
    /// calling thread's own stack, a foreign runtime's frames. Only the whole 8-byte-aligned
    /// words inside the range are read. Returns how many words were kept.
    ///
    /// The safe sibling is [`Roots::push_range`] (a slice needs no validation).
    ///
    /// # Safety
    /// - Every whole aligned 8-byte word in `start .. start + len` is readable memory: mapped,
    ///   and not freed or unmapped during the call (bytes may be uninitialized: they are only
    ///   compared, see the [module docs](super));
    /// - no thread writes those words during the call (stop the thread whose stack it is).
    ///
    /// # Examples
    /// ```
    /// use sencha::{Heap, Layout, Roots};
    /// let mut heap = Heap::new();
    /// let a = heap.alloc(&Layout::no_pointers(16).unwrap()).unwrap();
    /// let words = [1usize, a + 8, 3];
    /// let mut roots = Roots::new();
    /// // SAFETY: `words` is a live local, readable for its 24 bytes, written by nobody.
    /// let kept = unsafe { roots.push_range_unchecked(&heap, words.as_ptr().cast(), 24) };
    /// assert_eq!(kept, 1);
    /// ```
    pub unsafe fn push_range_unchecked(
        &mut self,
        heap: &Heap,
        start: *const u8,
        len: usize,
    ) -> usize {
        debug_assert!(
            len == 0 || !start.is_null(),
            "a readable range is not at null"
        );
        let (first, n) = aligned_words(start.addr(), len);
        if n == 0 {
            return 0;
        }
        let words: *const usize = start.wrapping_add(first - start.addr()).cast();
        let before = self.conservative.len();
        let kernel = self.kernel();
        // SAFETY: `words .. words + n` are the whole aligned words inside `start .. start +
        // len` (aligned_words), which the caller promises are readable and not written.
        unsafe { filter_raw(kernel, words, n, heap_range(heap), &mut self.conservative) };
        self.conservative.len() - before
    }
}
