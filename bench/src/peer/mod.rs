//! Other collectors marking the same workloads, for `sencha-bench --peer NAME`.
//!
//! A peer runs in a child process of `sencha-bench` (the hidden `serve-peer` subcommand), one
//! child per workload and worker count, because a peer's collector is global to its process and
//! reads its thread count once: bdwgc takes `GC_MARKERS` at `GC_INIT` and keeps one heap. The
//! child builds the workload from the same definitions as sencha's heap ([`crate::workload`]:
//! the tree's allocation order, the graph's plan), warms its collector up, and then answers
//! one line per request on its stdin — `mark` runs one collection and checks it — with one JSON
//! line on its stdout ([`Reply`]). The parent ([`PeerProcess`]) sends `mark` between sencha's
//! own marks, so the two alternate (sencha, peer, sencha, peer, …) in one time window.
//!
//! Peers:
//! - `boehm`: the Boehm–Demers–Weiser collector (bdwgc, Debian's `libgc-dev`) through the C code
//!   in `bench/csrc/`, built with the `boehm` cargo feature. Precise objects (a custom kind
//!   whose descriptor covers exactly the pointer words), interior pointers off, `GC_MARKERS`
//!   marker threads; mark time is bdwgc's `GC_EVENT_MARK_START` → `GC_EVENT_MARK_END`.
//!   Warm-up collections run until one leaves the heap size unchanged and has no mark-stack
//!   overflow (bdwgc doubles its mark stack after each overflowing collection, and an
//!   overflowing mark rescans the heap; overflows are read from bdwgc's log, `GC_PRINT_STATS`).
//!   After every collection the child walks the whole workload and checks that every object is
//!   reached, marked and holds what was built.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::workload::Kind;

#[cfg(feature = "boehm")]
mod boehm;
// The one unsafe fence of sencha-bench: calls into the C peer (bench/csrc/boehm_peer.c).
// Every C function validates its input; the module docs give the argument.
#[cfg(feature = "boehm")]
#[allow(unsafe_code)]
mod boehm_ffi;

/// A peer's failure, as a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerError(pub String);

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PeerError {}

/// A peer's result.
pub type Result<T> = std::result::Result<T, PeerError>;

/// A collector to run beside sencha.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// bdwgc, the Boehm–Demers–Weiser collector.
    Boehm,
}

impl PeerKind {
    /// Every peer.
    pub const ALL: [PeerKind; 1] = [PeerKind::Boehm];

    /// The name used on the command line and in the report's `marker` column.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Boehm => "boehm",
        }
    }

    /// The peer named `name`.
    ///
    /// # Errors
    /// An unknown name, or a peer this binary was built without (say which feature to use).
    pub fn from_name(name: &str) -> Result<Self> {
        let peer = Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| PeerError(format!("unknown peer {name:?}; known: boehm")))?;
        if !peer.built() {
            return Err(PeerError(format!(
                "this sencha-bench was built without the {0:?} feature; rebuild with \
                 `cargo run --release -p sencha-bench --features {0} -- --peer {0}` \
                 (needs libgc-dev)",
                peer.name()
            )));
        }
        Ok(peer)
    }

    /// Whether this binary was built with the peer.
    pub fn built(self) -> bool {
        match self {
            PeerKind::Boehm => cfg!(feature = "boehm"),
        }
    }

    /// Whether the peer has a version of workload `kind`.
    pub fn supports(self, kind: Kind) -> bool {
        matches!(kind, Kind::Tree | Kind::Graph | Kind::List | Kind::Shuffled)
    }
}

/// What the peer child has built, after its warm-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// The collector and its version, e.g. `bdwgc 8.2.2`.
    pub collector: String,
    /// Marker threads running, including the collecting one.
    pub markers: usize,
    /// Build time (plan and allocation), ms.
    pub build_ms: f64,
    /// Warm-up collections run.
    pub warmups: usize,
    /// Whether the warm-up ended settled (heap size unchanged, no mark-stack overflow) rather
    /// than at its cap.
    pub settled: bool,
    /// Whether mark-stack overflows are counted at all.
    pub counts_overflows: bool,
    /// The check after the warm-up.
    pub check: PeerMark,
}

/// One collection of the peer and the check that followed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerMark {
    /// Mark phase, ms.
    pub ms: f64,
    /// Mark-stack overflows in it.
    pub overflows: usize,
    /// Heap size after it, bytes.
    pub heap_bytes: usize,
    /// Objects reached, marked and as built.
    pub objects: usize,
    /// Their requested bytes.
    pub bytes: usize,
    /// Objects or links missing, unmarked or wrong (0 when the check passes).
    pub bad: usize,
}

/// One line of the peer child's stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Built and warmed up.
    Ready(Ready),
    /// One `mark` done.
    Mark(PeerMark),
    /// Something failed; the child exits after saying so.
    Error(String),
}

/// The peer child of one workload and worker count, seen from `sencha-bench`.
#[derive(Debug)]
pub struct PeerProcess {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// What it built.
    pub ready: Ready,
}

impl PeerProcess {
    /// Starts `exe serve-peer` for `peer` on `kind` at `scale` with `workers` marker threads,
    /// and waits until it has built and warmed up. `cut` (for tests) makes the child unlink
    /// part of its workload, so that every check must fail.
    ///
    /// The child's environment drops every `GC_*` variable of ours and sets `GC_MARKERS` and
    /// `GC_PRINT_STATS=1` (bdwgc's log, read for mark-stack overflows).
    ///
    /// # Errors
    /// The child cannot start, says it failed, or runs another number of markers.
    pub fn spawn(
        exe: &Path,
        peer: PeerKind,
        kind: Kind,
        scale: f64,
        workers: usize,
        cut: bool,
    ) -> Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args([
            "serve-peer",
            "--peer",
            peer.name(),
            "--workload",
            kind.name(),
        ])
        .args(["--scale", &scale.to_string()]);
        if cut {
            cmd.arg("--cut");
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GC_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("GC_MARKERS", workers.to_string())
            .env("GC_PRINT_STATS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| PeerError(format!("{}: cannot start the peer: {e}", peer.name())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PeerError("the peer's pipes are missing".into()));
        };
        let mut p = PeerProcess {
            child: Some(child),
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            ready: Ready::default(),
        };
        match p.reply()? {
            Reply::Ready(r) => p.ready = r,
            other => return Err(PeerError(format!("peer: expected ready, got {other:?}"))),
        }
        if p.ready.markers != workers {
            return Err(PeerError(format!(
                "{}: {} runs {} marker threads, not the {workers} asked for",
                peer.name(),
                p.ready.collector,
                p.ready.markers
            )));
        }
        Ok(p)
    }

    /// Runs one collection in the child and returns its figures and check.
    ///
    /// # Errors
    /// The child failed or went away.
    pub fn mark(&mut self) -> Result<PeerMark> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PeerError("peer: already finished".into()))?;
        writeln!(stdin, "mark")
            .and_then(|()| stdin.flush())
            .map_err(|e| PeerError(format!("peer: cannot send: {e}")))?;
        match self.reply()? {
            Reply::Mark(m) => Ok(m),
            other => Err(PeerError(format!("peer: expected a mark, got {other:?}"))),
        }
    }

    /// Closes the child's stdin and waits for it to exit.
    ///
    /// # Errors
    /// It exited with a failure status.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child
            .wait()
            .map_err(|e| PeerError(format!("peer: wait: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(PeerError(format!("peer exited with {status}")))
        }
    }

    fn reply(&mut self) -> Result<Reply> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| PeerError(format!("peer: cannot read: {e}")))?;
        if n == 0 {
            let status = self.child.as_mut().and_then(|c| c.wait().ok());
            return Err(PeerError(format!(
                "the peer exited without answering ({})",
                status.map_or("status unknown".to_string(), |s| s.to_string())
            )));
        }
        match serde_json::from_str(&line) {
            Ok(Reply::Error(e)) => Err(PeerError(e)),
            Ok(r) => Ok(r),
            Err(e) => Err(PeerError(format!("peer: bad reply {line:?}: {e}"))),
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            // An unfinished child (an error on our side): stop it, do not leave it behind.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child's side: builds `kind` at `scale` in `peer`'s heap, warms it up, says [`Ready`] on
/// `output`, then answers each `mark` line of `input` with a [`Reply::Mark`] until `input`
/// ends or says `quit`. Failures are also sent as [`Reply::Error`].
///
/// # Errors
/// The peer is not built in, has no version of `kind`, or its collector failed.
pub fn serve(
    peer: PeerKind,
    kind: Kind,
    scale: f64,
    cut: bool,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<()> {
    let result = if !peer.supports(kind) {
        Err(PeerError(format!(
            "{} has no version of workload {}",
            peer.name(),
            kind.name()
        )))
    } else {
        match peer {
            #[cfg(feature = "boehm")]
            PeerKind::Boehm => boehm::serve(kind, scale, cut, input, output),
            #[cfg(not(feature = "boehm"))]
            PeerKind::Boehm => {
                let _ = (scale, cut, &input);
                PeerKind::from_name(peer.name()).map(|_| ())
            }
        }
    };
    if let Err(e) = &result {
        let _ = send(output, &Reply::Error(e.0.clone()));
    }
    result
}

/// Writes one reply line.
fn send(output: &mut dyn Write, reply: &Reply) -> Result<()> {
    let line = serde_json::to_string(reply).map_err(|e| PeerError(e.to_string()))?;
    writeln!(output, "{line}")
        .and_then(|()| output.flush())
        .map_err(|e| PeerError(format!("peer: cannot answer: {e}")))
}
