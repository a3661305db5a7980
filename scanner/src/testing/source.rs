//! What the fuzz checks share: reading choices from bytes, pooled span memory, one thread pool
//! and every marker variant, built once per process.
//!
//! Fuzzing runs each check millions of times, so nothing here is built per input that can be
//! built once: a fresh heap alone costs a 16 MiB page-map allocation (about 2 ms under
//! AddressSanitizer, which poisons its shadow), and a fresh marker a rayon pool.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};
use sencha_spans::{Heap, OwnedMemory, SPAN_BYTES};

use crate::{Algorithm, KernelChoice, Marker, Roots};

use super::SplitMix64;

/// Fuzz bytes, then a splitmix64 stream once they run out: a short input still fills whole
/// spans, and every value is a function of the input alone (so a crash replays).
pub(crate) struct Source<'a> {
    bytes: &'a [u8],
    rng: SplitMix64,
}

impl<'a> Source<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Source {
            bytes,
            rng: SplitMix64::new(0x5e4c_4a00 ^ bytes.len() as u64),
        }
    }

    /// Whether input bytes are left (checks stop decoding operations when they are not).
    pub(crate) fn has_bytes(&self) -> bool {
        !self.bytes.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => self.rng.next_u64() as u8,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        if self.bytes.len() >= 8 {
            let (head, rest) = self.bytes.split_at(8);
            self.bytes = rest;
            return u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
        }
        if self.bytes.is_empty() {
            return self.rng.next_u64();
        }
        // A partial word: the bytes left, then random bytes.
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    /// A number below `n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        if n <= 256 {
            self.u8() as usize % n
        } else if n <= 1 << 16 {
            self.u16() as usize % n
        } else {
            (self.u64() % n as u64) as usize
        }
    }

    pub(crate) fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// `words` low bits set.
pub(crate) fn low(words: usize) -> u64 {
    if words >= 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    }
}

/// Span-aligned memory that lives as long as the process: a fixture of a process-wide check
/// hands out pages of it to its own heap, registration after registration.
pub(crate) struct PagePool {
    ptr: *mut u8,
    pages: usize,
}

// SAFETY: a PagePool is only an address range and its length; the memory itself is reached
// only through the one heap its fixture owns, behind that fixture's Mutex.
unsafe impl Send for PagePool {}

impl PagePool {
    /// Leaks `pages` zeroed, contiguous, 8 KiB-aligned pages.
    pub(crate) fn leak(pages: usize) -> Self {
        let mem = sencha_spans::testing::leak_pages(pages);
        PagePool {
            ptr: mem.as_mut_ptr(),
            pages,
        }
    }

    pub(crate) fn start(&self) -> usize {
        self.ptr as usize
    }

    pub(crate) fn bytes(&self) -> usize {
        self.pages * SPAN_BYTES
    }

    pub(crate) fn contains(&self, addr: usize) -> bool {
        (self.start()..self.start() + self.bytes()).contains(&addr)
    }

    /// `len` bytes at `offset` as [`OwnedMemory`], for the fixture's heap.
    ///
    /// # Panics
    /// If the range leaves the pool.
    pub(crate) fn owned(&self, offset: usize, len: usize) -> OwnedMemory {
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= self.bytes()),
            "pool ranges stay inside the pool"
        );
        // SAFETY: the range lies inside memory leaked by leak_pages (checked just above), which
        // is zeroed, valid for reads and writes and never freed, so it outlives any heap. The
        // pointer is derived from the leaked allocation, keeping its provenance. Only the
        // fixture that owns this pool receives its ranges, and it hands them to its one heap,
        // which rejects a range that overlaps one it holds.
        unsafe { OwnedMemory::new_unchecked(self.ptr.wrapping_add(offset), len) }
    }

    /// Writes `words` at `offset` in the pool, as a custom allocator writes its objects.
    ///
    /// The caller passes only ranges of object slots (never a registered span's last 256
    /// bytes, which are sencha's), and no mark runs meanwhile (the caller holds the fixture,
    /// and with it the only heap these pages are registered with).
    ///
    /// # Panics
    /// If the range leaves the pool or `offset` is not 8-byte aligned.
    pub(crate) fn write_words(&mut self, offset: usize, words: &[usize]) {
        let bytes = std::mem::size_of_val(words);
        assert!(
            offset.is_multiple_of(8)
                && offset.checked_add(bytes).is_some_and(|e| e <= self.bytes()),
            "writes stay inside the pool"
        );
        // SAFETY: the destination lies inside the leaked, never-freed pool (checked above) and
        // is 8-byte aligned (the pool is 8 KiB-aligned, `offset` a multiple of 8); the source
        // is a live slice that cannot overlap the pool. No mark runs and no other thread
        // touches the pool (`&mut self`, and the caller holds the only heap it is registered
        // with); the caller writes object slots only, which is what OwnedMemory's contract
        // leaves to the allocator.
        unsafe {
            std::ptr::copy_nonoverlapping(
                words.as_ptr(),
                self.ptr.wrapping_add(offset).cast::<usize>(),
                words.len(),
            )
        }
    }

    /// `len` bytes at `addr`, outside the pool, as [`OwnedMemory`]: for registrations the
    /// heap must refuse before it reads or writes anything (null, past 2^48, memory the heap
    /// already holds). The caller asserts the refusal.
    pub(crate) fn foreign(&self, addr: usize, len: usize) -> OwnedMemory {
        debug_assert!(!self.contains(addr));
        // SAFETY: OwnedMemory's promise is not kept here, and need not be: the caller passes
        // only ranges that registration rejects in its checks, before any access (null, an
        // end past 2^48, or a page already in the heap's page map), and asserts that it did.
        // The pointer has no provenance, so nothing can be reached through it.
        unsafe { OwnedMemory::new_unchecked(std::ptr::without_provenance_mut(addr), len) }
    }

    /// Zeroes the pages `pages` (indices), so that the next input sees the memory the first
    /// one saw.
    ///
    /// # Panics
    /// If `heap` (the only heap this pool's ranges go to) still holds a custom span or a custom
    /// large object, or a page index is out of range.
    pub(crate) fn zero(&mut self, heap: &Heap, pages: impl IntoIterator<Item = usize>) {
        assert!(
            heap.stats().custom_spans == 0 && heap.large_objects().all(|l| !l.is_custom()),
            "zeroing pool memory a heap still holds"
        );
        for page in pages {
            assert!(page < self.pages, "page {page} is outside the pool");
            // SAFETY: the page lies inside the leaked, never-freed pool (checked above), valid
            // for writes. Its ranges go only to `heap`, which was just seen to hold no custom
            // span and no custom large object, so nothing reads or writes them meanwhile;
            // `&mut self` excludes any other use of the pool.
            unsafe {
                std::ptr::write_bytes(self.ptr.wrapping_add(page * SPAN_BYTES), 0, SPAN_BYTES)
            }
        }
    }
}

/// The thread pool every pooled marker shares: as many threads as the most workers a fuzz
/// check asks for.
pub(crate) const POOL_THREADS: usize = 2;

fn shared_pool() -> Arc<ThreadPool> {
    static POOL: OnceLock<Arc<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(
            ThreadPoolBuilder::new()
                .num_threads(POOL_THREADS)
                .thread_name(|i| format!("sencha-fuzz-{i}"))
                .build()
                .expect("a rayon pool of 4 threads"),
        )
    })
    .clone()
}

/// The marker variant that byte `b` names: 1 to 4 workers, Green Tea or the baseline, in-place
/// scanning and prefetch on or off, the scalar or the detected kernel tier, on the shared pool
/// or (one worker) on the calling thread. Built once per process.
pub(crate) fn marker_variant(b: u8) -> &'static Marker {
    static MARKERS: OnceLock<Vec<Marker>> = OnceLock::new();
    let markers = MARKERS.get_or_init(|| {
        (0..=0x7fu8)
            .map(|v| {
                let workers = 1 + (v & 3) as usize;
                let mut b = Marker::builder()
                    .workers(workers)
                    .algorithm(if v & 4 != 0 {
                        Algorithm::Baseline
                    } else {
                        Algorithm::GreenTea
                    })
                    .in_place_scanning(v & 8 == 0)
                    .prefetch(v & 16 == 0)
                    .kernel(if v & 32 != 0 {
                        KernelChoice::Scalar
                    } else {
                        KernelChoice::Auto
                    });
                if workers > 1 || v & 64 != 0 {
                    b = b.thread_pool(shared_pool());
                }
                b.build().expect("every fuzz marker variant builds")
            })
            .collect()
    });
    &markers[(b & 0x7f) as usize]
}

/// Locks a process-wide fixture, rebuilding it when a failed check poisoned the lock (its
/// state is then unknown).
pub(crate) fn lock_fixture<T>(m: &Mutex<Option<T>>) -> MutexGuard<'_, Option<T>> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => {
            let mut g = poisoned.into_inner();
            *g = None;
            m.clear_poison();
            g
        }
    }
}

/// Frees every object left in `heap` (its custom spans and large objects already
/// unregistered): a mark from no roots, a sweep, and an assertion that nothing is left.
pub(crate) fn sweep_everything(heap: &mut Heap) {
    marker_variant(0)
        .mark(heap, &Roots::new())
        .expect("a mark from no roots");
    heap.sweep().expect("a complete mark ran");
    let s = heap.stats();
    assert_eq!(
        (s.spans, s.objects(), s.custom_spans),
        (0, 0, 0),
        "a sweep after a mark from no roots left objects: {s:?}"
    );
}
