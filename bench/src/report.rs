//! The CLI's results: rows of one mark configuration each (sencha's markers and the peers'), as
//! a table or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use sencha::MarkStats;
use serde::Serialize;

/// One workload as built.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadInfo {
    /// Its name.
    pub name: String,
    /// Objects allocated (all reachable).
    pub objects: usize,
    /// Live MiB.
    pub live_mib: f64,
    /// Build time of sencha's heap, ms.
    pub build_ms: f64,
}

/// One peer child (a collector beside sencha) on one workload and worker count.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    /// The peer's name (`boehm`), as in the rows' `marker` column.
    pub peer: String,
    /// The collector and its version, e.g. `bdwgc 8.2.2`.
    pub collector: String,
    /// Workload name.
    pub workload: String,
    /// Marker threads.
    pub workers: usize,
    /// Build time of the peer's heap, ms.
    pub build_ms: f64,
    /// Warm-up collections before the timed ones.
    pub warmups: usize,
    /// Whether the warm-up settled (heap size unchanged, no mark-stack overflow).
    pub settled: bool,
    /// The peer's heap size after the last timed collection, MiB.
    pub heap_mib: f64,
    /// Mark-stack overflows during the timed collections (`None`: not counted).
    pub overflows: Option<usize>,
}

/// One marker configuration on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// `green-tea`, `baseline`, `reference`, or a peer (`boehm`).
    pub marker: String,
    /// Kernel tier (`-` for markers without span kernels).
    pub tier: String,
    /// Workers.
    pub workers: usize,
    /// Median wall time, ms.
    pub ms: f64,
    /// Marked MiB per second at the median time.
    pub mib_per_s: f64,
    /// Speed-up against the baseline at the same worker count (1 for the baseline itself).
    pub speedup: Option<f64>,
    /// Speed-up against the Boehm peer at the same worker count (`None` without it).
    pub vs_boehm: Option<f64>,
    /// Objects marked.
    pub objects: usize,
    /// MiB marked.
    pub marked_mib: f64,
    /// Dense span scans.
    pub dense: usize,
    /// Sparse span scans.
    pub sparse: usize,
    /// Single-object span scans.
    pub single: usize,
    /// Steals.
    pub steals: usize,
    /// Busy (not idle) ms of each worker, in the last repetition.
    pub busy_ms: Vec<f64>,
    /// Whether the marked set equals the oracle's (for a peer: whether its check of the
    /// marked heap passed and found sencha's object and byte counts).
    pub oracle_ok: bool,
}

impl Row {
    /// A row from a mark's stats and its median time.
    pub fn from_stats(workload: &str, s: &MarkStats, median: Duration, ok: bool) -> Self {
        let ms = median.as_secs_f64() * 1e3;
        let marked_mib = s.bytes_marked as f64 / (1 << 20) as f64;
        Row {
            workload: workload.to_string(),
            marker: s.algorithm.to_string(),
            tier: s.kernel.to_string(),
            workers: s.workers,
            ms,
            mib_per_s: if ms > 0.0 {
                marked_mib / (ms / 1e3)
            } else {
                0.0
            },
            speedup: None,
            vs_boehm: None,
            objects: s.objects_marked,
            marked_mib,
            dense: s.spans_dense,
            sparse: s.spans_sparse,
            single: s.spans_single,
            steals: s.steals,
            busy_ms: s.busy.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            oracle_ok: ok,
        }
    }
}

impl Row {
    /// A peer's row: its marked objects and bytes, the median of its mark times.
    pub fn peer(
        workload: &str,
        peer: &str,
        workers: usize,
        objects: usize,
        bytes: usize,
        median: Duration,
        ok: bool,
    ) -> Self {
        let ms = median.as_secs_f64() * 1e3;
        let marked_mib = bytes as f64 / (1 << 20) as f64;
        Row {
            workload: workload.to_string(),
            marker: peer.to_string(),
            tier: "-".to_string(),
            workers,
            ms,
            mib_per_s: if ms > 0.0 {
                marked_mib / (ms / 1e3)
            } else {
                0.0
            },
            speedup: None,
            vs_boehm: None,
            objects,
            marked_mib,
            dense: 0,
            sparse: 0,
            single: 0,
            steals: 0,
            busy_ms: Vec::new(),
            oracle_ok: ok,
        }
    }
}

/// Everything one CLI run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Cores the OS reports.
    pub cores: usize,
    /// The kernel tier detection picked.
    pub detected_tier: String,
    /// Workloads, in run order.
    pub workloads: Vec<WorkloadInfo>,
    /// Peer children, in run order.
    pub peers: Vec<PeerInfo>,
    /// One row per configuration.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report.
    pub fn new(cores: usize) -> Self {
        Report {
            cores,
            detected_tier: sencha::Kernel::detect().name().to_string(),
            workloads: Vec::new(),
            peers: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Fills each row's speed-ups against the baseline and against the Boehm peer of the same
    /// workload and worker count.
    pub fn fill_speedups(&mut self) {
        let ms_of = |rows: &[Row], marker: &str| -> Vec<(String, usize, f64)> {
            rows.iter()
                .filter(|r| r.marker == marker)
                .map(|r| (r.workload.clone(), r.workers, r.ms))
                .collect()
        };
        let base = ms_of(&self.rows, "baseline");
        let boehm = ms_of(&self.rows, "boehm");
        let find = |v: &[(String, usize, f64)], r: &Row| {
            v.iter()
                .find(|(w, n, _)| *w == r.workload && *n == r.workers)
                .map(|(_, _, ms)| ms / r.ms.max(1e-9))
        };
        for r in &mut self.rows {
            r.speedup = find(&base, r);
            r.vs_boehm = find(&boehm, r);
        }
    }

    /// Whether every marker agreed with the oracle.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(|r| r.oracle_ok)
    }

    /// The results as a text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sencha-bench: {} cores, detected kernel tier: {}\n",
            self.cores, self.detected_tier
        );
        for w in &self.workloads {
            let _ = writeln!(
                s,
                "{}: {} objects, {:.1} MiB live, built in {:.0} ms",
                w.name, w.objects, w.live_mib, w.build_ms
            );
        }
        for p in &self.peers {
            let overflows = match p.overflows {
                Some(0) => String::new(),
                Some(n) => format!(", {n} mark-stack overflows in the timed marks"),
                None => ", mark-stack overflows not counted".to_string(),
            };
            let _ = writeln!(
                s,
                "{} ({}) {} x{}: built in {:.0} ms, {} warm-up collections{}, heap {:.1} MiB{}",
                p.peer,
                p.collector,
                p.workload,
                p.workers,
                p.build_ms,
                p.warmups,
                if p.settled { "" } else { " (not settled)" },
                p.heap_mib,
                overflows
            );
        }
        let peers = self.rows.iter().any(|r| r.vs_boehm.is_some());
        let _ = writeln!(
            s,
            "\n{:<9} {:<10} {:<6} {:>3} {:>9} {:>8} {:>7}{} {:>10} {:>8} {:>8} {:>9} {:>7} {:>6}",
            "workload",
            "marker",
            "tier",
            "wkr",
            "ms",
            "MiB/s",
            "vs base",
            if peers { " vs boehm" } else { "" },
            "objects",
            "dense",
            "sparse",
            "single",
            "steals",
            "oracle"
        );
        for r in &self.rows {
            let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
            let vs_boehm = if peers {
                format!(" {:>8}", ratio(r.vs_boehm))
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "{:<9} {:<10} {:<6} {:>3} {:>9.2} {:>8.0} {:>7}{} {:>10} {:>8} {:>8} {:>9} {:>7} {:>6}",
                r.workload,
                r.marker,
                r.tier,
                r.workers,
                r.ms,
                r.mib_per_s,
                ratio(r.speedup),
                vs_boehm,
                r.objects,
                r.dense,
                r.sparse,
                r.single,
                r.steals,
                if r.oracle_ok { "ok" } else { "WRONG" }
            );
        }
        s
    }

    /// The results as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
