//! sencha: a Green Tea-style span marker for garbage collectors.
//!
//! The heap side lives in [`sencha_spans`], re-exported here as [`spans`]. The marker itself
//! (per-worker span queues, stealing, span kernels) is being built.
#![deny(missing_docs)]

pub use sencha_spans as spans;
pub use sencha_spans::{Error, Heap, HeapConfig, Layout, OwnedMemory, SizeClass, SweepStats};
