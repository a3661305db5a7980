//! The CLI: its default job completes on a small heap with the oracle check passing, `--json`
//! parses, `--chart` writes an SVG, and bad arguments exit non-zero with a message.

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
    assert_eq!(v["workloads"].as_array().expect("workloads").len(), 2);
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("green-tea"));
    let _ = std::fs::remove_file(chart);
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
    ] {
        let out = cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}
