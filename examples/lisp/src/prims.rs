//! Primitive procedures. Each takes the interpreter and its arguments (copied off the stack)
//! and returns one value. A primitive may allocate freely: allocation never collects (vm.rs),
//! so the values it holds in Rust locals need no rooting.

use std::collections::HashMap;
use std::io::Write;

use crate::gc::WeakTable;
use crate::object::Kind;
use crate::print::{float, value as show};
use crate::value::Value;
use crate::vm::{Interp, LispError};

type R = Result<Value, LispError>;

/// A primitive: its name, arity and code.
pub(crate) struct Prim {
    pub(crate) name: &'static str,
    pub(crate) min: usize,
    pub(crate) max: Option<usize>,
    pub(crate) f: fn(&mut Interp, &[Value]) -> R,
}

/// `apply` is handled by the interpreter's call path (it re-dispatches).
pub(crate) const APPLY: u32 = 0;

macro_rules! prims {
    ($( $name:literal, $min:expr, $max:expr, $f:expr; )*) => {
        pub(crate) static PRIMS: &[Prim] = &[ $( Prim { name: $name, min: $min, max: $max, f: $f }, )* ];
    };
}

const ANY: Option<usize> = None;
const fn n(k: usize) -> Option<usize> {
    Some(k)
}

prims! {
    "apply", 2, ANY, |_, _| Err("apply: reached the primitive table".into());
    // numbers
    "+", 0, ANY, |it, a| fold(it, a, Num::I(0), |x, y| arith(x, y, i64::checked_add, |p, q| p + q));
    "*", 0, ANY, |it, a| fold(it, a, Num::I(1), |x, y| arith(x, y, i64::checked_mul, |p, q| p * q));
    "-", 1, ANY, |it, a| {
        if a.len() == 1 {
            let x = num(it, a[0])?;
            return make(it, arith(Num::I(0), x, i64::checked_sub, |p, q| p - q));
        }
        let first = num(it, a[0])?;
        fold(it, &a[1..], first, |x, y| arith(x, y, i64::checked_sub, |p, q| p - q))
    };
    "/", 1, ANY, |it, a| {
        let (mut acc, rest) = if a.len() == 1 { (Num::I(1), a) } else { (num(it, a[0])?, &a[1..]) };
        for &v in rest {
            acc = match (acc, num(it, v)?) {
                (_, Num::I(0)) => return Err("/: division by zero".into()),
                (Num::I(x), Num::I(y)) if x % y == 0 => Num::I(x / y),
                (x, y) => Num::F(x.f() / y.f()),
            };
        }
        make(it, acc)
    };
    "quotient", 2, n(2), |it, a| int2(it, a, "quotient", |x, y| x.checked_div(y));
    "remainder", 2, n(2), |it, a| int2(it, a, "remainder", |x, y| x.checked_rem(y));
    "modulo", 2, n(2), |it, a| int2(it, a, "modulo", |x, y| x.checked_rem_euclid(y).map(|r| if y < 0 && r != 0 { r + y } else { r }));
    "=", 1, ANY, |it, a| compare(it, a, |o| o == std::cmp::Ordering::Equal);
    "<", 1, ANY, |it, a| compare(it, a, |o| o == std::cmp::Ordering::Less);
    ">", 1, ANY, |it, a| compare(it, a, |o| o == std::cmp::Ordering::Greater);
    "<=", 1, ANY, |it, a| compare(it, a, |o| o != std::cmp::Ordering::Greater);
    ">=", 1, ANY, |it, a| compare(it, a, |o| o != std::cmp::Ordering::Less);
    "number?", 1, n(1), |it, a| Ok(Value::bool(num(it, a[0]).is_ok()));
    "integer?", 1, n(1), |it, a| Ok(Value::bool(match num(it, a[0]) { Ok(Num::I(_)) => true, Ok(Num::F(x)) => x.fract() == 0.0, _ => false }));
    "zero?", 1, n(1), |it, a| Ok(Value::bool(num(it, a[0])?.f() == 0.0));
    "positive?", 1, n(1), |it, a| Ok(Value::bool(num(it, a[0])?.f() > 0.0));
    "negative?", 1, n(1), |it, a| Ok(Value::bool(num(it, a[0])?.f() < 0.0));
    "even?", 1, n(1), |it, a| Ok(Value::bool(int(it, a[0], "even?")? % 2 == 0));
    "odd?", 1, n(1), |it, a| Ok(Value::bool(int(it, a[0], "odd?")? % 2 != 0));
    "abs", 1, n(1), |it, a| { let x = num(it, a[0])?; make(it, match x { Num::I(i) => i.checked_abs().map_or(Num::F((i as f64).abs()), Num::I), Num::F(f) => Num::F(f.abs()) }) };
    "min", 1, ANY, |it, a| extreme(it, a, std::cmp::Ordering::Less);
    "max", 1, ANY, |it, a| extreme(it, a, std::cmp::Ordering::Greater);
    "exact->inexact", 1, n(1), |it, a| { let x = num(it, a[0])?.f(); make(it, Num::F(x)) };
    "inexact->exact", 1, n(1), |it, a| exact(it, a[0]);
    "exact", 1, n(1), |it, a| exact(it, a[0]);
    "inexact", 1, n(1), |it, a| { let x = num(it, a[0])?.f(); make(it, Num::F(x)) };
    "floor", 1, n(1), |it, a| round_with(it, a[0], f64::floor);
    "ceiling", 1, n(1), |it, a| round_with(it, a[0], f64::ceil);
    "round", 1, n(1), |it, a| round_with(it, a[0], f64::round_ties_even);
    "truncate", 1, n(1), |it, a| round_with(it, a[0], f64::trunc);
    "sqrt", 1, n(1), |it, a| {
        let x = num(it, a[0])?;
        if let Num::I(i) = x && i >= 0 {
            let r = (i as f64).sqrt() as i64;
            if r * r == i { return make(it, Num::I(r)); }
        }
        make(it, Num::F(x.f().sqrt()))
    };
    "expt", 2, n(2), |it, a| {
        let (b, e) = (num(it, a[0])?, num(it, a[1])?);
        let r = match (b, e) {
            (Num::I(b), Num::I(e)) if e >= 0 => u32::try_from(e).ok().and_then(|e| b.checked_pow(e)).map_or(Num::F((b as f64).powf(e as f64)), Num::I),
            (b, e) => Num::F(b.f().powf(e.f())),
        };
        make(it, r)
    };
    "number->string", 1, n(1), |it, a| { let s = match num(it, a[0])? { Num::I(i) => i.to_string(), Num::F(f) => float(f) }; Ok(it.store.string(&s)?) };
    "string->number", 1, n(1), |it, a| {
        let s = string(it, a[0], "string->number")?;
        if let Ok(i) = s.parse::<i64>() { return make(it, Num::I(i)); }
        match s.parse::<f64>() { Ok(f) => make(it, Num::F(f)), Err(_) => Ok(Value::FALSE) }
    };
    // equivalence and types
    "eq?", 2, n(2), |_, a| Ok(Value::bool(a[0] == a[1]));
    "eqv?", 2, n(2), |it, a| Ok(Value::bool(eqv(it, a[0], a[1])));
    "equal?", 2, n(2), |it, a| Ok(Value::bool(equal(it, a[0], a[1], 0)));
    "not", 1, n(1), |_, a| Ok(Value::bool(a[0] == Value::FALSE));
    "null?", 1, n(1), |_, a| Ok(Value::bool(a[0] == Value::NIL));
    "pair?", 1, n(1), |it, a| Ok(Value::bool(it.store.is(a[0], Kind::Pair)));
    "list?", 1, n(1), |it, a| Ok(Value::bool(list_len(it, a[0]).is_some()));
    "symbol?", 1, n(1), |_, a| Ok(Value::bool(a[0].as_symbol().is_some()));
    "string?", 1, n(1), |it, a| Ok(Value::bool(it.store.is(a[0], Kind::String)));
    "vector?", 1, n(1), |it, a| Ok(Value::bool(it.store.is(a[0], Kind::Vector)));
    "boolean?", 1, n(1), |_, a| Ok(Value::bool(a[0] == Value::TRUE || a[0] == Value::FALSE));
    "char?", 1, n(1), |_, a| Ok(Value::bool(a[0].as_char().is_some()));
    "procedure?", 1, n(1), |it, a| Ok(Value::bool(it.is_procedure(a[0])));
    // pairs and lists
    "cons", 2, n(2), |it, a| Ok(it.store.cons(a[0], a[1])?);
    "car", 1, n(1), |it, a| { pair(it, a[0], "car")?; Ok(it.store.field(a[0], 0)) };
    "cdr", 1, n(1), |it, a| { pair(it, a[0], "cdr")?; Ok(it.store.field(a[0], 1)) };
    "set-car!", 2, n(2), |it, a| { pair(it, a[0], "set-car!")?; it.store.set_field(a[0], 0, a[1]); Ok(Value::UNSPECIFIED) };
    "set-cdr!", 2, n(2), |it, a| { pair(it, a[0], "set-cdr!")?; it.store.set_field(a[0], 1, a[1]); Ok(Value::UNSPECIFIED) };
    "cadr", 1, n(1), |it, a| cxr(it, a[0], &[1, 0], "cadr");
    "cddr", 1, n(1), |it, a| cxr(it, a[0], &[1, 1], "cddr");
    "caar", 1, n(1), |it, a| cxr(it, a[0], &[0, 0], "caar");
    "cdar", 1, n(1), |it, a| cxr(it, a[0], &[0, 1], "cdar");
    "caddr", 1, n(1), |it, a| cxr(it, a[0], &[1, 1, 0], "caddr");
    "list", 0, ANY, |it, a| Ok(it.store.list(a)?);
    "length", 1, n(1), |it, a| list_len(it, a[0]).map(fix).ok_or_else(|| "length: not a proper list".into());
    "append", 0, ANY, |it, a| {
        let Some((&last, init)) = a.split_last() else { return Ok(Value::NIL) };
        let mut items = Vec::new();
        for &l in init { items.extend(list_items(it, l, "append")?); }
        Ok(it.store.list_with_tail(&items, last)?)
    };
    "reverse", 1, n(1), |it, a| {
        let items = list_items(it, a[0], "reverse")?;
        let mut l = Value::NIL;
        for v in items { l = it.store.cons(v, l)?; }
        Ok(l)
    };
    "list-tail", 2, n(2), |it, a| { let k = index(it, a[1], "list-tail")?; nth_tail(it, a[0], k, "list-tail") };
    "list-ref", 2, n(2), |it, a| { let k = index(it, a[1], "list-ref")?; let t = nth_tail(it, a[0], k, "list-ref")?; pair(it, t, "list-ref")?; Ok(it.store.field(t, 0)) };
    "memq", 2, n(2), |it, a| member(it, a, |_, x, y| x == y);
    "memv", 2, n(2), |it, a| member(it, a, eqv);
    "member", 2, n(2), |it, a| member(it, a, |it, x, y| equal(it, x, y, 0));
    "assq", 2, n(2), |it, a| assoc(it, a, |_, x, y| x == y);
    "assv", 2, n(2), |it, a| assoc(it, a, eqv);
    "assoc", 2, n(2), |it, a| assoc(it, a, |it, x, y| equal(it, x, y, 0));
    // vectors
    "vector", 0, ANY, |it, a| { let v = it.store.vector(a.len(), Value::UNSPECIFIED)?; for (i, &x) in a.iter().enumerate() { it.store.set_field(v, i, x); } Ok(v) };
    "make-vector", 1, n(2), |it, a| { let k = index(it, a[0], "make-vector")?; Ok(it.store.vector(k, a.get(1).copied().unwrap_or(Value::FALSE))?) };
    "vector-length", 1, n(1), |it, a| Ok(fix(len_of(it, a[0], Kind::Vector, "vector-length")?));
    "vector-ref", 2, n(2), |it, a| { let i = bounded(it, a[0], a[1], Kind::Vector, "vector-ref")?; Ok(it.store.field(a[0], i)) };
    "vector-set!", 3, n(3), |it, a| { let i = bounded(it, a[0], a[1], Kind::Vector, "vector-set!")?; it.store.set_field(a[0], i, a[2]); Ok(Value::UNSPECIFIED) };
    "vector-fill!", 2, n(2), |it, a| { let k = len_of(it, a[0], Kind::Vector, "vector-fill!")?; for i in 0..k { it.store.set_field(a[0], i, a[1]); } Ok(Value::UNSPECIFIED) };
    "vector->list", 1, n(1), |it, a| { let k = len_of(it, a[0], Kind::Vector, "vector->list")?; let items: Vec<Value> = (0..k).map(|i| it.store.field(a[0], i)).collect(); Ok(it.store.list(&items)?) };
    "list->vector", 1, n(1), |it, a| { let items = list_items(it, a[0], "list->vector")?; let v = it.store.vector(items.len(), Value::UNSPECIFIED)?; for (i, x) in items.into_iter().enumerate() { it.store.set_field(v, i, x); } Ok(v) };
    // strings, symbols, characters
    "string-length", 1, n(1), |it, a| Ok(fix(string(it, a[0], "string-length")?.chars().count()));
    "string-append", 0, ANY, |it, a| { let mut s = String::new(); for &x in a { s.push_str(&string(it, x, "string-append")?); } Ok(it.store.string(&s)?) };
    "substring", 2, n(3), |it, a| {
        let s: Vec<char> = string(it, a[0], "substring")?.chars().collect();
        let start = index(it, a[1], "substring")?;
        let end = match a.get(2) { Some(&e) => index(it, e, "substring")?, None => s.len() };
        if start > end || end > s.len() { return Err("substring: range out of bounds".into()); }
        Ok(it.store.string(&s[start..end].iter().collect::<String>())?)
    };
    "string-ref", 2, n(2), |it, a| { let s = string(it, a[0], "string-ref")?; let i = index(it, a[1], "string-ref")?; s.chars().nth(i).map(Value::char).ok_or_else(|| "string-ref: index out of range".into()) };
    "string=?", 2, n(2), |it, a| Ok(Value::bool(string(it, a[0], "string=?")? == string(it, a[1], "string=?")?));
    "string<?", 2, n(2), |it, a| Ok(Value::bool(string(it, a[0], "string<?")? < string(it, a[1], "string<?")?));
    "string->symbol", 1, n(1), |it, a| { let s = string(it, a[0], "string->symbol")?; Ok(it.intern(&s)) };
    "symbol->string", 1, n(1), |it, a| { let i = a[0].as_symbol().ok_or("symbol->string: not a symbol")?; let s = it.symbol_name(i).to_string(); Ok(it.store.string(&s)?) };
    "char->integer", 1, n(1), |_, a| a[0].as_char().map(|c| fix(c as usize)).ok_or_else(|| "char->integer: not a character".into());
    "integer->char", 1, n(1), |it, a| { let i = int(it, a[0], "integer->char")?; u32::try_from(i).ok().and_then(char::from_u32).map(Value::char).ok_or_else(|| "integer->char: not a character code".into()) };
    // output and control
    "display", 1, n(1), |it, a| { let s = show(it, a[0], false); it.out.write_all(s.as_bytes())?; Ok(Value::UNSPECIFIED) };
    "write", 1, n(1), |it, a| { let s = show(it, a[0], true); it.out.write_all(s.as_bytes())?; Ok(Value::UNSPECIFIED) };
    "newline", 0, n(0), |it, _| { it.out.write_all(b"\n")?; Ok(Value::UNSPECIFIED) };
    "error", 1, ANY, |it, a| {
        let mut m = show(it, a[0], false);
        for &x in &a[1..] { m.push(' '); m.push_str(&show(it, x, true)); }
        Err(m.into())
    };
    "void", 0, ANY, |_, _| Ok(Value::UNSPECIFIED);
    "command-line-arguments", 0, n(0), |it, _| {
        let args = it.args.clone();
        let mut items = Vec::new();
        for s in &args { items.push(it.store.string(s)?); }
        Ok(it.store.list(&items)?)
    };
    "runtime-ms", 0, n(0), |it, _| Ok(fix(it.started.elapsed().as_millis() as usize));
    // the collector
    "collect", 0, n(0), |it, _| { it.store.gc_wanted = true; Ok(Value::UNSPECIFIED) };
    "gc-count", 0, n(0), |it, _| Ok(fix(it.gc.collections));
    "heap-bytes", 0, n(0), |it, _| { it.store.sample(); Ok(fix(it.store.figures.in_use)) };
    "peak-heap-bytes", 0, n(0), |it, _| { it.store.sample(); Ok(fix(it.store.figures.peak)) };
    "live-bytes", 0, n(0), |it, _| Ok(fix(it.gc.live));
    "heap-bound", 1, n(1), |it, a| { let live = index(it, a[0], "heap-bound")?; Ok(fix(it.gc.bound(live))) };
    "object-bytes", 1, n(1), |it, a| {
        let obj = a[0].addr().ok_or("object-bytes: not a heap object")?;
        let o = it.store.heap().object(obj)?;
        Ok(fix(o.bytes()))
    };
    "finalizers-run", 0, n(0), |it, _| Ok(fix(it.gc.finalizers_run));
    // weak references, weak tables, finalizers
    "make-weak-box", 1, n(1), |it, a| Ok(it.store.weak_box(a[0])?);
    "weak-box-ref", 1, n(1), |it, a| { kind(it, a[0], Kind::WeakBox, "weak-box-ref")?; let v = it.store.field(a[0], 0); Ok(if v.0 == 0 { Value::FALSE } else { v }) };
    "weak-box-live?", 1, n(1), |it, a| { kind(it, a[0], Kind::WeakBox, "weak-box-live?")?; Ok(Value::bool(it.store.field(a[0], 0).0 != 0)) };
    "make-weak-table", 0, n(0), |it, _| {
        let id = it.tables.iter().position(Option::is_none).unwrap_or(it.tables.len());
        let t = it.store.table(id)?;
        let wt = WeakTable { obj: t.0 as usize, entries: HashMap::new() };
        if id == it.tables.len() { it.tables.push(Some(wt)); } else { it.tables[id] = Some(wt); }
        Ok(t)
    };
    "table-set!", 3, n(3), |it, a| {
        let (id, key) = table_key(it, a[0], a[1], "table-set!")?;
        let t = it.tables[id].as_ref().ok_or("table-set!: dead table")?;
        if let Some(&(_, cell)) = t.entries.get(&key) {
            it.store.set_field(Value::from_addr(cell), 0, a[2]);
            return Ok(Value::UNSPECIFIED);
        }
        let cell = it.store.make_box(a[2])?;
        let e = it.store.heap_mut().new_ephemeron(a[0].0 as usize, key, cell.0 as usize)?;
        it.tables[id].as_mut().ok_or("table-set!: dead table")?.entries.insert(key, (e, cell.0 as usize));
        Ok(Value::UNSPECIFIED)
    };
    "table-ref", 3, n(3), |it, a| {
        let (id, key) = table_key(it, a[0], a[1], "table-ref")?;
        let t = it.tables[id].as_ref().ok_or("table-ref: dead table")?;
        Ok(match t.entries.get(&key) { Some(&(_, cell)) => it.store.field(Value::from_addr(cell), 0), None => a[2] })
    };
    "table-delete!", 2, n(2), |it, a| {
        let (id, key) = table_key(it, a[0], a[1], "table-delete!")?;
        let removed = it.tables[id].as_mut().and_then(|t| t.entries.remove(&key));
        if let Some((e, _)) = removed { it.store.heap_mut().drop_ephemeron(e)?; }
        Ok(Value::UNSPECIFIED)
    };
    "table-count", 1, n(1), |it, a| { let id = table_id(it, a[0], "table-count")?; Ok(fix(it.tables[id].as_ref().map_or(0, |t| t.entries.len()))) };
    "on-collect", 2, n(2), |it, a| {
        let obj = a[0].addr().ok_or("on-collect: not a heap object")?;
        if !it.is_procedure(a[1]) { return Err("on-collect: not a procedure".into()); }
        it.store.heap_mut().register_finalizer(obj).map_err(|e| format!("on-collect: {e}"))?;
        it.finalizers.insert(obj, a[1]);
        Ok(Value::UNSPECIFIED)
    };
    // unboxed float vectors (noscan)
    "make-f64vector", 1, n(2), |it, a| {
        let k = index(it, a[0], "make-f64vector")?;
        let fill = match a.get(1) { Some(&x) => num(it, x)?.f(), None => 0.0 };
        Ok(it.store.f64vector(k, fill)?)
    };
    "f64vector-length", 1, n(1), |it, a| Ok(fix(len_of(it, a[0], Kind::F64Vector, "f64vector-length")?));
    "f64vector-ref", 2, n(2), |it, a| { let i = bounded(it, a[0], a[1], Kind::F64Vector, "f64vector-ref")?; let x = f64::from_bits(it.store.field(a[0], i).0); make(it, Num::F(x)) };
    "f64vector-set!", 3, n(3), |it, a| { let i = bounded(it, a[0], a[1], Kind::F64Vector, "f64vector-set!")?; let x = num(it, a[2])?.f(); it.store.set_field(a[0], i, Value(x.to_bits())); Ok(Value::UNSPECIFIED) };
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn fix(n: usize) -> Value {
    Value::fixnum(n as i64).expect("counts fit in a fixnum")
}

fn num(it: &Interp, v: Value) -> Result<Num, LispError> {
    if let Some(i) = v.as_fixnum() {
        return Ok(Num::I(i));
    }
    if it.store.is(v, Kind::Flonum) {
        return Ok(Num::F(it.store.flonum_value(v)));
    }
    Err(format!("not a number: {}", show(it, v, true)).into())
}

/// A number value; an integer that does not fit in a fixnum becomes a float.
fn make(it: &mut Interp, n: Num) -> R {
    Ok(match n {
        Num::I(i) => match Value::fixnum(i) {
            Some(v) => v,
            None => it.store.flonum(i as f64)?,
        },
        Num::F(f) => it.store.flonum(f)?,
    })
}

fn arith(x: Num, y: Num, i: fn(i64, i64) -> Option<i64>, f: fn(f64, f64) -> f64) -> Num {
    match (x, y) {
        (Num::I(a), Num::I(b)) => i(a, b).map_or_else(|| Num::F(f(a as f64, b as f64)), Num::I),
        (a, b) => Num::F(f(a.f(), b.f())),
    }
}

fn fold(it: &mut Interp, a: &[Value], init: Num, op: impl Fn(Num, Num) -> Num) -> R {
    let mut acc = init;
    for &v in a {
        acc = op(acc, num(it, v)?);
    }
    make(it, acc)
}

fn int(it: &Interp, v: Value, who: &str) -> Result<i64, LispError> {
    match num(it, v)? {
        Num::I(i) => Ok(i),
        Num::F(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(f as i64),
        _ => Err(format!("{who}: not an integer").into()),
    }
}

fn int2(it: &mut Interp, a: &[Value], who: &str, f: fn(i64, i64) -> Option<i64>) -> R {
    let (x, y) = (int(it, a[0], who)?, int(it, a[1], who)?);
    if y == 0 {
        return Err(format!("{who}: division by zero").into());
    }
    let r = f(x, y).ok_or_else(|| format!("{who}: overflow"))?;
    make(it, Num::I(r))
}

fn compare(it: &mut Interp, a: &[Value], ok: fn(std::cmp::Ordering) -> bool) -> R {
    for w in a.windows(2) {
        let o = match (num(it, w[0])?, num(it, w[1])?) {
            (Num::I(x), Num::I(y)) => x.cmp(&y),
            (x, y) => x.f().partial_cmp(&y.f()).ok_or("comparison with NaN")?,
        };
        if !ok(o) {
            return Ok(Value::FALSE);
        }
    }
    if a.len() == 1 {
        num(it, a[0])?;
    }
    Ok(Value::TRUE)
}

fn extreme(it: &mut Interp, a: &[Value], want: std::cmp::Ordering) -> R {
    let mut best = num(it, a[0])?;
    let mut inexact = matches!(best, Num::F(_));
    for &v in &a[1..] {
        let x = num(it, v)?;
        inexact |= matches!(x, Num::F(_));
        if x.f().partial_cmp(&best.f()) == Some(want) {
            best = x;
        }
    }
    make(it, if inexact { Num::F(best.f()) } else { best })
}

fn exact(it: &mut Interp, v: Value) -> R {
    match num(it, v)? {
        Num::I(i) => make(it, Num::I(i)),
        Num::F(f) if f.fract() == 0.0 && f.abs() < 9e15 => make(it, Num::I(f as i64)),
        Num::F(_) => Err("inexact->exact: not an integral value".into()),
    }
}

fn round_with(it: &mut Interp, v: Value, f: fn(f64) -> f64) -> R {
    match num(it, v)? {
        Num::I(i) => make(it, Num::I(i)),
        Num::F(x) => make(it, Num::F(f(x))),
    }
}

fn eqv(it: &Interp, x: Value, y: Value) -> bool {
    x == y
        || (it.store.is(x, Kind::Flonum)
            && it.store.is(y, Kind::Flonum)
            && it.store.flonum_value(x).to_bits() == it.store.flonum_value(y).to_bits())
}

fn equal(it: &Interp, x: Value, y: Value, depth: usize) -> bool {
    if eqv(it, x, y) {
        return true;
    }
    if depth > 10_000 {
        return false;
    }
    let st = &it.store;
    match (st.kind(x), st.kind(y)) {
        (Some(Kind::Pair), Some(Kind::Pair)) => {
            equal(it, st.field(x, 0), st.field(y, 0), depth + 1)
                && equal(it, st.field(x, 1), st.field(y, 1), depth + 1)
        }
        (Some(Kind::String), Some(Kind::String)) => st.string_value(x) == st.string_value(y),
        (Some(Kind::Vector), Some(Kind::Vector)) => {
            let (n, m) = (st.header(x.0 as usize).1, st.header(y.0 as usize).1);
            n == m && (0..n).all(|i| equal(it, st.field(x, i), st.field(y, i), depth + 1))
        }
        _ => false,
    }
}

fn pair(it: &Interp, v: Value, who: &str) -> Result<(), LispError> {
    kind(it, v, Kind::Pair, who)
}

fn kind(it: &Interp, v: Value, k: Kind, who: &str) -> Result<(), LispError> {
    if it.store.is(v, k) {
        Ok(())
    } else {
        Err(format!("{who}: expected a {k:?}, got {}", show(it, v, true)).into())
    }
}

fn cxr(it: &Interp, mut v: Value, path: &[usize], who: &str) -> R {
    for &f in path {
        pair(it, v, who)?;
        v = it.store.field(v, f);
    }
    Ok(v)
}

fn list_len(it: &Interp, mut v: Value) -> Option<usize> {
    let mut n = 0;
    while it.store.is(v, Kind::Pair) {
        n += 1;
        v = it.store.field(v, 1);
    }
    (v == Value::NIL).then_some(n)
}

fn list_items(it: &Interp, mut v: Value, who: &str) -> Result<Vec<Value>, LispError> {
    let mut out = Vec::new();
    while it.store.is(v, Kind::Pair) {
        out.push(it.store.field(v, 0));
        v = it.store.field(v, 1);
    }
    if v != Value::NIL {
        return Err(format!("{who}: not a proper list").into());
    }
    Ok(out)
}

fn index(it: &Interp, v: Value, who: &str) -> Result<usize, LispError> {
    usize::try_from(int(it, v, who)?).map_err(|_| format!("{who}: negative index").into())
}

fn nth_tail(it: &Interp, mut l: Value, k: usize, who: &str) -> R {
    for _ in 0..k {
        pair(it, l, who)?;
        l = it.store.field(l, 1);
    }
    Ok(l)
}

fn member(it: &mut Interp, a: &[Value], same: fn(&Interp, Value, Value) -> bool) -> R {
    let mut l = a[1];
    while it.store.is(l, Kind::Pair) {
        if same(it, a[0], it.store.field(l, 0)) {
            return Ok(l);
        }
        l = it.store.field(l, 1);
    }
    Ok(Value::FALSE)
}

fn assoc(it: &mut Interp, a: &[Value], same: fn(&Interp, Value, Value) -> bool) -> R {
    let mut l = a[1];
    while it.store.is(l, Kind::Pair) {
        let e = it.store.field(l, 0);
        if it.store.is(e, Kind::Pair) && same(it, a[0], it.store.field(e, 0)) {
            return Ok(e);
        }
        l = it.store.field(l, 1);
    }
    Ok(Value::FALSE)
}

fn len_of(it: &Interp, v: Value, k: Kind, who: &str) -> Result<usize, LispError> {
    kind(it, v, k, who)?;
    Ok(it.store.header(v.0 as usize).1)
}

fn bounded(it: &Interp, v: Value, i: Value, k: Kind, who: &str) -> Result<usize, LispError> {
    let n = len_of(it, v, k, who)?;
    let i = index(it, i, who)?;
    if i >= n {
        return Err(format!("{who}: index {i} out of range (length {n})").into());
    }
    Ok(i)
}

fn string(it: &Interp, v: Value, who: &str) -> Result<String, LispError> {
    kind(it, v, Kind::String, who)?;
    Ok(it.store.string_value(v))
}

fn table_id(it: &Interp, t: Value, who: &str) -> Result<usize, LispError> {
    kind(it, t, Kind::Table, who)?;
    let id = it
        .store
        .field(t, 0)
        .as_fixnum()
        .ok_or("a table object holds its number")?;
    Ok(id as usize)
}

/// The table's number and the key's address: weak-table keys are heap objects (an
/// immediate can never die, so it cannot be a weak key).
fn table_key(it: &Interp, t: Value, k: Value, who: &str) -> Result<(usize, usize), LispError> {
    let id = table_id(it, t, who)?;
    let key = k.addr().ok_or_else(|| {
        format!(
            "{who}: a weak table's keys must be heap objects, not {}",
            show(it, k, true)
        )
    })?;
    Ok((id, key))
}
