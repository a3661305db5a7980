//! The calling thread's roots: its callee-saved registers and its stack (bdwgc's
//! `GC_with_callee_saves_pushed` + `GC_push_all_stack`).
//!
//! # What is scanned
//! At a collection the calling thread's pointers are in three places: memory its callers'
//! frames hold; callee-saved registers, whose caller values are either still in the register
//! or saved by some frame below; and caller-saved registers, which the compiler has already
//! saved in the caller's frame around the call (they do not survive a call). So:
//! 1. [`spill_callee_saved`] copies rbx, rbp and r12–r15 (System V x86-64) into a buffer in the
//!    frame of [`Roots::push_current_thread`], and returns the stack pointer of that frame;
//! 2. the stack is scanned from that stack pointer up to the [`StackBase`]; it covers every
//!    frame of the callers and the spill buffer.
//!
//! At the moment of the spill every caller value of a callee-saved register is either still in
//! the register (then in the buffer) or was saved by a prologue at or above the stack pointer
//! (then in the scanned stack).
//!
//! **Other targets (portable fallback):** no register is spilled explicitly; the stack is
//! scanned from an address in the frame of a non-inlined function. Callee-saved registers that
//! no frame between the caller and that function has saved are missed, so a runtime on such a
//! target must spill them itself (e.g. `setjmp` into a buffer it passes to
//! [`Roots::push_range`]). Only x86-64 Unix is complete.

use std::marker::PhantomData;

use sencha_spans::Heap;

use super::Roots;
use crate::error::Error;

/// How many callee-saved registers are spilled: rbx, rbp, r12–r15 on x86-64 Unix.
#[cfg(all(target_arch = "x86_64", unix))]
pub(crate) const CALLEE_SAVED: usize = 6;
/// No register is spilled by the portable fallback.
#[cfg(not(all(target_arch = "x86_64", unix)))]
pub(crate) const CALLEE_SAVED: usize = 0;

/// The top (highest address) of the calling thread's stack and its lowest address, as the OS
/// reports them: the base up to which [`Roots::push_current_thread`] scans.
///
/// Capture it once when a thread starts (bdwgc's `GC_get_stack_base`) and keep it in the
/// runtime's record of the thread. It is neither `Send` nor `Sync`: it describes the thread
/// that captured it, and only that thread may use it.
///
/// ```compile_fail,E0277
/// // A StackBase cannot move to another thread (it is not Send: E0277).
/// let base = sencha::roots::StackBase::current_thread().unwrap();
/// std::thread::spawn(move || drop(base));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackBase {
    lo: usize,
    hi: usize,
    /// `!Send + !Sync`: bounds of the capturing thread.
    _thread: PhantomData<*const ()>,
}

impl StackBase {
    /// The calling thread's stack as the OS reports it (`pthread_getattr_np`; for the main
    /// thread, glibc derives it from the stack mapping and the stack-size limit).
    ///
    /// # Errors
    /// [`Error::StackQuery`] if the OS call fails; [`Error::Unsupported`] off Linux.
    ///
    /// # Examples
    /// ```
    /// let base = sencha::roots::StackBase::current_thread().unwrap();
    /// let local = 0u8;
    /// let here = &local as *const u8 as usize;
    /// assert!(base.limit() < here && here < base.addr());
    /// ```
    pub fn current_thread() -> Result<StackBase, Error> {
        let (lo, hi) = os_stack_bounds()?;
        Ok(StackBase {
            lo,
            hi,
            _thread: PhantomData,
        })
    }

    /// The top of the stack: one past its highest address, where scans stop.
    pub fn addr(&self) -> usize {
        self.hi
    }

    /// The lowest address of the stack (the stack pointer must lie in `limit() .. addr()`).
    pub fn limit(&self) -> usize {
        self.lo
    }
}

/// The calling thread's stack bounds `(lo, hi)` from `pthread_getattr_np`.
#[cfg(target_os = "linux")]
fn os_stack_bounds() -> Result<(usize, usize), Error> {
    use std::mem::MaybeUninit;
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_self() is the calling, live thread; `attr` is writable and initialized
    // by the call when it returns 0 (checked before any other use).
    let code = unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) };
    if code != 0 {
        return Err(Error::StackQuery { code });
    }
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialized by pthread_getattr_np above; `addr` and `size` are
    // writable locals.
    let code = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
    // SAFETY: `attr` was initialized by pthread_getattr_np and is destroyed once, here.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if code != 0 {
        return Err(Error::StackQuery { code });
    }
    let lo = addr.addr();
    match lo.checked_add(size) {
        Some(hi) if lo < hi => Ok((lo, hi)),
        _ => Err(Error::StackQuery { code: 0 }),
    }
}

/// No stack-bounds query off Linux.
#[cfg(not(target_os = "linux"))]
fn os_stack_bounds() -> Result<(usize, usize), Error> {
    Err(Error::Unsupported {
        what: "StackBase::current_thread needs pthread_getattr_np (Linux)",
    })
}

/// What [`Roots::push_current_thread`] scanned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadScan {
    /// The stack pointer the scan started at.
    pub stack_pointer: usize,
    /// Bytes of stack scanned (from the stack pointer to the base).
    pub stack_bytes: usize,
    /// Callee-saved registers spilled and scanned (6 on x86-64 Unix, 0 elsewhere).
    pub registers: usize,
    /// Words kept as candidates (they lie in the heap's address range).
    pub candidates: usize,
}

/// Stores the callee-saved registers of System V x86-64 (rbx, rbp, r12, r13, r14, r15) into
/// `*out` and returns the caller's stack pointer at the call (the address just above the
/// return address).
///
/// Naked: no prologue runs before the stores, so each register still holds the caller's value.
///
/// # Safety
/// `out` is valid for writes of `CALLEE_SAVED` words.
#[cfg(all(target_arch = "x86_64", unix))]
#[unsafe(naked)]
pub(crate) unsafe extern "sysv64" fn spill_callee_saved(out: *mut [usize; CALLEE_SAVED]) -> usize {
    std::arch::naked_asm!(
        "mov qword ptr [rdi], rbx",
        "mov qword ptr [rdi + 8], rbp",
        "mov qword ptr [rdi + 16], r12",
        "mov qword ptr [rdi + 24], r13",
        "mov qword ptr [rdi + 32], r14",
        "mov qword ptr [rdi + 40], r15",
        "lea rax, [rsp + 8]",
        "ret",
    )
}

/// The portable fallback: spills nothing; returns an address in this non-inlined function's
/// frame, below its caller's frame.
///
/// # Safety
/// None needed; `unsafe` only to match the x86-64 form.
#[cfg(not(all(target_arch = "x86_64", unix)))]
#[inline(never)]
pub(crate) unsafe fn spill_callee_saved(_out: *mut [usize; CALLEE_SAVED]) -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker as *const u8).addr()
}

impl Roots {
    /// Scans the calling thread conservatively: its callee-saved registers, spilled here, and
    /// its stack from the current stack pointer up to `base` (see the [`roots`](crate::roots)
    /// module docs). Call it at a safepoint of the thread, with the other threads stopped.
    ///
    /// # Errors
    /// [`Error::StackOutOfBounds`] if the stack pointer is not in `base`'s stack (the thread
    /// runs on another stack: a coroutine, a signal stack); nothing is pushed.
    ///
    /// # Examples
    /// ```
    /// use sencha::roots::StackBase;
    /// use sencha::{Heap, Layout, Marker, Roots};
    /// let base = StackBase::current_thread().unwrap();
    /// let mut heap = Heap::new();
    /// let obj = heap.alloc(&Layout::no_pointers(64).unwrap()).unwrap();
    /// let local = std::hint::black_box([obj + 8]); // an interior pointer, in this frame
    /// let mut roots = Roots::new();
    /// let scan = roots.push_current_thread(&heap, &base).unwrap();
    /// assert!(scan.candidates >= 1);
    /// Marker::builder().workers(1).build().unwrap().mark(&heap, &roots).unwrap();
    /// assert!(heap.is_marked(obj).unwrap());
    /// # drop(local);
    /// ```
    #[inline(never)]
    pub fn push_current_thread(
        &mut self,
        heap: &Heap,
        base: &StackBase,
    ) -> Result<ThreadScan, Error> {
        let mut regs = [0usize; CALLEE_SAVED];
        // SAFETY: `regs` is a live local of CALLEE_SAVED writable words.
        let sp = unsafe { spill_callee_saved(&mut regs) };
        if !(base.lo <= sp && sp <= base.hi) {
            return Err(Error::StackOutOfBounds {
                stack_pointer: sp,
                lo: base.lo,
                hi: base.hi,
            });
        }
        // SAFETY: `sp .. base.hi` lies in the stack the OS reported for this thread (checked
        // just above; StackBase is !Send, so `base` is this thread's): mapped from the stack
        // pointer up to the top. Only this thread writes it, and it is inside this call.
        Ok(unsafe { self.scan_current(heap, sp, base.hi, &regs) })
    }

    /// Scans the calling thread as [`Roots::push_current_thread`] does, up to `base`, a stack
    /// address the runtime recorded (for a stack the OS does not know: a fiber, a coroutine).
    /// Nothing is scanned if `base` is not above the stack pointer.
    ///
    /// The safe sibling is [`Roots::push_current_thread`], which checks the stack pointer
    /// against the stack the OS reports.
    ///
    /// # Safety
    /// - Every byte from the calling thread's stack pointer up to `base` is readable memory
    ///   of the stack this thread runs on (a runtime records `base` as an address in a frame
    ///   that encloses every frame holding its pointers, or a stack's top);
    /// - no other thread writes that memory during the call.
    #[inline(never)]
    pub unsafe fn push_current_thread_unchecked(&mut self, heap: &Heap, base: usize) -> ThreadScan {
        let mut regs = [0usize; CALLEE_SAVED];
        // SAFETY: `regs` is a live local of CALLEE_SAVED writable words.
        let sp = unsafe { spill_callee_saved(&mut regs) };
        // SAFETY: the caller promises `sp .. base` is this thread's readable stack.
        unsafe { self.scan_current(heap, sp, base.max(sp), &regs) }
    }

    /// Scans `regs` and `sp .. top`.
    ///
    /// # Safety
    /// `sp .. top` is readable and written by no other thread during the call.
    #[inline(never)]
    unsafe fn scan_current(
        &mut self,
        heap: &Heap,
        sp: usize,
        top: usize,
        regs: &[usize],
    ) -> ThreadScan {
        let from_regs = self.push_words(heap, regs);
        let start = std::ptr::with_exposed_provenance::<u8>(sp);
        // SAFETY: the caller's contract.
        let from_stack = unsafe { self.push_range_unchecked(heap, start, top - sp) };
        ThreadScan {
            stack_pointer: sp,
            stack_bytes: top - sp,
            registers: regs.len(),
            candidates: from_regs + from_stack,
        }
    }
}
