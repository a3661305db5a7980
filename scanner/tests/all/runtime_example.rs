//! A toy runtime that stops its mutator threads with a signal and finds their roots
//! conservatively: registers (vector registers included) and stacks.
//! (docs/RUNTIME_GUIDE.md shows this file verbatim; a test keeps the two equal.)

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sencha::roots::{ContextWords, StackBase};
use sencha::{Heap, Layout, Marker, Roots};

/// The runtime's record of one mutator thread, built before the thread runs: the signal
/// handler writes only into it (no allocation, no lock).
struct ThreadRecord {
    pthread: AtomicU64,
    stack_top: AtomicUsize,
    /// Written by the thread's signal handler, read by the collector once `stopped_in` says
    /// the handler is parked.
    context: UnsafeCell<ContextWords>,
    /// The collection the thread is parked in (0: running).
    stopped_in: AtomicU64,
}

// SAFETY: `context` is written only by the record's own thread, inside the stop handler,
// before it publishes `stopped_in` (Release); the collector reads it only after seeing that
// (Acquire) and before it ends the collection, which the handler waits for.
unsafe impl Sync for ThreadRecord {}

/// The collection in progress; the handler waits for it to change.
static COLLECTION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's record (const-initialized: reading it in a signal handler allocates
    /// nothing).
    static RECORD: Cell<*const ThreadRecord> = const { Cell::new(std::ptr::null()) };
}

fn stop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

/// The stop handler: capture the interrupted context, say so, wait for the collection to end.
/// Async-signal-safe: a thread-local read, atomics and `capture_unchecked` only.
extern "C" fn on_stop(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let record = RECORD.with(|r| r.get());
    if record.is_null() {
        return;
    }
    // SAFETY: the record outlives its thread (the runtime holds an Arc to it).
    let record = unsafe { &*record };
    let collection = COLLECTION.load(Ordering::Acquire);
    // SAFETY: this handler is the only writer of `context` (see ThreadRecord); `uc` is this
    // SA_SIGINFO handler's third argument.
    let _ = unsafe { (*record.context.get()).capture_unchecked(uc.cast_const().cast()) };
    record.stopped_in.store(collection, Ordering::Release);
    while COLLECTION.load(Ordering::Acquire) == collection {
        std::hint::spin_loop();
    }
    record.stopped_in.store(0, Ordering::Release);
}

struct Runtime {
    heap: Mutex<Heap>,
    threads: Mutex<Vec<Arc<ThreadRecord>>>,
    marker: Marker,
}

impl Runtime {
    fn new() -> Self {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(stop_signal(), &sa, std::ptr::null_mut()), 0);
        }
        Runtime {
            heap: Mutex::new(Heap::new()),
            threads: Mutex::new(Vec::new()),
            marker: Marker::builder().workers(2).build().unwrap(),
        }
    }

    /// Called first thing on each mutator thread.
    fn attach(&self) -> Arc<ThreadRecord> {
        let record = Arc::new(ThreadRecord {
            // SAFETY: pthread_self has no preconditions.
            pthread: AtomicU64::new(unsafe { libc::pthread_self() }),
            stack_top: AtomicUsize::new(StackBase::current_thread().unwrap().addr()),
            context: UnsafeCell::new(ContextWords::new()), // reads CPUID: not in the handler
            stopped_in: AtomicU64::new(0),
        });
        RECORD.with(|r| r.set(Arc::as_ptr(&record)));
        self.threads.lock().unwrap().push(record.clone());
        record
    }

    fn alloc_list(&self, len: usize) -> usize {
        let mut heap = self.heap.lock().unwrap();
        let cell = Layout::with_pointers(16, 0b01).unwrap();
        (0..len).fold(0, |next, _| {
            let node = heap.alloc(&cell).unwrap();
            heap.write_word(node, 0, next).unwrap();
            node
        })
    }

    /// Stops every attached thread, marks from their registers and stacks and from the
    /// collector's own, sweeps, and lets them run again. Returns the objects freed.
    fn collect(&self, collector_base: &StackBase) -> usize {
        let mut heap = self.heap.lock().unwrap(); // no mutator is inside the heap now
        let threads = self.threads.lock().unwrap();
        let collection = COLLECTION.load(Ordering::Relaxed) + 1;
        COLLECTION.store(collection, Ordering::Release);
        for t in threads.iter() {
            let pthread = t.pthread.load(Ordering::Relaxed);
            // SAFETY: attached threads stay alive until the runtime is dropped.
            assert_eq!(unsafe { libc::pthread_kill(pthread, stop_signal()) }, 0);
        }
        for t in threads.iter() {
            while t.stopped_in.load(Ordering::Acquire) != collection {
                std::hint::spin_loop();
            }
        }
        // The world is stopped: gather the roots.
        let mut roots = Roots::new();
        for t in threads.iter() {
            // SAFETY: the handler wrote the context before publishing `stopped_in`, and is
            // parked until COLLECTION changes.
            let context = unsafe { &*t.context.get() };
            roots.push_context(&heap, context);
            let start = context.stack_scan_start();
            let top = t.stack_top.load(Ordering::Relaxed);
            // SAFETY: `start .. top` is the stopped thread's stack from its red zone up to
            // the top pthread reported; the thread is parked in the handler, below `start`.
            unsafe {
                let from = std::ptr::with_exposed_provenance(start);
                roots.push_range_unchecked(&heap, from, top - start);
            }
        }
        // The collector's own registers and stack (a safepoint of this thread).
        roots.push_current_thread(&heap, collector_base).unwrap();
        self.marker.mark(&heap, &roots).unwrap();
        let freed = heap.sweep().unwrap().freed_objects;
        drop(threads);
        COLLECTION.store(collection + 1, Ordering::Release); // resume
        freed
    }

    fn list_len(&self, mut node: usize) -> usize {
        let heap = self.heap.lock().unwrap();
        let mut len = 0;
        while node != 0 {
            len += 1;
            node = heap.read_word(node, 0).unwrap();
        }
        len
    }
}

#[test]
fn runtime_example_stops_threads_and_keeps_what_they_hold() {
    let rt = Arc::new(Runtime::new());
    let done = Arc::new(AtomicBool::new(false));
    let attached = Arc::new(AtomicUsize::new(0));
    let mutators: Vec<_> = (0..3)
        .map(|_| {
            let (rt, done, attached) = (rt.clone(), done.clone(), attached.clone());
            std::thread::spawn(move || {
                let _record = rt.attach();
                let list = rt.alloc_list(100); // held in a local: a register or the stack
                let _garbage = rt.alloc_list(50); // dropped: unreachable
                attached.fetch_add(1, Ordering::Release);
                while !done.load(Ordering::Acquire) {
                    std::hint::black_box(list);
                }
                rt.list_len(list)
            })
        })
        .collect();
    while attached.load(Ordering::Acquire) < 3 {
        std::thread::yield_now();
    }
    let base = StackBase::current_thread().unwrap();
    let mine = rt.alloc_list(10);
    let freed = rt.collect(&base);
    // Conservative roots may keep some garbage alive (a stale word that looks like a
    // pointer); they never free what a thread holds, which the list lengths below check.
    assert!(freed <= 3 * 50, "only garbage is freed");
    assert_eq!(
        rt.list_len(std::hint::black_box(mine)),
        10,
        "the collector's own list"
    );
    done.store(true, Ordering::Release);
    for m in mutators {
        assert_eq!(m.join().unwrap(), 100, "every mutator's list survived");
    }
}
