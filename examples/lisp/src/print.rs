//! The printer: values (and, for messages, S-expressions) as text.

use std::fmt::Write;

use crate::object::Kind;
use crate::reader::Sexp;
use crate::value::Value;
use crate::vm::Interp;

/// A float as Scheme prints it: always with a point or an exponent.
pub(crate) fn float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// `v` as `display` (`write == false`) or `write` shows it.
pub(crate) fn value(it: &Interp, v: Value, write: bool) -> String {
    let mut s = String::new();
    put(it, v, write, &mut s, 0);
    s
}

fn put(it: &Interp, v: Value, write: bool, s: &mut String, depth: usize) {
    if depth > 200 {
        s.push_str("...");
        return;
    }
    if let Some(n) = v.as_fixnum() {
        let _ = write!(s, "{n}");
        return;
    }
    if let Some(c) = v.as_char() {
        if write {
            match c {
                ' ' => s.push_str("#\\space"),
                '\n' => s.push_str("#\\newline"),
                '\t' => s.push_str("#\\tab"),
                _ => {
                    let _ = write!(s, "#\\{c}");
                }
            }
        } else {
            s.push(c);
        }
        return;
    }
    if let Some(i) = v.as_symbol() {
        s.push_str(it.symbol_name(i));
        return;
    }
    if let Some(p) = v.as_prim() {
        let _ = write!(s, "#<primitive {}>", crate::prims::PRIMS[p as usize].name);
        return;
    }
    match v {
        Value::NIL => return s.push_str("()"),
        Value::TRUE => return s.push_str("#t"),
        Value::FALSE => return s.push_str("#f"),
        Value::UNSPECIFIED => return s.push_str("#<unspecified>"),
        Value::EOF => return s.push_str("#<eof>"),
        _ => {}
    }
    let Some(kind) = it.store.kind(v) else {
        let _ = write!(s, "#<{:#x}>", v.0);
        return;
    };
    let st = &it.store;
    match kind {
        Kind::Pair => {
            s.push('(');
            let mut l = v;
            let mut first = true;
            let mut n = 0;
            while st.is(l, Kind::Pair) {
                if !first {
                    s.push(' ');
                }
                first = false;
                n += 1;
                if n > 10_000 {
                    s.push_str("...");
                    break;
                }
                put(it, st.field(l, 0), write, s, depth + 1);
                l = st.field(l, 1);
            }
            if l != Value::NIL && n <= 10_000 {
                s.push_str(" . ");
                put(it, l, write, s, depth + 1);
            }
            s.push(')');
        }
        Kind::Flonum => s.push_str(&float(st.flonum_value(v))),
        Kind::String => {
            let text = st.string_value(v);
            if write {
                let _ = write!(s, "{text:?}");
            } else {
                s.push_str(&text);
            }
        }
        Kind::Vector => {
            s.push_str("#(");
            let (_, n) = st.header(v.0 as usize);
            for i in 0..n {
                if i > 0 {
                    s.push(' ');
                }
                put(it, st.field(v, i), write, s, depth + 1);
            }
            s.push(')');
        }
        Kind::Closure => {
            let _ = write!(s, "#<procedure {}>", it.proto_name(st.closure_proto(v)));
        }
        Kind::Box => s.push_str("#<box>"),
        Kind::WeakBox => s.push_str("#<weak-box>"),
        Kind::Table => s.push_str("#<weak-table>"),
        Kind::F64Vector => {
            let (_, n) = st.header(v.0 as usize);
            let _ = write!(s, "#<f64vector {n}>");
        }
    }
}

/// An S-expression as source text (for assertion messages).
pub(crate) fn sexp(x: &Sexp) -> String {
    match x {
        Sexp::Int(n) => n.to_string(),
        Sexp::Float(f) => float(*f),
        Sexp::Str(s) => format!("{s:?}"),
        Sexp::Char(c) => format!("#\\{c}"),
        Sexp::Bool(b) => (if *b { "#t" } else { "#f" }).into(),
        Sexp::Sym(s) => s.clone(),
        Sexp::List(items, tail) => {
            let mut out: Vec<String> = items.iter().map(sexp).collect();
            if let Some(t) = tail {
                out.push(".".into());
                out.push(sexp(t));
            }
            format!("({})", out.join(" "))
        }
        Sexp::Vector(items) => {
            format!(
                "#({})",
                items.iter().map(sexp).collect::<Vec<_>>().join(" ")
            )
        }
    }
}
