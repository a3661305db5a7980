//! The CLI: its default job completes on a small heap with the oracle check passing, `--json`
//! parses, `--chart` writes an SVG, and bad arguments exit non-zero with a message. With the
//! `boehm` feature (`cargo test -p sencha-bench --features boehm`), `--peer boehm` runs beside
//! sencha with its checks passing, and a cut workload makes them fail.

use std::process::Command;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sencha-bench"))
        .args(args)
        .output()
        .expect("run the CLI")
}

#[test]
fn cli_default_job_runs_and_agrees_with_the_oracle() {
    let out = cli(&["--heap-mib", "4", "--repeat", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "tree",
        "graph",
        "baseline",
        "green-tea",
        "reference",
        "vs base",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("WRONG"), "{stdout}");
    assert!(
        stdout
            .lines()
            .filter(|l| l.trim_end().ends_with(" ok"))
            .count()
            >= 8,
        "{stdout}"
    );
}

#[test]
fn cli_json_parses_and_chart_is_svg() {
    let chart = std::env::temp_dir().join(format!("sencha-cli-test-{}.svg", std::process::id()));
    let out = cli(&[
        "--workload",
        "list,document",
        "--heap-mib",
        "2",
        "--repeat",
        "2",
        "--workers",
        "1,3",
        "--json",
        "--chart",
        chart.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert!(rows.iter().all(|r| r["oracle_ok"] == true));
    assert!(
        rows.iter()
            .any(|r| r["workers"] == 3 && r["marker"] == "green-tea")
    );
    let workloads = v["workloads"].as_array().expect("workloads");
    assert_eq!(workloads.len(), 2);
    assert!(
        workloads
            .iter()
            .all(|w| w["build_ms"].as_f64().is_some_and(|ms| ms > 0.0)),
        "build time measured: {workloads:?}"
    );
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("green-tea"));
    let _ = std::fs::remove_file(chart);
}

/// `--kernel all` runs each available tier once, and each row names the tier that ran (a merge
/// once mapped every tier but avx512 to scalar).
#[test]
fn cli_each_requested_tier_runs() {
    let out = cli(&[
        "--workload",
        "tree",
        "--heap-mib",
        "1",
        "--repeat",
        "1",
        "--workers",
        "1",
        "--marker",
        "green-tea",
        "--kernel",
        "all",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let tiers: Vec<String> = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["marker"] == "green-tea")
        .map(|r| r["tier"].as_str().expect("tier name").to_string())
        .collect();
    let want: Vec<String> = sencha::Kernel::available()
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(tiers, want);
}

#[test]
fn cli_bad_arguments_fail_with_a_message() {
    for args in [
        &["--workers", "0"][..],
        &["--workload", "nope"],
        &["--repeat", "0"],
        &["--heap-mib", "-3"],
        &["--scale", "nan"],
        &["--kernel", "sse9"],
        &["--frobnicate"],
        &["--workers", "x"],
        &["--peer", "nope"],
        #[cfg(not(feature = "boehm"))]
        &["--peer", "boehm"],
    ] {
        let out = cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[cfg(feature = "boehm")]
mod boehm {
    use super::cli;

    const SHAPES: [&str; 4] = ["tree", "graph", "list", "shuffled"];

    #[test]
    fn cli_boehm_peer_runs_beside_sencha_and_its_checks_pass() {
        let chart =
            std::env::temp_dir().join(format!("sencha-cli-boehm-{}.svg", std::process::id()));
        let out = cli(&[
            "--workload",
            "tree,graph,list,shuffled",
            "--heap-mib",
            "2",
            "--repeat",
            "2",
            "--workers",
            "1,2",
            "--kernel",
            "scalar",
            "--peer",
            "boehm",
            "--json",
            "--chart",
            chart.to_str().expect("utf-8 path"),
        ]);
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        let rows = v["rows"].as_array().expect("rows");
        assert!(rows.iter().all(|r| r["oracle_ok"] == true), "{rows:?}");
        for shape in SHAPES {
            for workers in [1, 2] {
                let of = |marker: &str| {
                    rows.iter()
                        .find(|r| {
                            r["workload"] == shape
                                && r["workers"] == workers
                                && r["marker"] == marker
                        })
                        .unwrap_or_else(|| panic!("no {marker} row for {shape} x{workers}"))
                };
                let (boehm, sencha) = (of("boehm"), of("green-tea"));
                // The same heap: the peer reached sencha's objects and bytes.
                assert_eq!(boehm["objects"], sencha["objects"], "{shape} x{workers}");
                assert_eq!(
                    boehm["marked_mib"], sencha["marked_mib"],
                    "{shape} x{workers}"
                );
                assert!(boehm["ms"].as_f64().is_some_and(|ms| ms > 0.0));
                assert_eq!(boehm["vs_boehm"], 1.0);
                assert!(sencha["vs_boehm"].as_f64().is_some_and(|x| x > 0.0));
            }
        }
        let peers = v["peers"].as_array().expect("peers");
        assert_eq!(peers.len(), 8, "one child per shape and worker count");
        for p in peers {
            assert!(
                p["collector"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("bdwgc "))
            );
            assert_eq!(p["settled"], true, "{p}");
            assert!(p["warmups"].as_u64().is_some_and(|n| n >= 2), "{p}");
            assert!(p["overflows"].is_u64(), "overflows are counted: {p}");
        }
        let svg = std::fs::read_to_string(&chart).expect("chart written");
        assert!(svg.contains("boehm") && svg.contains("bdwgc"));
        let _ = std::fs::remove_file(chart);
    }

    #[test]
    fn cli_boehm_table_shows_the_peer_rows() {
        let out = cli(&[
            "--workload",
            "list",
            "--heap-mib",
            "1",
            "--repeat",
            "1",
            "--workers",
            "2",
            "--peer",
            "boehm",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("vs boehm"), "{stdout}");
        let row = stdout
            .lines()
            .find(|l| l.starts_with("list") && l.split_whitespace().nth(1) == Some("boehm"))
            .unwrap_or_else(|| panic!("no boehm row in:\n{stdout}"));
        assert!(row.trim_end().ends_with(" ok"), "{row}");
    }

    #[test]
    fn cli_boehm_check_fails_when_the_workload_is_cut() {
        for shape in SHAPES {
            let out = cli(&[
                "--workload",
                shape,
                "--heap-mib",
                "1",
                "--repeat",
                "1",
                "--workers",
                "1",
                "--marker",
                "green-tea",
                "--kernel",
                "scalar",
                "--peer",
                "boehm",
                "--peer-cut",
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{shape}: a cut heap must fail:\n{stdout}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            let row = stdout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some("boehm"))
                .unwrap_or_else(|| panic!("{shape}: no boehm row in:\n{stdout}"));
            assert!(row.trim_end().ends_with("WRONG"), "{shape}: {row}");
            // sencha's own rows are untouched.
            assert!(
                stdout
                    .lines()
                    .filter(|l| l.contains("green-tea"))
                    .all(|l| l.trim_end().ends_with(" ok")),
                "{stdout}"
            );
        }
    }

    #[test]
    fn cli_boehm_peer_child_rejects_bad_requests() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_sencha-bench"))
            .args(["serve-peer", "--peer", "boehm", "--workload", "list"])
            .args(["--scale", "0.001"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"mark\nbogus\n")
            .expect("send");
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 3, "{stdout}");
        assert_eq!(lines[0]["ready"]["check"]["bad"], 0);
        assert_eq!(lines[1]["mark"]["bad"], 0);
        assert_eq!(lines[1]["mark"]["objects"], 4194);
        assert!(
            lines[2]["error"]
                .as_str()
                .is_some_and(|e| e.contains("bogus"))
        );
        assert!(!out.status.success());
        // An unknown workload is an error before anything is built.
        let out = Command::new(env!("CARGO_BIN_EXE_sencha-bench"))
            .args(["serve-peer", "--peer", "boehm", "--workload", "arrays"])
            .args(["--scale", "0.001"])
            .output()
            .expect("run");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("no version of workload arrays"));
    }
}
