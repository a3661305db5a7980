//! The compiler: S-expressions to bytecode for the stack machine in `vm.rs`.
//!
//! Two passes. The first expands derived forms (`let*`, named `let`, `cond`, `case`, `do`,
//! `when`, `unless`, internal `define`) into a small core and resolves every variable: each
//! binding gets a number, an owning `lambda`, and two flags — *captured* (referenced from an
//! inner `lambda`) and *mutated* (`set!`, or bound by `letrec`). The second pass emits code.
//!
//! Closures are **flat**: a closure copies the values of its free variables when it is made.
//! A variable that is both captured and mutated lives in a **box** (a heap object), and the
//! closure copies the box. Locals and arguments live in the frame's stack slots, so the
//! interpreter's value stack holds every live value between instructions: that stack, the
//! globals and the constant pool are the collector's precise roots.

use std::collections::HashMap;
use std::rc::Rc;

use crate::reader::Sexp;
use crate::value::Value;
use crate::vm::Interp;

/// One instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Push constant-pool entry `i` (a heap object made at compile time; a root).
    Const(u32),
    /// Push an immediate value.
    Imm(Value),
    /// Push local slot `i`.
    Local(u16),
    /// Push the contents of the box in local slot `i`.
    LocalUnbox(u16),
    /// Pop into local slot `i`.
    SetLocal(u16),
    /// Pop into the box in local slot `i`.
    SetLocalBox(u16),
    /// Replace local slot `i` by a new box holding its value.
    BoxLocal(u16),
    /// Push captured value `i` of the running closure.
    Free(u16),
    /// Push the contents of the box captured as value `i`.
    FreeUnbox(u16),
    /// Pop into the box captured as value `i`.
    SetFreeBox(u16),
    /// Push global `i` (an error if unbound).
    Global(u32),
    /// Pop into global `i` (an error if unbound).
    SetGlobal(u32),
    /// Pop into global `i`, binding it.
    DefGlobal(u32),
    /// Drop the top value.
    Pop,
    /// Jump.
    Jump(u32),
    /// Pop; jump if it is `#f`.
    JumpIfFalse(u32),
    /// If the top is `#f`, jump and keep it; else pop it (`and`).
    JumpIfFalseKeep(u32),
    /// If the top is not `#f`, jump and keep it; else pop it (`or`).
    JumpIfTrueKeep(u32),
    /// Pop `n` captured values and push a closure of prototype `p`.
    Closure(u32, u16),
    /// Call the procedure below the top `n` arguments.
    Call(u16),
    /// The same, replacing the running frame.
    TailCall(u16),
    /// Return the top value.
    Return,
}

/// Compiled code of one `lambda`.
#[derive(Debug)]
pub(crate) struct Proto {
    /// The instructions.
    pub(crate) code: Rc<[Op]>,
    /// Required arguments.
    pub(crate) nparams: usize,
    /// Whether extra arguments are collected into a list (in slot `nparams`).
    pub(crate) rest: bool,
    /// Local slots, arguments included.
    pub(crate) nlocals: usize,
    /// For messages.
    pub(crate) name: String,
}

type VarId = usize;
type LambdaId = usize;

struct Var {
    owner: LambdaId,
    captured: bool,
    mutated: bool,
}

enum Node {
    Const(Sexp),
    Var(VarId),
    Global(String),
    SetVar(VarId, Box<Node>),
    SetGlobal(String, Box<Node>),
    Define(String, Box<Node>),
    If(Box<Node>, Box<Node>, Option<Box<Node>>),
    Lambda(LambdaId),
    Seq(Vec<Node>),
    Call(Box<Node>, Vec<Node>),
    Let(Vec<(VarId, Node)>, Box<Node>),
    Letrec(Vec<(VarId, Node)>, Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

struct LambdaDef {
    params: Vec<VarId>,
    rest: Option<VarId>,
    body: Option<Node>,
    free: Vec<VarId>,
    name: String,
}

struct Scope {
    names: Vec<(String, VarId)>,
}

/// A compile error.
pub(crate) type CompileError = String;

struct Expander {
    vars: Vec<Var>,
    lambdas: Vec<LambdaDef>,
    scopes: Vec<Scope>,
    /// The enclosing lambdas, innermost last.
    lambda_stack: Vec<LambdaId>,
    gensym: usize,
}

fn sym(s: &str) -> Sexp {
    Sexp::Sym(s.into())
}

fn list(v: Vec<Sexp>) -> Sexp {
    Sexp::List(v, None)
}

impl Expander {
    fn new_var(&mut self, name: &str, scope: &mut Scope) -> VarId {
        let owner = *self.lambda_stack.last().expect("inside a lambda");
        self.vars.push(Var {
            owner,
            captured: false,
            mutated: false,
        });
        let v = self.vars.len() - 1;
        scope.names.push((name.to_string(), v));
        v
    }

    fn lookup(&mut self, name: &str) -> Option<VarId> {
        let v = self.scopes.iter().rev().find_map(|s| {
            s.names
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|&(_, v)| v)
        })?;
        let owner = self.vars[v].owner;
        let current = *self.lambda_stack.last().expect("inside a lambda");
        if owner != current {
            self.vars[v].captured = true;
            for &l in self.lambda_stack.iter().rev() {
                if l == owner {
                    break;
                }
                if !self.lambdas[l].free.contains(&v) {
                    self.lambdas[l].free.push(v);
                }
            }
        }
        Some(v)
    }

    fn gensym(&mut self, base: &str) -> String {
        self.gensym += 1;
        format!("%{base}{}", self.gensym)
    }

    fn expand(&mut self, x: &Sexp) -> Result<Node, CompileError> {
        match x {
            Sexp::Sym(name) => Ok(match self.lookup(name) {
                Some(v) => Node::Var(v),
                None => Node::Global(name.clone()),
            }),
            Sexp::List(items, None) if !items.is_empty() => self.expand_form(items),
            Sexp::List(items, None) if items.is_empty() => Err("empty combination ()".into()),
            Sexp::List(_, Some(_)) => Err("dotted list in code".into()),
            Sexp::Vector(_) => Err("vector literals must be quoted".into()),
            _ => Ok(Node::Const(x.clone())),
        }
    }

    fn body(&mut self, forms: &[Sexp]) -> Result<Node, CompileError> {
        // Leading internal defines become a letrec* around the rest.
        let mut defs = Vec::new();
        let mut rest = forms;
        while let Some((first, tail)) = rest.split_first() {
            let Some(items) = first.list() else { break };
            if items.first().and_then(Sexp::sym) != Some("define") {
                break;
            }
            defs.push(define_parts(items)?);
            rest = tail;
        }
        if rest.is_empty() {
            return Err("a body needs at least one expression".into());
        }
        if defs.is_empty() {
            return self.seq(rest);
        }
        let bindings = defs
            .into_iter()
            .map(|(n, e)| list(vec![sym(&n), e]))
            .collect();
        let mut form = vec![sym("letrec*"), list(bindings)];
        form.extend(rest.iter().cloned());
        self.expand(&list(form))
    }

    fn seq(&mut self, forms: &[Sexp]) -> Result<Node, CompileError> {
        let mut nodes = forms
            .iter()
            .map(|f| self.expand(f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if nodes.len() == 1 {
            nodes.pop().expect("one")
        } else {
            Node::Seq(nodes)
        })
    }

    fn lambda(&mut self, params: &Sexp, body: &[Sexp], name: &str) -> Result<Node, CompileError> {
        let (names, rest) = match params {
            Sexp::List(v, tail) => (v.as_slice(), tail.as_deref()),
            Sexp::Sym(_) => (&[][..], Some(params)),
            _ => return Err("bad parameter list".into()),
        };
        let id = self.lambdas.len();
        self.lambdas.push(LambdaDef {
            params: Vec::new(),
            rest: None,
            body: None,
            free: Vec::new(),
            name: name.to_string(),
        });
        self.lambda_stack.push(id);
        let mut scope = Scope { names: Vec::new() };
        let mut ps = Vec::new();
        for p in names {
            let n = p.sym().ok_or("a parameter must be a symbol")?;
            ps.push(self.new_var(n, &mut scope));
        }
        let r = match rest {
            Some(p) => Some(self.new_var(
                p.sym().ok_or("a rest parameter must be a symbol")?,
                &mut scope,
            )),
            None => None,
        };
        self.scopes.push(scope);
        let b = self.body(body);
        self.scopes.pop();
        self.lambda_stack.pop();
        let l = &mut self.lambdas[id];
        l.params = ps;
        l.rest = r;
        l.body = Some(b?);
        Ok(Node::Lambda(id))
    }

    fn bindings<'s>(&self, x: &'s Sexp) -> Result<Vec<(&'s str, &'s Sexp)>, CompileError> {
        let items = x.list().ok_or("bad bindings")?;
        items
            .iter()
            .map(|b| match b.list() {
                Some([Sexp::Sym(n), e]) => Ok((n.as_str(), e)),
                _ => Err(format!("bad binding {b:?}")),
            })
            .collect()
    }

    fn expand_form(&mut self, items: &[Sexp]) -> Result<Node, CompileError> {
        let head = items[0].sym();
        if let Some(h) = head
            && self.lookup_no_capture(h).is_none()
            && let Some(node) = self.special(h, items)?
        {
            return Ok(node);
        }
        let f = self.expand(&items[0])?;
        let args = items[1..]
            .iter()
            .map(|a| self.expand(a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Node::Call(Box::new(f), args))
    }

    fn lookup_no_capture(&self, name: &str) -> Option<VarId> {
        self.scopes.iter().rev().find_map(|s| {
            s.names
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|&(_, v)| v)
        })
    }

    /// A special form, or `None` if `h` names none.
    fn special(&mut self, h: &str, items: &[Sexp]) -> Result<Option<Node>, CompileError> {
        let args = &items[1..];
        let node = match h {
            "quote" => match args {
                [x] => Node::Const(x.clone()),
                _ => return Err("quote takes one datum".into()),
            },
            "quasiquote" | "unquote" | "unquote-splicing" => {
                return Err(format!("{h} is not supported"));
            }
            "if" => match args {
                [c, t] => Node::If(Box::new(self.expand(c)?), Box::new(self.expand(t)?), None),
                [c, t, e] => Node::If(
                    Box::new(self.expand(c)?),
                    Box::new(self.expand(t)?),
                    Some(Box::new(self.expand(e)?)),
                ),
                _ => return Err("if takes two or three expressions".into()),
            },
            "define" => {
                if self.lambda_stack.len() > 1 {
                    return Err("define is allowed only at the start of a body".into());
                }
                let (name, e) = define_parts(items)?;
                let value = match e.list() {
                    Some([Sexp::Sym(l), params, body @ ..]) if l == "lambda" => {
                        self.lambda(params, body, &name)?
                    }
                    _ => self.expand(&e)?,
                };
                Node::Define(name, Box::new(value))
            }
            "set!" => match args {
                [Sexp::Sym(n), e] => {
                    let value = Box::new(self.expand(e)?);
                    match self.lookup(n) {
                        Some(v) => {
                            self.vars[v].mutated = true;
                            Node::SetVar(v, value)
                        }
                        None => Node::SetGlobal(n.clone(), value),
                    }
                }
                _ => return Err("set! takes a variable and an expression".into()),
            },
            "lambda" => match args {
                [params, body @ ..] => self.lambda(params, body, "lambda")?,
                _ => return Err("lambda needs parameters and a body".into()),
            },
            "begin" => {
                if args.is_empty() {
                    Node::Const(Sexp::Bool(false))
                } else if self.lambda_stack.len() == 1 {
                    // Top level: defines inside begin are global defines.
                    Node::Seq(
                        args.iter()
                            .map(|a| self.expand(a))
                            .collect::<Result<_, _>>()?,
                    )
                } else {
                    self.seq(args)?
                }
            }
            "let" => match args {
                [Sexp::Sym(name), bindings, body @ ..] => {
                    // Named let: ((letrec ((name (lambda vars body))) name) inits...)
                    let bs = self.bindings(bindings)?;
                    let vars = list(bs.iter().map(|(n, _)| sym(n)).collect());
                    let mut lam = vec![sym("lambda"), vars];
                    lam.extend(body.iter().cloned());
                    let f = list(vec![
                        sym("letrec"),
                        list(vec![list(vec![sym(name), list(lam)])]),
                        sym(name),
                    ]);
                    let mut call = vec![f];
                    call.extend(bs.iter().map(|(_, e)| (*e).clone()));
                    self.expand(&list(call))?
                }
                [bindings, body @ ..] => {
                    let bs = self.bindings(bindings)?;
                    let inits = bs
                        .iter()
                        .map(|(_, e)| self.expand(e))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut scope = Scope { names: Vec::new() };
                    let vars: Vec<VarId> = bs
                        .iter()
                        .map(|(n, _)| self.new_var(n, &mut scope))
                        .collect();
                    self.scopes.push(scope);
                    let b = self.body(body);
                    self.scopes.pop();
                    Node::Let(vars.into_iter().zip(inits).collect(), Box::new(b?))
                }
                _ => return Err("bad let".into()),
            },
            "let*" => match args {
                [bindings, body @ ..] => {
                    let bs = bindings.list().ok_or("bad let* bindings")?;
                    let mut form = vec![sym("let"), list(vec![])];
                    form.extend(body.iter().cloned());
                    let mut x = list(form);
                    for b in bs.iter().rev() {
                        let mut f = vec![sym("let"), list(vec![b.clone()])];
                        f.push(x);
                        x = list(f);
                    }
                    self.expand(&x)?
                }
                _ => return Err("bad let*".into()),
            },
            "letrec" | "letrec*" => match args {
                [bindings, body @ ..] => {
                    let bs = self.bindings(bindings)?;
                    let mut scope = Scope { names: Vec::new() };
                    let vars: Vec<VarId> = bs
                        .iter()
                        .map(|(n, _)| self.new_var(n, &mut scope))
                        .collect();
                    for &v in &vars {
                        self.vars[v].mutated = true; // assigned after closures may capture it
                    }
                    self.scopes.push(scope);
                    let r = (|| {
                        let mut inits = Vec::new();
                        for (&v, (n, e)) in vars.iter().zip(&bs) {
                            let node = match e.list() {
                                Some([Sexp::Sym(l), params, body @ ..]) if l == "lambda" => {
                                    self.lambda(params, body, n)?
                                }
                                _ => self.expand(e)?,
                            };
                            inits.push((v, node));
                        }
                        Ok::<_, CompileError>((inits, self.body(body)?))
                    })();
                    self.scopes.pop();
                    let (inits, b) = r?;
                    Node::Letrec(inits, Box::new(b))
                }
                _ => return Err(format!("bad {h}")),
            },
            "and" => Node::And(
                args.iter()
                    .map(|a| self.expand(a))
                    .collect::<Result<_, _>>()?,
            ),
            "or" => Node::Or(
                args.iter()
                    .map(|a| self.expand(a))
                    .collect::<Result<_, _>>()?,
            ),
            "when" | "unless" => match args {
                [c, body @ ..] if !body.is_empty() => {
                    let mut b = vec![sym("begin")];
                    b.extend(body.iter().cloned());
                    let c = if h == "when" {
                        c.clone()
                    } else {
                        list(vec![sym("not"), c.clone()])
                    };
                    self.expand(&list(vec![sym("if"), c, list(b)]))?
                }
                _ => return Err(format!("bad {h}")),
            },
            "cond" => {
                let x = self.cond(args)?;
                self.expand(&x)?
            }
            "case" => match args {
                [key, clauses @ ..] => {
                    let tmp = self.gensym("case");
                    let mut conds = Vec::new();
                    for c in clauses {
                        let items = c.list().ok_or("bad case clause")?;
                        let (data, body) = items.split_first().ok_or("empty case clause")?;
                        let test = if data.sym() == Some("else") {
                            sym("else")
                        } else {
                            let tests = data
                                .list()
                                .ok_or("case data must be a list")?
                                .iter()
                                .map(|d| {
                                    list(vec![
                                        sym("eqv?"),
                                        sym(&tmp),
                                        list(vec![sym("quote"), d.clone()]),
                                    ])
                                })
                                .collect::<Vec<_>>();
                            let mut or = vec![sym("or")];
                            or.extend(tests);
                            list(or)
                        };
                        let mut clause = vec![test];
                        clause.extend(body.iter().cloned());
                        conds.push(list(clause));
                    }
                    let mut cond = vec![sym("cond")];
                    cond.extend(conds);
                    let x = list(vec![
                        sym("let"),
                        list(vec![list(vec![sym(&tmp), key.clone()])]),
                        list(cond),
                    ]);
                    self.expand(&x)?
                }
                _ => return Err("bad case".into()),
            },
            "do" => match args {
                [specs, test_clause, body @ ..] => {
                    let specs = specs.list().ok_or("bad do variables")?;
                    let (test, result) = test_clause
                        .list()
                        .and_then(|t| t.split_first())
                        .ok_or("bad do test")?;
                    let lp = self.gensym("do");
                    let mut binds = Vec::new();
                    let mut steps = vec![sym(&lp)];
                    for s in specs {
                        match s.list() {
                            Some([v, init]) => {
                                binds.push(list(vec![v.clone(), init.clone()]));
                                steps.push(v.clone());
                            }
                            Some([v, init, step]) => {
                                binds.push(list(vec![v.clone(), init.clone()]));
                                steps.push(step.clone());
                            }
                            _ => return Err("bad do variable".into()),
                        }
                    }
                    let mut done = vec![sym("begin"), Sexp::Bool(false)];
                    done.extend(result.iter().cloned());
                    let mut again = vec![sym("begin")];
                    again.extend(body.iter().cloned());
                    again.push(list(steps));
                    let x = list(vec![
                        sym("let"),
                        sym(&lp),
                        list(binds),
                        list(vec![sym("if"), test.clone(), list(done), list(again)]),
                    ]);
                    self.expand(&x)?
                }
                _ => return Err("bad do".into()),
            },
            "assert" => match args {
                [e] => {
                    let msg = Sexp::Str(format!("assertion failed: {}", crate::print::sexp(e)));
                    let x = list(vec![
                        sym("if"),
                        e.clone(),
                        Sexp::Bool(true),
                        list(vec![sym("error"), msg]),
                    ]);
                    self.expand(&x)?
                }
                _ => return Err("assert takes one expression".into()),
            },
            _ => return Ok(None),
        };
        Ok(Some(node))
    }

    fn cond(&mut self, clauses: &[Sexp]) -> Result<Sexp, CompileError> {
        let Some((first, rest)) = clauses.split_first() else {
            return Ok(list(vec![sym("begin")]));
        };
        let items = first.list().ok_or("bad cond clause")?;
        let (test, body) = items.split_first().ok_or("empty cond clause")?;
        if test.sym() == Some("else") {
            let mut b = vec![sym("begin")];
            b.extend(body.iter().cloned());
            return Ok(list(b));
        }
        let else_ = self.cond(rest)?;
        if let [arrow, f] = body
            && arrow.sym() == Some("=>")
        {
            let tmp = self.gensym("cond");
            return Ok(list(vec![
                sym("let"),
                list(vec![list(vec![sym(&tmp), test.clone()])]),
                list(vec![
                    sym("if"),
                    sym(&tmp),
                    list(vec![f.clone(), sym(&tmp)]),
                    else_,
                ]),
            ]));
        }
        if body.is_empty() {
            return Ok(list(vec![sym("or"), test.clone(), else_]));
        }
        let mut b = vec![sym("begin")];
        b.extend(body.iter().cloned());
        Ok(list(vec![sym("if"), test.clone(), list(b), else_]))
    }
}

/// `(define name e)` or `(define (name . params) body...)` as `(name, e)`.
fn define_parts(items: &[Sexp]) -> Result<(String, Sexp), CompileError> {
    match items {
        [_, Sexp::Sym(n), e] => Ok((n.clone(), e.clone())),
        [_, Sexp::List(sig, tail), body @ ..] if !sig.is_empty() && !body.is_empty() => {
            let name = sig[0].sym().ok_or("bad define")?.to_string();
            let params = Sexp::List(sig[1..].to_vec(), tail.clone());
            let mut lam = vec![sym("lambda"), params];
            lam.extend(body.iter().cloned());
            Ok((name, list(lam)))
        }
        _ => Err("bad define".into()),
    }
}

struct Gen<'a> {
    interp: &'a mut Interp,
    vars: &'a [Var],
    lambdas: &'a [LambdaDef],
    /// Prototype of every lambda inside this one (compiled first, by `lower`).
    lowered: &'a HashMap<LambdaId, u32>,
    code: Vec<Op>,
    lambda: LambdaId,
    free: Vec<VarId>,
    slots: HashMap<VarId, u16>,
    nslots: usize,
}

impl Gen<'_> {
    fn boxed(&self, v: VarId) -> bool {
        self.vars[v].captured && self.vars[v].mutated
    }

    fn slot(&mut self, v: VarId) -> Result<u16, CompileError> {
        if let Some(&s) = self.slots.get(&v) {
            return Ok(s);
        }
        let s = u16::try_from(self.nslots).map_err(|_| "too many locals")?;
        self.nslots += 1;
        self.slots.insert(v, s);
        Ok(s)
    }

    fn free_index(&self, v: VarId) -> u16 {
        self.free
            .iter()
            .position(|&f| f == v)
            .expect("a free variable") as u16
    }

    fn here(&self) -> u32 {
        self.code.len() as u32
    }

    fn patch(&mut self, at: usize) {
        let target = self.here();
        match &mut self.code[at] {
            Op::Jump(t) | Op::JumpIfFalse(t) | Op::JumpIfFalseKeep(t) | Op::JumpIfTrueKeep(t) => {
                *t = target
            }
            _ => unreachable!("only jumps are patched"),
        }
    }

    /// Pushes variable `v` itself: its value, or its box if it is boxed.
    fn raw(&mut self, v: VarId) -> Result<(), CompileError> {
        if self.vars[v].owner == self.lambda {
            let s = self.slot(v)?;
            self.code.push(Op::Local(s));
        } else {
            let i = self.free_index(v);
            self.code.push(Op::Free(i));
        }
        Ok(())
    }

    fn emit(&mut self, n: &Node, tail: bool) -> Result<(), CompileError> {
        match n {
            Node::Const(x) => {
                let op = self.interp.constant(x)?;
                self.code.push(op);
            }
            Node::Var(v) => {
                let v = *v;
                let boxed = self.boxed(v);
                if self.vars[v].owner == self.lambda {
                    let s = self.slot(v)?;
                    self.code.push(if boxed {
                        Op::LocalUnbox(s)
                    } else {
                        Op::Local(s)
                    });
                } else {
                    let i = self.free_index(v);
                    self.code
                        .push(if boxed { Op::FreeUnbox(i) } else { Op::Free(i) });
                }
            }
            Node::Global(name) => {
                let g = self.interp.global_slot(name);
                self.code.push(Op::Global(g));
            }
            Node::SetVar(v, e) => {
                self.emit(e, false)?;
                let v = *v;
                if self.vars[v].owner == self.lambda {
                    let s = self.slot(v)?;
                    self.code.push(if self.boxed(v) {
                        Op::SetLocalBox(s)
                    } else {
                        Op::SetLocal(s)
                    });
                } else {
                    debug_assert!(self.boxed(v), "a captured mutated variable is boxed");
                    let i = self.free_index(v);
                    self.code.push(Op::SetFreeBox(i));
                }
                self.code.push(Op::Imm(Value::UNSPECIFIED));
            }
            Node::SetGlobal(name, e) => {
                self.emit(e, false)?;
                let g = self.interp.global_slot(name);
                self.code.push(Op::SetGlobal(g));
                self.code.push(Op::Imm(Value::UNSPECIFIED));
            }
            Node::Define(name, e) => {
                self.emit(e, false)?;
                let g = self.interp.global_slot(name);
                self.code.push(Op::DefGlobal(g));
                self.code.push(Op::Imm(Value::UNSPECIFIED));
            }
            Node::If(c, t, e) => {
                self.emit(c, false)?;
                let jf = self.code.len();
                self.code.push(Op::JumpIfFalse(0));
                self.emit(t, tail)?;
                let j = self.code.len();
                self.code.push(Op::Jump(0));
                self.patch(jf);
                match e {
                    Some(e) => self.emit(e, tail)?,
                    None => self.code.push(Op::Imm(Value::UNSPECIFIED)),
                }
                self.patch(j);
            }
            Node::Lambda(id) => {
                let proto = *self.lowered.get(id).ok_or("internal: lambda not lowered")?;
                let free = &self.lambdas[*id].free;
                for &v in free {
                    self.raw(v)?;
                }
                let nfree = u16::try_from(free.len()).map_err(|_| "too many free variables")?;
                self.code.push(Op::Closure(proto, nfree));
            }
            Node::Seq(nodes) => {
                if nodes.is_empty() {
                    self.code.push(Op::Imm(Value::UNSPECIFIED));
                }
                for (i, x) in nodes.iter().enumerate() {
                    let last = i + 1 == nodes.len();
                    self.emit(x, tail && last)?;
                    if !last {
                        self.code.push(Op::Pop);
                    }
                }
            }
            Node::Call(f, args) => {
                self.emit(f, false)?;
                for a in args {
                    self.emit(a, false)?;
                }
                let n = u16::try_from(args.len()).map_err(|_| "too many arguments")?;
                self.code
                    .push(if tail { Op::TailCall(n) } else { Op::Call(n) });
            }
            Node::Let(bindings, body) => {
                for (_, e) in bindings {
                    self.emit(e, false)?;
                }
                for (v, _) in bindings.iter().rev() {
                    let s = self.slot(*v)?;
                    self.code.push(Op::SetLocal(s));
                }
                for (v, _) in bindings {
                    if self.boxed(*v) {
                        let s = self.slot(*v)?;
                        self.code.push(Op::BoxLocal(s));
                    }
                }
                self.emit(body, tail)?;
            }
            Node::Letrec(bindings, body) => {
                for (v, _) in bindings {
                    let s = self.slot(*v)?;
                    self.code.push(Op::Imm(Value::UNSPECIFIED));
                    self.code.push(Op::SetLocal(s));
                    if self.boxed(*v) {
                        self.code.push(Op::BoxLocal(s));
                    }
                }
                for (v, e) in bindings {
                    self.emit(e, false)?;
                    let s = self.slot(*v)?;
                    self.code.push(if self.boxed(*v) {
                        Op::SetLocalBox(s)
                    } else {
                        Op::SetLocal(s)
                    });
                }
                self.emit(body, tail)?;
            }
            Node::And(xs) | Node::Or(xs) => {
                let and = matches!(n, Node::And(_));
                if xs.is_empty() {
                    self.code.push(Op::Imm(Value::bool(and)));
                    return Ok(());
                }
                let mut jumps = Vec::new();
                for (i, x) in xs.iter().enumerate() {
                    let last = i + 1 == xs.len();
                    self.emit(x, tail && last)?;
                    if !last {
                        jumps.push(self.code.len());
                        self.code.push(if and {
                            Op::JumpIfFalseKeep(0)
                        } else {
                            Op::JumpIfTrueKeep(0)
                        });
                    }
                }
                for j in jumps {
                    self.patch(j);
                }
            }
        }
        Ok(())
    }
}

/// Compiles every lambda directly inside `n` (and, recursively, theirs) before `n`'s own code
/// is generated, so that `Gen` only reads the expander.
fn lower(
    n: &mut Node,
    ex: &mut Expander,
    interp: &mut Interp,
    lowered: &mut HashMap<LambdaId, u32>,
) -> Result<(), CompileError> {
    match n {
        Node::Lambda(id) => {
            let p = compile_lambda(*id, ex, interp, lowered)?;
            lowered.insert(*id, p);
        }
        Node::SetVar(_, e) | Node::SetGlobal(_, e) | Node::Define(_, e) => {
            lower(e, ex, interp, lowered)?
        }
        Node::If(c, t, e) => {
            lower(c, ex, interp, lowered)?;
            lower(t, ex, interp, lowered)?;
            if let Some(e) = e {
                lower(e, ex, interp, lowered)?;
            }
        }
        Node::Seq(xs) | Node::And(xs) | Node::Or(xs) => {
            for x in xs {
                lower(x, ex, interp, lowered)?;
            }
        }
        Node::Call(f, args) => {
            lower(f, ex, interp, lowered)?;
            for a in args {
                lower(a, ex, interp, lowered)?;
            }
        }
        Node::Let(bs, body) | Node::Letrec(bs, body) => {
            for (_, e) in bs {
                lower(e, ex, interp, lowered)?;
            }
            lower(body, ex, interp, lowered)?;
        }
        Node::Const(_) | Node::Var(_) | Node::Global(_) => {}
    }
    Ok(())
}

fn compile_lambda(
    id: LambdaId,
    ex: &mut Expander,
    interp: &mut Interp,
    lowered: &mut HashMap<LambdaId, u32>,
) -> Result<u32, CompileError> {
    let mut body = ex.lambdas[id].body.take().ok_or("lambda compiled twice")?;
    lower(&mut body, ex, interp, lowered)?;
    let def = &ex.lambdas[id];
    let (params, rest, free, name) = (
        def.params.clone(),
        def.rest,
        def.free.clone(),
        def.name.clone(),
    );
    let mut g = Gen {
        interp,
        vars: &ex.vars,
        lambdas: &ex.lambdas,
        lowered,
        code: Vec::new(),
        lambda: id,
        free,
        slots: HashMap::new(),
        nslots: 0,
    };
    for &p in params.iter().chain(rest.iter()) {
        g.slot(p)?;
    }
    for &p in params.iter().chain(rest.iter()) {
        if g.boxed(p) {
            let s = g.slot(p)?;
            g.code.push(Op::BoxLocal(s));
        }
    }
    g.emit(&body, true)?;
    g.code.push(Op::Return);
    let proto = Proto {
        code: g.code.into(),
        nparams: params.len(),
        rest: rest.is_some(),
        nlocals: g.nslots,
        name,
    };
    Ok(interp.add_proto(proto))
}

/// Compiles one top-level form into a prototype of no arguments; returns its index.
///
/// # Errors
/// A message for malformed code.
pub(crate) fn compile_toplevel(interp: &mut Interp, x: &Sexp) -> Result<u32, CompileError> {
    let mut ex = Expander {
        vars: Vec::new(),
        lambdas: vec![LambdaDef {
            params: Vec::new(),
            rest: None,
            body: None,
            free: Vec::new(),
            name: "toplevel".into(),
        }],
        scopes: Vec::new(),
        lambda_stack: vec![0],
        gensym: 0,
    };
    let body = ex.expand(x)?;
    ex.lambdas[0].body = Some(body);
    let mut lowered = HashMap::new();
    compile_lambda(0, &mut ex, interp, &mut lowered)
}
