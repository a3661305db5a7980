//! `sencha-bench`: runs sencha's main job — mark the built-in workloads with the Green Tea
//! marker (every available kernel tier) and the classic baseline, check every result against
//! the reference oracle, and report the figures as a table, JSON and an SVG chart.
//!
//! `cargo run --release -p sencha-bench` runs the default job (the `tree` and `graph`
//! workloads); `--help` lists the options.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sencha::{Algorithm, Kernel, KernelChoice, MarkStats, Marker, reference};
use sencha_bench::chart;
use sencha_bench::report::{Report, Row, WorkloadInfo};
use sencha_bench::workload::{self, Kind};

/// Mark sencha's built-in workloads and report the figures.
#[derive(Parser, Debug)]
#[command(name = "sencha-bench", version, about)]
struct Args {
    /// Workloads to run, comma-separated: tree, graph, list, shuffled, arrays, document, all.
    #[arg(long, default_value = "tree,graph", value_delimiter = ',')]
    workload: Vec<String>,
    /// Size factor for every workload (1 = the defined sizes: tree 128 MiB, graph ~398 MiB).
    #[arg(long, conflicts_with = "heap_mib")]
    scale: Option<f64>,
    /// Approximate live MiB of each workload (sets the scale per workload).
    #[arg(long)]
    heap_mib: Option<f64>,
    /// Worker counts to run, comma-separated (default: 1 and the number of cores).
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Kernel tiers of the Green Tea marker, comma-separated: all (every available tier), auto,
    /// scalar, avx2, avx512.
    #[arg(long, default_value = "all")]
    kernel: String,
    /// Markers to run besides the oracle, comma-separated: baseline, green-tea.
    #[arg(long, default_value = "baseline,green-tea", value_delimiter = ',')]
    marker: Vec<String>,
    /// Marks per configuration; the table reports the median.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the results as a bar chart into this SVG file.
    #[arg(long)]
    chart: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            if let Some(path) = &args.chart {
                if let Err(e) = chart::draw(&report, path) {
                    eprintln!("sencha-bench: cannot draw the chart: {e}");
                    return ExitCode::FAILURE;
                }
                eprintln!("chart written to {}", path.display());
            }
            if report.all_ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!("sencha-bench: a marker disagreed with the oracle");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sencha-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<Report, String> {
    let kinds = parse_workloads(&args.workload)?;
    if args.repeat == 0 || args.repeat > 1000 {
        return Err(format!("--repeat must be 1 to 1000, not {}", args.repeat));
    }
    for (flag, v) in [("--scale", args.scale), ("--heap-mib", args.heap_mib)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0 && v <= 64.0 * 1024.0)
        {
            return Err(format!("{flag} must be a positive number, not {v}"));
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = if args.workers.is_empty() {
        vec![1, cores]
    } else {
        args.workers.clone()
    };
    workers.sort_unstable();
    workers.dedup();
    if let Some(&w) = workers.iter().find(|&&w| w == 0 || w > sencha::MAX_WORKERS) {
        return Err(format!(
            "--workers must be 1 to {}, not {w}",
            sencha::MAX_WORKERS
        ));
    }
    let kernels = parse_kernels(&args.kernel)?;
    let algorithms = parse_markers(&args.marker)?;

    let mut report = Report::new(cores);
    for kind in kinds {
        let scale = match (args.scale, args.heap_mib) {
            (Some(s), _) => s,
            (None, Some(mib)) => mib / kind.default_mib(),
            (None, None) => 1.0,
        };
        let w = build_with_progress(kind, scale)?;
        let info = WorkloadInfo {
            name: kind.name().to_string(),
            objects: w.objects,
            live_mib: w.live_bytes as f64 / (1 << 20) as f64,
            build_ms: 0.0,
        };
        // The oracle's marked set, once per workload.
        let mut heap = w.heap;
        heap.clear_marks();
        let oracle = reference::mark(&heap, &w.roots).map_err(|e| e.to_string())?;
        let want = heap.marked_objects();
        heap.clear_marks();
        report.workloads.push(info.clone());
        report
            .rows
            .push(Row::from_stats(&info.name, &oracle, oracle.wall, true));

        for &n in &workers {
            let mut configs: Vec<(Algorithm, Kernel)> = Vec::new();
            if algorithms.contains(&Algorithm::Baseline) {
                configs.push((Algorithm::Baseline, Kernel::scalar()));
            }
            if algorithms.contains(&Algorithm::GreenTea) {
                configs.extend(kernels.iter().map(|&k| (Algorithm::GreenTea, k)));
            }
            for (algorithm, kernel) in configs {
                let marker = Marker::builder()
                    .workers(n)
                    .algorithm(algorithm)
                    .kernel(KernelChoice::from(kernel))
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut times = Vec::with_capacity(args.repeat);
                let mut last: Option<MarkStats> = None;
                let mut ok = true;
                for _ in 0..args.repeat {
                    heap.clear_marks();
                    let s = marker.mark(&heap, &w.roots).map_err(|e| e.to_string())?;
                    ok &= heap.marked_objects() == want;
                    times.push(s.wall);
                    last = Some(s);
                }
                heap.clear_marks();
                let stats = last.expect("repeat >= 1");
                report
                    .rows
                    .push(Row::from_stats(&info.name, &stats, median(&mut times), ok));
            }
        }
    }
    report.fill_speedups();
    Ok(report)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn parse_workloads(names: &[String]) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for name in names {
        let name = name.trim();
        if name == "all" {
            kinds.extend(Kind::ALL);
            continue;
        }
        match Kind::from_name(name) {
            Some(k) => kinds.push(k),
            None => {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "unknown workload {name:?}; known: {}, all",
                    known.join(", ")
                ));
            }
        }
    }
    kinds.dedup();
    if kinds.is_empty() {
        return Err("no workload given".into());
    }
    Ok(kinds)
}

fn parse_markers(names: &[String]) -> Result<Vec<Algorithm>, String> {
    names
        .iter()
        .map(|n| match n.trim() {
            "baseline" => Ok(Algorithm::Baseline),
            "green-tea" => Ok(Algorithm::GreenTea),
            other => Err(format!(
                "unknown marker {other:?}; known: baseline, green-tea"
            )),
        })
        .collect()
}

/// Tiers from `--kernel`: a comma-separated list of names, `all` for every available tier.
fn parse_kernels(names: &str) -> Result<Vec<Kernel>, String> {
    let mut kernels = Vec::new();
    for name in names.split(',') {
        match name.trim().to_ascii_lowercase().as_str() {
            "all" => kernels.extend(Kernel::available()),
            other => kernels.push(Kernel::from_name(other).map_err(|e| e.to_string())?),
        }
    }
    let mut seen = Vec::new();
    kernels.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });
    Ok(kernels)
}

fn build_with_progress(kind: Kind, scale: f64) -> Result<workload::Workload, String> {
    let start = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("building {msg:9} [{bar:40}] {percent:>3}%")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message(kind.name());
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let w = workload::build(kind, scale, &mut |f| {
        if tty && !shown && start.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
    })?;
    bar.finish_and_clear();
    Ok(w)
}
