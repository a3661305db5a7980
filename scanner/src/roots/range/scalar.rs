//! The portable range filter, and the executable specification of the SIMD tiers.
//!
//! ```text
//! for each word v (in order): if lo <= v < hi: out.push(v)
//! ```
//! Written without a branch per word: in chunks of [`CHUNK`] words, each word is stored at the
//! output's end and the length advances by the compare's result (0 or 1), so the loop costs
//! the same whatever share of the words are pointers.

use crate::kernel::HeapRange;

/// Words per chunk: the output reserves room for a whole chunk before it.
const CHUNK: usize = 256;

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order.
///
/// # Safety
/// Same as [`super::filter_raw`]: `words` aligned and readable for `n` words, not written by
/// another thread during the call.
pub(crate) unsafe fn filter(words: *const usize, n: usize, range: HeapRange, out: &mut Vec<usize>) {
    let mut i = 0;
    while i < n {
        let m = CHUNK.min(n - i);
        out.reserve(m);
        let len = out.len();
        let dst = out.as_mut_ptr();
        let mut kept = 0;
        for j in 0..m {
            // SAFETY: i + j < n, and the caller promises `n` readable aligned words.
            let v = unsafe { words.add(i + j).read() };
            // SAFETY: reserve(m) left room for m words past `len`, and kept <= j < m.
            unsafe { dst.add(len + kept).write(v) };
            kept += range.contains(v) as usize;
        }
        // SAFETY: the first `kept` words past `len` were written with kept values above.
        unsafe { out.set_len(len + kept) };
        i += m;
    }
}
