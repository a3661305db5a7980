//! Size classes: the object size of a span and the arithmetic that follows from it.
//!
//! A size class is a multiple of 8 bytes from 16 to 512 ([`SizeClass::MIN_BYTES`] to
//! [`SizeClass::MAX_BYTES`]). The embedded allocator uses Go's 25 classes ([`SizeClass::DEFAULTS`]);
//! a custom allocator may register spans of any of the 63 legal sizes
//! ([`SizeClass::every_legal`]), so every piece of sencha handles all of them.
//!
//! Invariants, all checked at compile time or by exhaustive tests:
//! - `capacity(size) = (8192 - 256) / size`, so `capacity * size + 256 <= 8192`;
//! - `magic(size) = ceil(2^32 / size)` and `(offset * magic) >> 32 == offset / size` for every
//!   `offset < 8192` (the exhaustive test `class_magic_divides_every_offset`).

use crate::error::Error;
use crate::span::{OBJECT_BYTES, SPAN_BYTES};

/// The object size of a span, in bytes: a multiple of 8 from 16 to 512.
///
/// Stored as its size in words (2..=64), so it fits the span's class byte.
///
/// # Examples
/// ```
/// use sencha_spans::SizeClass;
/// let c = SizeClass::new(48).unwrap();
/// assert_eq!(c.bytes(), 48);
/// assert_eq!(c.capacity(), 165);
/// assert_eq!(c.index_of(100), Some(2));
/// assert!(SizeClass::new(20).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(u8);

/// Magic multipliers `ceil(2^32 / size)`, indexed by size in words (entries 0 and 1 unused).
const MAGIC: [u64; 65] = {
    let mut t = [0u64; 65];
    let mut w = 2;
    while w <= 64 {
        let size = (w * 8) as u64;
        t[w] = (1u64 << 32).div_ceil(size);
        w += 1;
    }
    t
};

/// Capacities `(8192 - 256) / size`, indexed by size in words (entries 0 and 1 unused).
const CAPACITY: [u16; 65] = {
    let mut t = [0u16; 65];
    let mut w = 2;
    while w <= 64 {
        t[w] = (OBJECT_BYTES / (w * 8)) as u16;
        w += 1;
    }
    t
};

const _: () = {
    let mut w = 2;
    while w <= 64 {
        assert!(CAPACITY[w] as usize * w * 8 + 256 <= SPAN_BYTES);
        assert!(CAPACITY[w] as usize <= SizeClass::MAX_OBJECTS);
        w += 1;
    }
    assert!(CAPACITY[2] as usize == SizeClass::MAX_OBJECTS);
};

impl SizeClass {
    /// The smallest legal object size.
    pub const MIN_BYTES: usize = 16;
    /// The largest legal object size; anything larger is a large object.
    pub const MAX_BYTES: usize = 512;
    /// The most objects a span can hold (the 16-byte class).
    pub const MAX_OBJECTS: usize = OBJECT_BYTES / Self::MIN_BYTES;
    /// Go's 25 small size classes from 16 to 512 bytes: the embedded allocator's table.
    pub const DEFAULTS: [SizeClass; 25] = {
        const SIZES: [usize; 25] = [
            16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
            352, 384, 416, 448, 480, 512,
        ];
        let mut t = [SizeClass(2); 25];
        let mut i = 0;
        while i < 25 {
            t[i] = SizeClass((SIZES[i] / 8) as u8);
            i += 1;
        }
        t
    };

    /// The class of objects of exactly `bytes` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidSizeClass`] unless `bytes` is a multiple of 8 from 16 to 512.
    pub const fn new(bytes: usize) -> Result<Self, Error> {
        if bytes >= Self::MIN_BYTES && bytes <= Self::MAX_BYTES && bytes.is_multiple_of(8) {
            Ok(SizeClass((bytes / 8) as u8))
        } else {
            Err(Error::InvalidSizeClass { bytes })
        }
    }

    /// The class from its size in words, as stored in a span's class byte; `None` if illegal.
    #[inline]
    pub const fn from_words(words: u8) -> Option<Self> {
        if words >= 2 && words <= 64 {
            Some(SizeClass(words))
        } else {
            None
        }
    }

    /// The smallest default class that holds `bytes` bytes, or `None` above 512.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::SizeClass;
    /// assert_eq!(SizeClass::for_bytes(1).unwrap().bytes(), 16);
    /// assert_eq!(SizeClass::for_bytes(260).unwrap().bytes(), 288);
    /// assert!(SizeClass::for_bytes(513).is_none());
    /// ```
    pub fn for_bytes(bytes: usize) -> Option<Self> {
        Self::DEFAULTS.iter().copied().find(|c| c.bytes() >= bytes)
    }

    /// Every legal size, 16 to 512 in steps of 8 (63 classes): what custom spans may use.
    pub fn every_legal() -> impl Iterator<Item = SizeClass> + Clone {
        (2u8..=64).map(SizeClass)
    }

    /// The object size in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.0 as usize * 8
    }

    /// The object size in 8-byte words (2..=64).
    #[inline]
    pub const fn words(self) -> usize {
        self.0 as usize
    }

    /// How many objects a span of this class holds: `(8192 - 256) / size`.
    #[inline]
    pub const fn capacity(self) -> usize {
        CAPACITY[self.0 as usize] as usize
    }

    /// `ceil(2^32 / size)`: `(offset * magic) >> 32 == offset / size` for every offset in a span.
    #[inline]
    pub const fn magic(self) -> u64 {
        MAGIC[self.0 as usize]
    }

    /// The index of the object that holds byte `offset` of a span (interior offsets map to
    /// their object), or `None` if the offset is past the last object (the span's tail).
    #[inline]
    pub const fn index_of(self, offset: usize) -> Option<usize> {
        if offset >= SPAN_BYTES {
            return None;
        }
        let i = ((offset as u64 * self.magic()) >> 32) as usize;
        if i < self.capacity() { Some(i) } else { None }
    }

    /// Whether this is one of Go's 25 default classes.
    pub fn is_default(self) -> bool {
        Self::DEFAULTS.contains(&self)
    }
}

impl std::fmt::Display for SizeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}B", self.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_magic_divides_every_offset() {
        for c in SizeClass::every_legal() {
            for off in 0..SPAN_BYTES {
                let q = ((off as u64 * c.magic()) >> 32) as usize;
                assert_eq!(q, off / c.bytes(), "class {c}, offset {off}");
            }
        }
    }

    #[test]
    fn class_interior_offsets_map_to_their_object() {
        for c in SizeClass::every_legal() {
            for i in 0..c.capacity() {
                for off in [i * c.bytes(), i * c.bytes() + 8, (i + 1) * c.bytes() - 1] {
                    assert_eq!(c.index_of(off), Some(i), "class {c}, offset {off}");
                }
            }
            for off in c.capacity() * c.bytes()..SPAN_BYTES + 8 {
                assert_eq!(c.index_of(off), None, "class {c}, tail offset {off}");
            }
        }
    }

    #[test]
    fn class_rejects_illegal_sizes() {
        for bytes in [0, 8, 12, 17, 20, 513, 520, 1024, usize::MAX] {
            assert_eq!(
                SizeClass::new(bytes),
                Err(Error::InvalidSizeClass { bytes })
            );
        }
        assert_eq!(SizeClass::every_legal().count(), 63);
        assert!(SizeClass::DEFAULTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SizeClass::DEFAULTS[0].capacity(), 496);
        assert_eq!(SizeClass::DEFAULTS[24].capacity(), 15);
    }
}
