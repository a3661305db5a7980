//! A toy custom allocator that lets sencha mark and sweep the objects it places.
//! (docs/CUSTOM_ALLOCATOR.md shows this file verbatim; a test keeps the two equal.)

use sencha_spans::{Error, Heap, Layout, OwnedMemory, SizeClass};

const PAGE: usize = 8192;

/// Whole 8 KiB pages, 8 KiB-aligned. Leaked here, so they outlive the heap and
/// `OwnedMemory::from_static` needs no `unsafe`; a real allocator maps memory it manages
/// and makes the same promise with `OwnedMemory::new_unchecked`.
fn leak_pages(bytes: usize) -> &'static mut [u8] {
    let len = bytes.next_multiple_of(PAGE);
    let raw: &'static mut [u8] = vec![0u8; len + PAGE].leak();
    let skip = raw.as_ptr().align_offset(PAGE);
    &mut raw[skip..skip + len]
}

/// Places small objects in spans it registers (one list per class and kind) and each large
/// object in pages of its own. sencha keeps the marking metadata; the allocator keeps the
/// policy, and learns which slots are free from `Heap::allocated_slots`.
struct ToyAllocator {
    heap: Heap,
    /// (class, noscan, base) of every span registered so far.
    spans: Vec<(SizeClass, bool, usize)>,
}

impl ToyAllocator {
    fn new() -> Self {
        ToyAllocator {
            heap: Heap::new(),
            spans: Vec::new(),
        }
    }

    /// An object of `layout` in a span of `class`: the first free slot of a span of that
    /// class and kind, else slot 0 of a new span.
    fn alloc_small(
        &mut self,
        class: SizeClass,
        noscan: bool,
        layout: &Layout,
    ) -> Result<usize, Error> {
        for &(c, n, base) in &self.spans {
            if (c, n) != (class, noscan) {
                continue;
            }
            let used = self.heap.allocated_slots(base)?;
            let free = (0..class.capacity()).find(|&i| used[i / 64] >> (i % 64) & 1 == 0);
            if let Some(i) = free {
                let addr = base + i * class.bytes();
                self.heap.init_object(addr, layout)?; // slot allocated, pointer bits written
                return Ok(addr);
            }
        }
        let mem = OwnedMemory::from_static(leak_pages(PAGE));
        let base = self.heap.register_span(mem, class, noscan)?;
        self.spans.push((class, noscan, base));
        self.heap.init_object(base, layout)?;
        Ok(base)
    }

    /// A large object in whole pages of its own: no page may be shared with a span or
    /// another large object.
    fn alloc_large(&mut self, layout: &Layout) -> Result<usize, Error> {
        let mem = OwnedMemory::from_static(leak_pages(layout.bytes()));
        self.heap.register_large(mem, layout)
    }
}

#[test]
fn custom_allocator_example() -> Result<(), Error> {
    let mut toy = ToyAllocator::new();

    // struct Node { next: *const Node, value: u64, tag: u64 }: word 0 is a pointer.
    let node = Layout::with_pointers(24, 0b001)?;
    let class = SizeClass::new(24)?;
    let a = toy.alloc_small(class, false, &node)?;
    let b = toy.alloc_small(class, false, &node)?;
    let c = toy.alloc_small(class, false, &node)?;
    toy.heap.write_word(a, 0, b)?; // a.next = b
    // 64 bytes of text: no pointers, so a noscan span.
    let text = toy.alloc_small(SizeClass::new(64)?, true, &Layout::no_pointers(64)?)?;
    // An array of 2000 pointers, and 100 000 bytes of scratch space.
    let array = toy.alloc_large(&Layout::array(Layout::all_pointers(8)?, 2000)?)?;
    let scratch = toy.alloc_large(&Layout::no_pointers(100_000)?)?;

    // Bad input is a typed error and changes nothing.
    assert_eq!(
        toy.heap.init_object(a, &node),
        Err(Error::SlotInUse { addr: a })
    );
    assert_eq!(
        toy.heap.init_object(a + 8, &node),
        Err(Error::NotAnObject { addr: a + 8 })
    );
    assert!(matches!(
        toy.heap.init_object(text + 64, &node),
        Err(Error::InvalidLayout { .. }) // pointers in a noscan span
    ));
    assert_eq!(
        toy.heap.unregister_large(array + 8),
        Err(Error::NotRegistered { addr: array + 8 })
    );

    // Mark what the roots reach: a, b (a.next), text, array. `sencha::Marker` does this in
    // parallel; the heap's own reference mark (single-threaded) does it here.
    toy.heap.mark_reachable(&[a, text, array])?;
    assert!(toy.heap.is_marked(b)?);
    let swept = toy.heap.sweep()?;
    assert_eq!((swept.freed_objects, swept.live_objects), (1, 3)); // c is garbage
    // `scratch` was not marked: it is unregistered, and its memory is the allocator's again.
    assert_eq!(swept.freed_custom_large, vec![scratch]);
    assert!(toy.heap.object(scratch).is_err());

    // Spans stay registered; their free slots are the clear bits of `allocated_slots`.
    let base = a & !(PAGE - 1);
    assert_eq!(toy.heap.allocated_slots(base)?[0], 0b011);
    let d = toy.alloc_small(class, false, &node)?;
    assert_eq!(d, c); // c's slot, reused

    // The allocator may also free objects itself, and give a span back.
    toy.heap.free_object(text)?;
    toy.heap.unregister_span(text & !(PAGE - 1))?;
    assert_eq!(toy.heap.stats().custom_spans, 1);
    Ok(())
}
