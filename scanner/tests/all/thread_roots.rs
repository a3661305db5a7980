//! Conservative roots from memory: ranges (every tier, unaligned ends, guard pages), the
//! calling thread's registers and stack, and the registers of a thread stopped by a signal,
//! vector registers included. Every mark is compared with `reference::mark` given the same
//! roots.

use sencha::roots::{StackBase, ThreadScan};
use sencha::testing::{HeapSpec, SplitMix64, check_marker, random_heap};
use sencha::{Error, Heap, Kernel, Layout, Marker, Roots, reference};

use crate::scaled;

/// The words a range holds by the byte-level model: every 8-aligned address `a` with
/// `start <= a` and `a + 8 <= end`.
fn model_words(bytes: &[u8]) -> Vec<usize> {
    let start = bytes.as_ptr() as usize;
    (0..bytes.len())
        .filter(|&i| (start + i).is_multiple_of(8) && i + 8 <= bytes.len())
        .map(|i| usize::from_ne_bytes(bytes[i..i + 8].try_into().unwrap()))
        .collect()
}

/// Stack-like words for `heap`: mostly integers and non-heap addresses; some exact and
/// interior pointers to `objects`, some heap-range garbage (free slots, metadata, edges).
fn stack_words(rng: &mut SplitMix64, heap: &Heap, objects: &[usize], n: usize) -> Vec<usize> {
    let (lo, hi) = heap.address_range();
    (0..n)
        .map(|_| match rng.below(40) {
            0 if !objects.is_empty() => objects[rng.below(objects.len())],
            1 if !objects.is_empty() => objects[rng.below(objects.len())] + rng.below(16),
            2 => lo + rng.below(hi - lo),
            3 => [lo, hi - 1, hi, lo - 1, 0][rng.below(5)],
            4..=9 => rng.below(1 << 12),
            10..=15 => 0x7ffd_0000_0000 + 8 * rng.below(1 << 16),
            16..=20 => 0x5555_5555_0000 + rng.below(1 << 20),
            _ => rng.next_u64() as usize,
        })
        .collect()
}

fn words_as_bytes(words: &[usize]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

#[test]
fn ranges_root_what_the_word_model_roots_every_tier_and_marker() {
    let markers = [
        Marker::builder().workers(2).build().unwrap(),
        Marker::builder()
            .workers(4)
            .algorithm(sencha::Algorithm::Baseline)
            .build()
            .unwrap(),
    ];
    for seed in 0..scaled(40) as u64 {
        let mut t = random_heap(&HeapSpec::small(seed));
        let mut rng = SplitMix64::new(seed);
        let n = 64 + rng.below(3000);
        let words = stack_words(&mut rng, t.heap(), &t.objects, n);
        let bytes = words_as_bytes(&words);
        // Random unaligned ends: 0..15 bytes cut at each end.
        let (a, b) = (rng.below(16), rng.below(16));
        let range = &bytes[a..bytes.len() - b];
        // The oracle: the model's words as plain conservative words.
        t.roots = Roots::conservative(model_words(range));
        t.clear_marks();
        reference::mark(t.heap(), &t.roots).unwrap();
        let want = t.heap().marked_objects();
        for k in Kernel::available() {
            let mut roots = Roots::new().range_kernel(k);
            let kept = roots.push_range(t.heap(), range);
            let (lo, hi) = t.heap().address_range();
            let in_range = model_words(range)
                .into_iter()
                .filter(|&w| lo <= w && w < hi && w != 0);
            assert_eq!(
                roots.conservative_words(),
                in_range.collect::<Vec<_>>(),
                "seed {seed} {k}"
            );
            assert_eq!(kept, roots.len());
            t.roots = roots;
            t.clear_marks();
            reference::mark(t.heap(), &t.roots).unwrap();
            assert_eq!(t.heap().marked_objects(), want, "seed {seed} tier {k}");
            for m in &markers {
                check_marker(&mut t, m).unwrap_or_else(|e| panic!("seed {seed} tier {k}: {e}"));
            }
        }
    }
}

#[test]
fn ranges_read_no_word_cut_by_their_ends() {
    let mut heap = Heap::new();
    let l = Layout::no_pointers(16).unwrap();
    let _slot0 = heap.alloc(&l).unwrap();
    let a = heap.alloc(&l).unwrap();
    let mut bytes = [0u8; 64];
    let at = bytes.as_ptr().align_offset(8) + 16;
    bytes[at..at + 8].copy_from_slice(&a.to_ne_bytes());
    for k in Kernel::available() {
        for (from, to, found) in [
            (at, at + 8, true),
            (at - 7, at + 8, true),
            (at + 1, at + 40, false),
            (at - 8, at + 7, false),
            (at + 4, at + 4, false),
        ] {
            let mut roots = Roots::new().range_kernel(k);
            roots.push_range(&heap, &bytes[from..to]);
            reference::mark(&heap, &roots).unwrap();
            assert_eq!(heap.is_marked(a).unwrap(), found, "{k} {from}..{to}");
        }
    }
}

/// Three pages: the first and last `PROT_NONE`, the middle readable.
struct Guarded {
    base: *mut u8,
    page: usize,
}

impl Guarded {
    fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base.cast::<u8>();
        for guard in [0, 2] {
            // SAFETY: the page lies in the mapping just made.
            let rc =
                unsafe { libc::mprotect(base.add(guard * page).cast(), page, libc::PROT_NONE) };
            assert_eq!(rc, 0);
        }
        Guarded { base, page }
    }

    fn middle(&mut self) -> &mut [u8] {
        // SAFETY: the middle page is mapped read-write and owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(self.page), self.page) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(), unmapped once.
        unsafe { libc::munmap(self.base.cast(), 3 * self.page) };
    }
}

#[test]
fn ranges_touching_guard_pages_read_nothing_outside() {
    let mut t = random_heap(&HeapSpec::small(3));
    let mut rng = SplitMix64::new(3);
    let mut g = Guarded::new();
    let page = g.page;
    let words = stack_words(&mut rng, t.heap(), &t.objects, page / 8);
    g.middle().copy_from_slice(&words_as_bytes(&words));
    let middle: &[u8] = g.middle();
    for k in Kernel::available() {
        for (from, to) in [
            (0, page),
            (1, page - 1),
            (0, 7),
            (page - 9, page),
            (5, page - 3),
            (page, page),
        ] {
            let range = &middle[from..to];
            let mut roots = Roots::new().range_kernel(k);
            roots.push_range(t.heap(), range);
            let mut unchecked = Roots::new().range_kernel(k);
            // SAFETY: `range` is readable (the mapped middle page) and written by nobody.
            unsafe { unchecked.push_range_unchecked(t.heap(), range.as_ptr(), range.len()) };
            assert_eq!(roots, unchecked);
            t.roots = roots;
            t.clear_marks();
            reference::mark(t.heap(), &t.roots).unwrap();
            let got = t.heap().marked_objects();
            t.roots = Roots::conservative(model_words(range));
            t.clear_marks();
            reference::mark(t.heap(), &t.roots).unwrap();
            assert_eq!(got, t.heap().marked_objects(), "{k} {from}..{to}");
        }
    }
}

// ----- the calling thread -------------------------------------------------------------------

/// What `scan_here` needs, passed through one register from the assembly.
struct ScanCtx<'a> {
    heap: &'a Heap,
    base: &'a StackBase,
    roots: Roots,
    result: Option<Result<ThreadScan, Error>>,
}

/// Called from assembly that holds an object's address in one callee-saved register only.
extern "sysv64" fn scan_here(ctx: &mut ScanCtx<'_>) {
    ctx.result = Some(ctx.roots.push_current_thread(ctx.heap, ctx.base));
}

/// Overwrites a stretch of dead stack below the caller, so no stale copy of an address
/// survives there.
#[inline(never)]
fn scrub_stack() {
    let mut junk = [0usize; 4096];
    std::hint::black_box(&mut junk);
}

/// A root object (slot > 0: the heap's lowest address, in the `Heap` struct on the stack,
/// resolves to slot 0 of its first span) with one child; writes the root's address to `cell`
/// and `shadow` only (both on the Rust heap, which no scan reads).
#[inline(never)]
fn make_pair(heap: &mut Heap, cell: &mut usize, shadow: &mut usize) {
    let l = Layout::all_pointers(32).unwrap();
    let _slot0 = heap.alloc(&l).unwrap();
    let child = heap.alloc(&l).unwrap();
    let root = heap.alloc(&l).unwrap();
    heap.write_word(root, 0, child).unwrap();
    *std::hint::black_box(cell) = root;
    *std::hint::black_box(shadow) = root;
}

/// Loads `*cell` into the register named by `$load` (erasing `*cell`), optionally clears it
/// again (`$clear`: the control), calls `scan_here`, then writes the register back to `*cell`.
macro_rules! with_value_in {
    ($cell:expr, $ctx:expr, $load:literal, $clear:literal, $store:literal) => {{
        let cell: *mut usize = $cell;
        let ctx: *mut ScanCtx<'_> = $ctx;
        // SAFETY: rbx and rbp (never operands) are saved on the stack and restored; r12–r15
        // are declared clobbered; the stack is balanced and 16-byte aligned at the call (two
        // pushes from the aligned entry); scan_here follows the System V ABI, whose
        // caller-saved registers clobber_abi declares; `cell` and `ctx` point to live locals.
        unsafe {
            std::arch::asm!(
                "push rbx",
                "push rbp",
                "mov rax, qword ptr [r11]",
                "mov qword ptr [r11], 0",
                $load,
                "xor eax, eax",
                $clear,
                "push r11",
                "sub rsp, 8",
                "call {f}",
                "add rsp, 8",
                "pop r11",
                $store,
                "pop rbp",
                "pop rbx",
                inout("r11") cell => _,
                f = sym scan_here,
                in("rdi") ctx,
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                clobber_abi("C"),
            )
        }
    }};
}

#[test]
fn current_thread_finds_a_pointer_held_only_in_a_callee_saved_register() {
    let base = StackBase::current_thread().unwrap();
    let runs: Vec<(&str, RegisterRun)> = vec![
        ("rbx", |c, x, clear| {
            if clear {
                with_value_in!(
                    c,
                    x,
                    "mov rbx, rax",
                    "xor ebx, ebx",
                    "mov qword ptr [r11], rbx"
                )
            } else {
                with_value_in!(c, x, "mov rbx, rax", "nop", "mov qword ptr [r11], rbx")
            }
        }),
        ("rbp", |c, x, clear| {
            if clear {
                with_value_in!(
                    c,
                    x,
                    "mov rbp, rax",
                    "xor ebp, ebp",
                    "mov qword ptr [r11], rbp"
                )
            } else {
                with_value_in!(c, x, "mov rbp, rax", "nop", "mov qword ptr [r11], rbp")
            }
        }),
        ("r12", |c, x, clear| {
            if clear {
                with_value_in!(
                    c,
                    x,
                    "mov r12, rax",
                    "xor r12d, r12d",
                    "mov qword ptr [r11], r12"
                )
            } else {
                with_value_in!(c, x, "mov r12, rax", "nop", "mov qword ptr [r11], r12")
            }
        }),
        ("r15", |c, x, clear| {
            if clear {
                with_value_in!(
                    c,
                    x,
                    "mov r15, rax",
                    "xor r15d, r15d",
                    "mov qword ptr [r11], r15"
                )
            } else {
                with_value_in!(c, x, "mov r15, rax", "nop", "mov qword ptr [r11], r15")
            }
        }),
    ];
    let marker = Marker::builder().workers(2).build().unwrap();
    for (reg, run) in runs {
        for control in [true, false] {
            // Each case in a frame of its own, popped and scrubbed before the next: no stale
            // copy of an earlier case's address survives in a live frame.
            scrub_stack();
            register_case(reg, run, control, &base, &marker);
        }
    }
}

/// Type of the cases of the test above.
type RegisterRun = fn(*mut usize, *mut ScanCtx<'_>, bool);

#[inline(never)]
fn register_case(reg: &str, run: RegisterRun, control: bool, base: &StackBase, marker: &Marker) {
    let mut heap = Heap::new();
    let (mut cell, mut shadow) = (Box::new(0usize), Box::new(0usize));
    make_pair(&mut heap, &mut cell, &mut shadow);
    scrub_stack();
    let mut ctx = ScanCtx {
        heap: &heap,
        base,
        roots: Roots::new(),
        result: None,
    };
    run(&mut *cell, &mut ctx, control);
    let scan = ctx.result.take().unwrap().unwrap();
    assert_eq!(scan.registers, 6);
    assert!(scan.stack_pointer < base.addr() && scan.stack_bytes > 0);
    let roots = ctx.roots;
    let root = *shadow;
    let child = heap.read_word(root, 0).unwrap();
    reference::mark(&heap, &roots).unwrap();
    if control {
        // The register was cleared before the scan: no copy of the address was left on the
        // stack, so the case below depends on the register alone.
        assert_eq!(*cell, 0);
        assert!(
            !heap.is_marked(root).unwrap(),
            "{reg}: a stale copy on the stack"
        );
        return;
    }
    assert_eq!(*cell, root, "{reg} kept its value across the call");
    let want = heap.marked_objects();
    assert!(heap.is_marked(root).unwrap(), "{reg}: the root was found");
    assert!(heap.is_marked(child).unwrap(), "{reg}: and its child");
    marker.mark(&heap, &roots).unwrap();
    assert_eq!(heap.marked_objects(), want, "{reg}: marker vs reference");
}

// ----- a thread stopped by a signal ---------------------------------------------------------

mod stopped {
    //! A thread holds an object's address in one vector register only and spins; the test
    //! signals it, the handler copies its context into preallocated buffers (one per
    //! [`VectorState`]), and the marks from those roots keep the object exactly when the
    //! capture read that register.

    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use sencha::roots::{ContextWords, StackBase, VectorState};
    use sencha::{Heap, Layout, Marker, Roots, reference};

    /// The buffers the handler fills: Off, Legacy, Full.
    type Captures = [ContextWords; 3];

    static SLOT: AtomicPtr<Captures> = AtomicPtr::new(std::ptr::null_mut());
    /// 0: not yet; 1: captured; 2: a capture returned an error.
    static CAPTURED: AtomicU8 = AtomicU8::new(0);
    /// One signalling test at a time (the handler and SLOT are process-wide).
    static LOCK: Mutex<()> = Mutex::new(());

    /// The `SA_SIGINFO` handler: async-signal-safe (atomics and `capture_unchecked` only).
    extern "C" fn on_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
        let slot = SLOT.load(Ordering::Acquire);
        if slot.is_null() {
            return;
        }
        // SAFETY: SLOT holds a live Box the test keeps until CAPTURED is set, and only this
        // handler (on the one signalled thread) uses it meanwhile.
        let captures = unsafe { &mut *slot };
        let mut ok = true;
        for c in captures.iter_mut() {
            // SAFETY: `uc` is this SA_SIGINFO handler's third argument.
            ok &= unsafe { c.capture_unchecked(uc.cast_const().cast()) }.is_ok();
        }
        CAPTURED.store(if ok { 1 } else { 2 }, Ordering::Release);
    }

    fn signal() -> libc::c_int {
        libc::SIGRTMIN() + 3
    }

    fn install_handler() {
        // SAFETY: a zeroed sigaction is a valid value; it is filled before use.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset_t to initialize; `sa` is fully set up, and the
        // handler only touches atomics and preallocated buffers.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(signal(), &sa, std::ptr::null_mut()), 0);
        }
    }

    /// Where the address is held, what the CPU needs for that, and the least capture that
    /// reads it.
    #[derive(Clone, Copy, Debug)]
    enum Place {
        /// XMM7, lane 0: the legacy FXSAVE area.
        Xmm,
        /// YMM3, lane 2: YMM_Hi128.
        Ymm,
        /// ZMM5, lane 6: ZMM_Hi256.
        ZmmHi256,
        /// ZMM20: Hi16_ZMM.
        Zmm20,
        /// k3: the opmask component.
        Opmask,
    }

    impl Place {
        fn available(self) -> bool {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Place::Xmm => true,
                Place::Ymm => has!("avx"),
                Place::ZmmHi256 | Place::Zmm20 => has!("avx512f"),
                Place::Opmask => has!("avx512bw"),
            }
        }

        /// The XSTATE component bit of the place.
        fn component(self) -> u64 {
            match self {
                Place::Xmm => 1 << 1,
                Place::Ymm => 1 << 2,
                Place::Opmask => 1 << 5,
                Place::ZmmHi256 => 1 << 6,
                Place::Zmm20 => 1 << 7,
            }
        }

        fn needs(self) -> VectorState {
            match self {
                Place::Xmm => VectorState::Legacy,
                _ => VectorState::Full,
            }
        }

        /// Moves `*cell` into the place, erases `*cell` and the general register it went
        /// through, sets `ready`, and spins until `stop`.
        fn hold(self, cell: &AtomicUsize, ready: &AtomicBool, stop: &AtomicBool) {
            let (c, r, s) = (cell.as_ptr(), ready.as_ptr(), stop.as_ptr());
            assert!(self.available());
            // SAFETY: `available()` holds (asserted above), so each function's target
            // features are present; the pointers come from live atomics.
            unsafe {
                match self {
                    Place::Xmm => hold_xmm(c, r, s),
                    Place::Ymm => hold_ymm(c, r, s),
                    Place::ZmmHi256 => hold_zmm_hi256(c, r, s),
                    Place::Zmm20 => hold_zmm20(c, r, s),
                    Place::Opmask => hold_opmask(c, r, s),
                }
            }
        }
    }

    /// The body every `hold_*` shares around `$load` (which moves rax into the place).
    macro_rules! hold_asm {
        ($cell:expr, $ready:expr, $stop:expr, $load:literal, $($clobber:tt)*) => {
            // SAFETY: reads and writes only the three atomics' memory (live for the call), and
            // the registers declared as outputs; no stack use.
            unsafe {
                std::arch::asm!(
                    "mov rax, qword ptr [{cell}]",
                    "mov qword ptr [{cell}], 0",
                    $load,
                    "xor eax, eax",
                    "mov byte ptr [{ready}], 1",
                    "2:",
                    "pause",
                    "cmp byte ptr [{stop}], 0",
                    "je 2b",
                    cell = in(reg) $cell,
                    ready = in(reg) $ready,
                    stop = in(reg) $stop,
                    out("rax") _,
                    $($clobber)*
                    options(nostack),
                )
            }
        };
    }

    /// # Safety
    /// The pointers are valid atomics.
    unsafe fn hold_xmm(c: *mut usize, r: *mut bool, s: *mut bool) {
        hold_asm!(c, r, s, "movq xmm7, rax", out("xmm7") _,);
    }

    /// # Safety
    /// The pointers are valid atomics; the CPU has AVX.
    #[target_feature(enable = "avx")]
    unsafe fn hold_ymm(c: *mut usize, r: *mut bool, s: *mut bool) {
        hold_asm!(
            c, r, s,
            "vmovq xmm1, rax\n vxorps xmm3, xmm3, xmm3\n vinsertf128 ymm3, ymm3, xmm1, 1\n vpxor xmm1, xmm1, xmm1",
            out("ymm1") _, out("ymm3") _,
        );
    }

    /// # Safety
    /// The pointers are valid atomics; the CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    unsafe fn hold_zmm_hi256(c: *mut usize, r: *mut bool, s: *mut bool) {
        hold_asm!(
            c, r, s,
            "vmovq xmm1, rax\n mov ecx, 0x40\n kmovw k1, ecx\n vpbroadcastq zmm5 {{k1}} {{z}}, xmm1\n vpxor xmm1, xmm1, xmm1",
            out("zmm1") _, out("zmm5") _, out("k1") _, out("rcx") _,
        );
    }

    /// # Safety
    /// The pointers are valid atomics; the CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    unsafe fn hold_zmm20(c: *mut usize, r: *mut bool, s: *mut bool) {
        hold_asm!(c, r, s, "vpbroadcastq zmm20, rax", out("zmm20") _,);
    }

    /// # Safety
    /// The pointers are valid atomics; the CPU has AVX-512 BW.
    #[target_feature(enable = "avx512bw")]
    unsafe fn hold_opmask(c: *mut usize, r: *mut bool, s: *mut bool) {
        hold_asm!(c, r, s, "kmovq k3, rax", out("k3") _,);
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    #[test]
    fn stopped_thread_pointer_only_in_a_vector_register_is_found_by_the_full_capture() {
        use std::os::unix::thread::JoinHandleExt;
        let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        install_handler();
        let marker = Marker::builder().workers(2).build().unwrap();
        let mut heap = Heap::new();
        let l = Layout::all_pointers(48).unwrap();
        let _slot0 = heap.alloc(&l).unwrap(); // the heap's lowest address is on our stack
        let child = heap.alloc(&l).unwrap();
        let obj = heap.alloc(&l).unwrap();
        let _garbage = heap.alloc(&l).unwrap();
        heap.write_word(obj, 0, child).unwrap();
        let places = [
            Place::Xmm,
            Place::Ymm,
            Place::ZmmHi256,
            Place::Zmm20,
            Place::Opmask,
        ];
        let mut tested = 0;
        for place in places {
            if !place.available() {
                eprintln!("SKIPPED {place:?}: this CPU lacks the registers");
                continue;
            }
            tested += 1;
            let cell = Arc::new(AtomicUsize::new(obj));
            let ready = Arc::new(AtomicBool::new(false));
            let stop = Arc::new(AtomicBool::new(false));
            let top = Arc::new(AtomicUsize::new(0));
            let holder = {
                let (cell, ready, stop, top) =
                    (cell.clone(), ready.clone(), stop.clone(), top.clone());
                std::thread::spawn(move || {
                    top.store(
                        StackBase::current_thread().unwrap().addr(),
                        Ordering::Release,
                    );
                    place.hold(&cell, &ready, &stop);
                })
            };
            wait_for("the holder", || ready.load(Ordering::Acquire));
            assert_eq!(cell.load(Ordering::Acquire), 0, "the memory copy is erased");
            let mut captures = Box::new([
                ContextWords::new().vector_state(VectorState::Off),
                ContextWords::new().vector_state(VectorState::Legacy),
                ContextWords::new().vector_state(VectorState::Full),
            ]);
            CAPTURED.store(0, Ordering::Release);
            SLOT.store(&mut *captures, Ordering::Release);
            // SAFETY: the holder thread is alive (it spins until `stop`); the signal's handler
            // is installed.
            let rc = unsafe { libc::pthread_kill(holder.as_pthread_t(), signal()) };
            assert_eq!(rc, 0);
            wait_for("the handler", || CAPTURED.load(Ordering::Acquire) != 0);
            SLOT.store(std::ptr::null_mut(), Ordering::Release);
            assert_eq!(
                CAPTURED.load(Ordering::Acquire),
                1,
                "{place:?}: a capture failed"
            );
            let top = top.load(Ordering::Acquire);
            for ctx in captures.iter() {
                let mut roots = Roots::new();
                roots.push_context(&heap, ctx);
                // The holder's stack too, as a runtime would: it only spins in registers.
                let start = ctx.stack_scan_start();
                assert!(start < top, "{place:?}: stack pointer below the stack top");
                // SAFETY: `start .. top` is the holder's stack from its red zone up (its
                // stack pointer came from the capture; the top from pthread); the holder
                // spins in the asm loop, writing no memory but none of this.
                unsafe {
                    roots.push_range_unchecked(
                        &heap,
                        std::ptr::with_exposed_provenance(start),
                        top - start,
                    )
                };
                reference::mark(&heap, &roots).unwrap();
                let want = heap.marked_objects();
                let vector = vector_of(ctx, &captures);
                if vector == VectorState::Full {
                    assert_ne!(
                        ctx.components() & place.component(),
                        0,
                        "{place:?}: component read"
                    );
                }
                let should = vector_rank(vector) >= vector_rank(place.needs());
                assert_eq!(
                    heap.is_marked(obj).unwrap(),
                    should,
                    "{place:?} with {vector:?}"
                );
                assert_eq!(
                    heap.is_marked(child).unwrap(),
                    should,
                    "{place:?} with {vector:?}"
                );
                marker.mark(&heap, &roots).unwrap();
                assert_eq!(
                    heap.marked_objects(),
                    want,
                    "{place:?} {vector:?}: marker vs reference"
                );
            }
            stop.store(true, Ordering::Release);
            holder.join().unwrap();
        }
        assert!(tested >= 1);
        if std::arch::is_x86_feature_detected!("avx512bw") {
            assert_eq!(tested, places.len(), "every place tested on an AVX-512 CPU");
        }
    }

    /// Which of the three buffers `ctx` is.
    fn vector_of(ctx: &ContextWords, captures: &Captures) -> VectorState {
        let i = captures.iter().position(|c| std::ptr::eq(c, ctx)).unwrap();
        [VectorState::Off, VectorState::Legacy, VectorState::Full][i]
    }

    fn vector_rank(v: VectorState) -> u8 {
        match v {
            VectorState::Off => 0,
            VectorState::Legacy => 1,
            VectorState::Full => 2,
        }
    }

    std::thread_local! {
        static BASE: StackBase = StackBase::current_thread().unwrap();
    }

    /// 0: not run; 1: StackOutOfBounds; 2: Ok; 3: another error.
    static ALT_RESULT: AtomicU8 = AtomicU8::new(0);

    /// Runs on the alternate signal stack, raised synchronously by the test thread itself
    /// (so allocating here cannot interrupt an allocation).
    extern "C" fn on_alt_stack(_sig: libc::c_int) {
        let heap = Heap::new();
        let mut roots = Roots::new();
        let code = match BASE.with(|b| roots.push_current_thread(&heap, b)) {
            Err(sencha::Error::StackOutOfBounds { .. }) => 1,
            Ok(_) => 2,
            Err(_) => 3,
        };
        ALT_RESULT.store(code, Ordering::Release);
    }

    #[test]
    fn current_thread_on_another_stack_is_a_typed_error() {
        let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let heap = Heap::new();
        let mut roots = Roots::new();
        assert!(BASE.with(|b| roots.push_current_thread(&heap, b)).is_ok());
        let sig = libc::SIGRTMIN() + 4;
        let mut stack = vec![0u8; 256 << 10];
        // SAFETY: zeroed stack_t / sigaction are valid values, filled before use.
        let (mut ss, mut old): (libc::stack_t, libc::stack_t) = unsafe { std::mem::zeroed() };
        ss.ss_sp = stack.as_mut_ptr().cast();
        ss.ss_size = stack.len();
        // SAFETY: `stack` outlives the alternate stack's use (disabled below before it drops).
        assert_eq!(unsafe { libc::sigaltstack(&ss, &mut old) }, 0);
        // SAFETY: as in install_handler, with SA_ONSTACK.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_alt_stack as *const () as usize;
        sa.sa_flags = libc::SA_ONSTACK;
        // SAFETY: valid sigset and sigaction.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
        }
        ALT_RESULT.store(0, Ordering::Release);
        // SAFETY: signalling this thread; the handler is installed. The signal is delivered
        // before pthread_kill returns (it targets the calling thread and is not blocked).
        assert_eq!(unsafe { libc::pthread_kill(libc::pthread_self(), sig) }, 0);
        wait_for("the alternate-stack handler", || {
            ALT_RESULT.load(Ordering::Acquire) != 0
        });
        // SAFETY: restores the previous alternate stack setting; `old` came from sigaltstack.
        assert_eq!(unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) }, 0);
        drop(stack);
        assert_eq!(
            ALT_RESULT.load(Ordering::Acquire),
            1,
            "StackOutOfBounds on the signal stack"
        );
    }
}
