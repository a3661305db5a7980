//! The machine context of a thread stopped by a signal (x86-64 Linux): its general registers
//! and its extended vector state, copied without allocating, for [`Roots::push_context`].
//!
//! # Why the vector state
//! A runtime that stops its threads with a signal (bdwgc's stop-the-world, Go's asynchronous
//! preemption) finds each interrupted thread's registers in the `ucontext_t` its `SA_SIGINFO`
//! handler receives. Code interrupted in the middle of a SIMD copy can hold the only copy of
//! a pointer in a vector register, so the vector registers are roots too; Go 1.26 began
//! scanning the extended register state of asynchronously preempted goroutines for this
//! reason.
//!
//! # Layout read (Linux `asm/sigcontext.h`, Intel SDM vol. 1 ch. 13)
//! ```text
//! uc_mcontext.gregs[0..16]   r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp
//! uc_mcontext.fpregs ──► FXSAVE area, 512 bytes
//!     32 .. 160    ST0–7 / MM0–7, 16 bytes each (the low 8 bytes are MMn)
//!     160 .. 416   XMM0–15, 16 bytes each
//!     464 .. 512   software-reserved: magic1 = FP_XSTATE_MAGIC1 if an XSAVE area follows,
//!                  extended_size (u32 @468), xfeatures (u64 @472), xstate_size (u32 @480)
//! 512 .. 576       XSAVE header: XSTATE_BV (u64 @512: components not in their init state),
//!                  XCOMP_BV (u64 @520: bit 63 set = compacted format, not used here)
//! component i at CPUID(0xD, i).EBX, CPUID(0xD, i).EAX bytes (standard format):
//!      2  YMM_Hi128   256 B   bits 128..256 of YMM0–15
//!      5  opmask       64 B   k0–k7
//!      6  ZMM_Hi256   512 B   bits 256..512 of ZMM0–15
//!      7  Hi16_ZMM   1024 B   ZMM16–31, whole
//!     19  APX EGPR    128 B   r16–r31 (APX CPUs)
//! xstate_size      FP_XSTATE_MAGIC2 (u32): the end marker the kernel writes
//! ```
//! Extended state is trusted only when magic1 is present, magic2 sits at `xstate_size`, the
//! sizes agree, and the format is standard; a component is read only when its XSTATE_BV bit
//! says it is in use (a component in its init state is all zeros: no pointer). The offsets
//! come from CPUID, read when a [`ContextWords`] is built (outside the handler).
//!
//! # Async-signal safety
//! [`ContextWords::capture_unchecked`] allocates nothing, takes no lock, calls nothing but
//! plain loads and stores, and cannot panic (every read is bounds-checked with `get`).

use sencha_spans::Heap;

use super::Roots;
use crate::error::Error;

/// `FP_XSTATE_MAGIC1`: in the FXSAVE area's software-reserved bytes when XSAVE state follows.
pub(in crate::roots) const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// `FP_XSTATE_MAGIC2`: the marker the kernel writes at the end of the XSAVE area.
pub(in crate::roots) const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Bytes of the legacy FXSAVE area.
const FXSAVE_BYTES: usize = 512;
/// Offset of ST0–7 / MM0–7 in the FXSAVE area.
const LEGACY_MM: usize = 32;
/// Offset of XMM0–15 in the FXSAVE area.
const LEGACY_XMM: usize = 160;
/// Offset of the software-reserved bytes (`struct _fpx_sw_bytes`) in the FXSAVE area.
const SW_BYTES: usize = 464;
/// Offset and size of the XSAVE header.
const XSAVE_HEADER: usize = 512;
const XSAVE_HEADER_BYTES: usize = 64;
/// The largest XSAVE area trusted (AMX tile data makes it about 11 KiB today).
const MAX_XSAVE_BYTES: usize = 1 << 20;
/// The general registers copied: `gregs[REG_R8 ..= REG_RSP]`.
const GENERAL: usize = 16;
/// The x86-64 System V red zone: leaf code may keep data up to 128 bytes below the stack
/// pointer, which the kernel skips when it builds the signal frame.
const RED_ZONE: usize = 128;

/// The extended XSAVE components that can hold pointers: (XSTATE bit, size in bytes).
pub(in crate::roots) const COMPONENTS: [(u32, usize); 5] =
    [(2, 256), (5, 64), (6, 512), (7, 1024), (19, 128)];

/// The most words one capture can hold: the general registers, MM0–7, XMM0–15 and every
/// extended component read (YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM, APX): 304.
pub const CONTEXT_WORDS: usize = GENERAL + 8 + 32 + (256 + 64 + 512 + 1024 + 128) / 8;

const _: () = assert!(CONTEXT_WORDS == 304);

/// Which of the interrupted thread's registers a capture reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VectorState {
    /// The 16 general registers only.
    Off,
    /// The general registers and the legacy FXSAVE area: MM0–7 and XMM0–15.
    Legacy,
    /// Everything: the legacy area and every in-use extended component (YMM and ZMM upper
    /// halves, ZMM16–31, the opmask registers, APX's r16–r31).
    #[default]
    Full,
}

/// Where this CPU's XSAVE standard format puts each of [`COMPONENTS`]: `(offset, size)`, or
/// `(0, 0)` for a component the CPU does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct XsaveLayout([(usize, usize); COMPONENTS.len()]);

impl XsaveLayout {
    /// From CPUID leaf 0xD (none under Miri or without XSAVE).
    fn detect() -> Self {
        let mut layout = XsaveLayout::default();
        #[cfg(not(miri))]
        if std::arch::is_x86_feature_detected!("xsave") {
            for (slot, &(bit, size)) in layout.0.iter_mut().zip(&COMPONENTS) {
                let r = std::arch::x86_64::__cpuid_count(0xD, bit);
                let (offset, got) = (r.ebx as usize, r.eax as usize);
                // A component is used only with the size its definition gives, past the header.
                if got == size && offset >= XSAVE_HEADER + XSAVE_HEADER_BYTES {
                    *slot = (offset, size);
                }
            }
        }
        layout
    }
}

/// A preallocated buffer for the registers of one stopped thread, filled inside a signal
/// handler by [`ContextWords::capture_unchecked`] without allocating.
///
/// Build one per thread (or per stop) *before* signalling, since building reads CPUID; the
/// handler fills it; the collector then hands it to [`Roots::push_context`] and scans the
/// thread's stack from [`ContextWords::stack_scan_start`]. docs/RUNTIME_GUIDE.md shows the
/// whole protocol.
///
/// # Examples
/// A context built by hand (a real one comes from a signal handler's third argument):
/// ```
/// use sencha::roots::{ContextWords, VectorState};
/// use sencha::{Heap, Layout, Roots};
/// let mut heap = Heap::new();
/// let obj = heap.alloc(&Layout::no_pointers(32).unwrap()).unwrap();
/// // SAFETY: ucontext_t is plain data; all zeros is a valid value.
/// let mut uc: libc::ucontext_t = unsafe { std::mem::zeroed() };
/// uc.uc_mcontext.gregs[libc::REG_RBX as usize] = obj as i64;
/// uc.uc_mcontext.gregs[libc::REG_RSP as usize] = 0x7fff_0000;
/// let mut ctx = ContextWords::new().vector_state(VectorState::Off);
/// ctx.capture(&uc, None).unwrap();
/// assert_eq!(ctx.stack_pointer(), 0x7fff_0000);
/// let mut roots = Roots::new();
/// assert_eq!(roots.push_context(&heap, &ctx), 1);
/// ```
#[derive(Clone)]
pub struct ContextWords {
    words: [usize; CONTEXT_WORDS],
    len: usize,
    stack_pointer: usize,
    /// XSTATE bits of the components read by the last capture.
    components: u64,
    vector: VectorState,
    layout: XsaveLayout,
}

impl std::fmt::Debug for ContextWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextWords")
            .field("words", &self.len)
            .field("stack_pointer", &format_args!("{:#x}", self.stack_pointer))
            .field("components", &format_args!("{:#x}", self.components))
            .field("vector", &self.vector)
            .finish()
    }
}

impl Default for ContextWords {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextWords {
    /// An empty buffer that captures [`VectorState::Full`]; reads this CPU's XSAVE layout
    /// (CPUID), so build it outside the signal handler.
    pub fn new() -> Self {
        ContextWords {
            words: [0; CONTEXT_WORDS],
            len: 0,
            stack_pointer: 0,
            components: 0,
            vector: VectorState::Full,
            layout: XsaveLayout::detect(),
        }
    }

    /// Which registers later captures read (default [`VectorState::Full`]).
    pub fn vector_state(mut self, vector: VectorState) -> Self {
        self.vector = vector;
        self
    }

    /// Copies the registers of the thread interrupted by the signal whose handler received
    /// `uc`: its general registers and, per [`VectorState`], its vector state. Allocation-free
    /// and async-signal-safe: call it in the `SA_SIGINFO` handler. Returns how many words it
    /// holds.
    ///
    /// The safe sibling is [`ContextWords::capture`], which takes the FPU state as a slice.
    ///
    /// # Errors
    /// [`Error::InvalidContext`] if the FPU state is malformed (no end marker, sizes that
    /// disagree, compacted format, a component the CPU does not describe): the general
    /// registers, and the legacy area if it was readable, are still captured.
    ///
    /// # Safety
    /// - `uc` is the third argument of a running `SA_SIGINFO` signal handler (the kernel's
    ///   `ucontext`, which is shorter than glibc's `ucontext_t`: only `uc_mcontext` is read,
    ///   through raw pointers), or points to a `ucontext_t` that is valid for reads;
    /// - its `uc_mcontext.fpregs` is null or points to the FPU state the kernel saved with
    ///   it: 512 readable bytes, and when they carry `FP_XSTATE_MAGIC1`, `extended_size`
    ///   readable bytes;
    /// - nothing writes that memory during the call.
    pub unsafe fn capture_unchecked(
        &mut self,
        uc: *const libc::ucontext_t,
    ) -> Result<usize, Error> {
        self.clear();
        if uc.is_null() {
            return Err(Error::InvalidContext {
                reason: "null ucontext",
            });
        }
        // SAFETY: `uc` is readable up to its uc_mcontext (the caller's contract); addr_of!
        // makes no reference to the whole libc struct, which is longer than the kernel's.
        let gregs = unsafe { std::ptr::addr_of!((*uc).uc_mcontext.gregs).read() };
        // SAFETY: as above.
        let fpregs = unsafe { std::ptr::addr_of!((*uc).uc_mcontext.fpregs).read() };
        self.push_general(&gregs);
        if self.vector == VectorState::Off || fpregs.is_null() {
            return Ok(self.len);
        }
        let fp = fpregs.cast::<u8>().cast_const();
        // SAFETY: a non-null fpregs points to 512 readable bytes (the caller's contract).
        let legacy = unsafe { std::slice::from_raw_parts(fp, FXSAVE_BYTES) };
        let mut len = FXSAVE_BYTES;
        if read_u32(legacy, SW_BYTES) == Some(FP_XSTATE_MAGIC1) {
            match read_u32(legacy, SW_BYTES + 4) {
                Some(ext) if (FXSAVE_BYTES..=MAX_XSAVE_BYTES).contains(&(ext as usize)) => {
                    len = ext as usize
                }
                _ => {
                    self.push_legacy(legacy, true, true);
                    return Err(Error::InvalidContext {
                        reason: "XSAVE extended_size out of range",
                    });
                }
            }
        }
        // SAFETY: with magic1 present, the kernel made `extended_size` bytes readable (the
        // caller's contract); without it, 512.
        let all = unsafe { std::slice::from_raw_parts(fp, len) };
        self.push_fpstate(all)?;
        Ok(self.len)
    }

    /// Copies the registers of `uc` as [`ContextWords::capture_unchecked`] does, taking the
    /// FPU state from `fpstate` (the bytes `uc_mcontext.fpregs` points to, `extended_size`
    /// of them when an XSAVE area follows) instead of following the pointer; `None` reads
    /// the general registers only. Returns how many words it holds.
    ///
    /// # Errors
    /// [`Error::InvalidContext`] if `fpstate` is shorter than the 512-byte FXSAVE area or
    /// malformed (see [`ContextWords::capture_unchecked`]); what could be read is kept.
    pub fn capture(
        &mut self,
        uc: &libc::ucontext_t,
        fpstate: Option<&[u8]>,
    ) -> Result<usize, Error> {
        self.clear();
        self.push_general(&uc.uc_mcontext.gregs);
        match fpstate {
            Some(fp) if self.vector != VectorState::Off => self.push_fpstate(fp)?,
            _ => {}
        }
        Ok(self.len)
    }

    /// Forgets the last capture.
    pub fn clear(&mut self) {
        self.len = 0;
        self.stack_pointer = 0;
        self.components = 0;
    }

    /// The words captured: the general registers, then the legacy area's, then each
    /// extended component's in XSTATE order.
    pub fn words(&self) -> &[usize] {
        self.words.get(..self.len).unwrap_or(&[])
    }

    /// The interrupted thread's stack pointer (`rsp`; 0 before a capture).
    pub fn stack_pointer(&self) -> usize {
        self.stack_pointer
    }

    /// Where a scan of the interrupted thread's stack starts: 128 bytes below its stack
    /// pointer, for the System V red zone (leaf code may keep pointers there; the kernel puts
    /// the signal frame below it). Scan from here up to the thread's
    /// [`StackBase`](super::StackBase) with [`Roots::push_range_unchecked`].
    pub fn stack_scan_start(&self) -> usize {
        self.stack_pointer.saturating_sub(RED_ZONE)
    }

    /// The XSTATE component bits whose registers the last capture read (1: x87/MMX, 2: SSE,
    /// 4: YMM_Hi128, 32: opmask, 64: ZMM_Hi256, 128: Hi16_ZMM, 1 << 19: APX).
    pub fn components(&self) -> u64 {
        self.components
    }

    fn push(&mut self, w: usize) {
        // Never full: CONTEXT_WORDS counts every word a capture can read. Dropping a word
        // (rather than panicking in a signal handler) is the fallback all the same.
        if let Some(slot) = self.words.get_mut(self.len) {
            *slot = w;
            self.len += 1;
        }
    }

    fn push_general(&mut self, gregs: &[libc::greg_t; 23]) {
        for &g in &gregs[..GENERAL] {
            self.push(g as usize);
        }
        self.stack_pointer = gregs[libc::REG_RSP as usize] as usize;
    }

    /// Every whole 8-byte word of `bytes`.
    fn push_bytes(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.push(usize::from_le_bytes(w));
        }
    }

    /// MM0–7 (the low 8 bytes of each ST slot) if `x87`, XMM0–15 if `sse`.
    fn push_legacy(&mut self, legacy: &[u8], x87: bool, sse: bool) {
        if x87 {
            for k in 0..8 {
                let at = LEGACY_MM + 16 * k;
                if let Some(b) = legacy.get(at..at + 8) {
                    self.push_bytes(b);
                }
            }
            self.components |= 1;
        }
        if sse {
            if let Some(b) = legacy.get(LEGACY_XMM..LEGACY_XMM + 256) {
                self.push_bytes(b);
            }
            self.components |= 2;
        }
    }

    /// The legacy area and, per [`VectorState::Full`], the in-use extended components of
    /// the FPU state `fp`.
    fn push_fpstate(&mut self, fp: &[u8]) -> Result<(), Error> {
        let bad = |reason| Err(Error::InvalidContext { reason });
        let Some(legacy) = fp.get(..FXSAVE_BYTES) else {
            return bad("FPU state shorter than the 512-byte FXSAVE area");
        };
        if read_u32(legacy, SW_BYTES) != Some(FP_XSTATE_MAGIC1) {
            // A plain FXSAVE frame: no XSTATE_BV, so both legacy parts are read.
            self.push_legacy(legacy, true, true);
            return Ok(());
        }
        let ext = read_u32(legacy, SW_BYTES + 4).unwrap_or(0) as usize;
        let size = read_u32(legacy, SW_BYTES + 16).unwrap_or(0) as usize;
        let header_end = XSAVE_HEADER + XSAVE_HEADER_BYTES;
        let area = match fp.get(..size) {
            Some(area) if size >= header_end && size + 4 <= ext => area,
            _ => {
                self.push_legacy(legacy, true, true);
                return bad("XSAVE sizes disagree (xstate_size, extended_size, the area)");
            }
        };
        if read_u32(fp, size) != Some(FP_XSTATE_MAGIC2) {
            self.push_legacy(legacy, true, true);
            return bad("FP_XSTATE_MAGIC2 missing at the end of the XSAVE area");
        }
        let xstate_bv = read_u64(area, XSAVE_HEADER).unwrap_or(u64::MAX);
        let xcomp_bv = read_u64(area, XSAVE_HEADER + 8).unwrap_or(0);
        self.push_legacy(legacy, xstate_bv & 1 != 0, xstate_bv & 2 != 0);
        if xcomp_bv >> 63 != 0 {
            return bad("compacted XSAVE format");
        }
        if self.vector != VectorState::Full {
            return Ok(());
        }
        let layout = self.layout;
        for (&(bit, _), &(offset, bytes)) in COMPONENTS.iter().zip(&layout.0) {
            if xstate_bv >> bit & 1 == 0 {
                continue;
            }
            if bytes == 0 {
                return bad("an in-use XSAVE component that CPUID does not describe");
            }
            let Some(b) = area.get(offset..offset + bytes) else {
                return bad("an XSAVE component past the end of the area");
            };
            self.push_bytes(b);
            self.components |= 1 << bit;
        }
        Ok(())
    }
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

impl Roots {
    /// Scans the registers a [`ContextWords`] captured, as [`Roots::push_words`]. Returns how
    /// many words were kept. The thread's stack is a separate range: from
    /// [`ContextWords::stack_scan_start`] to its base, with [`Roots::push_range_unchecked`].
    pub fn push_context(&mut self, heap: &Heap, ctx: &ContextWords) -> usize {
        self.push_words(heap, ctx.words())
    }
}

#[cfg(test)]
pub(super) mod layout {
    //! Test access to the layout constants and to a [`ContextWords`] of a chosen layout.
    pub(in crate::roots) use super::{COMPONENTS, FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2};
    use super::{ContextWords, XsaveLayout};

    /// `(offset, size)` of each of [`COMPONENTS`] on this CPU.
    pub(in crate::roots) fn detected() -> [(usize, usize); COMPONENTS.len()] {
        XsaveLayout::detect().0
    }

    /// A buffer that reads extended components at `layout`, whatever this CPU has.
    pub(in crate::roots) fn with_layout(
        layout: [(usize, usize); COMPONENTS.len()],
    ) -> ContextWords {
        ContextWords {
            layout: XsaveLayout(layout),
            ..ContextWords::new()
        }
    }
}
