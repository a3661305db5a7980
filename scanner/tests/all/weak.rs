//! Weak words, weak references, ephemerons, finalization and pinning: every marker, at 1 to 16
//! workers and on every kernel tier, against a naive model computed from the heap *before* the
//! mark with plain sets (an oracle independent of the session phases), on random heaps that
//! mix all of them; plus ephemeron chains, cycles and keys reachable only through ephemerons.

use std::collections::{BTreeSet, HashMap};

use sencha::spans::{Ephemeron, Object, WeakRef};
use sencha::testing::SplitMix64;
use sencha::{Algorithm, Heap, KernelChoice, Layout, MarkStats, Marker, Roots, reference};

use crate::{scaled, with_timeout};

/// A heap built from a seed, and the handles to look at after a mark.
struct World {
    heap: Heap,
    objs: Vec<usize>,
    /// (object id, word) of every weak word.
    weak_words: Vec<(usize, usize)>,
    refs: Vec<WeakRef>,
    ephs: Vec<Ephemeron>,
    /// The owner id of each ephemeron (owners are not readable through the API).
    eph_owners: Vec<usize>,
    roots: Vec<usize>,
    finals: Vec<usize>,
    pinned: Vec<usize>,
}

/// Cell layouts: word 2 weak, words 0, 1, 3 strong; a noscan blob; a large array with weak
/// word 0 and strong words after it.
fn layouts() -> [Layout; 3] {
    [
        Layout::all_pointers(32).unwrap().with_weak(0b0100).unwrap(),
        Layout::no_pointers(48).unwrap(),
        Layout::all_pointers(2048).unwrap().with_weak(0b1).unwrap(),
    ]
}

fn build(seed: u64, n: usize) -> World {
    let mut r = SplitMix64::new(seed);
    let mut heap = Heap::new();
    let ls = layouts();
    let mut objs = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..n {
        let k = match r.below(20) {
            0 => 2,
            1..=4 => 1,
            _ => 0,
        };
        objs.push(heap.alloc(&ls[k]).unwrap());
        kinds.push(k);
    }
    let pick = |r: &mut SplitMix64| objs[r.below(objs.len())];
    let mut weak_words = Vec::new();
    for (id, &a) in objs.iter().enumerate() {
        let words = match kinds[id] {
            0 => 4,
            2 => 8, // only the first words get edges: the rest stay 0
            _ => 0,
        };
        for w in 0..words {
            let v = match r.below(6) {
                0 => 0,
                1 => pick(&mut r) + 8 * r.below(2), // sometimes interior
                _ => pick(&mut r),
            };
            heap.write_word(a, w, v).unwrap();
            if (kinds[id] == 0 && w == 2) || (kinds[id] == 2 && w == 0) {
                weak_words.push((id, w));
            }
        }
    }
    let roots: Vec<usize> = (0..1 + r.below(4)).map(|_| pick(&mut r)).collect();
    let refs = (0..r.below(12))
        .map(|_| heap.new_weak_ref(pick(&mut r)).unwrap())
        .collect();
    let mut eph_owners = Vec::new();
    let ephs = (0..r.below(40))
        .map(|_| {
            let o = r.below(objs.len());
            let (k, v) = (pick(&mut r), pick(&mut r));
            eph_owners.push(o);
            heap.new_ephemeron(objs[o], k, v).unwrap()
        })
        .collect();
    let mut finals = BTreeSet::new();
    for _ in 0..r.below(10) {
        finals.insert(pick(&mut r));
    }
    for &f in &finals {
        heap.register_finalizer(f).unwrap();
    }
    let pinned: Vec<usize> = (0..r.below(2)).map(|_| pick(&mut r)).collect();
    for &p in &pinned {
        heap.pin(p).unwrap();
    }
    World {
        heap,
        objs,
        weak_words,
        refs,
        ephs,
        eph_owners,
        roots,
        finals: finals.into_iter().collect(),
        pinned,
    }
}

/// What a mark left, in object ids (positions in `World::objs`).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    marked: BTreeSet<usize>,
    /// Weak words of marked objects: the id they point into, or None when 0.
    weak_words: Vec<((usize, usize), Option<usize>)>,
    refs: Vec<Option<usize>>,
    /// Ephemerons of marked owners: (key id, value id), or None once cleared.
    ephs: Vec<Option<(usize, usize)>>,
    finalizable: Vec<usize>,
    still_registered: Vec<usize>,
}

struct Ids(HashMap<usize, usize>);

impl Ids {
    fn of(w: &World) -> Self {
        Ids(w.objs.iter().enumerate().map(|(i, &a)| (a, i)).collect())
    }
    /// The id of the object `v` points into (interior included).
    fn target(&self, heap: &Heap, v: usize) -> Option<usize> {
        heap.object_containing(v).map(|o| self.0[&o.addr()])
    }
}

fn observe(w: &World, stats: &MarkStats) -> Outcome {
    let ids = Ids::of(w);
    let h = &w.heap;
    let marked: BTreeSet<usize> = (0..w.objs.len())
        .filter(|&i| h.is_marked(w.objs[i]).unwrap())
        .collect();
    let weak_words = w
        .weak_words
        .iter()
        .filter(|(o, _)| marked.contains(o))
        .map(|&(o, k)| ((o, k), ids.target(h, h.read_word(w.objs[o], k).unwrap())))
        .collect();
    let refs = w
        .refs
        .iter()
        .map(|&r| h.weak_ref(r).unwrap().and_then(|v| ids.target(h, v)))
        .collect();
    let ephs = w
        .ephs
        .iter()
        .map(|&e| {
            h.ephemeron(e)
                .unwrap()
                .map(|(k, v)| (ids.target(h, k).unwrap(), ids.target(h, v).unwrap()))
        })
        .collect();
    let id_of = |a: &usize| ids.0[a];
    Outcome {
        marked,
        weak_words,
        refs,
        ephs,
        finalizable: stats.finalizable.iter().map(id_of).collect(),
        still_registered: h.finalizers().iter().map(id_of).collect(),
    }
}

/// The naive model: the expected outcome, from the heap before any mark, with sets.
fn model(w: &World) -> Outcome {
    let ids = Ids::of(w);
    let h = &w.heap;
    // Strong edges of every object, read through the public API.
    let edges: Vec<Vec<usize>> = w
        .objs
        .iter()
        .map(|&a| {
            let words = h.object(a).unwrap().bytes() / 8;
            (0..words)
                .filter(|&k| match h.object(a).unwrap() {
                    Object::Small(o) => o.span.object_ptr_bits(o.index) >> k & 1 == 1,
                    Object::Large(l) => l.layout().is_pointer_word(k),
                })
                .filter_map(|k| ids.target(h, h.read_word(a, k).unwrap()))
                .collect()
        })
        .collect();
    let reach = |m: &mut BTreeSet<usize>, from: &[usize]| {
        let mut stack: Vec<usize> = from.iter().copied().filter(|i| m.insert(*i)).collect();
        while let Some(i) = stack.pop() {
            for &t in &edges[i] {
                if m.insert(t) {
                    stack.push(t);
                }
            }
        }
    };
    let eph: Vec<(usize, usize, usize)> = w
        .ephs
        .iter()
        .zip(&w.eph_owners)
        .map(|(&e, &o)| {
            let (k, v) = h.ephemeron(e).unwrap().unwrap();
            (o, ids.target(h, k).unwrap(), ids.target(h, v).unwrap())
        })
        .collect();
    // `gone`: pairs the first clearing pass emptied (owner live, key dead before the
    // finalizable objects were resurrected): the second fixpoint cannot follow them.
    let fix = |m: &mut BTreeSet<usize>, gone: &dyn Fn(&(usize, usize, usize)) -> bool| loop {
        let vals: Vec<usize> = eph
            .iter()
            .filter(|e| !gone(e))
            .filter(|(o, k, v)| m.contains(o) && m.contains(k) && !m.contains(v))
            .map(|&(_, _, v)| v)
            .collect();
        if vals.is_empty() {
            break;
        }
        reach(m, &vals);
    };
    let root_ids: Vec<usize> = w
        .roots
        .iter()
        .chain(&w.pinned)
        .map(|&a| ids.0[&a])
        .collect();
    let mut m = BTreeSet::new();
    reach(&mut m, &root_ids);
    fix(&mut m, &|_| false);
    let dead_finals: Vec<usize> = w
        .finals
        .iter()
        .map(|a| ids.0[a])
        .filter(|i| !m.contains(i))
        .collect();
    let mut m2 = m.clone();
    if !dead_finals.is_empty() {
        reach(&mut m2, &dead_finals);
        fix(&mut m2, &|(o, k, _)| m.contains(o) && !m.contains(k));
    }
    let weak_target = |o: usize, k: usize| ids.target(h, h.read_word(w.objs[o], k).unwrap());
    let weak_words = w
        .weak_words
        .iter()
        .filter(|(o, _)| m2.contains(o))
        .map(|&(o, k)| {
            let t = weak_target(o, k);
            let cleared = t.is_some_and(|t| {
                (m.contains(&o) && !m.contains(&t)) || (m2.contains(&o) && !m2.contains(&t))
            });
            ((o, k), if cleared { None } else { t })
        })
        .collect();
    let refs = w
        .refs
        .iter()
        .map(|&r| {
            let t = ids.target(h, h.weak_ref(r).unwrap().unwrap()).unwrap();
            m.contains(&t).then_some(t)
        })
        .collect();
    let ephs = eph
        .iter()
        .map(|&(o, k, v)| {
            let cleared =
                (m.contains(&o) && !m.contains(&k)) || (m2.contains(&o) && !m2.contains(&k));
            (!cleared).then_some((k, v))
        })
        .collect();
    let mut finalizable = dead_finals.clone();
    finalizable.sort_by_key(|&i| w.objs[i]);
    Outcome {
        marked: m2,
        weak_words,
        refs,
        ephs,
        finalizable,
        still_registered: w
            .finals
            .iter()
            .map(|a| ids.0[a])
            .filter(|i| !dead_finals.contains(i))
            .collect(),
    }
}

/// A named way to mark a heap.
type Mark = (String, Box<dyn Fn(&Heap, &Roots) -> MarkStats>);

fn markers() -> Vec<Mark> {
    let mut v: Vec<Mark> = vec![(
        "reference".into(),
        Box::new(|h: &Heap, r: &Roots| reference::mark(h, r).unwrap()),
    )];
    for workers in [1, 2, 4, 16] {
        for algorithm in [Algorithm::GreenTea, Algorithm::Baseline] {
            for kernel in [KernelChoice::Scalar, KernelChoice::Auto] {
                let m = Marker::builder()
                    .workers(workers)
                    .algorithm(algorithm)
                    .kernel(kernel)
                    .build()
                    .unwrap();
                v.push((
                    format!("{algorithm:?} {} x{workers}", m.kernel()),
                    Box::new(move |h: &Heap, r: &Roots| m.mark(h, r).unwrap()),
                ));
            }
        }
    }
    v
}

#[test]
fn weak_ephemeron_finalizer_markers_match_model() {
    with_timeout(600, || {
        let markers = markers();
        // Thousands of heaps: each seed is checked with every marker variant (33 marks).
        for seed in 0..scaled(1000) as u64 {
            let n = 20 + (seed as usize * 37) % 300;
            let want = model(&build(seed, n));
            for (name, mark) in &markers {
                let w = build(seed, n);
                let stats = mark(&w.heap, &Roots::precise(w.roots.clone()));
                let got = observe(&w, &stats);
                assert_eq!(got, want, "seed {seed}, {name}");
                assert_eq!(
                    stats.objects_marked,
                    want.marked.len(),
                    "seed {seed}, {name}"
                );
            }
        }
    });
}

fn all_marks() -> Vec<Mark> {
    markers()
}

/// Chains of ephemerons (the value of one pair is the key of the next), of length 1 to 1000:
/// everything along the chain is kept, one fixpoint round per link, by every marker.
#[test]
fn ephemeron_chains_are_followed_to_the_end() {
    with_timeout(300, || {
        let l = Layout::all_pointers(16).unwrap();
        for n in [1, 2, 10, 1000] {
            for (name, mark) in all_marks().iter().step_by(3) {
                let mut heap = Heap::new();
                let map = heap.alloc(&l).unwrap();
                let keys: Vec<usize> = (0..=n).map(|_| heap.alloc(&l).unwrap()).collect();
                for i in 0..n {
                    heap.new_ephemeron(map, keys[i], keys[i + 1]).unwrap();
                }
                let stats = mark(&heap, &Roots::precise([map, keys[0]]));
                assert_eq!(stats.objects_marked, n + 2, "{name}, chain of {n}");
                assert_eq!(stats.ephemeron_rounds, n, "{name}, chain of {n}");
                // Without the first key, nothing of the chain survives, and every pair clears.
                let stats = mark(&heap, &Roots::precise([map]));
                assert_eq!(
                    stats.objects_marked, 1,
                    "{name}, chain of {n} without its key"
                );
                assert_eq!(stats.weak_cleared, n, "{name}");
            }
        }
    });
}

/// A cycle through ephemerons (a -> b, b -> a) keeps nothing alive by itself; with one key
/// reachable, both are.
#[test]
fn ephemeron_cycles_keep_nothing_alive_alone() {
    for (name, mark) in &all_marks() {
        let l = Layout::all_pointers(16).unwrap();
        let mut heap = Heap::new();
        let (map, a, b) = (
            heap.alloc(&l).unwrap(),
            heap.alloc(&l).unwrap(),
            heap.alloc(&l).unwrap(),
        );
        let e1 = heap.new_ephemeron(map, a, b).unwrap();
        let e2 = heap.new_ephemeron(map, b, a).unwrap();
        assert_eq!(
            mark(&heap, &Roots::precise([map])).objects_marked,
            1,
            "{name}"
        );
        assert_eq!(heap.ephemeron(e1).unwrap(), None, "{name}");
        assert_eq!(heap.ephemeron(e2).unwrap(), None, "{name}");
        let mut heap = Heap::new();
        let (map, a, b) = (
            heap.alloc(&l).unwrap(),
            heap.alloc(&l).unwrap(),
            heap.alloc(&l).unwrap(),
        );
        heap.new_ephemeron(map, a, b).unwrap();
        heap.new_ephemeron(map, b, a).unwrap();
        assert_eq!(
            mark(&heap, &Roots::precise([map, b])).objects_marked,
            3,
            "{name}"
        );
    }
}

/// A dead owner's pairs keep nothing alive, and the sweep that frees the owner drops them.
#[test]
fn ephemeron_of_dead_owner_is_dropped_by_sweep() {
    let l = Layout::all_pointers(16).unwrap();
    let mut heap = Heap::new();
    let (map, k, v) = (
        heap.alloc(&l).unwrap(),
        heap.alloc(&l).unwrap(),
        heap.alloc(&l).unwrap(),
    );
    let e = heap.new_ephemeron(map, k, v).unwrap();
    let m = Marker::builder().workers(2).build().unwrap();
    assert_eq!(
        m.mark(&heap, &Roots::precise([k])).unwrap().objects_marked,
        1
    );
    assert_eq!(heap.sweep().unwrap().freed_objects, 2);
    assert_eq!(heap.ephemeron(e), Err(sencha::spans::Error::InvalidHandle));
}

/// Finalization: an unreachable finalizable object is reported once, kept with what it
/// reaches for one more cycle, weak references to it cleared first; the next cycle frees it.
#[test]
fn finalizable_object_is_reported_once_and_kept_one_cycle() {
    let cell = Layout::all_pointers(16).unwrap().with_weak(0b10).unwrap();
    for (name, mark) in &all_marks() {
        let mut heap = Heap::new();
        let root = heap.alloc(&cell).unwrap();
        let f = heap.alloc(&cell).unwrap();
        let child = heap.alloc(&cell).unwrap();
        heap.write_word(f, 0, child).unwrap();
        heap.write_word(root, 1, f + 8).unwrap(); // a weak, interior pointer to f
        let w = heap.new_weak_ref(child).unwrap();
        heap.register_finalizer(f).unwrap();
        let stats = mark(&heap, &Roots::precise([root]));
        assert_eq!(stats.finalizable, vec![f], "{name}");
        assert_eq!(
            stats.objects_marked, 3,
            "{name}: f and its child survive this cycle"
        );
        assert_eq!(
            heap.read_word(root, 1).unwrap(),
            0,
            "{name}: weak word cleared first"
        );
        assert_eq!(
            heap.weak_ref(w).unwrap(),
            None,
            "{name}: weak ref cleared first"
        );
        assert!(heap.finalizers().is_empty(), "{name}: reported once");
        assert_eq!(heap.sweep().unwrap().freed_objects, 0, "{name}");
        let stats = mark(&heap, &Roots::precise([root]));
        assert!(stats.finalizable.is_empty(), "{name}: not reported again");
        assert_eq!(
            heap.sweep().unwrap().freed_objects,
            2,
            "{name}: freed next cycle"
        );
    }
}

/// Weak words keep a live target (interior offset and all) and are cleared when it dies.
#[test]
fn weak_word_keeps_live_target_and_clears_dead_one() {
    let cell = Layout::all_pointers(32).unwrap().with_weak(0b0011).unwrap();
    let m = Marker::builder().workers(2).build().unwrap();
    let mut heap = Heap::new();
    let holder = heap.alloc(&cell).unwrap();
    let (live, dead) = (heap.alloc(&cell).unwrap(), heap.alloc(&cell).unwrap());
    heap.write_word(holder, 0, live + 16).unwrap();
    heap.write_word(holder, 1, dead).unwrap();
    heap.write_word(holder, 2, live).unwrap(); // strong
    let stats = m.mark(&heap, &Roots::precise([holder])).unwrap();
    assert_eq!((stats.objects_marked, stats.weak_cleared), (2, 1));
    assert_eq!(heap.read_word(holder, 0).unwrap(), live + 16);
    assert_eq!(heap.read_word(holder, 1).unwrap(), 0);
    assert_eq!(heap.sweep().unwrap().freed_objects, 1);
}
