//! Object layouts: an object's size and which of its 8-byte words hold pointers.
//!
//! A layout is what the allocator turns into pointer-bitmap bits at allocation time (small
//! objects) or keeps beside the object (large objects). Four shapes cover what runtimes need:
//! no pointers (strings, numbers), all pointers (pointer arrays, cons cells), a bitmap of up to
//! 64 words (structs), and an array of an element layout repeated `count` times.

use crate::error::Error;

/// The largest object a layout may describe: 2^40 bytes (1 TiB).
pub const MAX_OBJECT_BYTES: usize = 1 << 40;

/// Which words of an object hold pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pointers {
    None,
    All,
    /// Bit `k` set: word `k` holds a pointer. Words past 64 hold none.
    Bitmap(u64),
    /// An element of `elem_words` words (bit `k` of `bits` = word `k` of the element), repeated.
    Repeat {
        elem_words: u32,
        bits: u64,
    },
}

/// An object's size in bytes (rounded up to 8) and its pointer words.
///
/// # Examples
/// ```
/// use sencha_spans::Layout;
/// // struct Node { left: *const Node, right: *const Node, a: u64, b: u64 }
/// let node = Layout::with_pointers(32, 0b0011).unwrap();
/// assert_eq!(node.words(), 4);
/// assert!(node.is_pointer_word(1) && !node.is_pointer_word(2));
/// // 1000 elements of { key: u64, value: *const T }
/// let array = Layout::array(Layout::with_pointers(16, 0b10).unwrap(), 1000).unwrap();
/// assert_eq!(array.bytes(), 16_000);
/// assert!(array.is_pointer_word(1999) && !array.is_pointer_word(1998));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    bytes: usize,
    pointers: Pointers,
    /// Weak words (bit `k` = word `k`, `k < 64`): not traced; cleared after a mark when
    /// their target died. They override `pointers`.
    weak: u64,
}

impl Layout {
    fn checked_size(bytes: usize) -> Result<usize, Error> {
        if bytes == 0 {
            return Err(Error::InvalidLayout {
                reason: "zero-sized object",
            });
        }
        if bytes > MAX_OBJECT_BYTES {
            return Err(Error::LayoutTooLarge {
                bytes,
                limit: MAX_OBJECT_BYTES,
            });
        }
        Ok(bytes.next_multiple_of(8))
    }

    /// An object of `bytes` bytes without pointers.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] for zero bytes, [`Error::LayoutTooLarge`] above 1 TiB.
    pub fn no_pointers(bytes: usize) -> Result<Self, Error> {
        Ok(Layout {
            bytes: Self::checked_size(bytes)?,
            pointers: Pointers::None,
            weak: 0,
        })
    }

    /// An object of `bytes` bytes whose every word is a pointer.
    ///
    /// # Errors
    /// As [`Layout::no_pointers`].
    pub fn all_pointers(bytes: usize) -> Result<Self, Error> {
        Ok(Layout {
            bytes: Self::checked_size(bytes)?,
            pointers: Pointers::All,
            weak: 0,
        })
    }

    /// An object of `bytes` bytes whose word `k` is a pointer when bit `k` of `bits` is set.
    ///
    /// # Errors
    /// As [`Layout::no_pointers`], and [`Error::InvalidLayout`] if a set bit names a word past
    /// the end of the object.
    pub fn with_pointers(bytes: usize, bits: u64) -> Result<Self, Error> {
        let bytes = Self::checked_size(bytes)?;
        let words = bytes / 8;
        if words < 64 && bits >> words != 0 {
            return Err(Error::InvalidLayout {
                reason: "pointer bit past the end of the object",
            });
        }
        let pointers = match bits {
            0 => Pointers::None,
            _ if words <= 64 && bits == low_bits(words) => Pointers::All,
            _ => Pointers::Bitmap(bits),
        };
        Ok(Layout {
            bytes,
            pointers,
            weak: 0,
        })
    }

    /// `count` elements of `elem` back to back. The element must be at most 64 words (512
    /// bytes); its own size is rounded up to 8 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] for a zero count, [`Error::LayoutTooLarge`] for an element over
    /// 512 bytes or a total over 1 TiB.
    pub fn array(elem: Layout, count: usize) -> Result<Self, Error> {
        if count == 0 {
            return Err(Error::InvalidLayout {
                reason: "array of zero elements",
            });
        }
        if elem.weak != 0 {
            return Err(Error::InvalidLayout {
                reason: "weak words in an array element (give the array's weak words instead)",
            });
        }
        let elem_words = elem.words();
        if elem_words > 64 {
            return Err(Error::LayoutTooLarge {
                bytes: elem.bytes,
                limit: 512,
            });
        }
        let bytes = elem.bytes.checked_mul(count).ok_or(Error::LayoutTooLarge {
            bytes: usize::MAX,
            limit: MAX_OBJECT_BYTES,
        })?;
        let bytes = Self::checked_size(bytes)?;
        // The element has at most 64 words, so its first 64 pointer bits are all of them,
        // whatever shape it has (an element may itself be a short array).
        let bits = elem.pointer_bits(0);
        let pointers = if bits == 0 {
            Pointers::None
        } else if bits == low_bits(elem_words) {
            Pointers::All
        } else {
            Pointers::Repeat {
                elem_words: elem_words as u32,
                bits,
            }
        };
        Ok(Layout {
            bytes,
            pointers,
            weak: 0,
        })
    }

    /// The same layout with **weak** words: word `k` is weak when bit `k` of `bits` is set
    /// (among the first 64 words). A weak word holds a pointer that does not keep its target
    /// alive: markers do not follow it, and after a mark, a weak word whose target died (an
    /// interior pointer counts for its object) is set to 0 before the sweep can reuse the
    /// target. A weak word is never also a traced pointer word (weak wins).
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] if a bit names a word past the end of the object.
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::Layout;
    /// // struct WeakCell { target: Weak<T>, next: *const WeakCell }
    /// let cell = Layout::all_pointers(16).unwrap().with_weak(0b01).unwrap();
    /// assert!(cell.is_weak_word(0) && !cell.is_pointer_word(0));
    /// assert!(cell.is_pointer_word(1));
    /// ```
    pub fn with_weak(self, bits: u64) -> Result<Self, Error> {
        let words = self.words();
        if words < 64 && bits >> words != 0 {
            return Err(Error::InvalidLayout {
                reason: "weak bit past the end of the object",
            });
        }
        Ok(Layout { weak: bits, ..self })
    }

    /// The weak words among the first 64 (bit `k` = word `k`).
    #[inline]
    pub fn weak_bits(&self) -> u64 {
        self.weak
    }

    /// Whether word `w` is weak.
    #[inline]
    pub fn is_weak_word(&self, w: usize) -> bool {
        w < 64.min(self.words()) && self.weak >> w & 1 != 0
    }

    /// The size in bytes (a multiple of 8).
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The size in words.
    #[inline]
    pub fn words(&self) -> usize {
        self.bytes / 8
    }

    /// Whether any word may hold a pointer.
    #[inline]
    pub fn has_pointers(&self) -> bool {
        !matches!(self.pointers, Pointers::None)
    }

    /// Whether word `w` holds a (strong, traced) pointer (false past the end and for weak
    /// words).
    pub fn is_pointer_word(&self, w: usize) -> bool {
        if w >= self.words() || self.is_weak_word(w) {
            return false;
        }
        match self.pointers {
            Pointers::None => false,
            Pointers::All => true,
            Pointers::Bitmap(bits) => w < 64 && bits >> w & 1 != 0,
            Pointers::Repeat { elem_words, bits } => bits >> (w % elem_words as usize) & 1 != 0,
        }
    }

    /// The pointer bits of words `first .. first + 64` (bit `k` = word `first + k`), zero past
    /// the end. Lets large-object scanning take 64 words at a time.
    pub fn pointer_bits(&self, first: usize) -> u64 {
        let words = self.words();
        if first >= words {
            return 0;
        }
        let valid = low_bits((words - first).min(64));
        let bits = match self.pointers {
            Pointers::None => 0,
            Pointers::All => u64::MAX,
            Pointers::Bitmap(bits) => {
                if first >= 64 {
                    0
                } else {
                    bits >> first
                }
            }
            Pointers::Repeat { elem_words, bits } => {
                let e = elem_words as usize;
                let mut out = 0u64;
                let mut k = 0;
                let mut pos = first % e;
                while k < 64 {
                    // Take the rest of the current element in one step.
                    let take = (e - pos).min(64 - k);
                    out |= ((bits >> pos) & low_bits(take)) << k;
                    k += take;
                    pos = 0;
                }
                out
            }
        };
        let weak = if first < 64 { self.weak >> first } else { 0 };
        bits & valid & !weak
    }

    /// The pointer bits of a small object (at most 64 words; bit `k` = word `k`).
    pub(crate) fn small_bits(&self) -> u64 {
        debug_assert!(self.words() <= 64);
        self.pointer_bits(0)
    }
}

/// The `n` lowest bits set (`n <= 64`).
#[inline]
pub(crate) const fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_pointer_bits_match_word_queries() {
        let layouts = [
            Layout::no_pointers(100).unwrap(),
            Layout::all_pointers(1000).unwrap(),
            Layout::with_pointers(32, 0b0011).unwrap(),
            Layout::with_pointers(4096, 0x8000_0000_0000_0001).unwrap(),
            Layout::array(Layout::with_pointers(24, 0b101).unwrap(), 300).unwrap(),
            Layout::array(Layout::with_pointers(512, 1 << 63 | 1).unwrap(), 3).unwrap(),
            Layout::array(Layout::with_pointers(8, 1).unwrap(), 77).unwrap(),
        ];
        for l in layouts {
            for first in (0..l.words() + 70).step_by(7) {
                let bits = l.pointer_bits(first);
                for k in 0..64 {
                    assert_eq!(
                        bits >> k & 1 != 0,
                        l.is_pointer_word(first + k),
                        "{l:?} {first}+{k}"
                    );
                }
            }
        }
    }

    #[test]
    fn layout_rejects_bad_input() {
        assert!(matches!(
            Layout::no_pointers(0),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            Layout::with_pointers(16, 0b100),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            Layout::all_pointers(usize::MAX),
            Err(Error::LayoutTooLarge { .. })
        ));
        let big = Layout::no_pointers(520).unwrap();
        assert!(matches!(
            Layout::array(big, 2),
            Err(Error::LayoutTooLarge { .. })
        ));
        let e = Layout::all_pointers(16).unwrap();
        assert!(matches!(
            Layout::array(e, 0),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            Layout::array(e, usize::MAX),
            Err(Error::LayoutTooLarge { .. })
        ));
        assert_eq!(Layout::no_pointers(9).unwrap().bytes(), 16);
    }
}
