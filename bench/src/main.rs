//! `sencha-bench`: runs sencha's main job — mark the built-in workloads with the Green Tea
//! marker (every available kernel tier) and the classic baseline, check every result against
//! the reference oracle, and report the figures as a table, JSON and an SVG chart.
//!
//! `cargo run --release -p sencha-bench` runs the default job (the `tree` and `graph`
//! workloads); `--help` lists the options. With the `boehm` feature, `--peer boehm` also marks
//! the same workloads with the Boehm GC (bdwgc), in a child process per workload and worker
//! count (the hidden `serve-peer` subcommand; see `sencha_bench::peer`), its marks alternating
//! with sencha's.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sencha::{Algorithm, Heap, Kernel, KernelChoice, MarkStats, Marker, Roots, reference};
use sencha_bench::chart;
use sencha_bench::peer::{self, PeerKind, PeerProcess};
use sencha_bench::report::{PeerInfo, Report, Row, WorkloadInfo};
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
    /// Other collectors to run beside sencha on the same workloads, comma-separated: boehm
    /// (needs the `boehm` feature; tree, graph, list and shuffled only).
    #[arg(long, value_delimiter = ',')]
    peer: Vec<String>,
    /// Tests only: the peers unlink part of their workload, so their checks must fail.
    #[arg(long, hide = true)]
    peer_cut: bool,
    #[command(subcommand)]
    serve: Option<Serve>,
}

/// Hidden: the child side of `--peer`.
#[derive(Subcommand, Debug)]
enum Serve {
    /// Build one workload in a peer's heap and answer `mark` requests on stdin.
    #[command(name = "serve-peer", hide = true)]
    ServePeer {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        workload: String,
        #[arg(long)]
        scale: f64,
        #[arg(long)]
        cut: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Serve::ServePeer {
        peer,
        workload,
        scale,
        cut,
    }) = &args.serve
    {
        return serve_peer(peer, workload, *scale, *cut);
    }
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
                eprintln!(
                    "sencha-bench: a marker disagreed with the oracle (or a peer's check failed)"
                );
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
    let peers = parse_peers(&args.peer)?;
    let exe = if peers.is_empty() {
        None
    } else {
        Some(std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?)
    };

    let mut configs: Vec<(Algorithm, Kernel)> = Vec::new();
    if algorithms.contains(&Algorithm::Baseline) {
        configs.push((Algorithm::Baseline, Kernel::scalar()));
    }
    if algorithms.contains(&Algorithm::GreenTea) {
        configs.extend(kernels.iter().map(|&k| (Algorithm::GreenTea, k)));
    }

    let mut report = Report::new(cores);
    for kind in kinds {
        let scale = match (args.scale, args.heap_mib) {
            (Some(s), _) => s,
            (None, Some(mib)) => mib / kind.default_mib(),
            (None, None) => 1.0,
        };
        let start = Instant::now();
        let w = build_with_progress(kind, scale)?;
        let info = WorkloadInfo {
            name: kind.name().to_string(),
            objects: w.objects,
            live_mib: w.live_bytes as f64 / (1 << 20) as f64,
            build_ms: start.elapsed().as_secs_f64() * 1e3,
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
        for &p in &peers {
            if !p.supports(kind) {
                eprintln!(
                    "sencha-bench: {} has no version of workload {}; no {0} rows for it",
                    p.name(),
                    kind.name()
                );
            }
        }

        let mut target = Target {
            kind,
            scale,
            heap: &mut heap,
            roots: &w.roots,
            want: &want,
            objects: w.objects,
            live_bytes: w.live_bytes,
        };
        let peers: Vec<PeerKind> = peers.iter().copied().filter(|p| p.supports(kind)).collect();
        for &n in &workers {
            let job = Job {
                workers: n,
                configs: &configs,
                peers: &peers,
                exe: exe.as_deref(),
                repeat: args.repeat,
                peer_cut: args.peer_cut,
            };
            mark_at(&mut target, &job, &mut report)?;
        }
    }
    report.fill_speedups();
    Ok(report)
}

/// One built workload, as the marks see it.
struct Target<'a> {
    kind: Kind,
    scale: f64,
    heap: &'a mut Heap,
    roots: &'a Roots,
    /// The oracle's marked set.
    want: &'a [usize],
    objects: usize,
    live_bytes: usize,
}

/// What to run at one worker count.
struct Job<'a> {
    workers: usize,
    configs: &'a [(Algorithm, Kernel)],
    peers: &'a [PeerKind],
    exe: Option<&'a Path>,
    repeat: usize,
    peer_cut: bool,
}

/// Marks `t` `job.repeat` times with every configuration and every peer, interleaved: each
/// repetition marks once with every configuration, then once with every peer, so the slow
/// drifts of a shared machine hit all of them alike. Pushes one row per configuration and peer.
fn mark_at(t: &mut Target<'_>, job: &Job<'_>, report: &mut Report) -> Result<(), String> {
    let name = t.kind.name();
    let n = job.workers;
    let mut runs = Vec::with_capacity(job.configs.len());
    for &(algorithm, kernel) in job.configs {
        let marker = Marker::builder()
            .workers(n)
            .algorithm(algorithm)
            .kernel(KernelChoice::from(kernel))
            .build()
            .map_err(|e| e.to_string())?;
        runs.push(MarkerRun {
            marker,
            times: Vec::with_capacity(job.repeat),
            last: None,
            ok: true,
        });
    }
    let mut peer_runs = Vec::with_capacity(job.peers.len());
    for &p in job.peers {
        let exe = job.exe.ok_or("no program path")?;
        let process = PeerProcess::spawn(exe, p, t.kind, t.scale, n, job.peer_cut)
            .map_err(|e| e.to_string())?;
        peer_runs.push(PeerRun {
            peer: p,
            process,
            times: Vec::with_capacity(job.repeat),
            last: None,
            overflows: 0,
            ok: true,
        });
    }
    for _ in 0..job.repeat {
        for r in &mut runs {
            t.heap.clear_marks();
            let s = r.marker.mark(t.heap, t.roots).map_err(|e| e.to_string())?;
            r.ok &= t.heap.marked_objects() == t.want;
            r.times.push(s.wall);
            r.last = Some(s);
        }
        for p in &mut peer_runs {
            let m = p.process.mark().map_err(|e| e.to_string())?;
            // The peer's check passed, and it found sencha's heap: the same objects and
            // requested bytes.
            p.ok &= m.bad == 0 && m.objects == t.objects && m.bytes == t.live_bytes;
            p.overflows += m.overflows;
            p.times.push(Duration::from_secs_f64(m.ms / 1e3));
            p.last = Some(m);
        }
    }
    t.heap.clear_marks();
    for mut r in runs {
        let stats = r.last.take().ok_or("no mark ran")?;
        report
            .rows
            .push(Row::from_stats(name, &stats, median(&mut r.times), r.ok));
    }
    for mut p in peer_runs {
        let m = p.last.take().ok_or("no peer mark ran")?;
        let ready = p.process.ready.clone();
        p.process.finish().map_err(|e| e.to_string())?;
        report.rows.push(Row::peer(
            name,
            p.peer.name(),
            n,
            m.objects,
            m.bytes,
            median(&mut p.times),
            p.ok,
        ));
        report.peers.push(PeerInfo {
            peer: p.peer.name().to_string(),
            collector: ready.collector,
            workload: name.to_string(),
            workers: n,
            build_ms: ready.build_ms,
            warmups: ready.warmups,
            settled: ready.settled,
            heap_mib: m.heap_bytes as f64 / (1 << 20) as f64,
            overflows: ready.counts_overflows.then_some(p.overflows),
        });
    }
    Ok(())
}

/// One sencha marker configuration's marks on one workload and worker count.
struct MarkerRun {
    marker: Marker,
    times: Vec<Duration>,
    last: Option<MarkStats>,
    ok: bool,
}

/// One peer child's marks on one workload and worker count.
struct PeerRun {
    peer: PeerKind,
    process: PeerProcess,
    times: Vec<Duration>,
    last: Option<peer::PeerMark>,
    overflows: usize,
    ok: bool,
}

/// The hidden `serve-peer` subcommand: the child side of `--peer`.
fn serve_peer(peer: &str, workload: &str, scale: f64, cut: bool) -> ExitCode {
    let parsed = PeerKind::from_name(peer)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            let kind = Kind::from_name(workload)
                .ok_or_else(|| format!("unknown workload {workload:?}"))?;
            if !(scale.is_finite() && scale > 0.0 && scale <= 64.0 * 1024.0) {
                return Err(format!("--scale must be a positive number, not {scale}"));
            }
            Ok((p, kind))
        });
    let (peer, kind) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sencha-bench serve-peer: {e}");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    match peer::serve(
        peer,
        kind,
        scale,
        cut,
        &mut stdin.lock(),
        &mut stdout.lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sencha-bench serve-peer: {e}");
            ExitCode::FAILURE
        }
    }
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

fn parse_peers(names: &[String]) -> Result<Vec<PeerKind>, String> {
    let mut peers = Vec::new();
    for n in names {
        let p = PeerKind::from_name(n.trim()).map_err(|e| e.to_string())?;
        if !peers.contains(&p) {
            peers.push(p);
        }
    }
    Ok(peers)
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
