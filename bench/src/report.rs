//! The CLI's results: rows of one mark configuration each, as a table or JSON.

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
    /// Build time in ms (0 when not measured).
    pub build_ms: f64,
}

/// One marker configuration on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// `green-tea`, `baseline` or `reference`.
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
    /// Whether the marked set equals the oracle's.
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

/// Everything one CLI run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Cores the OS reports.
    pub cores: usize,
    /// The kernel tier detection picked.
    pub detected_tier: String,
    /// Workloads, in run order.
    pub workloads: Vec<WorkloadInfo>,
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
            rows: Vec::new(),
        }
    }

    /// Fills each row's speed-up against the baseline of the same workload and worker count.
    pub fn fill_speedups(&mut self) {
        let base: Vec<(String, usize, f64)> = self
            .rows
            .iter()
            .filter(|r| r.marker == "baseline")
            .map(|r| (r.workload.clone(), r.workers, r.ms))
            .collect();
        for r in &mut self.rows {
            r.speedup = base
                .iter()
                .find(|(w, n, _)| *w == r.workload && *n == r.workers)
                .map(|(_, _, ms)| ms / r.ms.max(1e-9));
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
                "{}: {} objects, {:.1} MiB live",
                w.name, w.objects, w.live_mib
            );
        }
        let _ = writeln!(
            s,
            "\n{:<9} {:<10} {:<6} {:>3} {:>9} {:>8} {:>7} {:>10} {:>8} {:>8} {:>9} {:>7} {:>6}",
            "workload",
            "marker",
            "tier",
            "wkr",
            "ms",
            "MiB/s",
            "vs base",
            "objects",
            "dense",
            "sparse",
            "single",
            "steals",
            "oracle"
        );
        for r in &self.rows {
            let speedup = r.speedup.map_or("-".to_string(), |x| format!("{x:.2}x"));
            let _ = writeln!(
                s,
                "{:<9} {:<10} {:<6} {:>3} {:>9.2} {:>8.0} {:>7} {:>10} {:>8} {:>8} {:>9} {:>7} {:>6}",
                r.workload,
                r.marker,
                r.tier,
                r.workers,
                r.ms,
                r.mib_per_s,
                speedup,
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
