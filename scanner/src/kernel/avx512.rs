//! The AVX-512 tier (x86_64 only). Placeholder: detection says no until the kernel lands.

use sencha_spans::Span;
use sencha_spans::span::LINE_WORDS;

use super::{GatherBuf, HeapRange};

/// Whether this CPU has every feature the tier needs.
pub fn detected() -> bool {
    false
}

/// The AVX-512 gather.
///
/// # Safety
/// - [`detected`] returned true on this CPU.
pub unsafe fn gather(
    span: Span<'_>,
    grey: &[u64; LINE_WORDS],
    range: HeapRange,
    out: &mut GatherBuf,
) -> usize {
    super::scalar::gather(span, grey, range, out)
}
