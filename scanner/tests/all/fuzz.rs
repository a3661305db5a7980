//! Replays the fuzz targets' committed inputs through their check functions, on stable, on
//! every test run:
//! - `fuzz/seeds/<target>/`: starting corpora (random and hand-written inputs);
//! - `fuzz/regressions/<target>/`: inputs that once crashed a target, each kept after its fix.

use std::path::{Path, PathBuf};

use sencha::testing::ApiGates;

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

/// Replays `fuzz/regressions/api/<name>`, an input that crashed `check_api` with one gate on,
/// with `gates`.
fn replay_gated(name: &str, gates: ApiGates) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/api")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sencha::testing::check_api_gated(&data, gates);
}

#[test]
fn fuzz_api_finding_1_huge_arena_config() {
    let gates = ApiGates {
        huge_arena_config: true,
        ..ApiGates::ENABLED
    };
    replay_gated("finding-1-huge-arena-config", gates);
}

#[test]
fn fuzz_api_finding_5_nested_array_layout() {
    let gates = ApiGates {
        nested_array_layout: true,
        ..ApiGates::ENABLED
    };
    replay_gated("finding-5-nested-array-layout", gates);
}

#[test]
fn fuzz_api_finding_6_alloc_black() {
    let gates = ApiGates {
        alloc_black: true,
        ..ApiGates::ENABLED
    };
    replay_gated("finding-6-alloc-black", gates);
}

#[test]
fn fuzz_api_finding_8_sweep_without_mark() {
    let gates = ApiGates {
        sweep_without_mark: true,
        ..ApiGates::ENABLED
    };
    replay_gated("finding-8-sweep-without-mark", gates);
}

#[test]
fn fuzz_api_finding_9_exact_mark_stats() {
    let gates = ApiGates {
        exact_mark_stats: true,
        ..ApiGates::ENABLED
    };
    replay_gated("finding-9-exact-mark-stats", gates);
}
