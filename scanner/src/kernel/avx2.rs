//! The AVX2 tier (x86_64 only; picked at run time where the AVX-512 tier is not, see
//! [`detected`]).
//!
//! # Algorithm
//! The scalar tier ([`super::scalar`]) walks objects, then pointer bits:
//! ```text
//! for each grey object i < capacity (ascending):
//!     for each word k of object i whose pointer bit is set (ascending):
//!         v = span word (i * words + k)
//!         if lo <= v < hi: out.push(v)
//! ```
//! This tier computes the same thing a whole span at a time, over a *word mask*, like the
//! AVX-512 tier, but with 4-word *quads* (one 256-bit register) instead of 8-word frames:
//! ```text
//! grey'    = grey & (bits below capacity)                 -- 496 object bits
//! wordmask = expand(grey', words) & pointer bitmap        -- 1024 word bits, 128 bytes
//! for each quad q < 248 (4 words = nibble q of wordmask) that is non-empty (or every one):
//!     v    = the quad's 4 words
//!     keep = nibble q & lanes of v with v - lo < hi - lo
//!     out.push(compress(v, keep))
//! ```
//! `expand` sets word bit `j` when object `j / words` is grey. Quads 248..256 are the span's
//! metadata, never covered by an object, so the walks stop at quad 248.
//!
//! # Tricks
//! 1. **Expansion by grey byte, two table rows per byte.** The 8 objects of grey byte `b` cover
//!    `8 * words` word bits, which is exactly `words` bytes of the word mask, starting at byte
//!    `b * words`: byte-aligned for every size. For objects of up to 31 words those bytes fit
//!    one 256-bit register, so a per-class table of 16 rows per grey nibble (32 bytes each,
//!    built at compile time by `const fn`) gives them with two loads and a `vpor`, and one
//!    unaligned 32-byte store puts them in place. Rows are zero past byte `words`, and the next
//!    store overwrites those bytes. At most `ceil(capacity / 8)` steps: 14 for 72-byte objects, 4
//!    for 248-byte ones, 1 KiB of table per class. Objects of up to 8 words take one `u64`
//!    per grey byte instead, from a 256-entry table (2 KiB per class), with a plain unaligned
//!    8-byte store: 62 of them for 16-byte objects. Objects of 32 words and more (at most 31 per
//!    span) are expanded object by object instead, a run of `words` ones per grey object found
//!    with `tzcnt`/`blsr`.
//! 2. **Capacity for free.** Grey bits at or past the capacity are cleared by one AND with a
//!    per-class mask before expanding, so words past the last object are never selected (the
//!    scalar tier stops at the first such bit, which is equivalent). The same pass finds the
//!    non-zero grey bytes (`vpcmpeqb`/`vpmovmskb`), and trick 1 visits only those, in
//!    ascending order (`tzcnt`/`blsr`): a span with a few grey objects expands in a few steps.
//! 3. **Two walks, no branch per quad.** In the same pass as the AND with the pointer bitmap,
//!    the 128 mask bytes are split into 256 nibble bytes in quad order (`vpand`/`vpsrlw`, byte
//!    unpacks, lane permutes) and `vpcmpeqb`/`vpmovmskb` turn those into a 256-bit "quad has
//!    pointers" summary. Sparse spans walk only its set bits (`tzcnt`/`blsr`); dense spans (at
//!    least `DENSE_MIN_QUADS` non-empty quads, by a popcount) run all 248 quads straight
//!    through, an empty quad costing a no-op compress instead of a mispredicted branch. No
//!    grey object at all returns at once. The pointer bitmap is moved into registers with
//!    `vmovq`/`vpunpcklqdq` rather than reloaded from its copy, since a 32-byte load of four
//!    8-byte stores still in flight cannot be store-forwarded.
//! 4. **An unsigned range check with a signed compare.** AVX2's only 64-bit compare, `vpcmpgtq`,
//!    is signed. `v - lo < hi - lo` (unsigned, `lo >= 1`: drops null, small integers and
//!    out-of-heap values at once) is the same as the signed `v - (lo ^ 2^63) < (hi - lo) ^ 2^63`:
//!    one `vpsubq` and one `vpcmpgtq` per quad, both constants hoisted out of the walk.
//! 5. **Compress by permutation table.** AVX2 has no `vpcompressq`: `vmovmskpd` turns the
//!    compare into 4 bits, an AND with the quad's nibble of the word mask drops white objects
//!    and non-pointer words, and the result indexes a 16-row table (512 bytes) of `vpermd`
//!    dword indices that moves the kept words to the bottom of the register. An unmasked
//!    32-byte store at the running count writes them (the garbage lanes behind are overwritten
//!    by the next quad, and [`GatherBuf`] has slack), then the count advances by `popcnt`.
//! 6. **No GFNI, no `pdep`.** Trick 1 needs neither: VEX-encoded GFNI (Alder Lake and later)
//!    has no use here, and `pdep`/`pext` are microcoded and slow on Zen 1 and 2, two of the
//!    CPU families this tier is for. BMI2 is required for `shlx`/`shrx` (variable shifts
//!    without the flags dependency), which every AVX2 CPU sencha targets has.

use std::arch::x86_64::{
    __m256i, _mm256_and_si256, _mm256_castsi256_pd, _mm256_cmpeq_epi8, _mm256_cmpgt_epi64,
    _mm256_load_si256, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_movemask_pd,
    _mm256_or_si256, _mm256_permute2x128_si256, _mm256_permutevar8x32_epi32, _mm256_set_epi64x,
    _mm256_set1_epi8, _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_srli_epi16,
    _mm256_store_si256, _mm256_storeu_si256, _mm256_sub_epi64, _mm256_unpackhi_epi8,
    _mm256_unpacklo_epi8,
};

use sencha_spans::Span;
use sencha_spans::span::{LINE_WORDS, OBJECT_BYTES, PTR_BITMAP_WORDS, SPAN_WORDS};

use super::{GATHER_CAP, GatherBuf, HeapRange};

/// Every CPU feature this tier needs, each once: AVX2 for the vector work, BMI1 for the sparse
/// walk's `tzcnt`/`blsr`, BMI2 for `shlx`/`shrx`, POPCNT for the running count. The
/// `#[target_feature]` attributes in this module repeat exactly this set (a unit test checks
/// it).
pub const FEATURES: &[&str] = &["avx2", "bmi1", "bmi2", "popcnt"];

/// Whether this CPU has every feature in [`FEATURES`]. Always false under Miri.
pub fn detected() -> bool {
    super::CpuFeatures::detect().has_all(FEATURES)
}

/// Frames (8 words, 64 bytes) in a span.
const FRAMES: usize = SPAN_WORDS / 8;
/// Frames that may hold object words: the rest of the span is metadata.
const OBJECT_FRAMES: usize = OBJECT_BYTES / 64;
/// With at least this many non-empty quads (half of them), walk every quad instead of the
/// non-empty ones (trick 3). Measured on Zen 5 with random masks: the dense walk costs about
/// 0.55 ns per quad, the sparse one about 1.3 ns per non-empty quad (its loop exits
/// mispredict), so they cross at about 45% non-empty quads.
pub(super) const DENSE_MIN_QUADS: u32 = (2 * OBJECT_FRAMES as u32).div_ceil(2);
/// The largest object, in words, that trick 1 expands through one `u64` per grey byte: 8 such
/// objects fill at most 64 bits.
const WORD_MAX_WORDS: usize = 8;
/// The largest object, in words, that trick 1 expands through tables: 8 such objects fill at
/// most 248 bits of one register.
const TABLE_MAX_WORDS: usize = 31;
/// Words of a [`WordMask`]: 128 bytes of mask, then 32 bytes that the last row store of trick
/// 1 may spill zeros into.
const MASK_WORDS: usize = PTR_BITMAP_WORDS + 4;

const _: () = {
    assert!(FRAMES == 128 && OBJECT_FRAMES == 124 && OBJECT_FRAMES > 64);
    assert!(OBJECT_BYTES.is_multiple_of(64));
    // A quad adds at most 4 words; the last store starts at word 4 * (2 * OBJECT_FRAMES - 1).
    assert!(8 * OBJECT_FRAMES <= GATHER_CAP);
    assert!(LINE_WORDS == 8 && PTR_BITMAP_WORDS == 16);
    // Trick 1: the last grey byte of a class starts below mask byte OBJECT_BYTES / 64 (its
    // objects lie in the object area), and its 32-byte row store ends inside the mask.
    assert!(OBJECT_FRAMES + 32 <= 8 * MASK_WORDS);
    assert!(8 * TABLE_MAX_WORDS <= 256);
};

/// 32 bytes, aligned for `vmovdqa`.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct Row([u8; 32]);

/// The expansion rows of one class (trick 1): `lo[n]` holds the word bits of objects 0..4 of a
/// grey byte whose low nibble is `n`, `hi[n]` those of objects 4..8 for a high nibble `n`, both
/// counted from the grey byte's first word.
#[repr(C, align(32))]
struct ClassTable {
    lo: [Row; 16],
    hi: [Row; 16],
}

impl ClassTable {
    /// The table for objects of `words` words (2..=31); all zero (never used) otherwise.
    const fn new(words: usize) -> Self {
        let mut t = ClassTable {
            lo: [Row([0; 32]); 16],
            hi: [Row([0; 32]); 16],
        };
        if words < 2 || words > TABLE_MAX_WORDS {
            return t;
        }
        let mut n = 0;
        while n < 16 {
            let mut r = 0;
            while r < 4 {
                if (n >> r) & 1 == 1 {
                    set_run(&mut t.lo[n].0, r * words, words);
                    set_run(&mut t.hi[n].0, (4 + r) * words, words);
                }
                r += 1;
            }
            n += 1;
        }
        t
    }
}

/// Sets bits `first .. first + len` of `row` (bit `j % 8` of byte `j / 8`).
const fn set_run(row: &mut [u8; 32], first: usize, len: usize) {
    let mut j = first;
    while j < first + len {
        row[j / 8] |= 1 << (j % 8);
        j += 1;
    }
}

/// Per size in words up to [`WORD_MAX_WORDS`] (entries 0 and 1 unused): for each grey byte
/// value, the word bits of its 8 objects, counted from the first object's first word.
static WORD_TABLES: [[u64; 256]; WORD_MAX_WORDS + 1] = {
    let mut t = [[0u64; 256]; WORD_MAX_WORDS + 1];
    let mut w = 2;
    while w <= WORD_MAX_WORDS {
        let mut v = 0;
        while v < 256 {
            let mut r = 0;
            while r < 8 {
                if (v >> r) & 1 == 1 {
                    let run = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
                    t[w][v] |= run << (r * w);
                }
                r += 1;
            }
            v += 1;
        }
        w += 1;
    }
    t
};

/// [`ClassTable`]s indexed by size in words (entries 0 and 1 unused).
static TABLES: [ClassTable; TABLE_MAX_WORDS + 1] = {
    let mut t = [const { ClassTable::new(0) }; TABLE_MAX_WORDS + 1];
    let mut w = 2;
    while w <= TABLE_MAX_WORDS {
        t[w] = ClassTable::new(w);
        w += 1;
    }
    t
};

/// Grey bits below the capacity, per size in words (trick 2; entries 0 and 1 unused).
#[repr(C, align(32))]
struct Capacities([[u64; LINE_WORDS]; 65]);

static CAPACITY: Capacities = {
    let mut t = [[0u64; LINE_WORDS]; 65];
    let mut w = 2;
    while w <= 64 {
        let cap = OBJECT_BYTES / (8 * w);
        let mut i = 0;
        while i < cap {
            t[w][i / 64] |= 1 << (i % 64);
            i += 1;
        }
        w += 1;
    }
    Capacities(t)
};

/// `vpermd` indices that move the 64-bit lanes set in the row's index to the bottom, in order
/// (trick 5).
#[repr(C, align(32))]
struct Perms([[u32; 8]; 16]);

static PERMS: Perms = {
    let mut t = [[0u32; 8]; 16];
    let mut k = 0;
    while k < 16 {
        let mut out = 0;
        let mut lane = 0;
        while lane < 4 {
            if (k >> lane) & 1 == 1 {
                t[k][2 * out] = 2 * lane as u32;
                t[k][2 * out + 1] = 2 * lane as u32 + 1;
                out += 1;
            }
            lane += 1;
        }
        k += 1;
    }
    Perms(t)
};

/// A span's word mask: bit `j % 64` of word `j / 64` selects span word `j`, so byte `f` (in
/// little-endian order) is frame `f`. Words 16.. are slack for trick 1's stores.
#[repr(C, align(32))]
struct WordMask([u64; MASK_WORDS]);

impl WordMask {
    /// The mask nibble of quad `q`, in the low 4 bits (and garbage above).
    #[inline(always)]
    fn quad(&self, q: usize) -> u32 {
        (self.0[q / 16] >> (4 * (q % 16))) as u32
    }
}

/// The AVX2 gather: exactly [`super::scalar::gather`]'s output, faster.
///
/// # Safety
/// - The CPU has every feature in [`FEATURES`] ([`detected`] returned true; holding an AVX2
///   [`Kernel`](super::Kernel) proves it).
///
/// Everything else is checked or holds by construction: `span` is valid for 8 KiB for its
/// lifetime ([`Span`]'s contract), and the walk never reads past the object area nor writes
/// past `out`.
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
pub unsafe fn gather(
    span: Span<'_>,
    grey: &[u64; LINE_WORDS],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    debug_assert!(detected(), "avx2::gather without the CPU features");
    debug_assert!(span.base().is_multiple_of(sencha_spans::SPAN_BYTES));
    debug_assert!(range.lo() >= 1 && range.lo() <= range.hi());
    let class = span.class();
    let words = class.words();
    let (grey, bytes) = below_capacity(grey, &CAPACITY.0[words]);
    if bytes == 0 {
        return 0;
    }
    let mut mask = WordMask([0; MASK_WORDS]);
    if words <= WORD_MAX_WORDS {
        expand_words(&WORD_TABLES[words], &grey.0, bytes, words, &mut mask);
    } else if words <= TABLE_MAX_WORDS {
        expand_rows(&TABLES[words], &grey.0, bytes, words, &mut mask);
    } else {
        expand_runs(&grey.0, words, &mut mask);
    }
    let (summary, quads) = restrict(span, &mut mask);
    if quads >= DENSE_MIN_QUADS {
        walk_dense(span, &mask, range, out)
    } else {
        walk_sparse(span, &mask, summary, range, out)
    }
}

/// The grey mask, 32-byte aligned.
#[repr(C, align(32))]
struct Grey([u64; LINE_WORDS]);

/// Trick 2: `grey` without the bits at or past the capacity (`cap`: the class's
/// [`CAPACITY`] row), and the grey bytes that are not zero (bit `b` for byte `b`).
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn below_capacity(grey: &[u64; LINE_WORDS], cap: &[u64; LINE_WORDS]) -> (Grey, u64) {
    let mut out = Grey([0; LINE_WORDS]);
    let mut nonzero = 0;
    for h in 0..2 {
        // SAFETY: `grey` and `cap` are references to 8 words, so words 4h..4h+4 are in bounds
        // for h < 2; the loads are unaligned.
        let (g, c) = unsafe {
            (
                _mm256_loadu_si256(grey.as_ptr().add(4 * h).cast()),
                _mm256_loadu_si256(cap.as_ptr().add(4 * h).cast()),
            )
        };
        let g = _mm256_and_si256(g, c);
        // SAFETY: words 4h..4h+4 of `out.0` are in bounds and 32-byte aligned (Grey is
        // repr(align(32))); we own `out`.
        unsafe { _mm256_store_si256(out.0.as_mut_ptr().add(4 * h).cast(), g) };
        let zero = _mm256_movemask_epi8(_mm256_cmpeq_epi8(g, _mm256_setzero_si256())) as u32;
        nonzero |= u64::from(!zero) << (32 * h);
    }
    (out, nonzero)
}

/// Trick 1 for objects of at most [`TABLE_MAX_WORDS`] words: ORs two table rows per non-zero
/// grey byte (bit `b` of `bytes` for byte `b`) into `mask`, in ascending order. `grey` has no
/// bits at or past the capacity (trick 2), and `t` is the class's table.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn expand_rows(
    t: &ClassTable,
    grey: &[u64; LINE_WORDS],
    bytes: u64,
    words: usize,
    mask: &mut WordMask,
) {
    debug_assert!((WORD_MAX_WORDS + 1..=TABLE_MAX_WORDS).contains(&words));
    let base = mask.0.as_mut_ptr().cast::<u8>();
    let mut bytes = bytes;
    while bytes != 0 {
        let b = bytes.trailing_zeros() as usize;
        bytes &= bytes - 1;
        let v = (grey[b / 8] >> (8 * (b % 8))) as usize;
        let bits = _mm256_or_si256(row(&t.lo[v & 15]), row(&t.hi[(v >> 4) & 15]));
        // SAFETY: grey byte b is not zero, so it holds an object 8b.. below the capacity
        // (trick 2 cleared the rest), whose words start at word 8b * words < capacity * words
        // <= 8 * OBJECT_FRAMES; so byte b * words of the mask is below OBJECT_FRAMES and the
        // 32 bytes stored end inside the mask's 8 * MASK_WORDS bytes (compile-time assert
        // above), which we borrow mutably. Unaligned is fine.
        unsafe { _mm256_storeu_si256(base.add(b * words).cast(), bits) };
    }
}

/// Trick 1 for objects of at most [`WORD_MAX_WORDS`] words: one `u64` table entry per grey
/// byte, stored unaligned at byte `b * words` (entries are zero past `words` bytes, and the next
/// store overwrites those; zero grey bytes are skipped, as their entries are zero). Same
/// preconditions as [`expand_rows`].
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn expand_words(
    t: &[u64; 256],
    grey: &[u64; LINE_WORDS],
    bytes: u64,
    words: usize,
    mask: &mut WordMask,
) {
    debug_assert!((2..=WORD_MAX_WORDS).contains(&words));
    let base = mask.0.as_mut_ptr().cast::<u8>();
    let mut bytes = bytes;
    while bytes != 0 {
        let b = bytes.trailing_zeros() as usize;
        bytes &= bytes - 1;
        let v = (grey[b / 8] >> (8 * (b % 8))) as u8;
        // SAFETY: as in expand_rows, byte b * words of the mask is below OBJECT_FRAMES, so the
        // 8 bytes written end inside the mask (which we borrow mutably); unaligned is fine.
        unsafe {
            base.add(b * words)
                .cast::<u64>()
                .write_unaligned(t[usize::from(v)])
        };
    }
}

/// Loads one 32-byte table row.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn row(r: &Row) -> __m256i {
    // SAFETY: `r` is a reference to 32 bytes aligned to 32 (Row is repr(align(32))).
    unsafe { _mm256_load_si256((r as *const Row).cast()) }
}

/// Trick 1 for objects of more than [`TABLE_MAX_WORDS`] words (at most 31 objects per span):
/// a run of `words` ones per grey object.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn expand_runs(grey: &[u64; LINE_WORDS], words: usize, mask: &mut WordMask) {
    debug_assert!(words > TABLE_MAX_WORDS && words <= 64);
    let run = if words == 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    };
    for (w, &g) in grey.iter().enumerate() {
        let mut g = g;
        while g != 0 {
            let first = (w * 64 + g.trailing_zeros() as usize) * words;
            g &= g - 1;
            // `first` < capacity * words <= 992, so both words are inside the mask.
            let (k, s) = (first / 64, first % 64);
            mask.0[k] |= run << s;
            // run >> (64 - s), and nothing for s == 0.
            mask.0[k + 1] |= (run >> 1) >> (63 - s);
        }
    }
}

/// ANDs the word mask with the span's pointer bitmap and returns the "quad has pointers"
/// summary of the object quads (bit `q % 64` of word `q / 64`) with its popcount (trick 3).
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn restrict(span: Span<'_>, mask: &mut WordMask) -> ([u64; 4], u32) {
    let bitmap = span.ptr_bitmap();
    let zero = _mm256_setzero_si256();
    let low4 = _mm256_set1_epi8(0x0f);
    let mut summary = [0u64; 4];
    for h in 0..4 {
        // SAFETY: words 4h..4h+4 of the mask (h < 4) are in bounds and aligned to 32 bytes
        // (WordMask is repr(align(32))); we borrow the mask mutably.
        let m = unsafe { _mm256_load_si256(mask.0.as_ptr().add(4 * h).cast()) };
        // Built in registers, not loaded from the copy: a 32-byte load of four 8-byte stores
        // still in flight cannot be forwarded and waits for them to reach the cache.
        let w = |i: usize| bitmap[4 * h + i] as i64;
        let b = _mm256_set_epi64x(w(3), w(2), w(1), w(0));
        let frames = _mm256_and_si256(m, b);
        // SAFETY: as for the load above.
        unsafe { _mm256_store_si256(mask.0.as_mut_ptr().add(4 * h).cast(), frames) };
        // One byte per quad, in quad order: split each frame byte into its two nibbles; the
        // byte unpacks interleave within 128-bit lanes, the lane permutes restore the order.
        let lo = _mm256_and_si256(frames, low4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(frames), low4);
        let (a, b) = (_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi));
        for (half, quads) in [
            _mm256_permute2x128_si256::<0x20>(a, b),
            _mm256_permute2x128_si256::<0x31>(a, b),
        ]
        .into_iter()
        .enumerate()
        {
            let empty = _mm256_movemask_epi8(_mm256_cmpeq_epi8(quads, zero)) as u32;
            summary[h] |= u64::from(!empty) << (32 * half);
        }
    }
    summary[3] &= (1 << (2 * OBJECT_FRAMES - 192)) - 1;
    let count = summary.iter().map(|s| s.count_ones()).sum();
    (summary, count)
}

/// The filter constants of trick 4: `lo ^ 2^63` and `(hi - lo) ^ 2^63` in every lane.
#[derive(Clone, Copy)]
struct Filter {
    bias: __m256i,
    limit: __m256i,
}

impl Filter {
    #[inline]
    #[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
    fn new(range: HeapRange) -> Self {
        let sign = 1u64 << 63;
        Filter {
            bias: _mm256_set1_epi64x((range.lo() as u64 ^ sign) as i64),
            limit: _mm256_set1_epi64x(((range.hi() - range.lo()) as u64 ^ sign) as i64),
        }
    }
}

/// Gathers quad `q` (words `4q .. 4q + 4`) under the mask nibble in the low 4 bits of
/// `nibble` (higher bits are ignored) into `out` at `n`; returns the new count (tricks 4 and 5).
///
/// # Safety
/// Same as [`gather`], plus:
/// - `q < 2 * OBJECT_FRAMES`, so the quad lies in the span's object area;
/// - `n + 4 <= GATHER_CAP`, so the 4-word store stays inside `out`.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
unsafe fn quad(
    span: Span<'_>,
    q: usize,
    nibble: u32,
    filter: Filter,
    out: &mut GatherBuf,
    n: usize,
) -> usize {
    debug_assert!(q < 2 * OBJECT_FRAMES);
    debug_assert!(n + 4 <= GATHER_CAP);
    // SAFETY: q < 2 * OBJECT_FRAMES (caller), so the 32 bytes at 32 * q lie in the object
    // area, inside the 8 KiB that `span` keeps valid for reads for its lifetime (Span
    // contract, established at registration); object words may be read with plain loads while
    // marking (Span::as_ptr), including those of white objects and non-pointer words, which
    // the nibble below then drops.
    let v = unsafe { _mm256_loadu_si256(span.as_ptr().add(32 * q).cast()) };
    let inside = _mm256_cmpgt_epi64(filter.limit, _mm256_sub_epi64(v, filter.bias));
    let keep = (_mm256_movemask_pd(_mm256_castsi256_pd(inside)) as u32 & nibble & 15) as usize;
    // SAFETY: keep < 16 indexes one 32-byte-aligned row of PERMS.
    let perm = unsafe { _mm256_load_si256(PERMS.0[keep].as_ptr().cast()) };
    let packed = _mm256_permutevar8x32_epi32(v, perm);
    // SAFETY: n + 4 <= GATHER_CAP (caller), so the 32-byte store stays inside `out`, which we
    // borrow mutably.
    unsafe { _mm256_storeu_si256(out.0.as_mut_ptr().add(n).cast(), packed) };
    n + keep.count_ones() as usize
}

/// Trick 3, dense case: every object frame, no branch on the mask. The quads' nibbles are
/// shifted out of each mask word in turn (16 quads per word).
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn walk_dense(span: Span<'_>, mask: &WordMask, range: HeapRange, out: &mut GatherBuf) -> usize {
    let filter = Filter::new(range);
    let mut n = 0;
    for (w, &bits) in mask.0[..OBJECT_FRAMES / 8].iter().enumerate() {
        for j in 0..16 {
            let nibble = (bits >> (4 * j)) as u32;
            // SAFETY: w < OBJECT_FRAMES / 8, so q = 16w + j < 2 * OBJECT_FRAMES; each quad
            // adds at most 4 to n, so before quad q, n <= 4q <= 4 * (2 * OBJECT_FRAMES - 1)
            // and n + 4 <= 8 * OBJECT_FRAMES <= GATHER_CAP (compile-time assert above). The
            // CPU features are gather's obligation.
            n = unsafe { quad(span, 16 * w + j, nibble, filter, out, n) };
        }
    }
    // The object frames of the last, partial mask word.
    let w = OBJECT_FRAMES / 8;
    let bits = mask.0[w];
    for j in 0..2 * (OBJECT_FRAMES % 8) {
        let nibble = (bits >> (4 * j)) as u32;
        // SAFETY: q = 16w + j < 16w + 2 * (OBJECT_FRAMES % 8) = 2 * OBJECT_FRAMES; n as above.
        n = unsafe { quad(span, 16 * w + j, nibble, filter, out, n) };
    }
    n
}

/// Trick 3, sparse case: only the non-empty quads, found with trailing zeros.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn walk_sparse(
    span: Span<'_>,
    mask: &WordMask,
    summary: [u64; 4],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    let filter = Filter::new(range);
    let mut n = 0;
    for (h, &s) in summary.iter().enumerate() {
        let mut s = s;
        while s != 0 {
            let q = 64 * h + s.trailing_zeros() as usize;
            s &= s - 1;
            // SAFETY: q < 2 * OBJECT_FRAMES: restrict() cleared the summary bits at or past
            // it. Quads are visited once each, in ascending order, and each adds at most 4 to
            // n, so n + 4 <= 8 * OBJECT_FRAMES <= GATHER_CAP as in walk_dense. The CPU features
            // are gather's obligation.
            n = unsafe { quad(span, q, mask.quad(q), filter, out, n) };
        }
    }
    n
}
