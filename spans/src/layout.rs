//! Object layouts: an object's size and which of its 8-byte words hold pointers.
//!
//! A layout is what the allocator turns into pointer-bitmap bits at allocation time (small
//! objects) or keeps beside the object (medium and large objects). Every layout has one shape:
//!
//! ```text
//!   word 0            head_words              head_words + e    head_words + 2e
//!   +-----------------+-----------------------+-----------------+---- ... --+
//!   | head: any bits  | element: e words      | element again   |   ...     |  (to the end)
//!   +-----------------+-----------------------+-----------------+---- ... --+
//! ```
//! a **head** of any pointer bits, then (optionally) an **element** pattern repeated to the end
//! of the object. That covers what runtimes allocate: pointer-free blobs, pointer arrays, a
//! struct of any size ([`Layout::with_pointers`], [`Layout::from_pointer_words`],
//! [`Layout::from_bitmap`]), an array of any element ([`Layout::array`]) and an object header
//! followed by an array ([`Layout::header_then_array`]).
//!
//! # Cost
//! `Layout` is `Copy` and 32 bytes. A head whose pointers lie in its first 64 words together
//! with an element of at most 64 words (the common case: structs up to 512 bytes, arrays of
//! such structs, a header of up to 64 pointer-bearing words before such an array) is stored
//! inline and costs nothing more. Any other shape (a pointer past word 63 of a head, an element
//! over 64 words) is **interned**: its bitmaps (one bit per head word up to the last pointer,
//! one bit per element word) are stored once per process in a global table, deduplicated by
//! content and never freed — like a compiled language's type descriptors. Building such a layout
//! costs one lock and one hash of its bitmaps; a runtime builds one per type, not per object
//! (the object count of an array is not part of the interned shape). An explicit bitmap may
//! describe at most [`MAX_BITMAP_WORDS`] words (8 MiB of object; a 128 KiB bitmap); repeated
//! elements have no such limit. [`Layout::pointer_bits`], the 64-word query that scanning uses,
//! takes a shift for inline heads, a rotate and a few doublings for inline elements, and two
//! word reads per element stretch for interned ones.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::Error;

/// The largest object a layout may describe: 2^40 bytes (1 TiB).
pub const MAX_OBJECT_BYTES: usize = 1 << 40;

/// The most object words an explicit pointer bitmap may describe: 2^20 words (8 MiB of object,
/// a 128 KiB bitmap). Applies to the words up to the last pointer of a layout's head (including
/// the head of [`Layout::header_then_array`]) and to an array element that is not itself an
/// array; repeated elements reach any size.
pub const MAX_BITMAP_WORDS: usize = 1 << 20;

/// Which words of an object hold pointers: see the module docs for the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pointers {
    None,
    All,
    /// A head of `head_words` words whose bits are `head` (its words past 63 hold none), then,
    /// if `elem_words > 0`, an element of `elem_words <= 64` words with bits `elem`, repeated;
    /// if `elem_words == 0`, no pointers past the head.
    Inline {
        head_words: u32,
        elem_words: u8,
        head: u64,
        elem: u64,
    },
    /// The same shape with bitmaps of any length, interned.
    Shape(&'static Shape),
}

/// A shape too big to store inline: see [`Pointers::Inline`] for the meaning of the fields.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shape {
    head_words: usize,
    elem_words: usize,
    /// Bits of head words `0 .. 64 * head.len()`; later head words hold no pointers.
    head: Box<[u64]>,
    /// Bits of element words `0 .. elem_words`.
    elem: Box<[u64]>,
}

/// A borrowed view of any shape, for the code that reads both representations.
#[derive(Clone, Copy)]
struct View<'a> {
    head_words: usize,
    head: &'a [u64],
    elem_words: usize,
    elem: &'a [u64],
}

/// An object's size in bytes (rounded up to 8) and its pointer words.
///
/// Every constructor returns a layout or a typed error, for any arguments.
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
/// // A 600-byte object with pointers in words 0 and 70.
/// let odd = Layout::from_pointer_words(600, &[0, 70]).unwrap();
/// assert!(odd.is_pointer_word(70) && !odd.is_pointer_word(69));
/// // A header { len: u64, class: *const Class } followed by 10 elements of { *const T, u64 }.
/// let header = Layout::with_pointers(16, 0b10).unwrap();
/// let elem = Layout::with_pointers(16, 0b01).unwrap();
/// let vec = Layout::header_then_array(header, elem, 10).unwrap();
/// assert_eq!(vec.bytes(), 176);
/// assert!(vec.is_pointer_word(1) && vec.is_pointer_word(2) && !vec.is_pointer_word(3));
/// ```
///
/// Equality is structural: two layouts built the same way are equal, and the simple cases are
/// normalised (no pointers, all pointers, trailing zero bits, an element that repeats a shorter
/// period); layouts with equal pointer words built in other ways may compare unequal.
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

    fn bitmap_too_large(words: usize) -> Error {
        Error::LayoutTooLarge {
            bytes: words.saturating_mul(8),
            limit: MAX_BITMAP_WORDS * 8,
        }
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

    /// An object of `bytes` bytes whose word `k` is a pointer when bit `k` of `bits` is set
    /// (pointers in its first 64 words only; see [`Layout::from_pointer_words`] for others).
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
        Ok(Self::canonical(bytes, words, &[bits], 0, &[]))
    }

    /// An object of `bytes` bytes whose pointer words are listed in `pointer_words` (word
    /// indices, in any order; repeats are allowed).
    ///
    /// # Errors
    /// As [`Layout::no_pointers`]; [`Error::InvalidLayout`] for a word index past the end of
    /// the object; [`Error::LayoutTooLarge`] for a pointer word at or past
    /// [`MAX_BITMAP_WORDS`] (use [`Layout::array`] or [`Layout::header_then_array`] for
    /// repeating shapes that long).
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::{Error, Layout};
    /// let l = Layout::from_pointer_words(600, &[70, 0]).unwrap();
    /// assert_eq!(l.pointer_bits(64), 1 << 6); // word 70
    /// assert!(matches!(Layout::from_pointer_words(600, &[75]), Err(Error::InvalidLayout { .. })));
    /// ```
    pub fn from_pointer_words(bytes: usize, pointer_words: &[usize]) -> Result<Self, Error> {
        let bytes = Self::checked_size(bytes)?;
        let words = bytes / 8;
        let Some(&last) = pointer_words.iter().max() else {
            return Ok(Layout {
                bytes,
                pointers: Pointers::None,
                weak: 0,
            });
        };
        if last >= words {
            return Err(Error::InvalidLayout {
                reason: "pointer word past the end of the object",
            });
        }
        if last >= MAX_BITMAP_WORDS {
            return Err(Self::bitmap_too_large(last + 1));
        }
        let mut head = vec![0u64; last / 64 + 1];
        for &w in pointer_words {
            head[w / 64] |= 1 << (w % 64);
        }
        Ok(Self::canonical(bytes, words, &head, 0, &[]))
    }

    /// An object of `bytes` bytes whose word `k` is a pointer when bit `k % 64` of
    /// `bitmap[k / 64]` is set (LSB-first; words past the bitmap hold no pointers).
    ///
    /// # Errors
    /// As [`Layout::no_pointers`]; [`Error::InvalidLayout`] if a set bit names a word past the
    /// end of the object; [`Error::LayoutTooLarge`] for a set bit at or past
    /// [`MAX_BITMAP_WORDS`].
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::Layout;
    /// let l = Layout::from_bitmap(600, &[1, 1 << 6]).unwrap();
    /// assert_eq!(l, Layout::from_pointer_words(600, &[0, 70]).unwrap());
    /// ```
    pub fn from_bitmap(bytes: usize, bitmap: &[u64]) -> Result<Self, Error> {
        let bytes = Self::checked_size(bytes)?;
        let words = bytes / 8;
        let Some(last) = bitmap.iter().rposition(|&b| b != 0) else {
            return Ok(Layout {
                bytes,
                pointers: Pointers::None,
                weak: 0,
            });
        };
        let last_word = last
            .saturating_mul(64)
            .saturating_add(63 - bitmap[last].leading_zeros() as usize);
        if last_word >= words {
            return Err(Error::InvalidLayout {
                reason: "pointer bit past the end of the object",
            });
        }
        if last_word >= MAX_BITMAP_WORDS {
            return Err(Self::bitmap_too_large(last_word + 1));
        }
        Ok(Self::canonical(bytes, words, &bitmap[..=last], 0, &[]))
    }

    /// `count` elements of `elem` back to back. The element may be any layout (its size is
    /// rounded up to 8 bytes); an element that is itself an array repeats its own element.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] for a zero count; [`Error::LayoutTooLarge`] for a total over
    /// 1 TiB, or an element that is not an array and whose pointer words reach past
    /// [`MAX_BITMAP_WORDS`].
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
        let bytes = elem.bytes.checked_mul(count).ok_or(Error::LayoutTooLarge {
            bytes: usize::MAX,
            limit: MAX_OBJECT_BYTES,
        })?;
        let bytes = Self::checked_size(bytes)?;
        let (elem_words, bits) = elem.period()?;
        Ok(Self::canonical(bytes, 0, &[], elem_words, &bits))
    }

    /// A header of layout `header` followed by `count` elements of layout `elem` (zero elements
    /// allowed: then the object is the header alone). Both may be any layout: a header with
    /// pointers past word 63, an element of more than 64 words, an element that is an array.
    ///
    /// # Errors
    /// [`Error::LayoutTooLarge`] for a total over 1 TiB, a header whose last pointer word is at
    /// or past [`MAX_BITMAP_WORDS`], or an element as in [`Layout::array`].
    ///
    /// # Examples
    /// ```
    /// use sencha_spans::Layout;
    /// // { len, *class } then 3 elements of 70 words with a pointer in their last word.
    /// let elem = Layout::from_pointer_words(560, &[69]).unwrap();
    /// let header = Layout::with_pointers(16, 0b10).unwrap();
    /// let l = Layout::header_then_array(header, elem, 3).unwrap();
    /// let words: Vec<usize> = (0..l.words()).filter(|&w| l.is_pointer_word(w)).collect();
    /// assert_eq!(words, [1, 71, 141, 211]);
    /// ```
    pub fn header_then_array(header: Layout, elem: Layout, count: usize) -> Result<Self, Error> {
        if header.weak != 0 || elem.weak != 0 {
            return Err(Error::InvalidLayout {
                reason: "weak words in a header or element (give the whole layout's weak words)",
            });
        }
        let bytes = elem
            .bytes
            .checked_mul(count)
            .and_then(|b| b.checked_add(header.bytes))
            .ok_or(Error::LayoutTooLarge {
                bytes: usize::MAX,
                limit: MAX_OBJECT_BYTES,
            })?;
        let bytes = Self::checked_size(bytes)?;
        if count == 0 {
            return Ok(header);
        }
        let head_words = header.words();
        let head = match header.last_pointer_word() {
            None => Vec::new(),
            Some(last) if last >= MAX_BITMAP_WORDS => return Err(Self::bitmap_too_large(last + 1)),
            Some(last) => header.bitmap_prefix(last + 1),
        };
        let (elem_words, bits) = elem.period()?;
        Ok(Self::canonical(bytes, head_words, &head, elem_words, &bits))
    }

    /// The repeating part of this layout as an array element: its period in words and the
    /// pointer bits of one period (period 0: no pointers).
    fn period(&self) -> Result<(usize, Vec<u64>), Error> {
        let words = self.words();
        match self.pointers {
            Pointers::None => Ok((0, Vec::new())),
            Pointers::All => Ok((1, vec![1])),
            _ => {
                let v = self.view();
                // A pure array repeats its own element (the element count divides the size).
                if v.head_words == 0 && v.elem_words > 0 && words.is_multiple_of(v.elem_words) {
                    return Ok((v.elem_words, v.elem.to_vec()));
                }
                if words > MAX_BITMAP_WORDS {
                    return Err(Self::bitmap_too_large(words));
                }
                Ok((words, self.bitmap_prefix(words)))
            }
        }
    }

    /// The pointer bits of words `0 .. n` as a bitmap.
    fn bitmap_prefix(&self, n: usize) -> Vec<u64> {
        let mut out: Vec<u64> = (0..n.div_ceil(64))
            .map(|i| self.pointer_bits(i * 64))
            .collect();
        if let Some(last) = out.last_mut() {
            *last &= low_bits(n - (n - 1) / 64 * 64);
        }
        out
    }

    /// The index of the last pointer word, if any.
    pub(crate) fn last_pointer_word(&self) -> Option<usize> {
        let words = self.words();
        match self.pointers {
            Pointers::None => None,
            Pointers::All => Some(words - 1),
            _ => {
                let v = self.view();
                if v.elem_words > 0 && words > v.head_words {
                    let len = words - v.head_words;
                    let (full, rem) = (len / v.elem_words, len % v.elem_words);
                    let tail_start = v.head_words + full * v.elem_words;
                    if let Some(b) = last_set_below(v.elem, rem) {
                        return Some(tail_start + b);
                    }
                    if full > 0
                        && let Some(b) = last_set_below(v.elem, v.elem_words)
                    {
                        return Some(tail_start - v.elem_words + b);
                    }
                }
                last_set_below(v.head, v.head_words.min(words))
            }
        }
    }

    /// Normalises a shape and stores it inline or interned. The caller has checked `bytes`;
    /// `head` may be shorter than `head_words` (missing words hold no pointers) and may have
    /// bits past `head_words` (ignored), as may `elem` past `elem_words`.
    fn canonical(
        bytes: usize,
        head_words: usize,
        head: &[u64],
        elem_words: usize,
        elem: &[u64],
    ) -> Layout {
        let words = bytes / 8;
        let mut head_words = head_words;
        let mut elem_words = elem_words;
        if head_words >= words {
            head_words = words;
            elem_words = 0;
        }
        let mut elem: Vec<u64> = elem.iter().take(elem_words.div_ceil(64)).copied().collect();
        mask_to(&mut elem, elem_words);
        if elem.iter().all(|&b| b == 0) {
            elem_words = 0;
            elem.clear();
        } else if elem_words <= 64 {
            let p = shortest_period(elem[0], elem_words);
            elem_words = p;
            elem[0] &= low_bits(p);
        }
        let mut head: Vec<u64> = head.iter().take(head_words.div_ceil(64)).copied().collect();
        mask_to(&mut head, head_words);
        while head.last() == Some(&0) {
            head.pop();
        }
        if elem_words == 0 {
            head_words = last_set_below(&head, head_words).map_or(0, |b| b + 1);
        }
        let ones = |bits: &[u64]| bits.iter().map(|b| b.count_ones() as usize).sum::<usize>();
        let pointers = if head.is_empty() && elem_words == 0 {
            Pointers::None
        } else if ones(&head) == head_words
            && if elem_words == 0 {
                head_words == words
            } else {
                ones(&elem) == elem_words
            }
        {
            Pointers::All
        } else if head.len() <= 1 && elem_words <= 64 && head_words <= u32::MAX as usize {
            Pointers::Inline {
                head_words: head_words as u32,
                elem_words: elem_words as u8,
                head: head.first().copied().unwrap_or(0),
                elem: elem.first().copied().unwrap_or(0),
            }
        } else {
            Pointers::Shape(intern(Shape {
                head_words,
                elem_words,
                head: head.into_boxed_slice(),
                elem: elem.into_boxed_slice(),
            }))
        };
        Layout {
            bytes,
            pointers,
            weak: 0,
        }
    }

    /// The shape of an `Inline` or `Shape` layout (the others have no bitmaps).
    fn view(&self) -> View<'_> {
        match &self.pointers {
            Pointers::Inline {
                head_words,
                elem_words,
                head,
                elem,
            } => View {
                head_words: *head_words as usize,
                head: std::slice::from_ref(head),
                elem_words: *elem_words as usize,
                elem: std::slice::from_ref(elem),
            },
            Pointers::Shape(s) => View {
                head_words: s.head_words,
                head: &s.head,
                elem_words: s.elem_words,
                elem: &s.elem,
            },
            Pointers::None | Pointers::All => View {
                head_words: 0,
                head: &[],
                elem_words: 0,
                elem: &[],
            },
        }
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

    /// Whether word `w` holds a (strong, traced) pointer (false past the end and for weak
    /// words).
    pub fn is_pointer_word(&self, w: usize) -> bool {
        if w >= self.words() || self.is_weak_word(w) {
            return false;
        }
        match self.pointers {
            Pointers::None => false,
            Pointers::All => true,
            _ => {
                let v = self.view();
                if w < v.head_words {
                    bit(v.head, w)
                } else {
                    v.elem_words > 0 && bit(v.elem, (w - v.head_words) % v.elem_words)
                }
            }
        }
    }

    /// The pointer bits of words `first .. first + 64` (bit `k` = word `first + k`), zero past
    /// the end. Lets large-object scanning take 64 words at a time.
    #[inline]
    pub fn pointer_bits(&self, first: usize) -> u64 {
        let words = self.words();
        if first >= words {
            return 0;
        }
        let valid = low_bits((words - first).min(64));
        let bits = match self.pointers {
            Pointers::None => 0,
            Pointers::All => u64::MAX,
            Pointers::Inline {
                elem_words: 0,
                head,
                ..
            } => {
                if first < 64 {
                    head >> first
                } else {
                    0
                }
            }
            _ => shape_bits(self.view(), first),
        };
        let weak = if first < 64 { self.weak >> first } else { 0 };
        bits & valid & !weak
    }

    /// A pointer-free layout of `bytes` (a positive multiple of 8 up to 1 TiB): the layout of a
    /// free medium slot.
    pub(crate) fn blank(bytes: usize) -> Layout {
        debug_assert!(bytes > 0 && bytes.is_multiple_of(8) && bytes <= MAX_OBJECT_BYTES);
        Layout {
            bytes,
            pointers: Pointers::None,
            weak: 0,
        }
    }

    /// The pointer bits of a small object (at most 64 words; bit `k` = word `k`).
    pub(crate) fn small_bits(&self) -> u64 {
        debug_assert!(self.words() <= 64);
        self.pointer_bits(0)
    }
}

/// Bits `first .. first + 64` of a shape (not yet cut at the object's end).
fn shape_bits(v: View<'_>, first: usize) -> u64 {
    let mut out = 0u64;
    let mut k = 0;
    if first < v.head_words {
        k = (v.head_words - first).min(64);
        out = extract(v.head, first, k);
    }
    if k == 64 || v.elem_words == 0 {
        return out;
    }
    let mut pos = (first + k - v.head_words) % v.elem_words;
    if v.elem_words <= 64 {
        return out | periodic(v.elem[0], v.elem_words, pos) << k;
    }
    while k < 64 {
        let take = (v.elem_words - pos).min(64 - k);
        out |= extract(v.elem, pos, take) << k;
        k += take;
        pos = 0;
    }
    out
}

/// 64 bits of the endless repetition of the `n`-bit pattern `p` (`1 <= n <= 64`), starting at
/// its bit `pos < n`: rotate the pattern to start at `pos`, then double it until 64 bits.
#[inline]
fn periodic(p: u64, n: usize, pos: usize) -> u64 {
    let mut r = if pos == 0 {
        p
    } else {
        (p >> pos | p << (n - pos)) & low_bits(n)
    };
    let mut len = n;
    while len < 64 {
        r |= r << len;
        len *= 2;
    }
    r
}

/// Bits `from .. from + n` of a bitmap (`1 <= n <= 64`), zero past its end.
#[inline]
fn extract(bits: &[u64], from: usize, n: usize) -> u64 {
    let (i, s) = (from / 64, from % 64);
    let lo = bits.get(i).map_or(0, |&b| b >> s);
    let hi = if s == 0 {
        0
    } else {
        bits.get(i + 1).map_or(0, |&b| b << (64 - s))
    };
    (lo | hi) & low_bits(n)
}

/// Bit `i` of a bitmap, false past its end.
#[inline]
fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|&b| b >> (i % 64) & 1 != 0)
}

/// The highest set bit below `n` of a bitmap.
fn last_set_below(bits: &[u64], n: usize) -> Option<usize> {
    let full = n / 64;
    let mut i = full.min(bits.len());
    if i < bits.len() && !n.is_multiple_of(64) {
        let b = bits[i] & low_bits(n % 64);
        if b != 0 {
            return Some(i * 64 + 63 - b.leading_zeros() as usize);
        }
    }
    while i > 0 {
        i -= 1;
        if bits[i] != 0 {
            return Some(i * 64 + 63 - bits[i].leading_zeros() as usize);
        }
    }
    None
}

/// Clears the bits of a bitmap at and past `n`.
fn mask_to(bits: &mut [u64], n: usize) {
    for (i, b) in bits.iter_mut().enumerate() {
        if i * 64 >= n {
            *b = 0;
        } else if n - i * 64 < 64 {
            *b &= low_bits(n - i * 64);
        }
    }
}

/// The shortest period `p` (dividing `n`) of the `n`-bit pattern `bits` (`1 <= n <= 64`).
fn shortest_period(bits: u64, n: usize) -> usize {
    (1..n)
        .filter(|p| n.is_multiple_of(*p))
        .find(|&p| periodic(bits & low_bits(p), p, 0) & low_bits(n) == bits)
        .unwrap_or(n)
}

/// The process-wide copy of `shape`, stored on first use and never freed (see the module docs).
fn intern(shape: Shape) -> &'static Shape {
    static SHAPES: OnceLock<Mutex<HashSet<&'static Shape>>> = OnceLock::new();
    let mut set = SHAPES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&s) = set.get(&shape) {
        return s;
    }
    let s: &'static Shape = Box::leak(Box::new(shape));
    set.insert(s);
    s
}

/// The `n` lowest bits set (`n <= 64`).
#[inline]
pub(crate) const fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layouts() -> Vec<Layout> {
        let hdr = Layout::with_pointers(24, 0b110).unwrap();
        vec![
            Layout::no_pointers(100).unwrap(),
            Layout::all_pointers(1000).unwrap(),
            Layout::with_pointers(32, 0b0011).unwrap(),
            Layout::with_pointers(4096, 0x8000_0000_0000_0001).unwrap(),
            Layout::array(Layout::with_pointers(24, 0b101).unwrap(), 300).unwrap(),
            Layout::array(Layout::with_pointers(512, 1 << 63 | 1).unwrap(), 3).unwrap(),
            Layout::array(Layout::with_pointers(8, 1).unwrap(), 77).unwrap(),
            Layout::from_pointer_words(600, &[0, 70]).unwrap(),
            Layout::from_pointer_words(8 * 1000, &[3, 64, 127, 128, 999]).unwrap(),
            Layout::array(Layout::from_pointer_words(8 * 70, &[0, 69]).unwrap(), 9).unwrap(),
            Layout::header_then_array(hdr, Layout::with_pointers(16, 0b01).unwrap(), 50).unwrap(),
            Layout::header_then_array(
                Layout::from_pointer_words(8 * 130, &[129]).unwrap(),
                Layout::from_pointer_words(8 * 65, &[64]).unwrap(),
                7,
            )
            .unwrap(),
            Layout::header_then_array(
                Layout::no_pointers(8 * 100).unwrap(),
                Layout::with_pointers(24, 0b100).unwrap(),
                40,
            )
            .unwrap(),
        ]
    }

    #[test]
    fn layout_pointer_bits_match_word_queries() {
        for l in layouts() {
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
    fn layout_last_pointer_word_is_the_last_one() {
        for l in layouts() {
            let want = (0..l.words()).rev().find(|&w| l.is_pointer_word(w));
            assert_eq!(l.last_pointer_word(), want, "{l:?}");
        }
    }

    #[test]
    fn layout_normalises_simple_shapes() {
        let e = Layout::with_pointers(16, 0b01).unwrap();
        assert_eq!(
            Layout::array(e, 4).unwrap(),
            Layout::array(Layout::with_pointers(32, 0b0101).unwrap(), 2).unwrap()
        );
        assert_eq!(
            Layout::with_pointers(16, 0b11).unwrap(),
            Layout::all_pointers(16).unwrap()
        );
        assert_eq!(
            Layout::from_pointer_words(600, &[]).unwrap(),
            Layout::no_pointers(600).unwrap()
        );
        let all = Layout::all_pointers(16).unwrap();
        assert_eq!(
            Layout::header_then_array(all, all, 9).unwrap(),
            Layout::all_pointers(160).unwrap()
        );
        // Interned shapes are shared: the same content is one allocation.
        let a = Layout::from_pointer_words(600, &[0, 70]).unwrap();
        let b = Layout::from_bitmap(600, &[1, 1 << 6]).unwrap();
        match (a.pointers, b.pointers) {
            (Pointers::Shape(x), Pointers::Shape(y)) => assert!(std::ptr::eq(x, y)),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn layout_periodic_matches_bit_loop() {
        for n in 1..=64 {
            let p = 0x9e37_79b9_7f4a_7c15u64.rotate_left(n as u32) & low_bits(n);
            for pos in 0..n {
                let want = (0..64).fold(0u64, |acc, k| acc | (p >> ((pos + k) % n) & 1) << k);
                assert_eq!(periodic(p, n, pos), want, "n {n} pos {pos}");
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
        let e = Layout::all_pointers(16).unwrap();
        assert!(matches!(
            Layout::array(e, 0),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            Layout::array(e, usize::MAX),
            Err(Error::LayoutTooLarge { .. })
        ));
        assert!(matches!(
            Layout::from_pointer_words(1 << 30, &[MAX_BITMAP_WORDS]),
            Err(Error::LayoutTooLarge { .. })
        ));
        assert!(matches!(
            Layout::from_bitmap(16, &[0, 1]),
            Err(Error::InvalidLayout { .. })
        ));
        // An element over 8 MiB that is not an array cannot be repeated...
        let huge = Layout::from_pointer_words(8 << 20 | 8, &[0]).unwrap();
        assert!(matches!(
            Layout::array(huge, 2),
            Err(Error::LayoutTooLarge { .. })
        ));
        // ...but a huge array can.
        let big = Layout::array(Layout::with_pointers(16, 1).unwrap(), 1 << 20).unwrap();
        assert!(
            Layout::array(big, 4)
                .unwrap()
                .is_pointer_word((1 << 23) - 2)
        );
        assert_eq!(Layout::no_pointers(9).unwrap().bytes(), 16);
        // Elements over 64 words are fine now (they were LayoutTooLarge before issue 10).
        let wide = Layout::no_pointers(520).unwrap();
        assert_eq!(Layout::array(wide, 2).unwrap().bytes(), 1040);
    }
}
