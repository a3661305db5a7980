//! Integration tests of the sencha markers, in one binary (bumpalo style).

mod bad_input;
mod fuzz;
mod markers;
mod medium;
mod order;
mod roots;
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code)] // the example runtime's signal handler and stack reads
mod runtime_example;
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code)] // guard pages, registers loaded by inline asm, signal handlers
mod thread_roots;
mod trust;
mod weak;

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails (instead of hanging CI) if it takes over `secs`.
pub fn with_timeout<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out after {secs} s: a marker hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test thread panicked"),
    }
}

/// How many random heaps a test runs: `base` times `SENCHA_TEST_SCALE` (default 1), and a
/// hundredth of that under Miri.
pub fn scaled(base: usize) -> usize {
    if cfg!(miri) {
        return (base / 100).max(1);
    }
    let scale: f64 = std::env::var("SENCHA_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((base as f64 * scale) as usize).max(1)
}

/// docs/RUNTIME_GUIDE.md shows `runtime_example.rs` verbatim.
#[test]
fn docs_runtime_example_is_verbatim() {
    let doc = include_str!("../../../docs/RUNTIME_GUIDE.md");
    let example = include_str!("runtime_example.rs");
    assert!(
        doc.contains(&format!("```rust\n{example}```")),
        "docs/RUNTIME_GUIDE.md must contain scanner/tests/all/runtime_example.rs verbatim in a \
         ```rust block"
    );
}
