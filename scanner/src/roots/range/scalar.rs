//! The portable range filter, and the executable specification of the SIMD tiers.

use crate::kernel::HeapRange;

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order.
///
/// # Safety
/// Same as [`super::filter_raw`]: `words` aligned and readable for `n` words, not written by
/// another thread during the call.
pub(crate) unsafe fn filter(words: *const usize, n: usize, range: HeapRange, out: &mut Vec<usize>) {
    for i in 0..n {
        // SAFETY: i < n, and the caller promises `n` readable aligned words.
        let v = unsafe { words.add(i).read() };
        if range.contains(v) {
            out.push(v);
        }
    }
}
