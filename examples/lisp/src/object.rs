//! Heap objects: word 0 is a header (an immediate, value.rs), the rest are fields.
//!
//! | kind | words | pointer words (`Layout`) | span |
//! |---|---|---|---|
//! | pair | header, car, cdr | 1, 2 | scan |
//! | vector | header (length), elements | 1 .. | scan |
//! | closure | header (free count), prototype, free values | 2 .. | scan |
//! | box | header, value (a mutable captured variable) | 1 | scan |
//! | weak box | header, target | none; word 1 is **weak** | scan |
//! | flonum | header, `f64` bits | none | noscan |
//! | string | header (byte length), UTF-8 bytes | none | noscan |
//! | f64vector | header (length), `f64` bits | none | noscan |
//! | weak table | header, table number | none (entries are ephemerons) | noscan |
//!
//! A field declared a pointer word may hold any value: immediates lie outside the heap.

use crate::alloc::{AllocError, Store};
use crate::value::{TAG_HEADER, Value};

/// The kind of a heap object, stored in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A cons cell.
    Pair = 1,
    /// A boxed `f64`.
    Flonum,
    /// An immutable UTF-8 string.
    String,
    /// A vector of values.
    Vector,
    /// A procedure with its captured values.
    Closure,
    /// A mutable cell (an assigned variable captured by a closure).
    Box,
    /// A weak reference to one object.
    WeakBox,
    /// A hash table with weak keys.
    Table,
    /// A vector of unboxed `f64`.
    F64Vector,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Pair,
            2 => Kind::Flonum,
            3 => Kind::String,
            4 => Kind::Vector,
            5 => Kind::Closure,
            6 => Kind::Box,
            7 => Kind::WeakBox,
            8 => Kind::Table,
            9 => Kind::F64Vector,
            _ => return None,
        })
    }
}

impl Store {
    /// The kind and length field of the object at `obj`.
    #[inline]
    pub fn header(&self, obj: usize) -> (Kind, usize) {
        let h = self.read(obj, 0);
        debug_assert_eq!(h >> 48, TAG_HEADER, "not an object header at {obj:#x}");
        let kind = Kind::from_u8((h >> 40) as u8).expect("a valid header");
        (kind, (h & ((1 << 40) - 1)) as usize)
    }

    /// The kind of `v`, if it is a heap object.
    #[inline]
    pub fn kind(&self, v: Value) -> Option<Kind> {
        v.addr().map(|a| self.header(a).0)
    }

    /// Whether `v` is an object of `kind`.
    #[inline]
    pub fn is(&self, v: Value, kind: Kind) -> bool {
        self.kind(v) == Some(kind)
    }

    /// Field `i` (word `i + 1`) of `v`, which must be an object.
    #[inline]
    pub fn field(&self, v: Value, i: usize) -> Value {
        Value(self.read(v.0 as usize, i + 1))
    }

    /// Sets field `i` (word `i + 1`) of `v`, which must be an object.
    #[inline]
    pub fn set_field(&mut self, v: Value, i: usize, x: Value) {
        self.write(v.0 as usize, i + 1, x.0);
    }

    /// `(cons car cdr)`.
    pub fn cons(&mut self, car: Value, cdr: Value) -> Result<Value, AllocError> {
        let p = self.alloc(Kind::Pair, 0, 3, car.0)?;
        self.write(p, 2, cdr.0);
        Ok(Value::from_addr(p))
    }

    /// A list of `items`.
    pub fn list(&mut self, items: &[Value]) -> Result<Value, AllocError> {
        self.list_with_tail(items, Value::NIL)
    }

    /// `items` consed onto `tail`.
    pub fn list_with_tail(&mut self, items: &[Value], tail: Value) -> Result<Value, AllocError> {
        let mut l = tail;
        for &v in items.iter().rev() {
            l = self.cons(v, l)?;
        }
        Ok(l)
    }

    /// A vector of `n` elements, each `fill`.
    pub fn vector(&mut self, n: usize, fill: Value) -> Result<Value, AllocError> {
        Ok(Value::from_addr(self.alloc(
            Kind::Vector,
            n,
            n + 1,
            fill.0,
        )?))
    }

    /// A boxed float.
    pub fn flonum(&mut self, x: f64) -> Result<Value, AllocError> {
        Ok(Value::from_addr(self.alloc(
            Kind::Flonum,
            0,
            2,
            x.to_bits(),
        )?))
    }

    /// The float in a flonum.
    pub fn flonum_value(&self, v: Value) -> f64 {
        f64::from_bits(self.read(v.0 as usize, 1))
    }

    /// A string.
    pub fn string(&mut self, s: &str) -> Result<Value, AllocError> {
        let bytes = s.as_bytes();
        let words = 1 + bytes.len().div_ceil(8);
        let obj = self.alloc(Kind::String, bytes.len(), words, 0)?;
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write(obj, i + 1, u64::from_le_bytes(w));
        }
        Ok(Value::from_addr(obj))
    }

    /// The text of a string object.
    pub fn string_value(&self, v: Value) -> String {
        let obj = v.0 as usize;
        let (_, len) = self.header(obj);
        let mut bytes = Vec::with_capacity(len.next_multiple_of(8));
        for i in 0..len.div_ceil(8) {
            bytes.extend_from_slice(&self.read(obj, i + 1).to_le_bytes());
        }
        bytes.truncate(len);
        String::from_utf8(bytes).expect("strings hold UTF-8")
    }

    /// A closure of prototype `proto` capturing `free`.
    pub fn closure(&mut self, proto: u32, free: &[Value]) -> Result<Value, AllocError> {
        let obj = self.alloc(
            Kind::Closure,
            free.len(),
            2 + free.len(),
            Value::UNSPECIFIED.0,
        )?;
        self.write(obj, 1, Value::proto(proto).0);
        for (i, v) in free.iter().enumerate() {
            self.write(obj, 2 + i, v.0);
        }
        Ok(Value::from_addr(obj))
    }

    /// The prototype index of a closure.
    #[inline]
    pub fn closure_proto(&self, v: Value) -> u32 {
        Value(self.read(v.0 as usize, 1))
            .as_proto()
            .expect("word 1 of a closure is its prototype")
    }

    /// Captured value `i` of a closure.
    #[inline]
    pub fn closure_free(&self, v: Value, i: usize) -> Value {
        Value(self.read(v.0 as usize, 2 + i))
    }

    /// A box holding `x`.
    pub fn make_box(&mut self, x: Value) -> Result<Value, AllocError> {
        Ok(Value::from_addr(self.alloc(Kind::Box, 0, 2, x.0)?))
    }

    /// A weak box: field 0 is a weak word, 0 once its target died.
    pub fn weak_box(&mut self, target: Value) -> Result<Value, AllocError> {
        Ok(Value::from_addr(self.alloc(
            Kind::WeakBox,
            0,
            2,
            target.0,
        )?))
    }

    /// A weak table's object, holding its number.
    pub fn table(&mut self, id: usize) -> Result<Value, AllocError> {
        let fix = Value::fixnum(id as i64).expect("table numbers are small");
        Ok(Value::from_addr(self.alloc(Kind::Table, 0, 2, fix.0)?))
    }

    /// A vector of `n` floats, each `fill`.
    pub fn f64vector(&mut self, n: usize, fill: f64) -> Result<Value, AllocError> {
        Ok(Value::from_addr(self.alloc(
            Kind::F64Vector,
            n,
            n + 1,
            fill.to_bits(),
        )?))
    }

    /// The children of object `v` that keep it alive: its strong pointer fields, as the
    /// runtime understands them (the checking mode's walk, independent of the `Layout`).
    pub fn strong_children(&self, v: Value, out: &mut Vec<Value>) {
        let obj = v.0 as usize;
        let (kind, len) = self.header(obj);
        let (first, n) = match kind {
            Kind::Pair => (1, 2),
            Kind::Vector => (1, len),
            Kind::Closure => (2, len),
            Kind::Box => (1, 1),
            Kind::WeakBox | Kind::Flonum | Kind::String | Kind::F64Vector | Kind::Table => return,
        };
        for w in first..first + n {
            let x = Value(self.read(obj, w));
            if x.is_ptr() {
                out.push(x);
            }
        }
    }
}
