//! The reader: source text to S-expressions held in Rust (not in the heap). The compiler
//! turns them into code; only quoted data become heap objects.

/// An S-expression as read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Sexp {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string literal.
    Str(String),
    /// A character literal.
    Char(char),
    /// `#t` / `#f`.
    Bool(bool),
    /// A symbol.
    Sym(String),
    /// A proper list, or an improper one with its final cdr.
    List(Vec<Sexp>, Option<Box<Sexp>>),
    /// A vector literal `#(...)`.
    Vector(Vec<Sexp>),
}

impl Sexp {
    /// The symbol's name, if this is a symbol.
    pub(crate) fn sym(&self) -> Option<&str> {
        match self {
            Sexp::Sym(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a proper list.
    pub(crate) fn list(&self) -> Option<&[Sexp]> {
        match self {
            Sexp::List(v, None) => Some(v),
            _ => None,
        }
    }

    fn quoted(name: &str, x: Sexp) -> Sexp {
        Sexp::List(vec![Sexp::Sym(name.into()), x], None)
    }
}

/// A syntax error with its line.
#[derive(Debug)]
pub(crate) struct ReadError {
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

/// Reads every datum of `src`.
///
/// # Errors
/// A [`ReadError`] for malformed input.
pub(crate) fn read_all(src: &str) -> Result<Vec<Sexp>, ReadError> {
    let mut r = Reader {
        src: src.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        r.skip_space()?;
        if r.pos >= r.src.len() {
            return Ok(out);
        }
        out.push(r.datum()?);
    }
}

fn is_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b'[' | b']' | b'"' | b';' | b'\'')
}

impl Reader<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ReadError> {
        Err(ReadError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_space(&mut self) -> Result<(), ReadError> {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => {
                    self.bump();
                }
                Some(b';') => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                Some(b'#') if self.src.get(self.pos + 1) == Some(&b'|') => {
                    self.pos += 2;
                    let mut depth = 1;
                    while depth > 0 {
                        match self.bump() {
                            None => return self.err("unterminated #| comment"),
                            Some(b'|') if self.peek() == Some(b'#') => {
                                self.bump();
                                depth -= 1;
                            }
                            Some(b'#') if self.peek() == Some(b'|') => {
                                self.bump();
                                depth += 1;
                            }
                            _ => {}
                        }
                    }
                }
                Some(b'#') if self.src.get(self.pos + 1) == Some(&b';') => {
                    self.pos += 2;
                    self.skip_space()?;
                    self.datum()?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn datum(&mut self) -> Result<Sexp, ReadError> {
        self.skip_space()?;
        let Some(c) = self.peek() else {
            return self.err("unexpected end of input");
        };
        match c {
            b'(' | b'[' => {
                self.bump();
                self.list(if c == b'(' { b')' } else { b']' })
            }
            b')' | b']' => self.err("unexpected closing parenthesis"),
            b'\'' => {
                self.bump();
                Ok(Sexp::quoted("quote", self.datum()?))
            }
            b'`' => {
                self.bump();
                Ok(Sexp::quoted("quasiquote", self.datum()?))
            }
            b',' => {
                self.bump();
                if self.peek() == Some(b'@') {
                    self.bump();
                    Ok(Sexp::quoted("unquote-splicing", self.datum()?))
                } else {
                    Ok(Sexp::quoted("unquote", self.datum()?))
                }
            }
            b'"' => {
                self.bump();
                self.string()
            }
            b'#' => self.hash(),
            _ => self.atom(),
        }
    }

    fn list(&mut self, close: u8) -> Result<Sexp, ReadError> {
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                None => return self.err("unterminated list"),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(Sexp::List(items, None));
                }
                Some(b')' | b']') => return self.err("mismatched parenthesis"),
                Some(b'.') if self.src.get(self.pos + 1).is_none_or(|&c| is_delimiter(c)) => {
                    self.bump();
                    if items.is_empty() {
                        return self.err("nothing before '.'");
                    }
                    let tail = self.datum()?;
                    self.skip_space()?;
                    if self.bump() != Some(close) {
                        return self.err("expected ')' after the tail of a dotted list");
                    }
                    return Ok(Sexp::List(items, Some(Box::new(tail))));
                }
                Some(_) => items.push(self.datum()?),
            }
        }
    }

    fn string(&mut self) -> Result<Sexp, ReadError> {
        let mut bytes = Vec::new();
        loop {
            match self.bump() {
                None => return self.err("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => bytes.push(b'\n'),
                    Some(b't') => bytes.push(b'\t'),
                    Some(b'\\') => bytes.push(b'\\'),
                    Some(b'"') => bytes.push(b'"'),
                    Some(c) => return self.err(format!("unknown escape \\{}", c as char)),
                    None => return self.err("unterminated string"),
                },
                Some(c) => bytes.push(c),
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Sexp::Str(s)),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_delimiter(c)) {
            self.bump();
        }
        std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("")
    }

    fn hash(&mut self) -> Result<Sexp, ReadError> {
        match self.src.get(self.pos + 1) {
            Some(b'(') => {
                self.pos += 2;
                match self.list(b')')? {
                    Sexp::List(items, None) => Ok(Sexp::Vector(items)),
                    _ => self.err("a vector literal cannot be dotted"),
                }
            }
            Some(b'\\') => {
                self.pos += 2;
                let start = self.pos;
                // One character, then more only if they spell a name (#\space).
                let first = std::str::from_utf8(&self.src[start..])
                    .ok()
                    .and_then(|s| s.chars().next());
                let Some(first) = first else {
                    return self.err("bad character literal");
                };
                self.pos += first.len_utf8();
                while self.peek().is_some_and(|c| !is_delimiter(c)) {
                    self.bump();
                }
                let name = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("");
                match name {
                    "space" => Ok(Sexp::Char(' ')),
                    "newline" => Ok(Sexp::Char('\n')),
                    "tab" => Ok(Sexp::Char('\t')),
                    _ if name.chars().count() == 1 => Ok(Sexp::Char(first)),
                    _ => self.err(format!("unknown character #\\{name}")),
                }
            }
            _ => {
                let t = self.token().to_string();
                match t.as_str() {
                    "#t" | "#true" => Ok(Sexp::Bool(true)),
                    "#f" | "#false" => Ok(Sexp::Bool(false)),
                    _ => self.err(format!("unknown syntax {t}")),
                }
            }
        }
    }

    fn atom(&mut self) -> Result<Sexp, ReadError> {
        let t = self.token().to_string();
        if t.is_empty() {
            return self.err("unexpected character");
        }
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Sexp::Int(n));
        }
        let numeric = t.bytes().next().is_some_and(|c| {
            c.is_ascii_digit() || ((c == b'-' || c == b'+' || c == b'.') && t.len() > 1)
        });
        if numeric && let Ok(x) = t.parse::<f64>() {
            return Ok(Sexp::Float(x));
        }
        Ok(Sexp::Sym(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_lists_atoms_and_quotes() {
        let v =
            read_all("(define (f x) 'x) ; comment\n #(1 2.5 \"s\\n\") (a . b) #\\a #t -3").unwrap();
        assert_eq!(v.len(), 6);
        assert_eq!(v[0].list().unwrap().len(), 3);
        assert_eq!(
            v[1],
            Sexp::Vector(vec![
                Sexp::Int(1),
                Sexp::Float(2.5),
                Sexp::Str("s\n".into())
            ])
        );
        assert!(matches!(&v[2], Sexp::List(items, Some(_)) if items.len() == 1));
        assert_eq!(v[3], Sexp::Char('a'));
        assert_eq!(v[4], Sexp::Bool(true));
        assert_eq!(v[5], Sexp::Int(-3));
        assert_eq!(
            read_all("- ...").unwrap(),
            [Sexp::Sym("-".into()), Sexp::Sym("...".into())]
        );
    }

    #[test]
    fn reader_reports_errors_with_lines() {
        let e = read_all("(a\n(b").unwrap_err();
        assert!(e.message.contains("unterminated"));
        assert!(read_all(")").is_err());
        assert!(read_all("\"abc").is_err());
        assert!(read_all("#|").is_err());
    }
}
