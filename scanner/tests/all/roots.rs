//! Bad roots and bad builder input: typed errors, never a panic or a hang.

use sencha::spans::Error as HeapError;
use sencha::{Error, Heap, Kernel, KernelChoice, Layout, Marker, Roots};

fn heap_with_two() -> (Heap, usize, usize) {
    let mut heap = Heap::new();
    let l = Layout::all_pointers(48).unwrap();
    let a = heap.alloc(&l).unwrap();
    let b = heap.alloc(&l).unwrap();
    heap.write_word(a, 0, b).unwrap();
    (heap, a, b)
}

#[test]
fn roots_invalid_precise_are_typed_errors() {
    let (heap, a, _) = heap_with_two();
    let big = Heap::new();
    let m = Marker::builder().workers(2).build().unwrap();
    let free_slot = a + 2 * 48;
    let cases = [
        (a + 8, "interior"),
        (a + 3, "unaligned"),
        (free_slot, "free slot"),
        (0x10, "low address"),
        (usize::MAX, "outside the heap"),
        ((a & !8191) + 8000, "span metadata"),
    ];
    for (addr, what) in cases {
        match m.mark(&heap, &Roots::precise([a, addr])) {
            Err(Error::InvalidRoot {
                index: 1,
                addr: got,
                ..
            }) => assert_eq!(got, addr, "{what}"),
            other => panic!("{what}: expected InvalidRoot, got {other:?}"),
        }
        assert!(
            heap.marked_objects().is_empty(),
            "{what}: nothing is marked on error"
        );
    }
    assert!(m.mark(&big, &Roots::precise([a])).is_err());
}

#[test]
fn roots_null_is_skipped_and_conservative_garbage_ignored() {
    let (heap, a, b) = heap_with_two();
    let m = Marker::builder().workers(2).build().unwrap();
    let mut roots = Roots::precise([0]);
    for w in [0, 1, 0x10, usize::MAX, a + 2 * 48, (a & !8191) + 8100] {
        roots.push_conservative(w);
    }
    assert_eq!(m.mark(&heap, &roots).unwrap().objects_marked, 0);
    let mut roots = Roots::conservative([a + 17]); // interior, conservative: keeps `a` alive
    roots.push_precise(0);
    assert_eq!(m.mark(&heap, &roots).unwrap().objects_marked, 2);
    assert!(heap.is_marked(b).unwrap());
    match heap.object(a + 8) {
        Err(HeapError::NotAnObject { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn builder_rejects_bad_worker_counts_and_kernels() {
    assert!(matches!(
        Marker::builder().workers(0).build(),
        Err(Error::InvalidWorkers { workers: 0 })
    ));
    assert!(matches!(
        Marker::builder().workers(100_000).build(),
        Err(Error::InvalidWorkers { workers: 100_000 })
    ));
    assert!(matches!(
        Kernel::from_name("sse9"),
        Err(Error::InvalidKernelName { .. })
    ));
    assert_eq!(Kernel::from_name("scalar").unwrap(), Kernel::scalar());
    assert_eq!(Kernel::from_name("AUTO").unwrap(), Kernel::detect());
    match Kernel::avx512() {
        Some(k) => assert_eq!(
            Marker::builder()
                .kernel(KernelChoice::Avx512)
                .build()
                .unwrap()
                .kernel(),
            k
        ),
        None => assert!(matches!(
            Marker::builder().kernel(KernelChoice::Avx512).build(),
            Err(Error::KernelUnavailable { tier: "avx512" })
        )),
    }
}

#[test]
fn garbage_pointer_words_are_ignored_safely() {
    let mut heap = Heap::new();
    let l = Layout::all_pointers(512).unwrap();
    let a = heap.alloc(&l).unwrap();
    let (lo, hi) = heap.address_range();
    let garbage = [
        1,
        7,
        4096,
        lo - 8,
        lo + 7936,
        lo + 8191,
        hi,
        hi + 1,
        usize::MAX,
        a + 3,
        a + 512 * 3,
    ];
    for (w, &g) in garbage.iter().enumerate() {
        heap.write_word(a, w, g).unwrap();
    }
    for m in [
        Marker::builder().workers(2).build().unwrap(),
        Marker::builder()
            .workers(2)
            .algorithm(sencha::Algorithm::Baseline)
            .build()
            .unwrap(),
    ] {
        heap.clear_marks();
        let s = m.mark(&heap, &Roots::precise([a])).unwrap();
        assert_eq!(heap.marked_objects(), vec![a]);
        assert!(s.objects_marked >= 1);
    }
}
