//! The AVX2 range filter (x86_64 only; runs where the span kernels' `avx2` tier does).
//!
//! # Algorithm
//! As [`super::avx512`], 16 words per step in four 256-bit registers:
//! ```text
//! for each block of 16 words:
//!     m[j] = (v[j] - lo) <u (hi - lo)            -- as a signed compare, below
//!     if (m[0] | m[1] | m[2] | m[3]) == 0: next   -- vptest: one branch per 128 bytes
//!     for j, for each set lane of movemask(m[j]): out.push(v[j][lane])
//! then blocks of 4 words, then the last < 4 words one by one
//! ```
//!
//! # Tricks
//! 1. **An unsigned compare from a signed one** (as the span kernel's AVX2 tier): AVX2's only
//!    64-bit compare, `vpcmpgtq`, is signed, and `v - lo <u hi - lo` is the same as the signed
//!    `v - (lo ^ 2^63) < (hi - lo) ^ 2^63`: one `vpsubq` and one `vpcmpgtq` per 4 words.
//! 2. **Hits are rare**, so they are taken from the register lane by lane (a stored copy),
//!    not with a permutation table.
//! 3. **Nothing past the end is read**: the last `n % 4` words are read one by one.

use std::arch::x86_64::{
    __m256i, _mm256_castsi256_pd, _mm256_cmpgt_epi64, _mm256_loadu_si256, _mm256_movemask_pd,
    _mm256_or_si256, _mm256_set1_epi64x, _mm256_storeu_si256, _mm256_sub_epi64, _mm256_testz_si256,
};

use crate::kernel::HeapRange;

/// Every CPU feature this filter needs: AVX2. A subset of the span kernels'
/// `kernel::avx2::FEATURES` (a unit test checks it), whose detection builds the `Kernel`
/// token this filter runs under.
pub(crate) const FEATURES: &[&str] = &["avx2"];

const SIGN: i64 = i64::MIN;

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order.
///
/// # Safety
/// Same as [`super::filter_raw`], plus: the CPU has every feature in [`FEATURES`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn filter(words: *const usize, n: usize, range: HeapRange, out: &mut Vec<usize>) {
    let bias = _mm256_set1_epi64x(range.lo() as i64 ^ SIGN);
    let width = _mm256_set1_epi64x((range.hi() - range.lo()) as i64 ^ SIGN);
    let keep = |v: __m256i| _mm256_cmpgt_epi64(width, _mm256_sub_epi64(v, bias));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: words i .. i + 16 are below n, readable by the caller's contract.
        let v = unsafe {
            [
                _mm256_loadu_si256(words.add(i).cast()),
                _mm256_loadu_si256(words.add(i + 4).cast()),
                _mm256_loadu_si256(words.add(i + 8).cast()),
                _mm256_loadu_si256(words.add(i + 12).cast()),
            ]
        };
        let m = [keep(v[0]), keep(v[1]), keep(v[2]), keep(v[3])];
        let any = _mm256_or_si256(_mm256_or_si256(m[0], m[1]), _mm256_or_si256(m[2], m[3]));
        if _mm256_testz_si256(any, any) == 0 {
            for j in 0..4 {
                push_lanes(v[j], m[j], out);
            }
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: words i .. i + 4 are below n.
        let v = unsafe { _mm256_loadu_si256(words.add(i).cast()) };
        push_lanes(v, keep(v), out);
        i += 4;
    }
    // SAFETY: words i .. n are readable; scalar reads them one by one.
    unsafe { super::scalar::filter(words.add(i), n - i, range, out) };
}

/// Appends the lanes of `v` whose lane of `m` is all ones to `out`, in lane order.
#[inline]
#[target_feature(enable = "avx2")]
fn push_lanes(v: __m256i, m: __m256i, out: &mut Vec<usize>) {
    let mut bits = _mm256_movemask_pd(_mm256_castsi256_pd(m)) as u32;
    if bits == 0 {
        return;
    }
    let mut lanes = [0usize; 4];
    // SAFETY: `lanes` is 32 writable bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
    out.reserve(4);
    let len = out.len();
    let mut kept = 0;
    while bits != 0 {
        // SAFETY: reserve(4) left room for 4 words past `len`; at most 4 bits are set.
        unsafe {
            out.as_mut_ptr()
                .add(len + kept)
                .write(lanes[bits.trailing_zeros() as usize])
        };
        kept += 1;
        bits &= bits - 1;
    }
    // SAFETY: the `kept` words past `len` were written above.
    unsafe { out.set_len(len + kept) };
}
