//! The AVX-512 tier (x86_64 only; picked at run time, see [`detected`]).
//!
//! # Algorithm
//! The scalar tier ([`super::scalar`]) walks objects, then pointer bits:
//! ```text
//! for each grey object i < capacity (ascending):
//!     for each word k of object i whose pointer bit is set (ascending):
//!         v = span word (i * words + k)
//!         if lo <= v < hi: out.push(v)
//! ```
//! This tier computes the same thing a whole span at a time, over *word masks*:
//! ```text
//! grey'      = grey & (bits below capacity)               -- 496 object bits
//! wordmask   = expand(grey', words) & pointer bitmap      -- 1024 word bits, 128 bytes
//! for each frame f < 124 (8 words = 64 bytes = byte f of wordmask), ascending:
//!     v    = the frame's 8 words
//!     keep = wordmask byte f & lanes of v with v - lo < hi - lo
//!     out.push(compress(v, keep))
//! ```
//! `expand` sets word bit `j` when object `j / words` is grey. Frames 124..128 are the span's
//! metadata, never covered by an object, so the walk stops at frame 124.
//!
//! # Tricks
//! 1. **Expansion by byte patterns, every size.** A byte of the word mask covers 8 words, hence
//!    at most 4 consecutive objects (2 when `words >= 8`), and how those 8 words split among
//!    the objects (the byte's *pattern*) takes at most 8 distinct forms per size class. Per
//!    output byte, `vpermb` copies the 8 grey bytes around the byte's first object into its
//!    qword lane, `vpmultishiftqb` shifts the 4 grey bits starting at that object down to bits
//!    0..3, `vpternlogq` adds the pattern id times 16, and `vpermi2b` looks the 7-bit result
//!    up in a 128-byte per-class table of ready-made mask bytes. Five instructions per 64
//!    output bytes, for all 63 sizes alike; the tables are built at compile time by `const fn`.
//! 2. **Capacity for free.** Grey bits at or past the capacity are cleared by one AND with a
//!    per-class mask before expanding, so words past the last object are never selected (the
//!    scalar tier stops at the first such bit, which is equivalent).
//! 3. **Two walks, no branch per frame.** `vptestmb` over the 128 mask bytes gives a 128-bit
//!    "frame has pointers" summary. Sparse spans walk only its set bits (`tzcnt`/`blsr`); dense
//!    spans (at least 7/8 of the frames non-empty, by a popcount of the summary; the measured
//!    crossover) run all 124 frames straight through, four per round, an empty frame costing
//!    a no-op compress instead of a mispredicted branch. No grey object at all returns at once.
//! 4. **Whole-frame loads, masked compare.** Each frame is read with one plain 64-byte load
//!    (object words may be read freely while marking; the walk never touches the metadata
//!    frames), and the frame's mask byte becomes the write mask of the filter compare, so
//!    non-pointer words and white objects drop out there. Measured faster on Zen 5 than
//!    `vmovdqu64` with the mask byte as load mask.
//! 5. **One compare filters nulls and foreign values.** `v - lo < hi - lo` (unsigned, `lo >= 1`)
//!    drops null, small integers and out-of-heap values in one `vpcmpuq` masked by the frame.
//! 6. **Compress in register, store a whole frame.** `vpcompressq` packs the kept lanes to the
//!    bottom of the register; an unmasked 64-byte store at the running count writes them (the
//!    garbage lanes behind are overwritten by the next frame, and [`GatherBuf`] has 8 words of
//!    slack), then the count advances by the popcount of the kept mask. (`vpcompressq` straight
//!    to memory made the whole kernel about 15x slower on Zen 5, measured.)

use std::arch::x86_64::{
    __m512i, _mm512_and_si512, _mm512_load_si512, _mm512_mask_cmplt_epu64_mask,
    _mm512_maskz_compress_epi64, _mm512_multishift_epi64_epi8, _mm512_permutex2var_epi8,
    _mm512_permutexvar_epi8, _mm512_set1_epi8, _mm512_set1_epi64, _mm512_store_si512,
    _mm512_storeu_si512, _mm512_sub_epi64, _mm512_ternarylogic_epi64, _mm512_test_epi8_mask,
    _mm512_test_epi64_mask,
};

use sencha_spans::Span;
use sencha_spans::span::{LINE_WORDS, OBJECT_BYTES, PTR_BITMAP_WORDS, SPAN_WORDS};

use super::{GATHER_CAP, GatherBuf, HeapRange};

// The set DESIGN §7 defines the tier by. The current expansion (trick 1) happens not to need
// GFNI, BITALG or DQ instructions; they stay required so that the tier means one thing
// (every CPU with AVX-512 VBMI that sencha targets, Ice Lake and Zen 4 on, has them anyway).
// bmi1 is for the sparse walk's tzcnt/blsr.
/// Every CPU feature this tier needs, each once. The `#[target_feature]` attributes in this
/// module repeat exactly this set (a unit test checks it).
pub const FEATURES: &[&str] = &[
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512vbmi",
    "gfni",
    "avx512bitalg",
    "popcnt",
    "bmi1",
];

/// Whether this CPU has every feature in [`FEATURES`]. Always false under Miri.
pub fn detected() -> bool {
    super::CpuFeatures::detect().has_all(FEATURES)
}

/// Frames (8 words, 64 bytes) in a span.
const FRAMES: usize = SPAN_WORDS / 8;
/// Frames that may hold object words: the rest of the span is metadata.
const OBJECT_FRAMES: usize = OBJECT_BYTES / 64;
/// With at least this many non-empty frames (7/8 of them), walk every frame instead of the
/// non-empty ones. Measured on Zen 5 with 4096 random masks: the walks cost about the same
/// per frame, so the dense walk wins only above about 85-90% non-empty frames, where it saves
/// the sparse walk's loop overhead and its mispredicted loop exits.
pub(super) const DENSE_MIN_FRAMES: u32 = (OBJECT_FRAMES as u32 * 7).div_ceil(8);

const _: () = {
    assert!(FRAMES == 128 && OBJECT_FRAMES == 124 && OBJECT_FRAMES.is_multiple_of(4));
    assert!(OBJECT_BYTES.is_multiple_of(64));
    // The last possible store starts at word 8 * (OBJECT_FRAMES - 1) and is 8 words long.
    assert!(8 * OBJECT_FRAMES <= GATHER_CAP);
    assert!(LINE_WORDS == 8 && PTR_BITMAP_WORDS == 16);
};

/// Per-class expansion tables (trick 1), one 64-byte-aligned block per size in words.
#[repr(C, align(64))]
struct ClassTable {
    /// Per output byte `m`: the grey byte `vpermb` puts at byte `m % 8` of qword lane `m / 8`.
    window: [u8; FRAMES],
    /// Per output byte: bit offset, within its lane's window, of the byte's first object.
    shift: [u8; FRAMES],
    /// Per output byte: 16 times the id of its pattern.
    pattern: [u8; FRAMES],
    /// `lut[16 * pattern + g]`: the output byte when bit `r` of `g` says whether the byte's
    /// `r`-th object is grey.
    lut: [u8; FRAMES],
    /// Grey bits below the capacity.
    capacity: [u64; LINE_WORDS],
}

impl ClassTable {
    /// The table for objects of `words` words (2..=64); all zero (never used) otherwise.
    const fn new(words: usize) -> Self {
        let mut t = ClassTable {
            window: [0; FRAMES],
            shift: [0; FRAMES],
            pattern: [0; FRAMES],
            lut: [0; FRAMES],
            capacity: [0; LINE_WORDS],
        };
        if words < 2 || words > 64 {
            return t;
        }
        let cap = OBJECT_BYTES / (8 * words);
        let mut i = 0;
        while i < cap {
            t.capacity[i / 64] |= 1 << (i % 64);
            i += 1;
        }
        // Distinct patterns seen so far, each as its 7 "new object starts at word t" bits.
        let mut patterns = [0u8; 8];
        let mut npatterns = 0;
        let mut m = 0;
        while m < FRAMES {
            let first_word = 8 * m;
            let first = first_word / words;
            // The lane's window starts at the grey byte holding the lane's first object.
            let lane_start = (64 * (m / 8) / words) / 8;
            t.window[m] = ((lane_start + m % 8) % 64) as u8;
            let shift = first - 8 * lane_start;
            // Every object of this byte must lie in the window without wrapping.
            assert!(shift + (first_word + 7) / words - first <= 63);
            t.shift[m] = shift as u8;
            let mut steps = 0u8;
            let mut k = 1;
            while k < 8 {
                if (first_word + k) / words != (first_word + k - 1) / words {
                    steps |= 1 << k;
                }
                k += 1;
            }
            let mut id = 0;
            while id < npatterns && patterns[id] != steps {
                id += 1;
            }
            if id == npatterns {
                assert!(npatterns < 8, "more than 8 byte patterns in one class");
                patterns[id] = steps;
                npatterns += 1;
                let mut g = 0;
                while g < 16 {
                    let mut byte = 0u8;
                    let mut k = 0;
                    while k < 8 {
                        let rel = (first_word + k) / words - first;
                        assert!(rel < 4, "more than 4 objects in one byte");
                        byte |= (((g >> rel) & 1) as u8) << k;
                        k += 1;
                    }
                    t.lut[16 * id + g] = byte;
                    g += 1;
                }
            }
            t.pattern[m] = (16 * id) as u8;
            m += 1;
        }
        t
    }
}

/// [`ClassTable`]s indexed by size in words (entries 0 and 1 unused).
static TABLES: [ClassTable; 65] = {
    let mut t = [const { ClassTable::new(0) }; 65];
    let mut w = 2;
    while w <= 64 {
        t[w] = ClassTable::new(w);
        w += 1;
    }
    t
};

/// A span's word mask: bit `j % 8` of byte `j / 8` selects span word `j`.
#[repr(C, align(64))]
struct WordMask([u8; FRAMES]);

/// The AVX-512 gather: exactly [`super::scalar::gather`]'s output, faster.
///
/// # Safety
/// - The CPU has every feature in [`FEATURES`] ([`detected`] returned true; holding an AVX-512
///   [`Kernel`](super::Kernel) proves it).
///
/// Everything else is checked or holds by construction: `span` is valid for 8 KiB for its
/// lifetime ([`Span`]'s contract), and the walk never reads past the object area nor writes
/// past `out`.
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
pub unsafe fn gather(
    span: Span<'_>,
    grey: &[u64; LINE_WORDS],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    debug_assert!(detected(), "avx512::gather without the CPU features");
    debug_assert!(span.base().is_multiple_of(sencha_spans::SPAN_BYTES));
    debug_assert!(range.lo() >= 1 && range.lo() <= range.hi());
    let t = &TABLES[span.class().words()];
    // SAFETY: `grey` is a reference to 64 bytes; unaligned loads need nothing more.
    let grey = unsafe { loadu(grey.as_ptr()) };
    let grey = _mm512_and_si512(grey, load64(&t.capacity));
    if _mm512_test_epi64_mask(grey, grey) == 0 {
        return 0;
    }
    let mut mask = WordMask([0; FRAMES]);
    let frames = expand(span, t, grey, &mut mask);
    if frames >= DENSE_MIN_FRAMES {
        walk_dense(span, &mask, range, out)
    } else {
        walk_sparse(span, &mask, range, out)
    }
}

/// Writes the word mask of the grey objects' pointer words into `mask` (trick 1) and returns
/// how many frames below [`OBJECT_FRAMES`] are non-empty. `grey` has no bits at or past the
/// capacity (trick 2), and `t` is the span's class table.
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
fn expand(span: Span<'_>, t: &ClassTable, grey: __m512i, mask: &mut WordMask) -> u32 {
    let bitmap = span.ptr_bitmap();
    let low4 = _mm512_set1_epi8(0x0f);
    let mut frames = 0;
    for h in 0..2 {
        let r = h * 64..h * 64 + 64;
        let window = _mm512_permutexvar_epi8(load64(&t.window[r.clone()]), grey);
        let first4 = _mm512_multishift_epi64_epi8(load64(&t.shift[r.clone()]), window);
        // (first4 & 0x0f) | pattern: 0xEA is the ternary-logic truth table of (A & B) | C.
        let index = _mm512_ternarylogic_epi64::<0xEA>(first4, low4, load64(&t.pattern[r]));
        let bytes = _mm512_permutex2var_epi8(load64(&t.lut[..64]), index, load64(&t.lut[64..]));
        // SAFETY: `bitmap` is a local [u64; 16]; words 8h..8h+8 are in bounds for h < 2.
        let ptrs = unsafe { loadu(bitmap.as_ptr().add(8 * h)) };
        let words = _mm512_and_si512(bytes, ptrs);
        // SAFETY: `mask.0` is 128 bytes aligned to 64 (WordMask is repr(align(64))), so bytes
        // 64h..64h+64 are in bounds and aligned for h < 2.
        unsafe { _mm512_store_si512(mask.0.as_mut_ptr().add(64 * h).cast(), words) };
        let mut nonempty = _mm512_test_epi8_mask(words, words);
        if h == 1 {
            nonempty &= (1 << (OBJECT_FRAMES - 64)) - 1;
        }
        frames += nonempty.count_ones();
    }
    frames
}

/// Loads 64 table bytes (or 8 words).
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
fn load64<T: Copy>(bytes: &[T]) -> __m512i {
    assert!(size_of_val(bytes) == 64);
    // SAFETY: the slice is 64 bytes long (asserted; the assert folds away for the fixed
    // table ranges), and unaligned loads need no more.
    unsafe { loadu(bytes.as_ptr()) }
}

/// An unaligned 64-byte load from any pointer type.
///
/// # Safety
/// - `p` is valid for reads of 64 bytes.
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
unsafe fn loadu<T>(p: *const T) -> __m512i {
    // SAFETY: the caller promises 64 readable bytes at `p`; the load is unaligned.
    unsafe { std::arch::x86_64::_mm512_loadu_si512(p.cast()) }
}

/// The filter constants of trick 5: `lo` and `hi - lo` in every lane.
#[derive(Clone, Copy)]
struct Filter {
    lo: __m512i,
    width: __m512i,
}

impl Filter {
    #[inline]
    #[target_feature(
        enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
    )]
    fn new(range: HeapRange) -> Self {
        Filter {
            lo: _mm512_set1_epi64(range.lo() as i64),
            width: _mm512_set1_epi64((range.hi() - range.lo()) as i64),
        }
    }
}

/// Gathers frame `f` under mask byte `k` into `out` at `n`; returns the new count (tricks 4
/// to 6).
///
/// # Safety
/// Same as [`gather`], plus:
/// - `f < OBJECT_FRAMES`, so the frame lies in the span's object area;
/// - `n + 8 <= GATHER_CAP`, so the 8-word store stays inside `out`.
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
unsafe fn frame(
    span: Span<'_>,
    f: usize,
    k: u8,
    filter: Filter,
    out: &mut GatherBuf,
    n: usize,
) -> usize {
    debug_assert!(f < OBJECT_FRAMES);
    debug_assert!(n + 8 <= GATHER_CAP);
    // SAFETY: f < OBJECT_FRAMES (caller), so the 64 bytes at 64 * f lie in the object area,
    // inside the 8 KiB that `span` keeps valid for reads for its lifetime (Span contract,
    // established at registration); object words may be read with plain loads while marking
    // (Span::as_ptr), including those of white objects and non-pointer words, which the
    // masked compare below then ignores.
    let v = unsafe { loadu(span.as_ptr().add(64 * f)) };
    let keep = _mm512_mask_cmplt_epu64_mask(k, _mm512_sub_epi64(v, filter.lo), filter.width);
    let packed = _mm512_maskz_compress_epi64(keep, v);
    // SAFETY: n + 8 <= GATHER_CAP (caller), so the 64-byte store stays inside `out`, which we
    // borrow mutably.
    unsafe { _mm512_storeu_si512(out.0.as_mut_ptr().add(n).cast(), packed) };
    n + keep.count_ones() as usize
}

/// Trick 3, dense case: every object frame, no branch on the mask.
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
fn walk_dense(span: Span<'_>, mask: &WordMask, range: HeapRange, out: &mut GatherBuf) -> usize {
    let filter = Filter::new(range);
    let mut n = 0;
    // Four frames per round: a quarter of the loop overhead.
    for f in (0..OBJECT_FRAMES).step_by(4) {
        for f in f..f + 4 {
            // SAFETY: f < OBJECT_FRAMES, a multiple of 4 (compile-time assert above); each
            // frame adds at most 8 to n, so n <= 8 * f <= 8 * (OBJECT_FRAMES - 1) and
            // n + 8 <= 8 * OBJECT_FRAMES <= GATHER_CAP (same assert). The CPU features are
            // gather's obligation.
            n = unsafe { frame(span, f, mask.0[f], filter, out, n) };
        }
    }
    n
}

/// Trick 3, sparse case: only the non-empty frames, found with trailing zeros.
#[inline]
#[target_feature(
    enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,gfni,avx512bitalg,popcnt,bmi1"
)]
fn walk_sparse(span: Span<'_>, mask: &WordMask, range: HeapRange, out: &mut GatherBuf) -> usize {
    let filter = Filter::new(range);
    let mut n = 0;
    for h in 0..2 {
        // SAFETY: `mask.0` is 128 bytes aligned to 64; bytes 64h..64h+64 are in bounds.
        let bytes = unsafe { _mm512_load_si512(mask.0.as_ptr().add(64 * h).cast()) };
        let mut nonempty = _mm512_test_epi8_mask(bytes, bytes);
        if h == 1 {
            nonempty &= (1 << (OBJECT_FRAMES - 64)) - 1;
        }
        while nonempty != 0 {
            let f = 64 * h + nonempty.trailing_zeros() as usize;
            nonempty &= nonempty - 1;
            // SAFETY: f < OBJECT_FRAMES: bits of the second half at or past OBJECT_FRAMES - 64
            // were cleared above. Each frame is visited once, in ascending order, and adds at
            // most 8 to n, so n <= 8 * f and n + 8 <= 8 * OBJECT_FRAMES <= GATHER_CAP. The CPU
            // features are gather's obligation.
            n = unsafe { frame(span, f, mask.0[f], filter, out, n) };
        }
    }
    n
}
