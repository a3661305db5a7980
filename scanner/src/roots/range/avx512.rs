//! The AVX-512 range filter (x86_64 only; runs where the span kernels' `avx512` tier does).
//!
//! # Algorithm
//! The scalar filter ([`super::scalar`]) keeps `v` when `v - lo < hi - lo` (unsigned). This
//! tier tests 32 words per step:
//! ```text
//! for each block of 32 words (four 512-bit registers):
//!     k[j] = (v[j] - lo) <u (hi - lo)          -- vpsubq + vpcmpuq into a mask register
//!     if k[0] | k[1] | k[2] | k[3] == 0: next  -- the common case on a stack
//!     for j: out.push(compress(v[j], k[j]))   -- no branch per register
//! then blocks of 8 words, then the last < 8 words one by one
//! ```
//!
//! # Tricks
//! 1. **One unsigned compare** per 8 words: AVX-512 has unsigned 64-bit compares
//!    (`vpcmpuq`), so the scalar tier's `v - lo < hi - lo` is one subtract and one compare.
//! 2. **One branch per 256 bytes.** The four masks are ORed and tested once; a stack is
//!    almost all non-pointers, so the loop is four loads, four subtracts, four compares and
//!    one taken branch.
//! 3. **Compress in a register, store whole, no branch per register.** In a block with a hit,
//!    each register is compressed with `vpcompressq` and stored as a whole 64-byte vector at
//!    the output's end (which reserves room for the block first), then the length advances by
//!    the popcount, whether the register kept anything or not: a branch on each register's
//!    mask mispredicts at 10% pointers. `vpcompressq` straight to memory is far slower on
//!    Zen 4/5 (docs/PERFORMANCE.md, span kernels).
//! 4. **Nothing past the end is read.** The last `n % 8` words are read one by one, so no
//!    load crosses the range's end (no masked loads either: plain, obviously in-bounds reads).

use std::arch::x86_64::{
    __m512i, _mm512_cmplt_epu64_mask, _mm512_loadu_si512, _mm512_maskz_compress_epi64,
    _mm512_set1_epi64, _mm512_storeu_si512, _mm512_sub_epi64,
};

use crate::kernel::HeapRange;

/// Every CPU feature this filter needs: AVX-512 F (`vpcmpuq`, `vpcompressq`) and POPCNT.
/// A subset of the span kernels' `kernel::avx512::FEATURES` (a unit test checks it), whose
/// detection builds the `Kernel` token this filter runs under.
pub(crate) const FEATURES: &[&str] = &["avx512f", "popcnt"];

/// Appends every word of `words[..n]` that `range` keeps to `out`, in order.
///
/// # Safety
/// Same as [`super::filter_raw`], plus: the CPU has every feature in [`FEATURES`].
#[target_feature(enable = "avx512f,popcnt")]
pub(crate) unsafe fn filter(words: *const usize, n: usize, range: HeapRange, out: &mut Vec<usize>) {
    let lo = _mm512_set1_epi64(range.lo() as i64);
    let width = _mm512_set1_epi64((range.hi() - range.lo()) as i64);
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: words i .. i + 32 are below n, readable by the caller's contract.
        let v = unsafe { load4(words.add(i)) };
        let k = [
            _mm512_cmplt_epu64_mask(_mm512_sub_epi64(v[0], lo), width),
            _mm512_cmplt_epu64_mask(_mm512_sub_epi64(v[1], lo), width),
            _mm512_cmplt_epu64_mask(_mm512_sub_epi64(v[2], lo), width),
            _mm512_cmplt_epu64_mask(_mm512_sub_epi64(v[3], lo), width),
        ];
        if k[0] | k[1] | k[2] | k[3] != 0 {
            push_compressed(&v, &k, out);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: words i .. i + 8 are below n.
        let v = unsafe { _mm512_loadu_si512(words.add(i).cast()) };
        let k = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(v, lo), width);
        if k != 0 {
            push_compressed(&[v], &[k], out);
        }
        i += 8;
    }
    // SAFETY: words i .. n are readable; scalar reads them one by one.
    unsafe { super::scalar::filter(words.add(i), n - i, range, out) };
}

/// Four consecutive 512-bit loads.
///
/// # Safety
/// `p` is readable for 32 words.
#[inline]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn load4(p: *const usize) -> [__m512i; 4] {
    // SAFETY: each load covers 8 of the 32 readable words.
    unsafe {
        [
            _mm512_loadu_si512(p.cast()),
            _mm512_loadu_si512(p.add(8).cast()),
            _mm512_loadu_si512(p.add(16).cast()),
            _mm512_loadu_si512(p.add(24).cast()),
        ]
    }
}

/// Appends the lanes of each `v[j]` selected by `k[j]` to `out`, in order, with no branch
/// per register: each is compressed and stored whole at the output's end, which advances by
/// the popcount (a register with no lane kept stores nothing that counts).
#[inline]
#[target_feature(enable = "avx512f,popcnt")]
fn push_compressed<const N: usize>(v: &[__m512i; N], k: &[u8; N], out: &mut Vec<usize>) {
    out.reserve(8 * N);
    let mut len = out.len();
    let dst = out.as_mut_ptr();
    for j in 0..N {
        let packed = _mm512_maskz_compress_epi64(k[j], v[j]);
        // SAFETY: reserve(8 * N) left room for 8 * N words past the starting length, and each
        // register advances `len` by at most 8.
        unsafe { _mm512_storeu_si512(dst.add(len).cast(), packed) };
        len += k[j].count_ones() as usize;
    }
    // SAFETY: every word up to `len` was written with a kept lane above (or was there).
    unsafe { out.set_len(len) };
}
