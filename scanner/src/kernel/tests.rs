//! Cross-tier equivalence tests (STYLE §2.6).
//!
//! The oracle chain: [`naive`] (per-word loops over `bitvec` views, obviously correct) checks
//! the scalar tier, and the scalar tier checks every other tier that this CPU has, over all 63
//! legal size classes, a table of fixtures and random spans (proptest). A tier this CPU lacks
//! is reported as skipped on stderr, never passed silently; `SENCHA_EXPECT_TIER` (set in CI)
//! turns a missing tier into a failure through [`detected_tier_is_expected`].

use std::cell::RefCell;

use bitvec::prelude::*;
use proptest::prelude::*;
use sencha_spans::span::{LINE_WORDS, PTR_BITMAP_WORDS, SPAN_WORDS};
use sencha_spans::{Heap, Layout, OwnedMemory, Resolved, SizeClass, Span};

use super::{CpuFeatures, GATHER_CAP, GatherBuf, HeapRange, Kernel, Tier};

/// Lowest in-range value of the fixtures' main range.
const LO: usize = 0x7f00_1000_0000;
/// One past the highest in-range value of the fixtures' main range.
const HI: usize = 0x7f00_2000_0000;
/// What the output buffer holds before a gather, so stale words show up.
const POISON: usize = 0xdead_beef_dead_beef;

/// Runs `f` for every available tier and every legal size class; reports absent tiers.
fn each_tier_and_class(mut f: impl FnMut(Kernel, SizeClass)) {
    report_skipped_tiers();
    for k in Kernel::available() {
        for c in SizeClass::every_legal() {
            f(k, c)
        }
    }
}

/// Says on stderr which tiers this run does not test.
fn report_skipped_tiers() {
    for (name, tier) in [("avx2", Kernel::avx2()), ("avx512", Kernel::avx512())] {
        if tier.is_none() {
            eprintln!("SKIPPED: tier {name} is not available on this CPU, so it is not tested");
        }
    }
}

#[repr(C, align(8192))]
struct SpanMem([u8; 8192]);

/// One custom span, registered in its own heap, whose objects a test rewrites at will.
struct TestSpan {
    heap: Heap,
    base: usize,
    class: SizeClass,
}

impl TestSpan {
    /// A scan span of `class` with every slot allocated, no pointers, all words zero.
    fn new(class: SizeClass) -> Self {
        let mem: &'static mut SpanMem = Box::leak(Box::new(SpanMem([0; 8192])));
        let mut heap = Heap::new();
        let base = heap
            .register_span(OwnedMemory::from_static(&mut mem.0), class, false)
            .expect("register a test span");
        let none = Layout::with_pointers(class.bytes(), 0).expect("layout");
        for i in 0..class.capacity() {
            heap.init_object(base + i * class.bytes(), &none)
                .expect("init a test object");
        }
        TestSpan { heap, base, class }
    }

    fn span(&self) -> Span<'_> {
        match self.heap.resolve(self.base) {
            Resolved::Small(o) => o.span,
            other => panic!("test span resolves to {other:?}"),
        }
    }

    /// Rewrites every object: pointer bits `bits(i)` (cut to the object's words) for object
    /// `i`, and `value(w)` in span word `w`, pointer word or not.
    fn fill(&mut self, bits: impl Fn(usize) -> u64, value: impl Fn(usize) -> usize) {
        let (size, words) = (self.class.bytes(), self.class.words());
        for i in 0..self.class.capacity() {
            let addr = self.base + i * size;
            let b = bits(i) & low_bits(words);
            let layout = Layout::with_pointers(size, b).expect("layout");
            self.heap.free_object(addr).expect("free a test object");
            self.heap
                .init_object(addr, &layout)
                .expect("init a test object");
            for k in 0..words {
                self.heap
                    .write_word(addr, k, value(i * words + k))
                    .expect("write a test word");
            }
        }
    }
}

fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1 << n) - 1 }
}

/// The obviously-correct reference: every word of the object area, one at a time.
fn naive(span: Span<'_>, grey: &[u64; LINE_WORDS], range: HeapRange) -> Vec<usize> {
    let class = span.class();
    let bitmap: [u64; PTR_BITMAP_WORDS] = span.ptr_bitmap();
    let grey_bits = grey.view_bits::<Lsb0>();
    let ptr_bits = bitmap.view_bits::<Lsb0>();
    let mut out = Vec::new();
    for word in 0..class.capacity() * class.words() {
        let object = word / class.words();
        if grey_bits[object] && ptr_bits[word] {
            let v = span.read_word(word).unwrap_or(0);
            if v != 0 && range.lo() <= v && v < range.hi() {
                out.push(v);
            }
        }
    }
    out
}

/// Runs one tier over a poisoned buffer and returns its output.
fn run(k: Kernel, span: Span<'_>, grey: &[u64; LINE_WORDS], range: HeapRange) -> Vec<usize> {
    let mut buf = Box::new(GatherBuf([POISON; GATHER_CAP]));
    let n = k.gather(span, grey, range, &mut buf);
    assert!(n <= SPAN_WORDS, "{k}: count {n} exceeds a span's words");
    buf.0[..n].to_vec()
}

/// Asserts `got == want`, naming the first difference.
fn assert_same(got: &[usize], want: &[usize], what: impl Fn() -> String) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{}: {} values, expected {}; first difference at {at:?}: {:x?} vs {:x?}",
            what(),
            got.len(),
            want.len(),
            at.map(|i| got[i]),
            at.map(|i| want[i]),
        );
    }
}

/// splitmix64: a seeded, reproducible stream.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value of every interesting kind relative to `LO .. HI`, picked by `r`.
fn mixed_value(r: u64) -> usize {
    let inside = LO + (r as usize >> 8) % (HI - LO);
    match r % 10 {
        0 => 0,
        1 => LO - 1,
        2 => LO,
        3 => HI - 1,
        4 => HI,
        5 => HI + 8 + (r as usize >> 40),
        6 => usize::MAX,
        7 => 1 + (r as usize >> 58),
        _ => inside,
    }
}

/// The pointer-bit fixtures, per object.
#[derive(Clone, Copy, Debug)]
enum Ptrs {
    /// Every word a pointer (the pointer bitmap all ones over the objects).
    All,
    /// No pointers (the pointer bitmap all zeros).
    None,
    /// Every other word, starting with word 0.
    Alternate,
    /// The first and the last word of each object.
    Ends,
    /// Random bits.
    Random(u64),
}

impl Ptrs {
    fn bits(self, class: SizeClass, i: usize) -> u64 {
        match self {
            Ptrs::All => u64::MAX,
            Ptrs::None => 0,
            Ptrs::Alternate => 0x5555_5555_5555_5555,
            Ptrs::Ends => 1 | 1 << (class.words() - 1),
            Ptrs::Random(seed) => splitmix(seed ^ i as u64),
        }
    }
}

/// The word-value fixtures, per span word.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// Distinct in-range values.
    InRange,
    /// Null, below `LO`, `LO`, `HI - 1`, `HI`, above, `usize::MAX`, small integers, inside.
    Mixed(u64),
    /// Every word null.
    Null,
}

impl Values {
    fn value(self, w: usize) -> usize {
        match self {
            Values::InRange => LO + 8 * w,
            Values::Mixed(seed) => mixed_value(splitmix(seed ^ (w as u64) << 20)),
            Values::Null => 0,
        }
    }
}

const PTRS: [Ptrs; 5] = [
    Ptrs::All,
    Ptrs::None,
    Ptrs::Alternate,
    Ptrs::Ends,
    Ptrs::Random(7),
];
const VALUES: [Values; 3] = [Values::InRange, Values::Mixed(11), Values::Null];

/// The ranges every fixture runs under: the main one, everything but null, empty, tiny.
fn ranges() -> [HeapRange; 4] {
    [
        HeapRange::new(LO, HI),
        HeapRange::new(0, usize::MAX),
        HeapRange::new(LO, LO),
        HeapRange::new(LO - 1, LO + 1),
    ]
}

fn set(mask: &mut [u64; LINE_WORDS], i: usize) {
    mask[i / 64] |= 1 << (i % 64);
}

fn below_capacity(class: SizeClass) -> [u64; LINE_WORDS] {
    let mut m = [0; LINE_WORDS];
    (0..class.capacity()).for_each(|i| set(&mut m, i));
    m
}

/// The grey-mask fixtures of `class`, named.
fn grey_masks(class: SizeClass) -> Vec<(&'static str, [u64; LINE_WORDS])> {
    let cap = class.capacity();
    let from = |f: &dyn Fn(usize) -> bool| {
        let mut m = [0; LINE_WORDS];
        (0..cap).filter(|&i| f(i)).for_each(|i| set(&mut m, i));
        m
    };
    let size = class.bytes();
    let mut past_capacity = [u64::MAX; LINE_WORDS];
    for (p, c) in past_capacity.iter_mut().zip(below_capacity(class)) {
        *p &= !c;
    }
    vec![
        ("empty", [0; LINE_WORDS]),
        ("every object", below_capacity(class)),
        ("all 512 bits", [u64::MAX; LINE_WORDS]),
        ("only bits past capacity", past_capacity),
        ("only the first", from(&|i| i == 0)),
        ("only the last", from(&|i| i == cap - 1)),
        ("first and last", from(&|i| i == 0 || i == cap - 1)),
        ("every other", from(&|i| i.is_multiple_of(2))),
        ("every third", from(&|i| i % 3 == 1)),
        (
            "straddling a 64-byte frame",
            from(&|i| (i * size) / 64 != ((i + 1) * size - 1) / 64),
        ),
        (
            "straddling a 32-byte quad",
            from(&|i| (i * size) / 32 != ((i + 1) * size - 1) / 32),
        ),
        ("every eighth", from(&|i| i.is_multiple_of(8))),
        ("seven of eight", from(&|i| !i.is_multiple_of(8))),
        (
            "not straddling",
            from(&|i| (i * size) / 64 == ((i + 1) * size - 1) / 64),
        ),
        (
            "random 1/16",
            from(&|i| splitmix(i as u64 ^ 0x51).is_multiple_of(16)),
        ),
        (
            "random 1/2",
            from(&|i| splitmix(i as u64 ^ 0x52).is_multiple_of(2)),
        ),
        (
            "random 15/16",
            from(&|i| !splitmix(i as u64 ^ 0x53).is_multiple_of(16)),
        ),
        ("last 8", from(&|i| i + 8 >= cap)),
        // Objects from the start until about half the span's 124 object frames are covered:
        // around the AVX2 tier's switch between its two walks (124 of 248 quads).
        ("first 61 frames", from(&|i| i * size < 61 * 64)),
        ("first 62 frames", from(&|i| i * size < 62 * 64)),
        ("first 63 frames", from(&|i| i * size < 63 * 64)),
        // Objects from the start until about 3/4, 7/8 and 7/8 + 1 frame of the span's 124
        // object frames are covered: around the AVX-512 tier's switch between its two walks.
        ("first 93 frames", from(&|i| i * size < 93 * 64)),
        ("first 108 frames", from(&|i| i * size < 108 * 64)),
        ("first 109 frames", from(&|i| i * size < 109 * 64)),
        ("first 110 frames", from(&|i| i * size < 110 * 64)),
    ]
}

/// The groups of `group` words (8: AVX-512 frames, 4: AVX2 quads) holding a pointer word of a
/// grey object.
fn nonempty_groups(span: Span<'_>, grey: &[u64; LINE_WORDS], group: usize) -> usize {
    let class = span.class();
    let bitmap = span.ptr_bitmap();
    let (grey_bits, ptr_bits) = (grey.view_bits::<Lsb0>(), bitmap.view_bits::<Lsb0>());
    (0..class.capacity() * class.words())
        .filter(|&w| grey_bits[w / class.words()] && ptr_bits[w])
        .map(|w| w / group)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Runs `check` on every fixture of `class`: pointer pattern x values x grey mask x range.
fn each_fixture(
    class: SizeClass,
    mut check: impl FnMut(Span<'_>, &[u64; LINE_WORDS], HeapRange, &dyn Fn() -> String),
) {
    let mut ts = TestSpan::new(class);
    let greys = grey_masks(class);
    for ptrs in PTRS {
        for values in VALUES {
            ts.fill(|i| ptrs.bits(class, i), |w| values.value(w));
            for (name, grey) in &greys {
                for range in ranges() {
                    let what = || {
                        format!(
                            "class {class}, ptrs {ptrs:?}, values {values:?}, grey {name:?}, {range:?}"
                        )
                    };
                    check(ts.span(), grey, range, &what);
                }
            }
        }
    }
}

#[test]
fn scalar_matches_naive_every_class() {
    for class in SizeClass::every_legal() {
        each_fixture(class, |span, grey, range, what| {
            let got = run(Kernel::scalar(), span, grey, range);
            assert_same(&got, &naive(span, grey, range), || {
                format!("scalar, {}", what())
            });
        });
    }
}

#[test]
fn tiers_match_scalar_every_class() {
    each_tier_and_class(|k, class| {
        each_fixture(class, |span, grey, range, what| {
            let want = run(Kernel::scalar(), span, grey, range);
            assert_same(&run(k, span, grey, range), &want, || {
                format!("tier {k}, {}", what())
            });
        });
    });
}

#[test]
fn tiers_ignore_grey_bits_past_capacity() {
    each_tier_and_class(|k, class| {
        let mut ts = TestSpan::new(class);
        ts.fill(|_| u64::MAX, |w| Values::InRange.value(w));
        let range = HeapRange::new(LO, HI);
        let inside = below_capacity(class);
        let want = run(k, ts.span(), &inside, range);
        assert_eq!(
            want.len(),
            class.capacity() * class.words(),
            "tier {k}, class {class}"
        );
        for extra in [[u64::MAX; LINE_WORDS], [1 << 63; LINE_WORDS]] {
            let mut grey = extra;
            grey.iter_mut().zip(inside).for_each(|(g, c)| *g |= c);
            let got = run(k, ts.span(), &grey, range);
            assert_same(&got, &want, || {
                format!("tier {k}, class {class}, grey {grey:x?}")
            });
        }
    });
}

#[test]
fn tiers_keep_exactly_lo_to_hi() {
    each_tier_and_class(|k, class| {
        let mut ts = TestSpan::new(class);
        let kinds = [0, 1, LO - 1, LO, LO + 8, HI - 1, HI, HI + 1, usize::MAX];
        ts.fill(|_| u64::MAX, |w| kinds[w % kinds.len()]);
        let got = run(k, ts.span(), &below_capacity(class), HeapRange::new(LO, HI));
        let words = class.capacity() * class.words();
        let want: Vec<usize> = (0..words)
            .map(|w| kinds[w % kinds.len()])
            .filter(|&v| (LO..HI).contains(&v))
            .collect();
        assert_same(&got, &want, || format!("tier {k}, class {class}"));
    });
}

#[test]
fn tiers_gather_every_word_of_a_full_span_in_order() {
    each_tier_and_class(|k, class| {
        let mut ts = TestSpan::new(class);
        ts.fill(|_| u64::MAX, |w| Values::InRange.value(w));
        let got = run(
            k,
            ts.span(),
            &[u64::MAX; LINE_WORDS],
            HeapRange::new(LO, HI),
        );
        let want: Vec<usize> = (0..class.capacity() * class.words())
            .map(|w| Values::InRange.value(w))
            .collect();
        assert_same(&got, &want, || format!("tier {k}, class {class}"));
    });
}

/// The fixtures drive the AVX2 and AVX-512 tiers down both of their walks, in every class.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_fixtures_cover_both_walks() {
    fixtures_cover_both_walks(super::avx2::DENSE_MIN_QUADS as usize, 4);
    fixtures_cover_both_walks(super::avx512::DENSE_MIN_FRAMES as usize, 8);
}

/// Some fixture of every class is dense, some sparse, and (for classes of up to 64 bytes) some
/// within one group of the switch, for a walk switching at `threshold` non-empty groups of
/// `group` words.
#[cfg(target_arch = "x86_64")]
fn fixtures_cover_both_walks(threshold: usize, group: usize) {
    for class in SizeClass::every_legal() {
        let mut ts = TestSpan::new(class);
        ts.fill(|i| Ptrs::All.bits(class, i), |w| Values::InRange.value(w));
        let frames: Vec<usize> = grey_masks(class)
            .iter()
            .map(|(_, g)| nonempty_groups(ts.span(), g, group))
            .collect();
        assert!(
            frames.iter().any(|&f| f >= threshold),
            "class {class}: no dense fixture"
        );
        assert!(
            frames.iter().any(|&f| (1..threshold).contains(&f)),
            "class {class}: no sparse fixture"
        );
        if class.bytes() <= 64 {
            assert!(
                frames.iter().any(|&f| f.abs_diff(threshold) <= 1),
                "class {class}: no fixture at the switch ({frames:?})"
            );
        }
    }
}

#[test]
fn detected_tier_is_expected() {
    match std::env::var("SENCHA_EXPECT_TIER") {
        Ok(want) => {
            assert_eq!(
                Kernel::detect().name(),
                want.trim(),
                "SENCHA_EXPECT_TIER says {want:?}; this CPU's best tier is {}",
                Kernel::detect()
            );
            let names: Vec<&str> = Kernel::available().map(Kernel::name).collect();
            assert_eq!(names.first(), Some(&"scalar"), "tiers available here");
            assert_eq!(names.last(), Some(&want.trim()), "tiers available here");
        }
        Err(_) => eprintln!(
            "SENCHA_EXPECT_TIER unset; detected tier {} not checked",
            Kernel::detect()
        ),
    }
}

/// A run with `SENCHA_KERNEL` set (CI forces `scalar` and `avx2`) must build markers of exactly
/// that tier: "tested avx2" can never quietly be "tested scalar".
#[test]
fn forced_kernel_env_is_the_marker_tier() {
    let marker = crate::Marker::builder().workers(1).build();
    match std::env::var("SENCHA_KERNEL") {
        Ok(v) if !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "auto") => {
            let marker = marker.expect("SENCHA_KERNEL names a tier this CPU has");
            assert_eq!(marker.kernel().name(), v.trim().to_ascii_lowercase());
            eprintln!("SENCHA_KERNEL={v}: markers run tier {}", marker.kernel());
        }
        _ => assert_eq!(marker.expect("default marker").kernel(), Kernel::detect()),
    }
}

#[test]
fn choice_and_name_agree_for_every_tier() {
    for k in Kernel::available() {
        assert_eq!(Kernel::from_choice(k.into()), Ok(k));
        assert_eq!(Kernel::from_name(k.name()), Ok(k));
        assert_eq!(Kernel::from_name(&k.name().to_ascii_uppercase()), Ok(k));
    }
    for (name, tier) in [("avx2", Kernel::avx2()), ("avx512", Kernel::avx512())] {
        if tier.is_none() {
            let e = crate::Error::KernelUnavailable { tier: name };
            assert_eq!(Kernel::from_name(name), Err(e.clone()));
        }
    }
    assert!(matches!(
        Kernel::from_name("avx3"),
        Err(crate::Error::InvalidKernelName { .. })
    ));
}

#[test]
fn available_tiers_start_with_scalar() {
    let tiers: Vec<Kernel> = Kernel::available().collect();
    assert_eq!(tiers[0], Kernel::scalar());
    assert_eq!(tiers.last(), Some(&Kernel::detect()));
    report_skipped_tiers();
}

/// The `#[target_feature]` attributes of each SIMD tier enable exactly its `FEATURES`.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_target_features_match_features_list() {
    target_features_match(include_str!("avx2.rs"), super::avx2::FEATURES);
    target_features_match(include_str!("avx512.rs"), super::avx512::FEATURES);
}

#[cfg(target_arch = "x86_64")]
fn target_features_match(source: &str, features: &[&str]) {
    let mut want: Vec<&str> = features.to_vec();
    want.sort_unstable();
    let mut dedup = want.clone();
    dedup.dedup();
    assert_eq!(want, dedup, "FEATURES lists a feature twice");
    let key = "enable = \"";
    let mut seen = 0;
    for (at, _) in source.match_indices(key) {
        let rest = &source[at + key.len()..];
        let list = &rest[..rest.find('"').expect("closing quote")];
        let mut got: Vec<&str> = list.split(',').map(str::trim).collect();
        got.sort_unstable();
        assert_eq!(
            got, want,
            "a #[target_feature] attribute differs from FEATURES"
        );
        seen += 1;
    }
    assert!(seen >= 2, "found {seen} target_feature attributes");
}

/// Feature sets of real CPU families, as `is_x86_feature_detected!` reports them, and the tier
/// each must run (docs/KERNELS.md has the same table, with the reasons).
fn simulated_cpus() -> Vec<(&'static str, CpuFeatures, &'static str)> {
    let avx2 = CpuFeatures {
        avx2: true,
        bmi1: true,
        bmi2: true,
        popcnt: true,
        ..CpuFeatures::default()
    };
    let skylake_x = CpuFeatures {
        avx512f: true,
        avx512bw: true,
        avx512vl: true,
        avx512dq: true,
        ..avx2
    };
    let ice_lake = CpuFeatures {
        avx512vbmi: true,
        avx512bitalg: true,
        gfni: true,
        ..skylake_x
    };
    let sandy_bridge = CpuFeatures {
        popcnt: true,
        ..CpuFeatures::default()
    };
    vec![
        ("Zen 4 / Zen 5", ice_lake, "avx512"),
        (
            "Ice Lake, Tiger Lake, Sapphire Rapids and later Xeons",
            ice_lake,
            "avx512",
        ),
        (
            "Skylake-X, Cascade Lake, Cooper Lake (no VBMI, GFNI, BITALG)",
            skylake_x,
            "avx2",
        ),
        (
            "Cannon Lake (VBMI, no GFNI or BITALG)",
            CpuFeatures {
                avx512vbmi: true,
                ..skylake_x
            },
            "avx2",
        ),
        ("Haswell to Comet Lake", avx2, "avx2"),
        (
            "Alder Lake and later client cores (AVX-512 off, VEX GFNI on)",
            CpuFeatures { gfni: true, ..avx2 },
            "avx2",
        ),
        ("Zen 1 to Zen 3, Excavator", avx2, "avx2"),
        (
            "under valgrind on an AVX-512 CPU (AVX-512 hidden)",
            avx2,
            "avx2",
        ),
        (
            "Sandy Bridge, Ivy Bridge (AVX, no AVX2)",
            sandy_bridge,
            "scalar",
        ),
        (
            "Atom: Goldmont, Tremont (no AVX)",
            CpuFeatures {
                gfni: true,
                ..sandy_bridge
            },
            "scalar",
        ),
        (
            "AVX2 without BMI2",
            CpuFeatures {
                bmi2: false,
                ..avx2
            },
            "scalar",
        ),
        (
            "aarch64, or Miri (no x86 features)",
            CpuFeatures::default(),
            "scalar",
        ),
    ]
}

#[cfg(target_arch = "x86_64")]
#[test]
fn dispatch_picks_the_tier_of_each_cpu_family() {
    for (family, features, want) in simulated_cpus() {
        assert_eq!(Tier::best(&features).name(), want, "{family}: {features:?}");
        let names: Vec<&str> = Tier::available(&features)
            .into_iter()
            .map(Tier::name)
            .collect();
        let want_all: &[&str] = match want {
            "avx512" => &["scalar", "avx2", "avx512"],
            "avx2" => &["scalar", "avx2"],
            _ => &["scalar"],
        };
        assert_eq!(names, want_all, "{family}: available tiers");
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[test]
fn dispatch_picks_scalar_off_x86_64() {
    for (family, features, _) in simulated_cpus() {
        assert_eq!(Tier::best(&features), Tier::Scalar, "{family}");
    }
}

/// Each SIMD tier needs every one of its features: drop any one and dispatch falls back.
#[cfg(target_arch = "x86_64")]
#[test]
fn dispatch_drops_a_tier_missing_any_feature() {
    let all = CpuFeatures {
        avx2: true,
        bmi1: true,
        bmi2: true,
        popcnt: true,
        avx512f: true,
        avx512bw: true,
        avx512vl: true,
        avx512dq: true,
        avx512vbmi: true,
        avx512bitalg: true,
        gfni: true,
    };
    for (tier, features) in [
        (Tier::Avx2, super::avx2::FEATURES),
        (Tier::Avx512, super::avx512::FEATURES),
    ] {
        for f in features {
            assert!(all.has(f), "CpuFeatures does not track {f:?}");
            let mut without = all;
            let flags = [
                ("avx2", &mut without.avx2),
                ("bmi1", &mut without.bmi1),
                ("bmi2", &mut without.bmi2),
                ("popcnt", &mut without.popcnt),
                ("avx512f", &mut without.avx512f),
                ("avx512bw", &mut without.avx512bw),
                ("avx512vl", &mut without.avx512vl),
                ("avx512dq", &mut without.avx512dq),
                ("avx512vbmi", &mut without.avx512vbmi),
                ("avx512bitalg", &mut without.avx512bitalg),
                ("gfni", &mut without.gfni),
            ];
            for (name, flag) in flags {
                if name == *f {
                    *flag = false;
                }
            }
            assert!(!without.has(f), "{f}");
            assert!(
                !Tier::available(&without).contains(&tier),
                "{} without {f}",
                tier.name()
            );
        }
    }
    assert!(!all.has("sse9"), "an unknown feature is never present");
}

/// Real detection goes through the same function as the simulated CPUs.
#[test]
fn detection_is_the_pure_choice_of_detected_features() {
    let tiers: Vec<Kernel> = Kernel::available().collect();
    let pure: Vec<Kernel> = Tier::available(&CpuFeatures::detect())
        .into_iter()
        .map(Kernel)
        .collect();
    assert_eq!(tiers, pure);
    assert_eq!(Kernel::detect(), Kernel(Tier::best(&CpuFeatures::detect())));
}

thread_local! {
    /// One reusable span per legal class for the property tests (index: words - 2).
    static SPANS: RefCell<Vec<TestSpan>> =
        RefCell::new(SizeClass::every_legal().map(TestSpan::new).collect());
}

/// Grey masks from empty to full, with the densities around the tiers' switch points.
fn grey_strategy() -> impl Strategy<Value = [u64; LINE_WORDS]> {
    let words = || any::<[u64; LINE_WORDS]>();
    prop_oneof![
        words(),
        (words(), words()).prop_map(|(a, b)| std::array::from_fn(|i| a[i] & b[i])),
        (words(), words(), words())
            .prop_map(|(a, b, c)| std::array::from_fn(|i| a[i] & b[i] & c[i])),
        (words(), words()).prop_map(|(a, b)| std::array::from_fn(|i| a[i] | b[i])),
        (words(), words(), words())
            .prop_map(|(a, b, c)| std::array::from_fn(|i| a[i] | b[i] | c[i])),
        prop::collection::vec(0usize..512, 0..12).prop_map(|v| {
            let mut m = [0; LINE_WORDS];
            v.into_iter().for_each(|i| set(&mut m, i));
            m
        }),
    ]
}

/// Word-level pointer bitmaps, sparse to full.
fn bitmap_strategy() -> impl Strategy<Value = [u64; PTR_BITMAP_WORDS]> {
    let words = || any::<[u64; PTR_BITMAP_WORDS]>();
    prop_oneof![
        words(),
        (words(), words()).prop_map(|(a, b)| std::array::from_fn(|i| a[i] & b[i])),
        (words(), words()).prop_map(|(a, b)| std::array::from_fn(|i| a[i] | b[i])),
        Just([u64::MAX; PTR_BITMAP_WORDS]),
    ]
}

/// Bits `first .. first + len` of a word-level bitmap.
fn bits_of(bitmap: &[u64; PTR_BITMAP_WORDS], first: usize, len: usize) -> u64 {
    let b = bitmap.view_bits::<Lsb0>();
    b[first..first + len]
        .iter()
        .by_vals()
        .enumerate()
        .fold(0, |acc, (k, bit)| acc | (bit as u64) << k)
}

proptest! {
    /// Random grey masks and pointer bitmaps, applied to a span of every legal class.
    #[test]
    fn tiers_match_scalar_random_spans(
        grey in grey_strategy(),
        bitmap in bitmap_strategy(),
        seed in any::<u64>(),
        wide in any::<bool>(),
    ) {
        let range = if wide { HeapRange::new(1, usize::MAX) } else { HeapRange::new(LO, HI) };
        SPANS.with(|spans| {
            let mut spans = spans.borrow_mut();
            for ts in spans.iter_mut() {
                let class = ts.class;
                ts.fill(
                    |i| bits_of(&bitmap, i * class.words(), class.words()),
                    |w| mixed_value(splitmix(seed ^ (w as u64) << 20)),
                );
                let span = ts.span();
                let want = run(Kernel::scalar(), span, &grey, range);
                assert_same(&want, &naive(span, &grey, range), || {
                    format!("scalar vs naive, class {class}, grey {grey:x?}")
                });
                for k in Kernel::available().skip(1) {
                    assert_same(&run(k, span, &grey, range), &want, || {
                        format!("tier {k}, class {class}, grey {grey:x?}, seed {seed}")
                    });
                }
            }
        });
        static REPORT: std::sync::Once = std::sync::Once::new();
        REPORT.call_once(report_skipped_tiers);
    }
}
