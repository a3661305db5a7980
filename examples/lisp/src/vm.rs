//! The interpreter: a stack machine running the compiler's bytecode.
//!
//! **Roots.** Between two instructions every live value is in one of: the value stack (frame
//! slots and operands, including the running closure at `stack[base - 1]` of every frame),
//! the globals, the constant pool, the finalizer procedures and the finalizers waiting to run.
//! Nothing else in Rust holds a heap value across an instruction. So the interpreter
//! collects only **at a safe point**, the top of its loop: allocation never collects, it only
//! raises `Store::gc_wanted` when the budget is spent, and the next instruction boundary
//! collects (`gc.rs`). An instruction may overshoot the budget by what it allocates itself.
//!
//! **Finalizers** run at the same safe point, after a collection: each is a call injected as if
//! the interrupted instruction had made it, whose result is dropped.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

use sencha::Marker;

use crate::alloc::{AllocError, Backend, Store};
use crate::compiler::{Op, Proto, compile_toplevel};
use crate::gc::{GcState, WeakTable};
use crate::object::Kind;
use crate::prims::{APPLY, PRIMS};
use crate::reader::{Sexp, read_all};
use crate::value::Value;

/// A runtime error: the program stops with this message.
#[derive(Debug)]
pub struct LispError {
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for LispError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LispError {}

impl From<String> for LispError {
    fn from(message: String) -> Self {
        LispError { message }
    }
}

impl From<&str> for LispError {
    fn from(message: &str) -> Self {
        LispError {
            message: message.into(),
        }
    }
}

impl From<AllocError> for LispError {
    fn from(e: AllocError) -> Self {
        LispError {
            message: e.to_string(),
        }
    }
}

impl From<sencha::spans::Error> for LispError {
    fn from(e: sencha::spans::Error) -> Self {
        LispError {
            message: format!("heap: {e}"),
        }
    }
}

impl From<sencha::Error> for LispError {
    fn from(e: sencha::Error) -> Self {
        LispError {
            message: format!("mark: {e}"),
        }
    }
}

impl From<std::io::Error> for LispError {
    fn from(e: std::io::Error) -> Self {
        LispError {
            message: format!("i/o: {e}"),
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// After every mark, compare sencha's marked set with the interpreter's own walk.
    pub check: bool,
    /// Where objects come from.
    pub backend: Backend,
    /// The smallest allocation budget between collections, in bytes.
    pub min_budget: usize,
    /// The budget after a collection is `max(min_budget, live * growth)`.
    pub growth: f64,
    /// Marking threads.
    pub workers: usize,
    /// Address space reserved for the custom allocator, in bytes.
    pub reserve: usize,
    /// Print one line per collection to standard error.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check: false,
            backend: Backend::Custom,
            min_budget: 4 << 20,
            growth: 1.0,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            reserve: 64 << 30,
            trace: false,
        }
    }
}

/// A caller's state, saved while a procedure runs.
struct Frame {
    code: Rc<[Op]>,
    pc: usize,
    base: usize,
    /// Drop the result when returning here (an injected finalizer call).
    discard: bool,
}

/// What a call did.
enum Dispatch {
    /// A primitive ran; its result is on the stack.
    Done,
    /// A closure must be entered with this many arguments on the stack.
    Enter(Value, usize),
}

/// The interpreter.
pub struct Interp {
    /// The heap and its allocator.
    pub store: Store,
    pub(crate) marker: Marker,
    pub(crate) stack: Vec<Value>,
    frames: Vec<Frame>,
    pub(crate) globals: Vec<Value>,
    global_names: Vec<String>,
    global_index: HashMap<String, u32>,
    pub(crate) constants: Vec<Value>,
    protos: Vec<Proto>,
    symbols: Vec<String>,
    symbol_index: HashMap<String, u32>,
    /// Weak tables by number (the number is stored in the table object).
    pub(crate) tables: Vec<Option<WeakTable>>,
    /// Object address -> the procedure `on-collect` registered for it.
    pub(crate) finalizers: HashMap<usize, Value>,
    /// `(object, procedure)` pairs reported by a mark, waiting to run.
    pub(crate) pending: VecDeque<(Value, Value)>,
    /// Collection policy and figures.
    pub gc: GcState,
    pub(crate) out: Box<dyn Write>,
    pub(crate) args: Vec<String>,
    argbuf: Vec<Value>,
    pub(crate) started: Instant,
}

impl std::fmt::Debug for Interp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interp")
            .field("store", &self.store)
            .field("globals", &self.globals.len())
            .field("gc", &self.gc)
            .finish_non_exhaustive()
    }
}

const PRELUDE: &str = include_str!("prelude.scm");

impl Interp {
    /// A new interpreter writing to `out`, with the prelude loaded.
    ///
    /// # Errors
    /// If the reservation, the marker or the prelude fails.
    pub fn new(opts: &Options, out: Box<dyn Write>) -> Result<Interp, LispError> {
        let store = Store::new(opts.backend, opts.reserve, opts.min_budget)?;
        let marker = Marker::builder().workers(opts.workers.max(1)).build()?;
        let mut it = Interp {
            store,
            marker,
            stack: Vec::new(),
            frames: Vec::new(),
            globals: Vec::new(),
            global_names: Vec::new(),
            global_index: HashMap::new(),
            constants: Vec::new(),
            protos: Vec::new(),
            symbols: Vec::new(),
            symbol_index: HashMap::new(),
            tables: Vec::new(),
            finalizers: HashMap::new(),
            pending: VecDeque::new(),
            gc: GcState::new(opts),
            out,
            args: Vec::new(),
            argbuf: Vec::new(),
            started: Instant::now(),
        };
        for (i, p) in PRIMS.iter().enumerate() {
            let g = it.global_slot(p.name);
            it.globals[g as usize] = Value::prim(i as u32);
        }
        it.eval_source(PRELUDE)?;
        Ok(it)
    }

    /// Reads, compiles and runs every form of `src` in order; returns the last value.
    ///
    /// # Errors
    /// The first read, compile or run-time error.
    pub fn eval_source(&mut self, src: &str) -> Result<Value, LispError> {
        let forms = read_all(src).map_err(|e| e.to_string())?;
        let mut last = Value::UNSPECIFIED;
        for f in &forms {
            let p = compile_toplevel(self, f)?;
            last = self.run_proto(p)?;
        }
        Ok(last)
    }

    /// The index of global `name`, created unbound if new.
    pub(crate) fn global_slot(&mut self, name: &str) -> u32 {
        if let Some(&g) = self.global_index.get(name) {
            return g;
        }
        let g = self.globals.len() as u32;
        self.globals.push(Value(0));
        self.global_names.push(name.to_string());
        self.global_index.insert(name.to_string(), g);
        g
    }

    /// The symbol named `name`.
    pub(crate) fn intern(&mut self, name: &str) -> Value {
        if let Some(&i) = self.symbol_index.get(name) {
            return Value::symbol(i);
        }
        let i = self.symbols.len() as u32;
        self.symbols.push(name.to_string());
        self.symbol_index.insert(name.to_string(), i);
        Value::symbol(i)
    }

    /// A symbol's name.
    pub(crate) fn symbol_name(&self, i: u32) -> &str {
        &self.symbols[i as usize]
    }

    /// A prototype's name.
    pub(crate) fn proto_name(&self, i: u32) -> &str {
        &self.protos[i as usize].name
    }

    pub(crate) fn add_proto(&mut self, p: Proto) -> u32 {
        self.protos.push(p);
        (self.protos.len() - 1) as u32
    }

    /// The instruction that pushes datum `x`: an immediate, or a heap object made now and
    /// kept in the constant pool (a root) for as long as the interpreter lives.
    pub(crate) fn constant(&mut self, x: &Sexp) -> Result<Op, String> {
        let v = self.datum(x).map_err(|e| e.to_string())?;
        Ok(if v.is_ptr() {
            self.constants.push(v);
            Op::Const((self.constants.len() - 1) as u32)
        } else {
            Op::Imm(v)
        })
    }

    fn datum(&mut self, x: &Sexp) -> Result<Value, AllocError> {
        Ok(match x {
            Sexp::Int(n) => match Value::fixnum(*n) {
                Some(v) => v,
                None => self.store.flonum(*n as f64)?,
            },
            Sexp::Float(f) => self.store.flonum(*f)?,
            Sexp::Str(s) => self.store.string(s)?,
            Sexp::Char(c) => Value::char(*c),
            Sexp::Bool(b) => Value::bool(*b),
            Sexp::Sym(s) => self.intern(s),
            Sexp::List(items, tail) => {
                let mut l = match tail {
                    Some(t) => self.datum(t)?,
                    None => Value::NIL,
                };
                // Built back to front; no collection can happen until the next instruction,
                // so the partial list needs no root.
                for it in items.iter().rev() {
                    let v = self.datum(it)?;
                    l = self.store.cons(v, l)?;
                }
                l
            }
            Sexp::Vector(items) => {
                let vals = items
                    .iter()
                    .map(|i| self.datum(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let v = self.store.vector(vals.len(), Value::UNSPECIFIED)?;
                for (i, x) in vals.into_iter().enumerate() {
                    self.store.set_field(v, i, x);
                }
                v
            }
        })
    }

    /// Whether `v` can be called.
    pub(crate) fn is_procedure(&self, v: Value) -> bool {
        v.as_prim().is_some() || self.store.is(v, Kind::Closure)
    }

    fn run_proto(&mut self, proto: u32) -> Result<Value, LispError> {
        let clo = self.store.closure(proto, &[])?;
        let depth = self.frames.len();
        let r = self.execute(clo, depth);
        if r.is_err() {
            self.stack.clear();
            self.frames.clear();
        }
        r
    }

    /// Enters closure `clo`, which is on the stack below its `argc` arguments: checks the
    /// arity, collects rest arguments, reserves the local slots. Returns its code and base.
    fn enter(&mut self, clo: Value, argc: usize) -> Result<(Rc<[Op]>, usize), LispError> {
        let p = &self.protos[self.store.closure_proto(clo) as usize];
        let (nparams, rest, nlocals, code) = (p.nparams, p.rest, p.nlocals, p.code.clone());
        if argc < nparams || (!rest && argc > nparams) {
            return Err(format!(
                "{}: expected {}{} arguments, got {argc}",
                p.name,
                if rest { "at least " } else { "" },
                nparams
            )
            .into());
        }
        if rest {
            let extra = argc - nparams;
            let from = self.stack.len() - extra;
            let list = self.store.list(&self.stack[from..])?;
            self.stack.truncate(from);
            self.stack.push(list);
        }
        let base = self.stack.len() - nparams - usize::from(rest);
        self.stack.resize(base + nlocals, Value::UNSPECIFIED);
        Ok((code, base))
    }

    /// Calls the procedure below the top `argc` values: runs a primitive at once, or says
    /// which closure to enter.
    fn dispatch(&mut self, mut argc: usize) -> Result<Dispatch, LispError> {
        loop {
            let at = self.stack.len() - argc - 1;
            let f = self.stack[at];
            if let Some(p) = f.as_prim() {
                if p == APPLY {
                    // (apply f a ... list): spread the list, drop `apply`, call again.
                    if argc < 2 {
                        return Err("apply: expected at least 2 arguments".into());
                    }
                    let mut l = self.stack.pop().expect("argc >= 2");
                    self.stack.remove(at);
                    argc -= 2;
                    while self.store.is(l, Kind::Pair) {
                        self.stack.push(self.store.field(l, 0));
                        l = self.store.field(l, 1);
                        argc += 1;
                    }
                    if l != Value::NIL {
                        return Err("apply: the last argument must be a list".into());
                    }
                    continue;
                }
                let prim = &PRIMS[p as usize];
                if argc < prim.min || prim.max.is_some_and(|m| argc > m) {
                    return Err(format!("{}: wrong number of arguments ({argc})", prim.name).into());
                }
                let mut args = std::mem::take(&mut self.argbuf);
                args.clear();
                args.extend_from_slice(&self.stack[at + 1..]);
                let r = (prim.f)(self, &args);
                self.argbuf = args;
                let v = r?;
                self.stack.truncate(at);
                self.stack.push(v);
                return Ok(Dispatch::Done);
            }
            if self.store.is(f, Kind::Closure) {
                return Ok(Dispatch::Enter(f, argc));
            }
            return Err(format!("not a procedure: {}", crate::print::value(self, f, true)).into());
        }
    }

    /// Runs until the frame entered now returns to depth `depth`.
    fn execute(&mut self, clo: Value, depth: usize) -> Result<Value, LispError> {
        self.stack.push(clo);
        let (mut code, mut base) = self.enter(clo, 0)?;
        let mut pc = 0usize;
        loop {
            if self.store.gc_wanted || !self.pending.is_empty() {
                // The safe point: every live value is in a root (module docs).
                if self.store.gc_wanted {
                    self.collect()?;
                }
                if let Some((obj, proc)) = self.pending.pop_front() {
                    self.stack.push(proc);
                    self.stack.push(obj);
                    match self.dispatch(1)? {
                        Dispatch::Done => {
                            self.stack.pop();
                        }
                        Dispatch::Enter(f, argc) => {
                            self.frames.push(Frame {
                                code,
                                pc,
                                base,
                                discard: true,
                            });
                            (code, base) = self.enter(f, argc)?;
                            pc = 0;
                        }
                    }
                    self.gc.finalizers_run += 1;
                    continue;
                }
            }
            let op = code[pc];
            pc += 1;
            match op {
                Op::Const(i) => self.stack.push(self.constants[i as usize]),
                Op::Imm(v) => self.stack.push(v),
                Op::Local(s) => self.stack.push(self.stack[base + s as usize]),
                Op::LocalUnbox(s) => {
                    let b = self.stack[base + s as usize];
                    self.stack.push(self.store.field(b, 0));
                }
                Op::SetLocal(s) => {
                    let v = self.pop();
                    self.stack[base + s as usize] = v;
                }
                Op::SetLocalBox(s) => {
                    let v = self.pop();
                    let b = self.stack[base + s as usize];
                    self.store.set_field(b, 0, v);
                }
                Op::BoxLocal(s) => {
                    let v = self.stack[base + s as usize];
                    self.stack[base + s as usize] = self.store.make_box(v)?;
                }
                Op::Free(i) => {
                    let f = self.stack[base - 1];
                    self.stack.push(self.store.closure_free(f, i as usize));
                }
                Op::FreeUnbox(i) => {
                    let f = self.stack[base - 1];
                    let b = self.store.closure_free(f, i as usize);
                    self.stack.push(self.store.field(b, 0));
                }
                Op::SetFreeBox(i) => {
                    let v = self.pop();
                    let f = self.stack[base - 1];
                    let b = self.store.closure_free(f, i as usize);
                    self.store.set_field(b, 0, v);
                }
                Op::Global(g) => {
                    let v = self.globals[g as usize];
                    if v.0 == 0 {
                        return Err(
                            format!("unbound variable: {}", self.global_names[g as usize]).into(),
                        );
                    }
                    self.stack.push(v);
                }
                Op::SetGlobal(g) => {
                    if self.globals[g as usize].0 == 0 {
                        return Err(format!(
                            "set!: unbound variable: {}",
                            self.global_names[g as usize]
                        )
                        .into());
                    }
                    self.globals[g as usize] = self.pop();
                }
                Op::DefGlobal(g) => self.globals[g as usize] = self.pop(),
                Op::Pop => {
                    self.pop();
                }
                Op::Jump(t) => pc = t as usize,
                Op::JumpIfFalse(t) => {
                    if !self.pop().is_true() {
                        pc = t as usize;
                    }
                }
                Op::JumpIfFalseKeep(t) => {
                    if self.top().is_true() {
                        self.pop();
                    } else {
                        pc = t as usize;
                    }
                }
                Op::JumpIfTrueKeep(t) => {
                    if self.top().is_true() {
                        pc = t as usize;
                    } else {
                        self.pop();
                    }
                }
                Op::Closure(p, n) => {
                    let from = self.stack.len() - n as usize;
                    let mut free = std::mem::take(&mut self.argbuf);
                    free.clear();
                    free.extend_from_slice(&self.stack[from..]);
                    let c = self.store.closure(p, &free);
                    self.argbuf = free;
                    let c = c?;
                    self.stack.truncate(from);
                    self.stack.push(c);
                }
                Op::Call(n) => {
                    if let Dispatch::Enter(f, argc) = self.dispatch(n as usize)? {
                        self.frames.push(Frame {
                            code,
                            pc,
                            base,
                            discard: false,
                        });
                        (code, base) = self.enter(f, argc)?;
                        pc = 0;
                    }
                }
                Op::TailCall(n) => {
                    let n = n as usize;
                    let from = self.stack.len() - n - 1;
                    self.stack.copy_within(from.., base - 1);
                    self.stack.truncate(base + n);
                    match self.dispatch(n)? {
                        Dispatch::Enter(f, argc) => {
                            (code, base) = self.enter(f, argc)?;
                            pc = 0;
                        }
                        Dispatch::Done => {
                            if let Some(v) = self.ret(&mut code, &mut pc, &mut base, depth) {
                                return Ok(v);
                            }
                        }
                    }
                }
                Op::Return => {
                    if let Some(v) = self.ret(&mut code, &mut pc, &mut base, depth) {
                        return Ok(v);
                    }
                }
            }
        }
    }

    /// Returns the top value from the running frame to its caller; `Some` when that leaves
    /// the frame the host entered.
    fn ret(
        &mut self,
        code: &mut Rc<[Op]>,
        pc: &mut usize,
        base: &mut usize,
        depth: usize,
    ) -> Option<Value> {
        let v = self.pop();
        self.stack.truncate(*base - 1);
        if self.frames.len() == depth {
            return Some(v);
        }
        let f = self.frames.pop().expect("a caller frame");
        *code = f.code;
        *pc = f.pc;
        *base = f.base;
        if !f.discard {
            self.stack.push(v);
        }
        None
    }

    #[inline]
    fn pop(&mut self) -> Value {
        self.stack.pop().expect("the compiler balances the stack")
    }

    #[inline]
    fn top(&self) -> Value {
        *self.stack.last().expect("the compiler balances the stack")
    }

    /// Every root: the value stack, the globals, the constants, the finalizer procedures and
    /// the finalizers waiting to run (object and procedure), as object addresses, sorted and
    /// without duplicates.
    pub(crate) fn roots(&self) -> Vec<usize> {
        let mut r: Vec<usize> = self
            .stack
            .iter()
            .chain(&self.globals)
            .chain(&self.constants)
            .chain(self.finalizers.values())
            .chain(self.pending.iter().flat_map(|(o, p)| [o, p]))
            .filter_map(|v| v.addr())
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// Flushes the output.
    ///
    /// # Errors
    /// The writer's.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
