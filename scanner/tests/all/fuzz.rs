//! Replays the fuzz corpus kept in `fuzz/regressions/` through the fuzz targets' check
//! functions, on stable, on every test run.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let data = std::fs::read(&path).expect("read input");
        check(&data);
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn fuzz_regressions_replay() {
    replay("span_layout", sencha::testing::check_kernels_from_bytes);
    replay("heap_graph", sencha::testing::check_graph_from_bytes);
    replay(
        "register",
        sencha_spans::testing::check_registration_sequence,
    );
}

#[test]
fn fuzz_checks_accept_random_inputs() {
    let mut r = sencha::testing::SplitMix64::new(2024);
    for len in [0usize, 1, 7, 8, 100, 1000, 5000] {
        let data: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
        sencha::testing::check_kernels_from_bytes(&data);
        sencha::testing::check_graph_from_bytes(&data);
        sencha_spans::testing::check_registration_sequence(&data);
        sencha::testing::check_api(&data);
    }
}
