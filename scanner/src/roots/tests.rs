//! Unit tests of the roots module: every range-filter tier against scalar and a naive oracle,
//! the aligned-word arithmetic, the register spill, and the XSAVE parser on synthetic frames.

use super::range::{self, aligned_words};
use crate::kernel::{HeapRange, Kernel};
use crate::testing::SplitMix64;

/// The obviously-correct filter: the words in range, in order.
fn naive(words: &[usize], range: HeapRange) -> Vec<usize> {
    words
        .iter()
        .copied()
        .filter(|&v| range.lo() <= v && v < range.hi())
        .collect()
}

const LO: usize = 0x7f00_0000_0000;
const HI: usize = 0x7f00_0400_0000;

/// Stack-like words: small integers, code and stack addresses, and with probability
/// `ptr_per_mille / 1000` a word in or at the edges of `lo .. hi`.
fn stack_like(rng: &mut SplitMix64, n: usize, ptr_per_mille: u64) -> Vec<usize> {
    (0..n)
        .map(|_| {
            if rng.chance(ptr_per_mille, 1000) {
                match rng.below(6) {
                    0 => LO,
                    1 => HI - 1,
                    2 => LO - 1,
                    3 => HI,
                    _ => LO + rng.below(HI - LO),
                }
            } else {
                match rng.below(4) {
                    0 => rng.below(4096),
                    1 => 0x5555_0000_0000 + rng.below(1 << 20),
                    2 => 0x7ffd_0000_0000 + rng.below(1 << 20) * 8,
                    _ => rng.next_u64() as usize,
                }
            }
        })
        .collect()
}

fn ranges() -> [HeapRange; 5] {
    [
        HeapRange::new(LO, HI),
        HeapRange::new(0, usize::MAX), // everything but null and usize::MAX
        HeapRange::new(LO, LO),        // empty
        HeapRange::new(0, 0),          // an empty heap
        HeapRange::new(LO - 1, LO + 1),
    ]
}

#[test]
fn range_every_tier_matches_scalar_and_naive() {
    let mut rng = SplitMix64::new(0x5eed);
    let lens: Vec<usize> = (0..=80)
        .chain([127, 128, 129, 255, 256, 1000, 4099])
        .collect();
    for &n in &lens {
        for density in [0, 10, 300, 1000] {
            let words = stack_like(&mut rng, n + 16, density);
            for start in [0, 1, 7, 8, 13] {
                let words = &words[start..start + n];
                for range in ranges() {
                    let want = naive(words, range);
                    for k in Kernel::available() {
                        let mut got = vec![0xdead]; // appends, keeps what is there
                        range::filter(k, words, range, &mut got);
                        assert_eq!(got[0], 0xdead);
                        assert_eq!(
                            &got[1..],
                            want,
                            "tier {k}, n {n}, start {start}, density {density}, {range:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn range_every_tier_keeps_every_word_when_all_are_pointers() {
    let mut rng = SplitMix64::new(7);
    let words: Vec<usize> = (0..1001).map(|_| LO + rng.below(HI - LO)).collect();
    for k in Kernel::available() {
        let mut got = Vec::new();
        range::filter(k, &words, HeapRange::new(LO, HI), &mut got);
        assert_eq!(got, words, "tier {k}");
    }
}

#[test]
fn range_filter_features_are_a_subset_of_their_kernel_tier() {
    #[cfg(target_arch = "x86_64")]
    {
        for f in range::avx2::FEATURES {
            assert!(
                crate::kernel::avx2::FEATURES.contains(f),
                "avx2 range filter needs {f}"
            );
        }
        for f in range::avx512::FEATURES {
            assert!(
                crate::kernel::avx512::FEATURES.contains(f),
                "avx512 range filter needs {f}"
            );
        }
        // The #[target_feature] literals repeat FEATURES exactly.
        let src = [
            (include_str!("range/avx2.rs"), range::avx2::FEATURES),
            (include_str!("range/avx512.rs"), range::avx512::FEATURES),
        ];
        for (text, features) in src {
            let literal = format!("#[target_feature(enable = \"{}\")]", features.join(","));
            let attrs = text.matches("#[target_feature(").count();
            assert!(attrs > 0);
            assert_eq!(text.matches(&literal).count(), attrs, "{literal}");
        }
    }
}

#[test]
fn aligned_words_reads_only_whole_words_inside() {
    assert_eq!(aligned_words(0x1000, 0), (0x1000, 0));
    assert_eq!(aligned_words(0x1000, 7), (0x1000, 0));
    assert_eq!(aligned_words(0x1000, 8), (0x1000, 1));
    assert_eq!(aligned_words(0x1001, 15), (0x1008, 1));
    assert_eq!(aligned_words(0x1001, 14), (0x1008, 0));
    assert_eq!(aligned_words(0x1007, 17), (0x1008, 2));
    assert_eq!(aligned_words(usize::MAX - 3, 3), (usize::MAX - 3, 0));
    assert_eq!(aligned_words(usize::MAX - 3, 100), (usize::MAX - 3, 0));
    assert_eq!(aligned_words(usize::MAX - 15, 15), (usize::MAX - 15, 1));
    // Exhaustive over small starts and lengths against a per-byte model.
    for start in 0x2000..0x2010usize {
        for len in 0..40usize {
            let (first, n) = aligned_words(start, len);
            let model: Vec<usize> = (start..start + len)
                .filter(|a| a % 8 == 0 && a + 8 <= start + len)
                .collect();
            assert_eq!(n, model.len(), "start {start:#x} len {len}");
            if n > 0 {
                assert_eq!(first, model[0]);
            }
        }
    }
}

#[test]
fn roots_kernel_defaults_and_overrides() {
    let roots = super::Roots::new();
    assert!(Kernel::available().any(|k| k == roots.kernel()));
    let roots = roots.range_kernel(Kernel::scalar());
    assert_eq!(roots.kernel(), Kernel::scalar());
}

#[cfg(all(target_arch = "x86_64", unix))]
#[test]
#[cfg_attr(miri, ignore)] // inline assembly
fn spill_callee_saved_copies_the_callers_registers() {
    use super::thread::{CALLEE_SAVED, spill_callee_saved};
    let mut regs = [0usize; CALLEE_SAVED];
    let mut sp_before = 0usize;
    let sp_seen: usize;
    // SAFETY: the asm saves rbx and rbp (which cannot be operands) on the stack and restores
    // them, sets r12–r15 (declared clobbered), and calls spill_callee_saved (System V ABI,
    // every caller-saved register clobbered via clobber_abi) with `regs`, a live local of
    // CALLEE_SAVED words. The stack stays balanced and 16-byte aligned at the call (two
    // pushes from the aligned entry, then the call).
    unsafe {
        std::arch::asm!(
            "push rbx",
            "push rbp",
            "mov rbx, 0x1111",
            "mov rbp, 0x2222",
            "mov r12, 0x3333",
            "mov r13, 0x4444",
            "mov r14, 0x5555",
            "mov r15, 0x6666",
            "mov qword ptr [{sp}], rsp",
            "call {spill}",
            "pop rbp",
            "pop rbx",
            spill = sym spill_callee_saved,
            sp = in(reg) &mut sp_before,
            in("rdi") &mut regs,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            lateout("rax") sp_seen,
            clobber_abi("C"),
        );
    }
    assert_eq!(regs, [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666]);
    assert_eq!(sp_seen, sp_before, "the caller's stack pointer at the call");
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod context {
    //! The XSAVE parser on synthetic frames laid out as the kernel writes them.

    use super::super::context::layout::{
        COMPONENTS, FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2, detected, with_layout,
    };
    use super::super::{CONTEXT_WORDS, ContextWords, VectorState};
    use crate::Error;
    use proptest::prelude::*;

    /// The standard-format offsets of Intel and AMD CPUs with AVX-512 (SDM table 13-1).
    const LAYOUT: [(usize, usize); 5] = [
        (576, 256),
        (1088, 64),
        (1152, 512),
        (1664, 1024),
        (960, 128),
    ];
    /// One past the last byte of LAYOUT.
    const XSTATE_SIZE: usize = 2688;

    fn zeroed_uc() -> libc::ucontext_t {
        // SAFETY: ucontext_t is plain old data (integers and raw pointers): all zeros is valid.
        unsafe { std::mem::zeroed() }
    }

    fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A kernel-style FPU frame: every word of every register holds a distinct value `tag(i)`
    /// where `i` is the byte offset / 8; XSTATE_BV = `bv`.
    fn frame(bv: u64) -> Vec<u8> {
        let mut b = vec![0u8; XSTATE_SIZE + 4];
        for w in 0..XSTATE_SIZE / 8 {
            put_u64(&mut b, w * 8, tag(w * 8));
        }
        b[464..512].fill(0);
        b[512..576].fill(0);
        put_u32(&mut b, 464, FP_XSTATE_MAGIC1);
        put_u32(&mut b, 468, (XSTATE_SIZE + 4) as u32);
        put_u64(&mut b, 472, bv);
        put_u32(&mut b, 480, XSTATE_SIZE as u32);
        put_u64(&mut b, 512, bv);
        put_u32(&mut b, XSTATE_SIZE, FP_XSTATE_MAGIC2);
        b
    }

    fn tag(offset: usize) -> u64 {
        0xabcd_0000_0000 + offset as u64
    }

    /// The tags a capture should hold for `bv` and `vector`, after the 16 general registers.
    fn expected(bv: u64, vector: VectorState, magic: bool) -> Vec<usize> {
        let mut want = Vec::new();
        if vector == VectorState::Off {
            return want;
        }
        if !magic || bv & 1 != 0 {
            want.extend((0..8).map(|k| tag(32 + 16 * k) as usize));
        }
        if !magic || bv & 2 != 0 {
            want.extend((160..416).step_by(8).map(|o| tag(o) as usize));
        }
        if vector == VectorState::Full && magic {
            for (&(bit, _), &(off, size)) in COMPONENTS.iter().zip(&LAYOUT) {
                if bv >> bit & 1 != 0 {
                    want.extend((off..off + size).step_by(8).map(|o| tag(o) as usize));
                }
            }
        }
        want
    }

    fn general_uc() -> libc::ucontext_t {
        let mut uc = zeroed_uc();
        for (i, g) in uc.uc_mcontext.gregs.iter_mut().enumerate() {
            *g = 0x100 + i as i64;
        }
        uc
    }

    #[test]
    fn context_reads_general_registers_and_the_stack_pointer() {
        let uc = general_uc();
        let mut ctx = with_layout(LAYOUT).vector_state(VectorState::Full);
        assert_eq!(ctx.capture(&uc, None), Ok(16));
        let want: Vec<usize> = (0..16).map(|i| 0x100 + i).collect();
        assert_eq!(ctx.words(), want);
        assert_eq!(ctx.stack_pointer(), 0x100 + libc::REG_RSP as usize);
        assert_eq!(ctx.stack_scan_start(), ctx.stack_pointer() - 128);
    }

    #[test]
    fn context_reads_components_per_xstate_bv_and_vector_state() {
        let all: u64 = 0b11 | COMPONENTS.iter().map(|&(b, _)| 1u64 << b).sum::<u64>();
        let cases = [
            0,
            1,
            2,
            3,
            0b111,
            1 << 6,
            1 << 7,
            (1 << 5) | 3,
            1 << 19,
            all,
        ];
        for bv in cases {
            for vector in [VectorState::Off, VectorState::Legacy, VectorState::Full] {
                let uc = general_uc();
                let fp = frame(bv);
                let mut ctx = with_layout(LAYOUT).vector_state(vector);
                let n = ctx.capture(&uc, Some(&fp)).unwrap();
                assert_eq!(n, ctx.words().len());
                assert_eq!(
                    &ctx.words()[16..],
                    expected(bv, vector, true),
                    "bv {bv:#x} {vector:?}"
                );
                let read = if vector == VectorState::Off {
                    0
                } else if vector == VectorState::Legacy {
                    bv & 3
                } else {
                    bv
                };
                assert_eq!(ctx.components(), read, "bv {bv:#x} {vector:?}");
            }
        }
        assert_eq!(
            with_layout(LAYOUT).capture(&general_uc(), Some(&frame(all))),
            Ok(CONTEXT_WORDS)
        );
    }

    #[test]
    fn context_without_magic_reads_the_legacy_area() {
        let mut fp = frame(u64::MAX);
        fp[464..468].fill(0);
        let mut ctx = with_layout(LAYOUT);
        ctx.capture(&general_uc(), Some(&fp[..512])).unwrap();
        assert_eq!(&ctx.words()[16..], expected(0, VectorState::Full, false));
        assert_eq!(ctx.components(), 3);
    }

    /// A malformed frame: what is wrong, the bytes, the buffer, the words expected after the
    /// general registers (`None`: not checked).
    type Malformed = (&'static str, Vec<u8>, ContextWords, Option<Vec<usize>>);

    #[test]
    fn context_malformed_frames_are_typed_errors_keeping_what_was_read() {
        let bv = 0b11 | 1 << 2 | 1 << 7;
        let legacy = expected(0, VectorState::Legacy, false); // MM and XMM, as without XSTATE_BV
        let mut cases: Vec<Malformed> = Vec::new();
        let mut short = frame(bv);
        short.truncate(511);
        cases.push((
            "shorter than FXSAVE",
            short,
            with_layout(LAYOUT),
            Some(vec![]),
        ));
        let mut no_magic2 = frame(bv);
        put_u32(&mut no_magic2, XSTATE_SIZE, 0);
        cases.push((
            "no magic2",
            no_magic2,
            with_layout(LAYOUT),
            Some(legacy.clone()),
        ));
        let mut big = frame(bv);
        put_u32(&mut big, 480, (XSTATE_SIZE + 64) as u32);
        cases.push((
            "xstate_size past the slice",
            big,
            with_layout(LAYOUT),
            Some(legacy.clone()),
        ));
        let mut ext = frame(bv);
        put_u32(&mut ext, 468, XSTATE_SIZE as u32);
        cases.push((
            "extended_size < xstate_size + 4",
            ext,
            with_layout(LAYOUT),
            Some(legacy.clone()),
        ));
        let mut tiny = frame(bv);
        put_u32(&mut tiny, 480, 520);
        put_u32(&mut tiny, 520, FP_XSTATE_MAGIC2);
        cases.push((
            "xstate_size inside the header",
            tiny,
            with_layout(LAYOUT),
            Some(legacy.clone()),
        ));
        let mut compacted = frame(bv);
        put_u64(&mut compacted, 520, 1 << 63 | bv);
        cases.push(("compacted", compacted, with_layout(LAYOUT), None));
        let mut unknown = LAYOUT;
        unknown[3] = (0, 0);
        cases.push((
            "component CPUID lacks",
            frame(bv),
            with_layout(unknown),
            None,
        ));
        let mut far = LAYOUT;
        far[3] = (XSTATE_SIZE, 1024);
        cases.push(("component past the area", frame(bv), with_layout(far), None));
        for (what, fp, mut ctx, want) in cases {
            match ctx.capture(&general_uc(), Some(&fp)) {
                Err(Error::InvalidContext { .. }) => {}
                other => panic!("{what}: {other:?}"),
            }
            assert_eq!(
                &ctx.words()[..16],
                (0..16).map(|i| 0x100 + i).collect::<Vec<_>>(),
                "{what}"
            );
            if let Some(want) = want {
                assert_eq!(&ctx.words()[16..], want, "{what}");
            }
        }
    }

    #[test]
    fn context_capture_unchecked_follows_fpregs() {
        let bv = 0b11 | 1 << 2 | 1 << 6;
        let mut fp = frame(bv);
        let mut uc = general_uc();
        uc.uc_mcontext.fpregs = fp.as_mut_ptr().cast();
        let mut ctx = with_layout(LAYOUT);
        // SAFETY: `uc` is a live ucontext_t; its fpregs points to `fp`, extended_size bytes.
        let n = unsafe { ctx.capture_unchecked(&uc) }.unwrap();
        assert_eq!(n, 16 + expected(bv, VectorState::Full, true).len());
        assert_eq!(&ctx.words()[16..], expected(bv, VectorState::Full, true));
        uc.uc_mcontext.fpregs = std::ptr::null_mut();
        // SAFETY: as above, with no FPU state.
        assert_eq!(unsafe { ctx.capture_unchecked(&uc) }, Ok(16));
        // SAFETY: a null context is refused before any read.
        assert!(unsafe { ctx.capture_unchecked(std::ptr::null()) }.is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // CPUID
    fn context_layout_from_cpuid_is_sane() {
        let layout = detected();
        for (i, &(off, size)) in layout.iter().enumerate() {
            if size == 0 {
                continue;
            }
            assert_eq!(size, COMPONENTS[i].1);
            assert!(off >= 576, "component {} at {off}", COMPONENTS[i].0);
            for &(o2, s2) in &layout[i + 1..] {
                assert!(s2 == 0 || off + size <= o2 || o2 + s2 <= off, "overlap");
            }
        }
        if std::arch::is_x86_feature_detected!("avx") {
            assert_eq!(
                layout[0],
                (576, 256),
                "YMM_Hi128 sits right after the header"
            );
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            assert!(layout[1].1 == 64 && layout[2].1 == 512 && layout[3].1 == 1024);
        }
    }

    proptest! {
        #[test]
        fn context_capture_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                        magic in any::<bool>(), bv in any::<u64>()) {
            let mut fp = bytes;
            if magic && fp.len() >= 576 {
                fp[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
                fp[512..520].copy_from_slice(&bv.to_le_bytes());
            }
            let mut ctx = with_layout(LAYOUT);
            let _ = ctx.capture(&general_uc(), Some(&fp));
            prop_assert!(ctx.words().len() <= CONTEXT_WORDS);
            prop_assert!(ctx.words().len() >= 16);
        }
    }
}
