//! The AVX2 range filter (x86_64 only; runs where the span kernels' `avx2` tier does).
//!
//! # Algorithm
//! As [`super::avx512`], 16 words per step in four 256-bit registers:
//! ```text
//! for each block of 16 words:
//!     m[j] = (v[j] - lo) <u (hi - lo)            -- as a signed compare, below
//!     if (m[0] | m[1] | m[2] | m[3]) == 0: next   -- vptest: one branch per 128 bytes
//!     for j: out.push(compress(v[j], movemask(m[j])))
//! then blocks of 4 words, then the last < 4 words one by one
//! ```
//!
//! # Tricks
//! 1. **An unsigned compare from a signed one** (as the span kernel's AVX2 tier): AVX2's only
//!    64-bit compare, `vpcmpgtq`, is signed, and `v - lo <u hi - lo` is the same as the signed
//!    `v - (lo ^ 2^63) < (hi - lo) ^ 2^63`: one `vpsubq` and one `vpcmpgtq` per 4 words.
//! 2. **Compress by permutation table** (as the span kernel's AVX2 tier): AVX2 has no
//!    `vpcompressq`, so the 4-bit compare mask indexes a 16-row table of `vpermd` indices that
//!    moves the kept words to the bottom of the register; a whole-register store at the
//!    output's end and a popcount finish it, with no branch per word (a branch per lane cost
//!    about 2× at 10% pointers).
//! 3. **Nothing past the end is read**: the last `n % 4` words are read one by one.

use std::arch::x86_64::{
    __m256i, _mm256_castsi256_pd, _mm256_cmpgt_epi64, _mm256_loadu_si256, _mm256_movemask_pd,
    _mm256_or_si256, _mm256_permutevar8x32_epi32, _mm256_set1_epi64x, _mm256_storeu_si256,
    _mm256_sub_epi64, _mm256_testz_si256,
};

use crate::kernel::HeapRange;

/// Every CPU feature this filter needs: AVX2, and POPCNT for the running count. A subset of
/// the span kernels' `kernel::avx2::FEATURES` (a unit test checks it), whose detection builds
/// the `Kernel` token this filter runs under.
pub(crate) const FEATURES: &[&str] = &["avx2", "popcnt"];

const SIGN: i64 = i64::MIN;

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order.
///
/// # Safety
/// Same as [`super::filter_raw`], plus: the CPU has every feature in [`FEATURES`].
#[target_feature(enable = "avx2,popcnt")]
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
            push_lanes(&v, &m, out);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: words i .. i + 4 are below n.
        let v = unsafe { _mm256_loadu_si256(words.add(i).cast()) };
        push_lanes(&[v], &[keep(v)], out);
        i += 4;
    }
    // SAFETY: words i .. n are readable; scalar reads them one by one.
    unsafe { super::scalar::filter(words.add(i), n - i, range, out) };
}

/// `vpermd` indices that move the 64-bit lanes selected by a 4-bit mask to the bottom of a
/// register, in lane order (unselected positions repeat lane 0; they are never counted).
const COMPRESS: [[u32; 8]; 16] = {
    let mut t = [[0u32; 8]; 16];
    let mut m = 0;
    while m < 16 {
        let mut out = 0;
        let mut lane = 0;
        while lane < 4 {
            if m >> lane & 1 != 0 {
                t[m][2 * out] = 2 * lane as u32;
                t[m][2 * out + 1] = 2 * lane as u32 + 1;
                out += 1;
            }
            lane += 1;
        }
        m += 1;
    }
    t
};

/// Appends the lanes of each `v[j]` whose lane of `m[j]` is all ones to `out`, in order,
/// without a branch per lane or register: the kept lanes are permuted to the bottom (a
/// [`COMPRESS`] row), the whole register is stored at the output's end, and the length
/// advances by their count.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
fn push_lanes<const N: usize>(v: &[__m256i; N], m: &[__m256i; N], out: &mut Vec<usize>) {
    out.reserve(4 * N);
    let mut len = out.len();
    let dst = out.as_mut_ptr();
    for j in 0..N {
        let bits = _mm256_movemask_pd(_mm256_castsi256_pd(m[j])) as usize & 0xf;
        // SAFETY: COMPRESS rows are 32 readable bytes.
        let idx = unsafe { _mm256_loadu_si256(COMPRESS[bits].as_ptr().cast()) };
        let packed = _mm256_permutevar8x32_epi32(v[j], idx);
        // SAFETY: reserve(4 * N) left room for 4 * N words past the starting length, and each
        // register advances `len` by at most 4.
        unsafe { _mm256_storeu_si256(dst.add(len).cast(), packed) };
        len += bits.count_ones() as usize;
    }
    // SAFETY: every word up to `len` was written with a kept lane above (or was there).
    unsafe { out.set_len(len) };
}
