//! The safe face of the C peer in `bench/csrc/boehm_peer.c` (bdwgc, the Boehm–Demers–Weiser
//! collector): declarations mirroring `boehm_peer.h` and a [`Boehm`] handle whose methods are
//! safe for every argument.
//!
//! Why this is sound:
//! - every C function validates what it is given (a permutation, class sizes, edge indices,
//!   lengths) and answers with a code; the Rust side passes only slices with their own lengths;
//! - bdwgc is initialised in the process's main thread (the C side refuses any other thread,
//!   because bdwgc would take the main thread's stack for the caller's), and with `GC_THREADS`
//!   it may be called only from threads it knows: [`Boehm`] is neither `Send` nor `Sync`, so
//!   every call stays on the thread that made it;
//! - the workload's root lives in a C global that bdwgc scans, and a build runs with
//!   collection disabled, so nothing the C side holds is freed under it.

use std::marker::PhantomData;

use super::{PeerError, Result};

const OK: i32 = 0;
const NOT_INITIALIZED: i32 = 1;
const BAD_INPUT: i32 = 2;
const OUT_OF_MEMORY: i32 = 3;
const NO_MARK: i32 = 4;
const NO_WORKLOAD: i32 = 5;
const NOT_MAIN_THREAD: i32 = 6;

#[repr(C)]
#[derive(Default)]
struct Info {
    markers: u32,
    version: u32,
    overflow_log: i32,
}

/// One collection as the C peer measured it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Collection {
    /// The mark phase: `GC_EVENT_MARK_START` to `GC_EVENT_MARK_END`, ns.
    pub(crate) mark_ns: u64,
    /// bdwgc's heap size after the collection.
    pub(crate) heap_bytes: usize,
    /// Mark-stack overflows during the collection (each one makes bdwgc rescan the heap).
    pub(crate) overflows: usize,
}

/// What a check of the workload found.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Check {
    /// Objects reached, marked and holding what was built.
    pub(crate) objects: usize,
    /// Their requested bytes.
    pub(crate) bytes: usize,
    /// Objects or links that were missing, unmarked or wrong.
    pub(crate) bad: usize,
}

unsafe extern "C" {
    fn sencha_boehm_init(info: *mut Info) -> i32;
    fn sencha_boehm_build_tree(order: *const usize, n: usize) -> i32;
    fn sencha_boehm_build_list(n: usize) -> i32;
    fn sencha_boehm_build_graph(bytes: *const u16, edges: *const usize, n: usize) -> i32;
    fn sencha_boehm_collect(out: *mut Collection) -> i32;
    fn sencha_boehm_check(bytes: *const u16, edges: *const usize, n: usize, out: *mut Check)
    -> i32;
    fn sencha_boehm_cut() -> i32;
}

fn code(what: &'static str, rc: i32) -> Result<()> {
    let why = match rc {
        OK => return Ok(()),
        NOT_INITIALIZED => "bdwgc is not initialised",
        BAD_INPUT => "the C peer rejected its input",
        OUT_OF_MEMORY => "bdwgc is out of memory",
        NO_MARK => "the collection ran no mark phase (is GC_DONT_GC set?)",
        NO_WORKLOAD => "no workload is built",
        NOT_MAIN_THREAD => "bdwgc must be initialised from the main thread",
        _ => "unknown error code",
    };
    Err(PeerError(format!("boehm: {what}: {why} ({rc})")))
}

/// The process's bdwgc heap, usable from the thread that initialised it.
#[derive(Debug)]
pub(crate) struct Boehm {
    /// Marker threads, including the collecting one.
    pub(crate) markers: usize,
    /// bdwgc's version, `major.minor.micro`.
    pub(crate) version: String,
    /// Whether mark-stack overflows are counted (bdwgc's log is on: `GC_PRINT_STATS`).
    pub(crate) counts_overflows: bool,
    // Not Send, not Sync: bdwgc may be called only from threads it knows.
    _thread_bound: PhantomData<*const ()>,
}

impl Boehm {
    /// Initialises bdwgc (once per process; later calls return a handle to the same heap).
    ///
    /// # Errors
    /// When called from a thread other than the process's main thread.
    pub(crate) fn init() -> Result<Self> {
        let mut info = Info::default();
        // SAFETY: `info` is a valid, writable `Info`, whose layout matches the C struct
        // `sencha_boehm_info` (`#[repr(C)]`, the same three fields); the C side checks that it
        // runs in the main thread before touching bdwgc.
        code("init", unsafe { sencha_boehm_init(&mut info) })?;
        let v = info.version;
        Ok(Boehm {
            markers: info.markers as usize,
            version: format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff),
            counts_overflows: info.overflow_log != 0,
            _thread_bound: PhantomData,
        })
    }

    /// Builds the tree: the `j`-th node allocated is node `order[j]` (a permutation of
    /// `0..order.len()`; anything else is an error).
    pub(crate) fn build_tree(&mut self, order: &[usize]) -> Result<()> {
        // SAFETY: the C side reads exactly `order.len()` elements from `order.as_ptr()`, a live
        // slice; `&mut self` proves this thread initialised bdwgc (`Boehm` is not `Send`).
        code("build tree", unsafe {
            sencha_boehm_build_tree(order.as_ptr(), order.len())
        })
    }

    /// Builds the list of `n` cells.
    pub(crate) fn build_list(&mut self, n: usize) -> Result<()> {
        // SAFETY: no pointers cross; `&mut self` proves this thread initialised bdwgc.
        code("build list", unsafe { sencha_boehm_build_list(n) })
    }

    /// Builds the graph: object `i` has `bytes[i]` bytes and points to `edges[i]`.
    pub(crate) fn build_graph(&mut self, bytes: &[u16], edges: &[[usize; 2]]) -> Result<()> {
        if bytes.len() != edges.len() {
            return Err(PeerError("boehm: build graph: plan lengths differ".into()));
        }
        let flat = edges.as_flattened();
        // SAFETY: the C side reads `n = bytes.len()` elements from `bytes` and `2n` from
        // `flat`, both live slices of exactly those lengths (checked just above);
        // `&mut self` proves this thread initialised bdwgc.
        code("build graph", unsafe {
            sencha_boehm_build_graph(bytes.as_ptr(), flat.as_ptr(), bytes.len())
        })
    }

    /// One full collection.
    pub(crate) fn collect(&mut self) -> Result<Collection> {
        let mut out = Collection::default();
        // SAFETY: `out` is a valid, writable `Collection`, laid out as the C struct
        // `sencha_boehm_collection`; `&mut self` proves this thread initialised bdwgc.
        code("collect", unsafe { sencha_boehm_collect(&mut out) })?;
        Ok(out)
    }

    /// Walks the workload as the last collection left it; `plan` is the graph's (bytes and
    /// edges), `None` for the other shapes.
    pub(crate) fn check(&mut self, plan: Option<(&[u16], &[[usize; 2]])>) -> Result<Check> {
        let (bytes, edges): (&[u16], &[[usize; 2]]) = plan.unwrap_or((&[], &[]));
        if bytes.len() != edges.len() {
            return Err(PeerError("boehm: check: plan lengths differ".into()));
        }
        let mut out = Check::default();
        // SAFETY: as in `build_graph`, the C side reads `bytes.len()` and `2 * bytes.len()`
        // elements from live slices of those lengths (and only after checking that this is the
        // built graph's length); `out` is a valid `Check` laid out as `sencha_boehm_check`.
        code("check", unsafe {
            sencha_boehm_check(
                bytes.as_ptr(),
                edges.as_flattened().as_ptr(),
                bytes.len(),
                &mut out,
            )
        })?;
        Ok(out)
    }

    /// Unlinks part of the workload so that the next check fails (for tests of the check).
    pub(crate) fn cut(&mut self) -> Result<()> {
        // SAFETY: no pointers cross; `&mut self` proves this thread initialised bdwgc.
        code("cut", unsafe { sencha_boehm_cut() })
    }
}
