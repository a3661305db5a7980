//! Running a program and reporting what the collector did.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::alloc::Backend;
use crate::gc::summary;
use crate::vm::{Interp, LispError, Options};

/// What a run did: the figures every program prints at its end.
#[derive(Clone, Debug)]
pub struct Report {
    /// Which allocator.
    pub backend: Backend,
    /// The marker's kernel tier.
    pub kernel: &'static str,
    /// Marking threads.
    pub workers: usize,
    /// Collections.
    pub collections: usize,
    /// Mark times.
    pub mark: Vec<Duration>,
    /// Sweep times.
    pub sweep: Vec<Duration>,
    /// Whole pauses.
    pub pause: Vec<Duration>,
    /// The most bytes of pages the heap ever held.
    pub peak_heap: usize,
    /// The most live bytes after a collection.
    pub max_live: usize,
    /// The bound the policy promises for `max_live` (`GcState::bound`).
    pub bound: usize,
    /// Bytes allocated.
    pub allocated: u64,
    /// Objects allocated.
    pub objects: u64,
    /// Collections whose mark was checked against the interpreter's walk.
    pub checked: usize,
    /// Finalizer calls.
    pub finalizers_run: usize,
    /// Wall time of the whole program.
    pub wall: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (m0, m1, m2) = summary(&self.mark);
        let (s0, s1, s2) = summary(&self.sweep);
        let (p0, p1, p2) = summary(&self.pause);
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        writeln!(
            f,
            "gc: {:?} allocator, kernel {}, {} workers; {} collections, {} checked against the walk",
            self.backend, self.kernel, self.workers, self.collections, self.checked
        )?;
        writeln!(
            f,
            "gc: mark ms min/median/max {m0:.3}/{m1:.3}/{m2:.3}; sweep {s0:.3}/{s1:.3}/{s2:.3}; pause {p0:.3}/{p1:.3}/{p2:.3}"
        )?;
        writeln!(
            f,
            "gc: peak heap {} bytes ({:.1} MiB), max live {} bytes ({:.1} MiB), bound {:.1} MiB; allocated {} objects, {:.1} MiB; {} finalizers run; wall {:.0} ms",
            self.peak_heap,
            mib(self.peak_heap),
            self.max_live,
            mib(self.max_live),
            mib(self.bound),
            self.objects,
            self.allocated as f64 / (1 << 20) as f64,
            self.finalizers_run,
            self.wall.as_secs_f64() * 1e3
        )
    }
}

/// Runs `src` with program arguments `args`, writing the program's output to `out`.
///
/// After the program, the runtime checks that its peak heap stayed within the policy's bound
/// for the most live data it saw (`GcState::bound`): pages never reused, or objects never
/// freed, break it.
///
/// # Errors
/// The program's error, or a broken bound.
pub fn run_source(
    src: &str,
    args: Vec<String>,
    opts: &Options,
    out: Box<dyn Write>,
) -> Result<Report, LispError> {
    let start = Instant::now();
    let mut it = Interp::new(opts, out)?;
    it.args = args;
    let r = it.eval_source(src);
    it.flush()?;
    r?;
    it.store.sample();
    let f = it.store.figures;
    let report = Report {
        backend: it.store.backend(),
        kernel: it.marker.kernel().name(),
        workers: it.marker.workers(),
        collections: it.gc.collections,
        mark: it.gc.mark.clone(),
        sweep: it.gc.sweep.clone(),
        pause: it.gc.pause.clone(),
        peak_heap: f.peak,
        max_live: it.gc.max_live,
        bound: it.gc.bound(it.gc.max_live),
        allocated: f.total,
        objects: f.objects,
        checked: it.gc.checks_passed,
        finalizers_run: it.gc.finalizers_run,
        wall: start.elapsed(),
    };
    if report.peak_heap > report.bound {
        return Err(format!(
            "heap not bounded: peak {} bytes above the policy's {} for {} live bytes",
            report.peak_heap, report.bound, report.max_live
        )
        .into());
    }
    if opts.check && report.checked != report.collections {
        return Err("checking mode: a collection was not checked".into());
    }
    Ok(report)
}

/// Runs the program in file `path` (see [`run_source`]).
///
/// # Errors
/// As [`run_source`], and if the file cannot be read.
pub fn run_file(
    path: &Path,
    args: Vec<String>,
    opts: &Options,
    out: Box<dyn Write>,
) -> Result<Report, LispError> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    run_source(&src, args, opts, out)
}
