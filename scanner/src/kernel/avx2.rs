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
//! 1. **Expansion in registers, every size alike.** Each mask byte (8 words) is touched by at
//!    most `T` objects (4 for 2- and 3-word objects, 3 for 5-word ones, 1 when the size is a
//!    multiple of 8 words, 2 otherwise). Per 32 mask bytes and per term `r < T`, a per-class
//!    row says which grey bit holds the `r`-th object of each byte (its byte in a 16-byte
//!    window of the grey mask, and the bit) and which of the byte's 8 word bits it covers:
//!    `vpshufb` fetches the grey byte, `vpand`/`vpcmpeqb` test the bit, `vpandn`/`vpor` add the
//!    covered bits. `4 * T` such steps build the whole 128-byte mask in registers, with no
//!    store, no branch and no loop over grey bytes; the rows are built at compile time by
//!    `const fn` (96 bytes per term, 46 KiB for all 63 sizes). Each window is one 16-byte
//!    load (`vbroadcasti128`): when the caller has just written the grey mask word by word,
//!    as the marker does, it waits for those stores, which costs about 5 ns per span on Zen 5
//!    (measured; a 64-byte load of the same mask waits about 10 ns).
//! 2. **Capacity for free.** Rows name no object at or past the capacity, so grey bits there
//!    select nothing and words past the last object are never selected (the scalar tier stops
//!    at the first such bit, which is equivalent).
//! 3. **Two walks, no branch per quad.** Dense spans (at least `DENSE_MIN_QUADS` non-empty
//!    quads) run all 248 quads straight through, an empty quad costing a no-op compress
//!    instead of a mispredicted branch; sparse spans walk only the non-empty quads
//!    (`tzcnt`/`blsr` over a 256-bit "quad has pointers" summary). In the same pass as the AND
//!    with the pointer bitmap, one `vpcmpeqb`/`vpmovmskb` per 32 mask bytes counts the
//!    non-empty frames; as many non-empty frames mean at least as many non-empty quads, a span
//!    with `DENSE_MIN_QUADS` of them goes dense at once. Only the others build the summary
//!    (the mask bytes split into nibble bytes in quad order by `vpand`/`vpsrlw`, byte unpacks
//!    and lane permutes, then `vpcmpeqb`/`vpmovmskb`) and count its bits to choose. A span
//!    without a grey pointer word returns at once. The pointer bitmap is moved into registers
//!    with `vmovq`/`vpunpcklqdq` rather than reloaded from its copy, since a 32-byte load of
//!    four 8-byte stores still in flight cannot be store-forwarded.
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
//!
//! # What limits it
//! On Zen 5 a dense span takes about 135 ns, of which the quad walk is about 0.5 ns per quad
//! and the rest 5–10 ns. The walk is bound by its seven vector-side operations per quad (load,
//! `vpsubq`, `vpcmpgtq`, `vmovmskpd`, table load, `vpermd`, store): removing any one of them
//! saves 0.06–0.1 ns per quad, removing the integer ones nothing; the AVX-512 tier needs six per
//! 8-word frame. docs/PERFORMANCE.md lists the variants measured.

use std::arch::x86_64::{
    __m256i, _mm_set_epi64x, _mm256_and_si256, _mm256_andnot_si256, _mm256_broadcastsi128_si256,
    _mm256_castsi256_pd, _mm256_cmpeq_epi8, _mm256_cmpgt_epi64, _mm256_load_si256,
    _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_movemask_pd, _mm256_or_si256,
    _mm256_permute2x128_si256, _mm256_permutevar8x32_epi32, _mm256_set_epi64x, _mm256_set1_epi8,
    _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16,
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
/// 0.5 ns per quad, the sparse one about 1.3 ns per non-empty quad (its loop exits
/// mispredict), so they cross at about 45% non-empty quads.
pub(super) const DENSE_MIN_QUADS: u32 = (2 * OBJECT_FRAMES as u32).div_ceil(2);
/// Object sizes in words: 2 ..= 64 (16 to 512 bytes).
const MAX_WORDS: usize = 64;
/// Most objects that one mask byte (8 words) touches, for any size: 4 (2- and 3-word objects).
const MAX_TERMS: usize = 4;

const _: () = {
    assert!(FRAMES == 128 && OBJECT_FRAMES == 124 && OBJECT_FRAMES > 64);
    assert!(OBJECT_BYTES.is_multiple_of(64));
    // A quad adds at most 4 words; the last store starts at word 4 * (2 * OBJECT_FRAMES - 1).
    assert!(8 * OBJECT_FRAMES <= GATHER_CAP);
    assert!(LINE_WORDS == 8 && PTR_BITMAP_WORDS == 16);
};

/// 32 bytes, aligned for `vmovdqa`.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct Row([u8; 32]);

impl Row {
    const ZERO: Row = Row([0; 32]);

    #[inline]
    #[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
    fn load(&self) -> __m256i {
        // SAFETY: `self` is a reference to 32 bytes aligned to 32 (Row is repr(align(32))).
        unsafe { _mm256_load_si256((self as *const Row).cast()) }
    }
}

/// One term of trick 1 for 32 bytes of the word mask: per mask byte, the position of one
/// object that touches it in the grey window (`index`: the window byte, or 0x80 for none;
/// `bit`: the bit in that byte) and the mask bits it covers there (`part`).
#[derive(Clone, Copy)]
struct Term {
    index: Row,
    bit: Row,
    part: Row,
}

/// How trick 1 expands one size class: per 32 bytes `v` of the word mask, the grey words
/// `window[v]` and `window[v] + 1` hold every grey bit it needs; its `terms` [`Term`]s start
/// at `TERMS[first + v * terms]`.
#[derive(Clone, Copy)]
struct Expansion {
    window: [u8; 4],
    terms: u8,
    first: u16,
}

/// Most objects of `words` words that one mask byte touches.
const fn terms(words: usize) -> usize {
    let mut most = 0;
    let mut m = 0;
    while m < FRAMES {
        let n = (8 * m + 7) / words - 8 * m / words + 1;
        if n > most {
            most = n;
        }
        m += 1;
    }
    most
}

/// All classes' terms, in a row.
const TERM_COUNT: usize = {
    let mut n = 0;
    let mut w = 2;
    while w <= MAX_WORDS {
        n += 4 * terms(w);
        w += 1;
    }
    n
};

/// The [`Expansion`] of every size in words (entries 0 and 1 unused), and all their terms.
struct Expansions {
    class: [Expansion; MAX_WORDS + 1],
    terms: [Term; TERM_COUNT],
}

static EXPANSIONS: Expansions = {
    let none = Term {
        index: Row([0x80; 32]),
        bit: Row::ZERO,
        part: Row::ZERO,
    };
    let mut t = Expansions {
        class: [Expansion {
            window: [0; 4],
            terms: 0,
            first: 0,
        }; MAX_WORDS + 1],
        terms: [none; TERM_COUNT],
    };
    let mut first = 0;
    let mut w = 2;
    while w <= MAX_WORDS {
        let cap = OBJECT_BYTES / (8 * w);
        let k = terms(w);
        assert!(k >= 1 && k <= MAX_TERMS);
        t.class[w].terms = k as u8;
        t.class[w].first = first as u16;
        let mut v = 0;
        while v < 4 {
            // Objects of this class in mask bytes 32v .. 32v + 32 (span words 256v ..).
            let lo = 256 * v / w;
            let mut hi = (256 * v + 255) / w;
            if hi > cap - 1 {
                hi = cap - 1;
            }
            let mut a = lo / 64;
            if a > LINE_WORDS - 2 {
                a = LINE_WORDS - 2;
            }
            // The window (grey words a and a + 1) holds all of them.
            assert!(lo <= hi && 64 * a <= lo && hi < 64 * a + 128);
            t.class[w].window[v] = a as u8;
            let mut m = 0;
            while m < 32 {
                let byte = 32 * v + m;
                let mut r = 0;
                while r < k {
                    let o = 8 * byte / w + r;
                    if o <= (8 * byte + 7) / w && o < cap {
                        let term = &mut t.terms[first + v * k + r];
                        let rel = o - 64 * a;
                        term.index.0[m] = (rel / 8) as u8;
                        term.bit.0[m] = 1 << (rel % 8);
                        let mut b = 0;
                        while b < 8 {
                            if (8 * byte + b) / w == o {
                                term.part.0[m] |= 1 << b;
                            }
                            b += 1;
                        }
                    }
                    r += 1;
                }
                m += 1;
            }
            v += 1;
        }
        first += 4 * k;
        w += 1;
    }
    assert!(first == TERM_COUNT);
    t
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
/// little-endian order) is frame `f`.
#[repr(C, align(32))]
struct WordMask([u64; PTR_BITMAP_WORDS]);

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
    let x = EXPANSIONS.class[span.class().words()];
    let words = match x.terms {
        1 => expand::<1>(grey, x),
        2 => expand::<2>(grey, x),
        3 => expand::<3>(grey, x),
        _ => expand::<MAX_TERMS>(grey, x),
    };
    // Read before the mask exists: its atomic loads would otherwise keep the compiler from
    // dropping the mask's zeroing, which restrict() overwrites in full.
    let bitmap = span.ptr_bitmap();
    let mut mask = WordMask([0; PTR_BITMAP_WORDS]);
    let (frames, nonempty) = restrict(&bitmap, words, &mut mask);
    // Each non-empty frame holds one or two non-empty quads (and only object frames can be
    // non-empty: the expansion selects no word past the last object), so with this many
    // frames the quads are surely enough for the dense walk: the summary is not needed.
    if nonempty >= DENSE_MIN_QUADS {
        return walk_dense(span, &mask, range, out);
    }
    let (summary, quads) = summary(frames);
    if quads >= DENSE_MIN_QUADS {
        walk_dense(span, &mask, range, out)
    } else if quads == 0 {
        0
    } else {
        walk_sparse(span, &mask, summary, range, out)
    }
}

/// Trick 1: the word bits of the grey objects below the capacity, as four 32-byte vectors
/// (mask bytes `32v .. 32v + 32` in vector `v`). `x` is the span's class expansion, with `T`
/// terms.
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn expand<const T: usize>(grey: &[u64; LINE_WORDS], x: Expansion) -> [__m256i; 4] {
    debug_assert!(T == usize::from(x.terms));
    let terms = &EXPANSIONS.terms[usize::from(x.first)..][..4 * T];
    let zero = _mm256_setzero_si256();
    let mut words = [zero; 4];
    for (v, w) in words.iter_mut().enumerate() {
        // The window: grey words a and a + 1 in both 128-bit lanes (one `vbroadcasti128`).
        // Windows start at word 6 at most (built so); the min only lets the compiler drop the
        // bounds checks.
        let a = usize::from(x.window[v]).min(LINE_WORDS - 2);
        let g = _mm_set_epi64x(grey[a + 1] as i64, grey[a] as i64);
        let g = _mm256_broadcastsi128_si256(g);
        let mut acc = zero;
        for t in &terms[v * T..][..T] {
            let byte = _mm256_shuffle_epi8(g, t.index.load());
            let white = _mm256_cmpeq_epi8(_mm256_and_si256(byte, t.bit.load()), zero);
            acc = _mm256_or_si256(acc, _mm256_andnot_si256(white, t.part.load()));
        }
        *w = acc;
    }
    words
}

/// ANDs the word bits with the span's pointer bitmap (`bitmap`) into `mask`, and returns the
/// result (as `mask` holds it) with the number of non-empty object frames (trick 3).
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn restrict(
    bitmap: &[u64; PTR_BITMAP_WORDS],
    words: [__m256i; 4],
    mask: &mut WordMask,
) -> ([__m256i; 4], u32) {
    let zero = _mm256_setzero_si256();
    let mut frames = words;
    let mut count = 0;
    for (h, f) in frames.iter_mut().enumerate() {
        // Built in registers, not loaded from the copy: a 32-byte load of four 8-byte stores
        // still in flight cannot be forwarded and waits for them to reach the cache.
        let w = |i: usize| bitmap[4 * h + i] as i64;
        *f = _mm256_and_si256(*f, _mm256_set_epi64x(w(3), w(2), w(1), w(0)));
        // SAFETY: words 4h..4h+4 of the mask (h < 4) are in bounds and aligned to 32 bytes
        // (WordMask is repr(align(32))); we borrow the mask mutably.
        unsafe { _mm256_store_si256(mask.0.as_mut_ptr().add(4 * h).cast(), *f) };
        let empty = _mm256_movemask_epi8(_mm256_cmpeq_epi8(*f, zero)) as u32;
        count += (!empty).count_ones();
    }
    (frames, count)
}

/// The "quad has pointers" summary of the object quads of the word mask `frames` (bit
/// `q % 64` of word `q / 64`) and its popcount (trick 3).
#[inline]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
fn summary(frames: [__m256i; 4]) -> ([u64; 4], u32) {
    let zero = _mm256_setzero_si256();
    let low4 = _mm256_set1_epi8(0x0f);
    let mut summary = [0u64; 4];
    for (s, f) in summary.iter_mut().zip(frames) {
        // One byte per quad, in quad order: split each frame byte into its two nibbles; the
        // byte unpacks interleave within 128-bit lanes, the lane permutes restore the order.
        let lo = _mm256_and_si256(f, low4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(f), low4);
        let (a, b) = (_mm256_unpacklo_epi8(lo, hi), _mm256_unpackhi_epi8(lo, hi));
        for (half, quads) in [
            _mm256_permute2x128_si256::<0x20>(a, b),
            _mm256_permute2x128_si256::<0x31>(a, b),
        ]
        .into_iter()
        .enumerate()
        {
            let empty = _mm256_movemask_epi8(_mm256_cmpeq_epi8(quads, zero)) as u32;
            *s |= u64::from(!empty) << (32 * half);
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
