//! Values: one 64-bit word each, either a heap pointer or an immediate.
//!
//! A heap pointer is the address of an object's first byte: non-zero, 8-aligned and below
//! 2^48. Every other value is an **immediate** whose top 16 bits are a tag (`0xfff1` and up),
//! so it is at or above 2^48. sencha's page map reads every address at or above 2^48 as "not in
//! the heap" (docs/SPAN_LAYOUT.md §8), so an immediate in a pointer word is simply skipped by
//! the marker: the runtime can declare every field that *may* hold a pointer as a pointer
//! word in its `Layout`, and store fixnums, characters, symbols and the like there freely.
//!
//! ```text
//!  63        48 47                                              0
//! +------------+-------------------------------------------------+
//! | 0x0000     | address of an object (heap pointer)             |
//! | 0xfff1     | fixnum, 48-bit two's complement                 |
//! | 0xfff2     | constant: (), #f, #t, unspecified, eof, default |
//! | 0xfff3     | character (Unicode scalar value)                |
//! | 0xfff4     | symbol (index into the interpreter's table)     |
//! | 0xfff5     | primitive procedure (index)                     |
//! | 0xfff6     | code prototype (index; word 1 of a closure)     |
//! | 0xfff7     | object header (word 0 of every object)          |
//! +------------+-------------------------------------------------+
//! ```
//! The value 0 is never a Lisp value (sencha skips null words; a cleared weak word reads 0).

/// A Lisp value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(pub u64);

const SHIFT: u32 = 48;
const PAYLOAD: u64 = (1 << SHIFT) - 1;

const TAG_FIXNUM: u64 = 0xfff1;
const TAG_CONST: u64 = 0xfff2;
const TAG_CHAR: u64 = 0xfff3;
const TAG_SYMBOL: u64 = 0xfff4;
const TAG_PRIM: u64 = 0xfff5;
const TAG_PROTO: u64 = 0xfff6;
pub(crate) const TAG_HEADER: u64 = 0xfff7;

/// The smallest fixnum.
pub const FIXNUM_MIN: i64 = -(1 << 47);
/// The largest fixnum.
pub const FIXNUM_MAX: i64 = (1 << 47) - 1;

const fn imm(tag: u64, payload: u64) -> Value {
    Value(tag << SHIFT | payload & PAYLOAD)
}

impl Value {
    /// The empty list.
    pub const NIL: Value = imm(TAG_CONST, 0);
    /// `#f`.
    pub const FALSE: Value = imm(TAG_CONST, 1);
    /// `#t`.
    pub const TRUE: Value = imm(TAG_CONST, 2);
    /// What `set!`, `display` and friends return.
    pub const UNSPECIFIED: Value = imm(TAG_CONST, 3);
    /// The end-of-file object.
    pub const EOF: Value = imm(TAG_CONST, 4);

    /// A heap pointer to the object at `addr`.
    #[inline]
    pub fn from_addr(addr: usize) -> Value {
        debug_assert!(addr != 0 && addr.is_multiple_of(8) && (addr as u64) >> SHIFT == 0);
        Value(addr as u64)
    }

    /// Whether this is a heap pointer.
    #[inline]
    pub fn is_ptr(self) -> bool {
        self.0 != 0 && self.0 >> SHIFT == 0
    }

    /// The object address, if this is a heap pointer.
    #[inline]
    pub fn addr(self) -> Option<usize> {
        self.is_ptr().then_some(self.0 as usize)
    }

    fn tag(self) -> u64 {
        self.0 >> SHIFT
    }

    fn payload(self) -> u64 {
        self.0 & PAYLOAD
    }

    /// A fixnum, if `n` fits in 48 bits.
    #[inline]
    pub fn fixnum(n: i64) -> Option<Value> {
        (FIXNUM_MIN..=FIXNUM_MAX)
            .contains(&n)
            .then_some(imm(TAG_FIXNUM, n as u64))
    }

    /// The fixnum's value.
    #[inline]
    pub fn as_fixnum(self) -> Option<i64> {
        (self.tag() == TAG_FIXNUM).then(|| ((self.payload() << 16) as i64) >> 16)
    }

    /// A boolean.
    #[inline]
    pub fn bool(b: bool) -> Value {
        if b { Value::TRUE } else { Value::FALSE }
    }

    /// Everything but `#f` is true.
    #[inline]
    pub fn is_true(self) -> bool {
        self != Value::FALSE
    }

    /// A character.
    pub fn char(c: char) -> Value {
        imm(TAG_CHAR, c as u64)
    }

    /// The character's value.
    pub fn as_char(self) -> Option<char> {
        if self.tag() == TAG_CHAR {
            char::from_u32(self.payload() as u32)
        } else {
            None
        }
    }

    /// The symbol with table index `i`.
    pub fn symbol(i: u32) -> Value {
        imm(TAG_SYMBOL, u64::from(i))
    }

    /// The symbol's table index.
    pub fn as_symbol(self) -> Option<u32> {
        (self.tag() == TAG_SYMBOL).then_some(self.payload() as u32)
    }

    /// The primitive with index `i`.
    pub fn prim(i: u32) -> Value {
        imm(TAG_PRIM, u64::from(i))
    }

    /// The primitive's index.
    pub fn as_prim(self) -> Option<u32> {
        (self.tag() == TAG_PRIM).then_some(self.payload() as u32)
    }

    /// The code prototype with index `i` (stored in closures).
    pub fn proto(i: u32) -> Value {
        imm(TAG_PROTO, u64::from(i))
    }

    /// The prototype's index.
    pub fn as_proto(self) -> Option<u32> {
        (self.tag() == TAG_PROTO).then_some(self.payload() as u32)
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(a) = self.addr() {
            write!(f, "#<object {a:#x}>")
        } else if let Some(n) = self.as_fixnum() {
            write!(f, "{n}")
        } else {
            write!(f, "#<immediate {:#x}>", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_fixnum_round_trips_at_the_edges() {
        for n in [0, 1, -1, FIXNUM_MIN, FIXNUM_MAX, 12345, -98765] {
            let v = Value::fixnum(n).unwrap();
            assert_eq!(v.as_fixnum(), Some(n));
            assert!(!v.is_ptr());
        }
        assert_eq!(Value::fixnum(FIXNUM_MAX + 1), None);
        assert_eq!(Value::fixnum(FIXNUM_MIN - 1), None);
    }

    #[test]
    fn value_immediates_are_outside_the_heap() {
        for v in [
            Value::NIL,
            Value::FALSE,
            Value::TRUE,
            Value::UNSPECIFIED,
            Value::EOF,
            Value::char('λ'),
            Value::symbol(7),
            Value::prim(3),
            Value::proto(9),
            Value::fixnum(-1).unwrap(),
        ] {
            assert!(v.0 >= 1 << 48, "{v:?}");
            assert!(!v.is_ptr());
        }
        assert!(Value::from_addr(0x7000_0000_1000).is_ptr());
        assert_eq!(Value::char('λ').as_char(), Some('λ'));
    }
}
