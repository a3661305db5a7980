//! `lisp-example [options] PROGRAM.scm [ARGS...]`: runs a program on the example runtime and
//! prints what the collector did.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lisp_example::{Backend, Options, run_file};

const USAGE: &str = "usage: lisp-example [--check] [--embedded] [--budget BYTES] [--growth F] \
[--workers N] [--reserve BYTES] [--trace] PROGRAM.scm [ARGS...]

  --check          after every collection, compare sencha's marked set with the
                   interpreter's own reachability walk (slow; for testing)
  --embedded       allocate from sencha's embedded allocator instead of the runtime's own
  --budget BYTES   the smallest allocation budget between collections (default 4194304)
  --growth F       budget per live byte after a collection (default 1.0)
  --workers N      marking threads (default: every core)
  --reserve BYTES  address space reserved for the heap (default 64 GiB)
  --trace          print one line per collection to standard error";

fn parse(args: &[String]) -> Result<(Options, PathBuf, Vec<String>), String> {
    let mut opts = Options::default();
    let mut i = 0;
    let number = |i: usize, name: &str| -> Result<f64, String> {
        args.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("{name} needs a non-negative number"))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--check" => opts.check = true,
            "--embedded" => opts.backend = Backend::Embedded,
            "--trace" => opts.trace = true,
            "--budget" => {
                i += 1;
                opts.min_budget = number(i, "--budget")? as usize;
            }
            "--growth" => {
                i += 1;
                opts.growth = number(i, "--growth")?;
            }
            "--workers" => {
                i += 1;
                opts.workers = (number(i, "--workers")? as usize).max(1);
            }
            "--reserve" => {
                i += 1;
                opts.reserve = number(i, "--reserve")? as usize;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => break,
        }
        i += 1;
    }
    let path = args.get(i).ok_or(USAGE)?;
    Ok((opts, PathBuf::from(path), args[i + 1..].to_vec()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, path, prog_args) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let out = Box::new(BufWriter::new(std::io::stdout()));
    match run_file(&path, prog_args, &opts, out) {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("{}: error: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
