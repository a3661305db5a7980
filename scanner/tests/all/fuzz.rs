//! Replays the fuzz targets' committed inputs through their check functions, on stable, on
//! every test run:
//! - `fuzz/seeds/<target>/`: starting corpora (random and hand-written inputs);
//! - `fuzz/regressions/<target>/`: inputs that once crashed a target, each kept after its fix.

use std::path::{Path, PathBuf};

/// A fuzz target's check function.
type Check = fn(&[u8]);

/// The targets, each with its check function.
const TARGETS: [(&str, Check); 4] = [
    ("span_layout", sencha::testing::check_kernels_from_bytes),
    ("heap_graph", sencha::testing::check_graph_from_bytes),
    (
        "register",
        sencha_spans::testing::check_registration_sequence,
    ),
    ("api", sencha::testing::check_api),
];

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(kind: &str) -> usize {
    let mut n = 0;
    for (target, check) in TARGETS {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("read input");
            eprintln!("replaying {}", path.display());
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_seeds_replay() {
    for (target, _) in TARGETS {
        assert!(
            !inputs("seeds", target).is_empty(),
            "no seeds for fuzz target {target}"
        );
    }
    replay("seeds");
}

#[test]
fn fuzz_regressions_replay() {
    replay("regressions");
}

#[test]
fn fuzz_checks_accept_random_inputs() {
    let mut r = sencha::testing::SplitMix64::new(2024);
    for len in [0usize, 1, 7, 8, 100, 1000, 5000] {
        let data: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
        for (_, check) in TARGETS {
            check(&data);
        }
    }
}
