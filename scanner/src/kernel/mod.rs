//! Span kernels: bulk-scan the grey objects of one span into a buffer of pointer values.
//!
//! # Contract (DESIGN §7)
//! Given a scan span, its grey-object mask (bit `i` of word `i / 64` = object `i`) and the
//! heap's address range, write the value of every pointer word (per the span's pointer bitmap)
//! of every grey object, in address order, keeping only values `v` with `lo <= v < hi` (so
//! nulls, small integers and out-of-heap garbage are dropped; `lo >= 1`), into a
//! [`GatherBuf`]; return the count. Every tier returns exactly the scalar tier's output.
//!
//! # Tiers and dispatch
//! A [`Kernel`] is a small `Copy` token, detected once per marker and matched once per span;
//! the whole span loop runs inside one `#[target_feature]` function. A SIMD `Kernel` can be
//! built only from the CPU's detected features ([`Kernel::avx512`], [`Kernel::avx2`],
//! [`Kernel::detect`]), which is what makes the one `unsafe` dispatch per tier below sound.
//!
//! Preference: `avx512`, then `avx2`, then `scalar`. The choice is a pure function of a
//! `CpuFeatures` set, so tests can simulate any CPU; docs/KERNELS.md has the table of CPU
//! families and the tier each runs.
//!
//! [`KernelChoice`] picks a tier: `Auto` reads `SENCHA_KERNEL=scalar|avx2|avx512|auto` once
//! (unset means detect), `Scalar`, `Avx2` and `Avx512` force one; asking for an absent tier is
//! [`Error::KernelUnavailable`], never a crash.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub mod avx512;
pub mod scalar;
#[cfg(test)]
mod tests;

use sencha_spans::Span;
use sencha_spans::span::{LINE_WORDS, SPAN_WORDS};

use crate::error::Error;

/// Capacity of a [`GatherBuf`]: every word of a span, plus one frame of slack for tiers that
/// store whole 8-word frames.
pub const GATHER_CAP: usize = SPAN_WORDS + 8;

/// The output buffer of a kernel: pointer values, 64-byte aligned.
#[repr(C, align(64))]
#[derive(Clone)]
pub struct GatherBuf(pub [usize; GATHER_CAP]);

impl Default for GatherBuf {
    fn default() -> Self {
        GatherBuf([0; GATHER_CAP])
    }
}

impl std::fmt::Debug for GatherBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatherBuf")
    }
}

/// The address filter of a gather: keep `v` when `lo <= v < hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapRange {
    lo: usize,
    hi: usize,
}

impl HeapRange {
    /// The range `lo .. hi`, with `lo` raised to 1 so that null is always dropped.
    pub fn new(lo: usize, hi: usize) -> Self {
        let lo = lo.max(1);
        HeapRange { lo, hi: hi.max(lo) }
    }

    /// Lowest kept value (at least 1).
    #[inline]
    pub fn lo(self) -> usize {
        self.lo
    }

    /// One past the highest kept value.
    #[inline]
    pub fn hi(self) -> usize {
        self.hi
    }

    /// Whether `v` is kept: one unsigned compare, `v - lo < hi - lo`.
    #[inline]
    pub fn contains(self, v: usize) -> bool {
        v.wrapping_sub(self.lo) < self.hi - self.lo
    }
}

/// Which tier a marker should use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelChoice {
    /// `SENCHA_KERNEL` if set, else the best tier this CPU has.
    #[default]
    Auto,
    /// The portable scalar tier.
    Scalar,
    /// The AVX2 tier; an error where the CPU lacks it.
    Avx2,
    /// The AVX-512 tier; an error where the CPU lacks it.
    Avx512,
}

impl From<Kernel> for KernelChoice {
    /// The choice that forces `kernel`'s tier.
    fn from(kernel: Kernel) -> Self {
        match kernel.0 {
            Tier::Scalar => KernelChoice::Scalar,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => KernelChoice::Avx2,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => KernelChoice::Avx512,
        }
    }
}

/// The CPU features the SIMD tiers look for, as `is_x86_feature_detected!` names them: the one
/// input of the tier choice, so that tests can simulate any CPU ([`Tier::best`]).
///
/// A set of features is only data: a SIMD [`Kernel`] is built from [`CpuFeatures::detect`]
/// alone, never from a simulated set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuFeatures {
    pub(crate) avx2: bool,
    pub(crate) bmi1: bool,
    pub(crate) bmi2: bool,
    pub(crate) popcnt: bool,
    pub(crate) avx512f: bool,
    pub(crate) avx512bw: bool,
    pub(crate) avx512vl: bool,
    pub(crate) avx512dq: bool,
    pub(crate) avx512vbmi: bool,
    pub(crate) avx512bitalg: bool,
    pub(crate) gfni: bool,
}

impl CpuFeatures {
    /// This CPU's features (none under Miri, which runs no SIMD tier, and none off x86_64).
    pub(crate) fn detect() -> Self {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                avx2: has!("avx2"),
                bmi1: has!("bmi1"),
                bmi2: has!("bmi2"),
                popcnt: has!("popcnt"),
                avx512f: has!("avx512f"),
                avx512bw: has!("avx512bw"),
                avx512vl: has!("avx512vl"),
                avx512dq: has!("avx512dq"),
                avx512vbmi: has!("avx512vbmi"),
                avx512bitalg: has!("avx512bitalg"),
                gfni: has!("gfni"),
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            CpuFeatures::default()
        }
    }

    /// Whether the feature `name` is in the set; false for a name the set does not track.
    pub(crate) fn has(&self, name: &str) -> bool {
        match name {
            "avx2" => self.avx2,
            "bmi1" => self.bmi1,
            "bmi2" => self.bmi2,
            "popcnt" => self.popcnt,
            "avx512f" => self.avx512f,
            "avx512bw" => self.avx512bw,
            "avx512vl" => self.avx512vl,
            "avx512dq" => self.avx512dq,
            "avx512vbmi" => self.avx512vbmi,
            "avx512bitalg" => self.avx512bitalg,
            "gfni" => self.gfni,
            _ => false,
        }
    }

    /// Whether every feature in `names` is in the set.
    pub(crate) fn has_all(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.has(n))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Tier {
    /// The tiers a CPU with `features` can run, scalar first, best last.
    fn available(features: &CpuFeatures) -> Vec<Tier> {
        #[allow(unused_mut)] // only x86_64 has SIMD tiers
        let mut tiers = vec![Tier::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if features.has_all(avx2::FEATURES) {
                tiers.push(Tier::Avx2);
            }
            if features.has_all(avx512::FEATURES) {
                tiers.push(Tier::Avx512);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = features;
        tiers
    }

    /// The tier's name (also [`Kernel::name`]'s).
    fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => "avx512",
        }
    }

    /// The tier a CPU with `features` runs: avx512, then avx2, then scalar.
    fn best(features: &CpuFeatures) -> Tier {
        Tier::available(features)
            .last()
            .copied()
            .unwrap_or(Tier::Scalar)
    }
}

/// A detected kernel tier: proof that the CPU supports it.
///
/// ```compile_fail,E0423
/// // A Kernel cannot be built by hand: its field is private (E0423), whatever it holds.
/// let k: sencha::Kernel = sencha::Kernel(todo!());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Tier);

impl Kernel {
    /// The portable tier, available everywhere.
    pub fn scalar() -> Self {
        Kernel(Tier::Scalar)
    }

    /// The AVX2 tier, if this CPU has every feature it needs (`None` elsewhere).
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            avx2::detected().then_some(Kernel(Tier::Avx2))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The AVX-512 tier, if this CPU has every feature it needs (`None` elsewhere).
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            avx512::detected().then_some(Kernel(Tier::Avx512))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The best tier this CPU has: avx512, then avx2, then scalar.
    pub fn detect() -> Self {
        // Tier::best of the CPU's own features: every SIMD tier it returns had all its
        // FEATURES detected, as Kernel::avx2 and Kernel::avx512 require.
        Kernel(Tier::best(&CpuFeatures::detect()))
    }

    /// Every tier available here: scalar first, then each detected SIMD tier (avx2, avx512),
    /// so the last is [`Kernel::detect`]'s.
    pub fn available() -> impl Iterator<Item = Self> {
        // As in `detect`: tiers of the CPU's own features only.
        Tier::available(&CpuFeatures::detect())
            .into_iter()
            .map(Kernel)
    }

    /// The tier for `choice`. `Auto` reads `SENCHA_KERNEL` (unset or `auto`: detect).
    ///
    /// # Errors
    /// [`Error::KernelUnavailable`] for a tier this CPU lacks; [`Error::InvalidKernelName`]
    /// for an unknown `SENCHA_KERNEL` value.
    pub fn from_choice(choice: KernelChoice) -> Result<Self, Error> {
        match choice {
            KernelChoice::Scalar => Ok(Self::scalar()),
            KernelChoice::Avx2 => Self::avx2().ok_or(Error::KernelUnavailable { tier: "avx2" }),
            KernelChoice::Avx512 => {
                Self::avx512().ok_or(Error::KernelUnavailable { tier: "avx512" })
            }
            KernelChoice::Auto => match std::env::var("SENCHA_KERNEL") {
                Err(_) => Ok(Self::detect()),
                Ok(v) => Self::from_name(&v),
            },
        }
    }

    /// The tier named `name`: `scalar`, `avx2`, `avx512`, or `auto` / empty (detect);
    /// case-insensitive.
    ///
    /// # Errors
    /// [`Error::InvalidKernelName`] for another name; [`Error::KernelUnavailable`] for a tier
    /// this CPU lacks.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::detect()),
            "scalar" => Ok(Self::scalar()),
            "avx2" => Self::avx2().ok_or(Error::KernelUnavailable { tier: "avx2" }),
            "avx512" => Self::avx512().ok_or(Error::KernelUnavailable { tier: "avx512" }),
            _ => Err(Error::InvalidKernelName {
                value: name.to_string(),
            }),
        }
    }

    /// The fewest grey objects of a span of `class` for which a span scan goes through this
    /// tier's kernel rather than object by object.
    ///
    /// Chosen from `bench/benches/threshold.rs` (docs/PERFORMANCE.md has the data): the
    /// AVX-512 kernel costs 11–25 ns however few objects are grey and beats the object-by-object
    /// path once the grey objects hold about 16 words (16 B class: 8 objects; 64 B: 2; 128 B
    /// and up: 1). The scalar kernel does the same work as the sparse path, so Go's 1/8 of the
    /// capacity is kept for it.
    pub fn dense_threshold(self, class: sencha_spans::SizeClass) -> usize {
        match self.0 {
            Tier::Scalar => (class.capacity() / 8).max(1),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => (class.capacity() / 8).max(1),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => 16usize.div_ceil(class.words()).max(1),
        }
    }

    /// The tier's name: `"scalar"`, `"avx2"` or `"avx512"`.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Gathers the in-range pointer values of the grey objects of `span` into `out`, in
    /// address order; returns how many (see the module docs for the contract).
    ///
    /// `span` must be a scan span; grey bits at or past the class capacity are ignored.
    #[inline]
    #[allow(unsafe_code)]
    pub fn gather(
        self,
        span: Span<'_>,
        grey: &[u64; LINE_WORDS],
        range: HeapRange,
        out: &mut GatherBuf,
    ) -> usize {
        match self.0 {
            Tier::Scalar => scalar::gather(span, grey, range, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Tier::Avx2 is built only from CpuFeatures::detect() holding every feature
            // in avx2::FEATURES (Kernel::avx2, or Tier::available in Kernel::detect and
            // Kernel::available), the set avx2::gather enables.
            Tier::Avx2 => unsafe { avx2::gather(span, grey, range, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Tier::Avx512 is built only from CpuFeatures::detect() holding every
            // feature in avx512::FEATURES (Kernel::avx512, or Tier::available in Kernel::detect
            // and Kernel::available), the set avx512::gather enables.
            Tier::Avx512 => unsafe { avx512::gather(span, grey, range, out) },
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Asks the CPU to bring the cache line holding `addr` closer (a hint: never faults, whatever
/// the address; a no-op where sencha has no prefetch instruction).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is an SSE instruction (baseline on x86_64) that only hints the cache;
    // it does not access memory architecturally and cannot fault, so any address is fine.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
