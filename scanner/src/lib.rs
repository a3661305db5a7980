//! sencha: a Green Tea-style span marker for garbage collectors.
//!
//! The heap side lives in [`sencha_spans`], re-exported here as [`spans`]. The marker itself
//! (per-worker span queues, stealing, span kernels) is being built.
#![deny(missing_docs)]

mod error;
pub mod kernel;

pub use error::Error;
pub use kernel::{Kernel, KernelChoice};
pub use sencha_spans as spans;
pub use sencha_spans::{Heap, HeapConfig, Layout, OwnedMemory, SizeClass, SweepStats};

/// The most workers a marker may run.
pub const MAX_WORKERS: usize = 256;
