//! Collection: when, with which roots, and what happens around sencha's mark and sweep.
//!
//! One collection (`Interp::collect`), always at the interpreter's safe point:
//! 1. **Roots**: every heap pointer in the value stack, the globals, the constant pool, the
//!    finalizer procedures and the finalizers waiting to run (`Interp::roots`): precise roots,
//!    each the first byte of an allocated object.
//! 2. In checking mode, the interpreter's **own reachability walk** (`Interp::reachable`):
//!    the objects reachable from the roots by the fields each object kind has (not by the
//!    `Layout`s given to sencha), ephemerons to their fixpoint, then the unreachable objects
//!    with a finalizer and what they reach, as sencha's phases do (docs/RUNTIME_GUIDE.md §7).
//! 3. **Mark**: `sencha::Marker::mark`. It also clears dead weak words (weak boxes) and dead
//!    ephemerons, and reports the finalizable objects.
//! 4. In checking mode, sencha's marked set, finalizable list, cleared weak boxes and
//!    ephemerons are compared with the walk's, exactly.
//! 5. **Finalizers** reported by the mark are queued with their procedures (run after this
//!    collection, at the same safe point); weak tables drop the entries whose key died, and
//!    tables that died are forgotten (the sweep drops their ephemerons).
//! 6. **Sweep**: `Heap::sweep`, then the allocator rebuilds its free slots, unregisters empty
//!    spans and returns their pages (`Store::after_sweep`).
//! 7. **Budget**: the next collection comes after `max(min_budget, live * growth)` bytes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sencha::Roots;
use sencha::spans::Ephemeron;

use crate::object::Kind;
use crate::value::Value;
use crate::vm::{Interp, LispError, Options};

/// A weak table's state, kept beside its heap object: each entry is an ephemeron
/// `(table, key, cell)` whose cell is a box holding the value, so that the value may be any
/// Lisp value (an ephemeron's value must be an object).
#[derive(Debug)]
pub(crate) struct WeakTable {
    /// The table object (the ephemerons' owner).
    pub(crate) obj: usize,
    /// Key address -> (ephemeron, value box address).
    pub(crate) entries: HashMap<usize, (Ephemeron, usize)>,
}

/// Collection policy and figures.
#[derive(Debug)]
pub struct GcState {
    /// Checking mode.
    pub check: bool,
    /// One line per collection on standard error.
    pub trace: bool,
    /// The smallest budget.
    pub min_budget: usize,
    /// Budget per live byte.
    pub growth: f64,
    /// Collections so far.
    pub collections: usize,
    /// Mark times (sencha's mark, with its weak, ephemeron and finalizer phases).
    pub mark: Vec<Duration>,
    /// Sweep times (sencha's sweep and the allocator's rebuild).
    pub sweep: Vec<Duration>,
    /// Whole pauses (roots to budget, checking excluded).
    pub pause: Vec<Duration>,
    /// Live bytes after the last collection.
    pub live: usize,
    /// The most live bytes after any collection.
    pub max_live: usize,
    /// Collections whose mark agreed with the interpreter's walk (checking mode).
    pub checks_passed: usize,
    /// Finalizers reported by marks.
    pub finalizable: usize,
    /// Finalizer calls made.
    pub finalizers_run: usize,
    /// Weak words and ephemerons cleared by marks.
    pub weak_cleared: usize,
    /// Objects freed by sweeps.
    pub freed_objects: u64,
}

impl GcState {
    pub(crate) fn new(opts: &Options) -> GcState {
        GcState {
            check: opts.check,
            trace: opts.trace,
            min_budget: opts.min_budget,
            growth: opts.growth,
            collections: 0,
            mark: Vec::new(),
            sweep: Vec::new(),
            pause: Vec::new(),
            live: 0,
            max_live: 0,
            checks_passed: 0,
            finalizable: 0,
            finalizers_run: 0,
            weak_cleared: 0,
            freed_objects: 0,
        }
    }

    /// The budget after a collection that left `live` bytes.
    pub fn budget_for(&self, live: usize) -> usize {
        self.min_budget.max((live as f64 * self.growth) as usize)
    }

    /// The heap this policy promises for a program whose live data never exceed `live`
    /// bytes: the live data and one budget of new objects, at no worse than half occupancy
    /// of the pages that hold them (partly filled spans), plus 1 MiB for the interpreter's
    /// own constant data and one page per size class in use. A program asserts its peak heap
    /// against this (`heap-bound`); a leak — spans never reused, objects never freed —
    /// breaks it as soon as it outgrows the policy.
    pub fn bound(&self, live: usize) -> usize {
        2 * (live + self.budget_for(live)) + (1 << 20)
    }
}

/// What the interpreter's own walk found.
struct Oracle {
    marked: Vec<usize>,
    set: HashSet<usize>,
    finalizable: Vec<usize>,
    /// Weak boxes reached since the last clearing pass, with their targets before the mark.
    weak_found: Vec<(usize, Value)>,
    /// Every reachable weak box and what its word must hold after the mark.
    weak_want: Vec<(usize, Value)>,
    /// `(table, key)` of the entries a clearing pass clears.
    cleared: HashSet<(usize, usize)>,
}

/// Median of `v` (sorted in place), in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `(min, median, max)` in milliseconds; zeros for none.
pub fn summary(v: &[Duration]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    (ms(s[0]), ms(s[s.len() / 2]), ms(s[s.len() - 1]))
}

impl Interp {
    /// One collection (module docs).
    ///
    /// # Errors
    /// The marker's or the heap's (a bug in the runtime or in sencha), or, in checking mode,
    /// a disagreement between sencha's mark and the interpreter's walk.
    pub(crate) fn collect(&mut self) -> Result<(), LispError> {
        self.store.sample();
        let start = Instant::now();
        let mut roots = self.roots();
        roots.extend(self.store.heap().pinned());
        let oracle = if self.gc.check {
            Some(self.reachable(&roots)?)
        } else {
            None
        };
        let checking = start.elapsed();
        let t = Instant::now();
        let stats = self
            .marker
            .mark(self.store.heap(), &Roots::precise(roots.iter().copied()))?;
        self.gc.mark.push(t.elapsed());
        let t = Instant::now();
        if let Some(o) = &oracle {
            self.check_mark(o, &stats.finalizable)?;
        }
        let checking = checking + t.elapsed();
        for &obj in &stats.finalizable {
            let proc = self
                .finalizers
                .remove(&obj)
                .ok_or_else(|| format!("finalizable object {obj:#x} has no procedure"))?;
            self.pending.push_back((Value::from_addr(obj), proc));
        }
        self.gc.finalizable += stats.finalizable.len();
        self.gc.weak_cleared += stats.weak_cleared;
        self.purge_tables()?;
        let t = Instant::now();
        let swept = self.store.heap_mut().sweep()?;
        self.store.after_sweep(&swept)?;
        self.gc.sweep.push(t.elapsed());
        self.gc.freed_objects += (swept.freed_objects + swept.freed_large_objects) as u64;
        let live = self.store.heap().stats().bytes();
        self.gc.live = live;
        self.gc.max_live = self.gc.max_live.max(live);
        self.store.budget = self.gc.budget_for(live);
        self.store.gc_wanted = false;
        self.gc.collections += 1;
        self.gc.pause.push(start.elapsed().saturating_sub(checking));
        if self.gc.trace {
            eprintln!(
                "gc {}: {} roots, marked {} objects ({} bytes) in {:.3} ms, freed {} objects, \
                 live {} bytes, heap {} bytes, next budget {} bytes",
                self.gc.collections,
                roots.len(),
                stats.objects_marked,
                stats.bytes_marked,
                ms(stats.wall),
                swept.freed_objects + swept.freed_large_objects,
                live,
                self.store.figures.in_use,
                self.store.budget
            );
        }
        if self.gc.check {
            self.store.check_consistency()?;
            let mut ours: Vec<usize> = self.finalizers.keys().copied().collect();
            ours.sort_unstable();
            if ours != self.store.heap().finalizers() {
                return Err("check: the heap's finalizer registrations differ from ours".into());
            }
            self.gc.checks_passed += 1;
        }
        Ok(())
    }

    /// Forgets dead tables and drops the entries whose key died.
    fn purge_tables(&mut self) -> Result<(), LispError> {
        let mut dead_entries = Vec::new();
        for slot in &mut self.tables {
            let Some(t) = slot else { continue };
            if !self.store.heap().is_marked(t.obj)? {
                // The sweep frees the table and drops every ephemeron it owns.
                *slot = None;
                continue;
            }
            let heap = self.store.heap();
            t.entries.retain(|_, (e, _)| match heap.ephemeron(*e) {
                Ok(Some(_)) => true,
                _ => {
                    dead_entries.push(*e);
                    false
                }
            });
        }
        for e in dead_entries {
            self.store.heap_mut().drop_ephemeron(e)?;
        }
        Ok(())
    }

    /// Marks everything reachable from `from` in `o`, by each object kind's strong fields.
    fn trace(&self, from: &[usize], o: &mut Oracle) -> Result<(), LispError> {
        let mut stack: Vec<usize> = from.iter().copied().filter(|&a| o.set.insert(a)).collect();
        let mut children = Vec::new();
        while let Some(a) = stack.pop() {
            if self.store.heap().object(a).is_err() {
                return Err(
                    format!("check: {a:#x} is reachable but not an allocated object").into(),
                );
            }
            o.marked.push(a);
            let v = Value::from_addr(a);
            if self.store.header(a).0 == Kind::WeakBox {
                o.weak_found.push((a, self.store.field(v, 0)));
            }
            children.clear();
            self.store.strong_children(v, &mut children);
            for c in &children {
                let c = c.0 as usize;
                if o.set.insert(c) {
                    stack.push(c);
                }
            }
        }
        Ok(())
    }

    /// Ephemeron values to trace: of live tables, whose key is reached and value is not.
    fn ephemeron_round(&self, o: &Oracle) -> Result<Vec<usize>, LispError> {
        let mut values = Vec::new();
        for t in self.tables.iter().flatten() {
            if !o.set.contains(&t.obj) {
                continue;
            }
            for (&key, &(e, cell)) in &t.entries {
                if o.cleared.contains(&(t.obj, key)) {
                    continue;
                }
                let Some((k, v)) = self.store.heap().ephemeron(e)? else {
                    return Err("check: a table entry's ephemeron was cleared already".into());
                };
                if k != key || v != cell {
                    return Err("check: an ephemeron does not hold its entry's key and cell".into());
                }
                if o.set.contains(&key) && !o.set.contains(&cell) {
                    values.push(cell);
                }
            }
        }
        Ok(values)
    }

    fn fixpoint(&self, o: &mut Oracle) -> Result<(), LispError> {
        loop {
            let values = self.ephemeron_round(o)?;
            if values.is_empty() {
                return Ok(());
            }
            self.trace(&values, o)?;
        }
    }

    /// A clearing pass, as sencha makes one after each closure: weak boxes reached since the
    /// last pass lose a dead target; entries of reached tables whose key is dead are cleared
    /// (for good: a later resurrection of the key by a finalizer does not bring them back).
    fn clear_pass(&self, o: &mut Oracle) {
        for (wb, target) in std::mem::take(&mut o.weak_found) {
            let dead = target.addr().is_some_and(|t| !o.set.contains(&t));
            o.weak_want.push((wb, if dead { Value(0) } else { target }));
        }
        for t in self.tables.iter().flatten() {
            if o.set.contains(&t.obj) {
                for &key in t.entries.keys() {
                    if !o.set.contains(&key) {
                        o.cleared.insert((t.obj, key));
                    }
                }
            }
        }
    }

    /// The interpreter's own answer to "what will the mark keep?" (module docs, step 2), in
    /// sencha's phases: the closure of the roots, the ephemeron fixpoint, a clearing pass;
    /// then the unreachable objects with a finalizer, their closure, the fixpoint again and a
    /// second clearing pass.
    fn reachable(&self, roots: &[usize]) -> Result<Oracle, LispError> {
        let mut o = Oracle {
            marked: Vec::new(),
            set: HashSet::new(),
            finalizable: Vec::new(),
            weak_found: Vec::new(),
            weak_want: Vec::new(),
            cleared: HashSet::new(),
        };
        self.trace(roots, &mut o)?;
        self.fixpoint(&mut o)?;
        self.clear_pass(&mut o);
        let mut dead: Vec<usize> = self
            .finalizers
            .keys()
            .copied()
            .filter(|a| !o.set.contains(a))
            .collect();
        dead.sort_unstable();
        if !dead.is_empty() {
            self.trace(&dead, &mut o)?;
            self.fixpoint(&mut o)?;
            self.clear_pass(&mut o);
        }
        o.finalizable = dead;
        o.marked.sort_unstable();
        Ok(o)
    }

    /// Compares sencha's mark with the walk (module docs, step 4).
    fn check_mark(&self, o: &Oracle, finalizable: &[usize]) -> Result<(), LispError> {
        let heap = self.store.heap();
        let got = heap.marked_objects();
        if got != o.marked {
            let theirs: HashSet<usize> = got.iter().copied().collect();
            let extra: Vec<String> = got
                .iter()
                .filter(|a| !o.set.contains(a))
                .take(5)
                .map(|&a| format!("{a:#x} ({:?})", self.store.header(a).0))
                .collect();
            let missing: Vec<String> = o
                .marked
                .iter()
                .filter(|a| !theirs.contains(a))
                .take(5)
                .map(|&a| format!("{a:#x} ({:?})", self.store.header(a).0))
                .collect();
            return Err(format!(
                "check: sencha marked {} objects, the walk reached {}; marked but unreachable: \
                 {extra:?}; reachable but unmarked: {missing:?}",
                got.len(),
                o.marked.len()
            )
            .into());
        }
        let mut fin = finalizable.to_vec();
        fin.sort_unstable();
        if fin != o.finalizable {
            return Err(format!(
                "check: sencha reported {} finalizable objects, the walk {}",
                fin.len(),
                o.finalizable.len()
            )
            .into());
        }
        for &(wb, want) in &o.weak_want {
            let now = self.store.field(Value::from_addr(wb), 0);
            if now != want {
                return Err(format!(
                    "check: weak box {wb:#x} holds {now:?} after the mark, expected {want:?}"
                )
                .into());
            }
        }
        for t in self.tables.iter().flatten() {
            if !o.set.contains(&t.obj) {
                continue;
            }
            for (&key, &(e, cell)) in &t.entries {
                let now = heap.ephemeron(e)?;
                let want = (!o.cleared.contains(&(t.obj, key))).then_some((key, cell));
                if now != want {
                    return Err(format!(
                        "check: ephemeron of key {key:#x} is {now:?} after the mark, expected {want:?}"
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp() -> Interp {
        let opts = Options {
            check: true,
            reserve: 1 << 28,
            workers: 2,
            ..Options::default()
        };
        Interp::new(&opts, Box::new(std::io::sink())).unwrap()
    }

    #[test]
    fn check_mark_detects_a_mark_that_missed_a_root() {
        let mut it = interp();
        it.eval_source("(define keep (list 1 2 3))").unwrap();
        let g = it.global_slot("keep");
        let keep = it.globals[g as usize].addr().unwrap();
        let roots = it.roots();
        let oracle = it.reachable(&roots).unwrap();
        let fewer: Vec<usize> = roots.iter().copied().filter(|&r| r != keep).collect();
        it.marker
            .mark(it.store.heap(), &Roots::precise(fewer))
            .unwrap();
        let err = it.check_mark(&oracle, &[]).unwrap_err();
        assert!(err.message.contains("reachable but unmarked"), "{err}");
        it.marker
            .mark(it.store.heap(), &Roots::precise(roots))
            .unwrap();
        it.check_mark(&oracle, &[]).unwrap();
    }

    #[test]
    fn collect_frees_garbage_and_keeps_roots() {
        let mut it = interp();
        it.eval_source("(define keep (iota 1000)) (define (junk) (iota 5000)) (junk)")
            .unwrap();
        let before = it.store.heap().stats().objects();
        it.collect().unwrap();
        let after = it.store.heap().stats().objects();
        assert!(after < before, "{after} < {before}");
        assert_eq!(it.gc.checks_passed, 1);
        let v = it.eval_source("(fold-left + 0 keep)").unwrap();
        assert_eq!(v.as_fixnum(), Some(499_500));
    }
}
