//! The portable scalar tier, and the executable specification of every kernel.
//!
//! ```text
//! for each grey object i (ascending):
//!     for each word k of object i whose pointer bit is set (ascending):
//!         v = span word (i * words + k)
//!         if lo <= v < hi: out.push(v)
//! ```
//! Two plain optimizations, no SIMD: the grey mask is walked with `trailing_zeros`, and an
//! object's pointer bits are read from the bitmap as one `u64` (at most 64 words).

use sencha_spans::Span;
use sencha_spans::span::LINE_WORDS;

use super::{GatherBuf, HeapRange};

/// The scalar gather (see the module docs of [`crate::kernel`] for the contract).
pub fn gather(
    span: Span<'_>,
    grey: &[u64; LINE_WORDS],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    let class = span.class();
    let words = class.words();
    let cap = class.capacity();
    let mut n = 0;
    for (w, &g) in grey.iter().enumerate() {
        let mut g = g;
        while g != 0 {
            let i = w * 64 + g.trailing_zeros() as usize;
            g &= g - 1;
            if i >= cap {
                return n;
            }
            let mut bits = span.ptr_bits(i, class);
            let first = i * words;
            while bits != 0 {
                let k = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let v = span.read_word(first + k).unwrap_or(0);
                if range.contains(v) {
                    out.0[n] = v;
                    n += 1;
                }
            }
        }
    }
    n
}
