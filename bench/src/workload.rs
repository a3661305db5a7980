//! Workloads: seeded, reproducible heaps shared by the CLI, criterion and iai suites.
//!
//! Two are defined exactly, so that sencha can be compared with other collectors on the very
//! same heap:
//! - [`Kind::Tree`]: a perfect binary tree of 22 levels (2^22 − 1 nodes) of 32-byte nodes
//!   `{left, right, index, depth}`, allocated in depth-first pre-order. 128 MiB live.
//! - [`Kind::Graph`]: 4·2^20 objects, sizes drawn from the 25 default classes with weight
//!   `floor(2^20 / size)`, words 0 and 1 pointing to uniformly random objects; one root array
//!   (a single large object of N pointers) holds every object in allocation order. splitmix64
//!   seed 42: first all N class draws (`r % W`), then the 2·N edge draws (`% N`). ~398 MiB live.
//!
//! The others stress the known worst cases of span marking and the large-object path:
//! [`Kind::List`] (2^22 cells linked in allocation order, head first), [`Kind::Shuffled`]
//! (the tree, nodes allocated in random order), [`Kind::Arrays`] (large pointer arrays,
//! scanned in chunks) and
//! [`Kind::Document`] (a parsed-JSON-like tree of maps, arrays and noscan strings).
//! `scale` multiplies each one's object count.

use sencha::testing::SplitMix64;
use sencha::{Heap, Layout, Roots};

/// A workload's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Perfect binary tree, depth-first allocation order.
    Tree,
    /// Random graph of mixed sizes with a root array.
    Graph,
    /// One long singly linked list.
    List,
    /// The tree with its nodes allocated in random order.
    Shuffled,
    /// Large pointer arrays over small objects.
    Arrays,
    /// A parsed-JSON-like document tree.
    Document,
}

impl Kind {
    /// Every workload.
    pub const ALL: [Kind; 6] = [
        Kind::Tree,
        Kind::Graph,
        Kind::List,
        Kind::Shuffled,
        Kind::Arrays,
        Kind::Document,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tree => "tree",
            Kind::Graph => "graph",
            Kind::List => "list",
            Kind::Shuffled => "shuffled",
            Kind::Arrays => "arrays",
            Kind::Document => "document",
        }
    }

    /// The workload named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Live MiB at scale 1 (approximate for the random ones).
    pub fn default_mib(self) -> f64 {
        match self {
            Kind::Tree | Kind::Shuffled => 128.0,
            Kind::Graph => 398.0,
            Kind::List => 64.0,
            Kind::Arrays => 160.0,
            Kind::Document => 150.0,
        }
    }
}

/// A built workload.
#[derive(Debug)]
pub struct Workload {
    /// Which one.
    pub kind: Kind,
    /// The heap.
    pub heap: Heap,
    /// Its roots.
    pub roots: Roots,
    /// Objects allocated (all reachable).
    pub objects: usize,
    /// Bytes allocated (all reachable).
    pub live_bytes: usize,
}

/// Builds `kind` at `scale` (1.0 = the defined size). `progress` is called with a fraction
/// done from time to time.
///
/// # Errors
/// An allocation failure, as a message.
pub fn build(kind: Kind, scale: f64, progress: &mut dyn FnMut(f64)) -> Result<Workload, String> {
    let mut heap = Heap::new();
    let roots = match kind {
        Kind::Tree => tree(&mut heap, tree_nodes(scale), false, progress),
        Kind::Shuffled => tree(&mut heap, tree_nodes(scale), true, progress),
        Kind::Graph => graph(&mut heap, graph_objects(scale), progress),
        Kind::List => list(&mut heap, list_cells(scale), progress),
        Kind::Arrays => arrays(&mut heap, count(64, scale), progress),
        Kind::Document => document(&mut heap, count(1 << 20, scale), progress),
    }
    .map_err(|e| format!("building {}: {e}", kind.name()))?;
    let stats = heap.stats();
    Ok(Workload {
        kind,
        heap,
        roots,
        objects: stats.objects(),
        live_bytes: stats.bytes(),
    })
}

fn count(base: usize, scale: f64) -> usize {
    ((base as f64 * scale).round() as usize).max(1)
}

/// Tree levels for `scale`: 22 at scale 1, one more level per doubling.
pub fn levels(scale: f64) -> u32 {
    (22.0 + scale.max(1e-6).log2()).round().clamp(1.0, 30.0) as u32
}

/// Nodes of the tree (and of the shuffled tree) at `scale`: 2^[`levels`] − 1.
pub fn tree_nodes(scale: f64) -> usize {
    (1usize << levels(scale)) - 1
}

/// Objects of the graph at `scale`, not counting its root array: 4·2^20 at scale 1.
pub fn graph_objects(scale: f64) -> usize {
    count(4 << 20, scale)
}

/// Cells of the list at `scale`: 4·2^20 at scale 1.
pub fn list_cells(scale: f64) -> usize {
    count(4 << 20, scale)
}

/// The seed of the graph's splitmix64 stream.
pub const GRAPH_SEED: u64 = 42;
/// The seed of the shuffled tree's splitmix64 stream.
pub const SHUFFLE_SEED: u64 = 7;

/// The order in which the `n` nodes of the tree are allocated: the `j`-th node allocated is
/// node `order[j]`; node `k`'s children are nodes `2k+1` and `2k+2` (the workloads use
/// perfect trees, `n = 2^levels − 1`; the order is a permutation of `0..n` for any `n`).
///
/// Unshuffled, that is depth-first pre-order (a node, its whole left subtree, its whole right
/// subtree). Shuffled, node `k` gets the `perm[k]`-th allocation, where `perm` is the identity
/// shuffled by Fisher–Yates from splitmix64 seed [`SHUFFLE_SEED`] (`i` from `n − 1` down to 1,
/// swap with `below(i + 1)`). sencha's heap and the peers' heaps are built from this one order.
pub fn tree_alloc_order(n: usize, shuffle: bool) -> Vec<usize> {
    let mut order = Vec::with_capacity(n);
    if shuffle {
        let mut perm: Vec<usize> = (0..n).collect();
        let mut r = SplitMix64::new(SHUFFLE_SEED);
        for i in (1..n).rev() {
            perm.swap(i, r.below(i + 1));
        }
        order.resize(n, 0);
        for (k, &j) in perm.iter().enumerate() {
            order[j] = k;
        }
    } else if n > 0 {
        let mut stack = vec![0usize];
        while let Some(k) = stack.pop() {
            order.push(k);
            // Right first, so the left subtree is allocated first.
            stack.extend([2 * k + 2, 2 * k + 1].into_iter().filter(|&c| c < n));
        }
    }
    order
}

/// The random graph's plan, as the module docs define it: each object's default class (an
/// index into [`sencha::SizeClass::DEFAULTS`]) and the objects its words 0 and 1 point to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphPlan {
    /// Object `i`'s class index, in allocation order.
    pub class: Vec<u8>,
    /// Object `i`'s two edges.
    pub edges: Vec<[usize; 2]>,
}

impl GraphPlan {
    /// The plan of `n` objects: splitmix64 seed [`GRAPH_SEED`], first the `n` class draws
    /// (`r % W` over weights `floor(2^20 / size)`), then the `2n` edge draws (`% n`).
    pub fn new(n: usize) -> Self {
        let weights: Vec<u64> = sencha::SizeClass::DEFAULTS
            .iter()
            .map(|c| (1u64 << 20) / c.bytes() as u64)
            .collect();
        let total: u64 = weights.iter().sum();
        let mut r = SplitMix64::new(GRAPH_SEED);
        let class = (0..n)
            .map(|_| {
                let mut x = r.next_u64() % total;
                let mut ci = 0;
                while x >= weights[ci] {
                    x -= weights[ci];
                    ci += 1;
                }
                ci as u8
            })
            .collect();
        let edges = (0..n)
            .map(|_| {
                let a = (r.next_u64() % n as u64) as usize;
                let b = (r.next_u64() % n as u64) as usize;
                [a, b]
            })
            .collect();
        GraphPlan { class, edges }
    }

    /// Object `i`'s size in bytes.
    pub fn bytes(&self, i: usize) -> usize {
        sencha::SizeClass::DEFAULTS[usize::from(self.class[i])].bytes()
    }
}

type Built = Result<Roots, sencha::spans::Error>;

/// The tree: node `{left, right, index, depth}`, pre-order (or shuffled) allocation.
fn tree(heap: &mut Heap, n: usize, shuffle: bool, progress: &mut dyn FnMut(f64)) -> Built {
    let node = Layout::with_pointers(32, 0b11)?;
    // Node k's children are 2k+1 and 2k+2 (heap order); `addr[k]` is its address.
    let mut addr = vec![0usize; n];
    for k in tree_alloc_order(n, shuffle) {
        addr[k] = heap.alloc(&node)?;
    }
    progress(0.5);
    for k in 0..n {
        let (l, r) = (2 * k + 1, 2 * k + 2);
        if r < n {
            heap.write_word(addr[k], 0, addr[l])?;
            heap.write_word(addr[k], 1, addr[r])?;
        }
        heap.write_word(addr[k], 2, k)?;
        heap.write_word(
            addr[k],
            3,
            (usize::BITS - (k + 1).leading_zeros() - 1) as usize,
        )?;
        if k % (1 << 18) == 0 {
            progress(0.5 + 0.5 * k as f64 / n as f64);
        }
    }
    Ok(Roots::precise([addr[0]]))
}

/// The random graph, exactly as the module docs define it ([`GraphPlan`]).
fn graph(heap: &mut Heap, n: usize, progress: &mut dyn FnMut(f64)) -> Built {
    let layouts: Vec<Layout> = sencha::SizeClass::DEFAULTS
        .iter()
        .map(|c| Layout::with_pointers(c.bytes(), 0b11))
        .collect::<Result<_, _>>()?;
    let plan = GraphPlan::new(n);
    progress(0.2);
    let mut objs = Vec::with_capacity(n);
    for (i, &c) in plan.class.iter().enumerate() {
        objs.push(heap.alloc(&layouts[usize::from(c)])?);
        if i % (1 << 18) == 0 {
            progress(0.2 + 0.3 * i as f64 / n as f64);
        }
    }
    for (i, (&o, &[a, b])) in objs.iter().zip(&plan.edges).enumerate() {
        heap.write_word(o, 0, objs[a])?;
        heap.write_word(o, 1, objs[b])?;
        if i % (1 << 18) == 0 {
            progress(0.5 + 0.3 * i as f64 / n as f64);
        }
    }
    let root = heap.alloc(&Layout::all_pointers(8 * n)?)?;
    for (i, &o) in objs.iter().enumerate() {
        heap.write_word(root, i, o)?;
    }
    progress(1.0);
    Ok(Roots::precise([root]))
}

/// One list of `n` cons cells `{next, value}`, linked in allocation order: the head is the
/// first cell allocated (value 0), each cell points to the one allocated after it.
fn list(heap: &mut Heap, n: usize, progress: &mut dyn FnMut(f64)) -> Built {
    let cell = Layout::with_pointers(16, 0b01)?;
    let head = heap.alloc(&cell)?;
    let mut prev = head;
    for i in 1..n {
        let c = heap.alloc(&cell)?;
        heap.write_word(c, 1, i)?;
        heap.write_word(prev, 0, c)?;
        prev = c;
        if i % (1 << 18) == 0 {
            progress(i as f64 / n as f64);
        }
    }
    Ok(Roots::precise([head]))
}

/// `arrays` pointer arrays of 256 Ki entries (2 MiB each) over small objects of mixed sizes,
/// each small object pointing to another array's element.
fn arrays(heap: &mut Heap, arrays: usize, progress: &mut dyn FnMut(f64)) -> Built {
    const LEN: usize = 256 << 10;
    let mut r = SplitMix64::new(3);
    let small = [
        Layout::with_pointers(16, 0b1)?,
        Layout::with_pointers(48, 0b101)?,
        Layout::no_pointers(32)?,
    ];
    let mut roots = Roots::new();
    let mut prev: Vec<usize> = Vec::new();
    for a in 0..arrays {
        let arr = heap.alloc(&Layout::all_pointers(8 * LEN)?)?;
        let mut elems = Vec::with_capacity(LEN / 4);
        for i in 0..LEN / 4 {
            let o = heap.alloc(&small[r.below(3)])?;
            if !prev.is_empty() && r.chance(1, 2) {
                let _ = heap.write_word(o, 0, prev[r.below(prev.len())]);
            }
            heap.write_word(arr, 4 * i, o)?;
            elems.push(o);
        }
        prev = elems;
        roots.push_precise(arr);
        progress(a as f64 / arrays as f64);
    }
    Ok(roots)
}

/// A document like parsed JSON: maps (arrays of key/value pairs), arrays, strings (noscan),
/// boxed numbers; `n` values in all.
fn document(heap: &mut Heap, n: usize, progress: &mut dyn FnMut(f64)) -> Built {
    let mut r = SplitMix64::new(11);
    let mut made = 0usize;
    let root = value(heap, &mut r, 0, n, &mut made, progress)?;
    Ok(Roots::precise([root]))
}

fn value(
    heap: &mut Heap,
    r: &mut SplitMix64,
    depth: usize,
    budget: usize,
    made: &mut usize,
    progress: &mut dyn FnMut(f64),
) -> Result<usize, sencha::spans::Error> {
    *made += 1;
    if made.is_multiple_of(1 << 16) {
        progress(*made as f64 / budget as f64);
    }
    let container = depth < 2 || (depth < 12 && r.chance(1, 4));
    if !container || *made >= budget {
        // A leaf: a string (noscan, 8..200 bytes) or a boxed number (16 bytes, noscan).
        return if r.chance(1, 2) {
            heap.alloc(&Layout::no_pointers(8 + r.below(200))?)
        } else {
            let b = heap.alloc(&Layout::no_pointers(16)?)?;
            heap.write_word(b, 0, r.next_u64() as usize >> 16)?;
            Ok(b)
        };
    }
    let is_map = r.chance(1, 2);
    let len = if depth == 0 { 256 } else { 1 + r.below(40) };
    // A map holds key/value pairs; an array holds values. Large ones become large objects.
    let slots = if is_map { 2 * len } else { len };
    let obj = heap.alloc(&Layout::all_pointers(8 * slots)?)?;
    for i in 0..len {
        if *made >= budget {
            break;
        }
        if is_map {
            let key = heap.alloc(&Layout::no_pointers(8 + r.below(24))?)?;
            heap.write_word(obj, 2 * i, key)?;
            let v = value(heap, r, depth + 1, budget, made, progress)?;
            heap.write_word(obj, 2 * i + 1, v)?;
        } else {
            let v = value(heap, r, depth + 1, budget, made, progress)?;
            heap.write_word(obj, i, v)?;
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_is_deterministic_for_a_seed() {
        for kind in Kind::ALL {
            let shape = |w: &Workload| {
                let mut s = w.heap.stats();
                s.reserved_bytes = 0;
                s.page_map_tables = 0; // depends on where the OS put the arenas
                (s, w.objects, w.live_bytes)
            };
            let a = build(kind, 1.0 / 64.0, &mut |_| {}).unwrap();
            let b = build(kind, 1.0 / 64.0, &mut |_| {}).unwrap();
            assert_eq!(shape(&a), shape(&b), "{}", kind.name());
            // Same reachable shape: the oracle marks the same number of objects and bytes.
            let ma = sencha::reference::mark(&a.heap, &a.roots).unwrap();
            let mb = sencha::reference::mark(&b.heap, &b.roots).unwrap();
            assert_eq!(
                (ma.objects_marked, ma.bytes_marked),
                (mb.objects_marked, mb.bytes_marked)
            );
            assert_eq!(
                ma.objects_marked,
                a.objects,
                "{}: every object is reachable",
                kind.name()
            );
        }
    }

    #[test]
    fn tree_alloc_order_is_pre_order_or_the_seeded_shuffle() {
        for n in [1usize, 2, 3, 7, 100, 1023] {
            // Pre-order: each node right after its parent's left subtree, or after its parent.
            let order = tree_alloc_order(n, false);
            let mut pos = vec![usize::MAX; n];
            for (j, &k) in order.iter().enumerate() {
                assert_eq!(pos[k], usize::MAX, "node {k} allocated twice");
                pos[k] = j;
            }
            assert_eq!(order.first(), Some(&0));
            let size = |k: usize| {
                let mut count = 0;
                let mut stack = vec![k];
                while let Some(x) = stack.pop() {
                    if x < n {
                        count += 1;
                        stack.extend([2 * x + 1, 2 * x + 2]);
                    }
                }
                count
            };
            for k in 0..n {
                if 2 * k + 1 < n {
                    assert_eq!(pos[2 * k + 1], pos[k] + 1, "n {n}: left child of {k}");
                }
                if 2 * k + 2 < n {
                    assert_eq!(
                        pos[2 * k + 2],
                        pos[k] + 1 + size(2 * k + 1),
                        "n {n}: right of {k}"
                    );
                }
            }
            // Shuffled: the definition written out — allocate in order, then Fisher–Yates over
            // the address array (seed 7) — gives node k the same allocation.
            let mut addr: Vec<usize> = (0..n).collect();
            let mut r = SplitMix64::new(7);
            for i in (1..n).rev() {
                addr.swap(i, r.below(i + 1));
            }
            let order = tree_alloc_order(n, true);
            let mut got = vec![usize::MAX; n];
            for (j, &k) in order.iter().enumerate() {
                got[k] = j;
            }
            assert_eq!(got, addr, "n {n}");
        }
    }

    #[test]
    fn graph_plan_follows_the_definition() {
        // The module docs' definition, written out: all class draws, then all edge draws.
        let n = 5000;
        let sizes = [
            16u64, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
            320, 352, 384, 416, 448, 480, 512,
        ];
        let weights: Vec<u64> = sizes.iter().map(|s| (1 << 20) / s).collect();
        let total: u64 = weights.iter().sum();
        let mut r = SplitMix64::new(42);
        let mut class = Vec::new();
        for _ in 0..n {
            let x = r.next_u64() % total;
            let (mut acc, mut c) = (0, 0);
            while x >= acc + weights[c] {
                acc += weights[c];
                c += 1;
            }
            class.push(sizes[c] as usize);
        }
        let plan = GraphPlan::new(n);
        for (i, &bytes) in class.iter().enumerate() {
            assert_eq!(plan.bytes(i), bytes, "object {i}");
            let a = (r.next_u64() % n as u64) as usize;
            let b = (r.next_u64() % n as u64) as usize;
            assert_eq!(plan.edges[i], [a, b], "object {i}");
        }
        // And sencha's heap is built from it: object count and bytes.
        let g = build(Kind::Graph, n as f64 / (4 << 20) as f64, &mut |_| {}).unwrap();
        assert_eq!(g.objects, n + 1);
        assert_eq!(g.live_bytes, class.iter().sum::<usize>() + 8 * n);
    }

    #[test]
    fn workload_tree_and_graph_match_their_definitions() {
        let t = build(Kind::Tree, 1.0 / 64.0, &mut |_| {}).unwrap();
        assert_eq!(t.objects, (1 << 16) - 1);
        assert_eq!(t.live_bytes, 32 * ((1 << 16) - 1));
        let g = build(Kind::Graph, 1.0 / 64.0, &mut |_| {}).unwrap();
        assert_eq!(g.objects, (4 << 20) / 64 + 1);
    }
}
