//! Every program in `programs/` at a small size, in checking mode (after every collection,
//! sencha's marked set, finalizable list, cleared weak words and ephemerons must equal the
//! interpreter's own reachability walk), with a small budget so that each run collects many
//! times; and the same programs on sencha's embedded allocator.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lisp_example::{Backend, Options, Report, run_file, run_source};

/// Output captured from a run.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn checking(backend: Backend) -> Options {
    Options {
        check: true,
        backend,
        min_budget: 64 << 10,
        growth: 0.25,
        workers: 2,
        reserve: 1 << 30,
        trace: false,
    }
}

fn run(program: &str, arg: &str, opts: &Options) -> (Report, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("programs")
        .join(program);
    let out = Capture::default();
    let report = run_file(&path, vec![arg.to_string()], opts, Box::new(out.clone()))
        .unwrap_or_else(|e| panic!("{program} {arg}: {e}\noutput:\n{}", out.text()));
    (report, out.text())
}

fn run_checked(program: &str, arg: &str, min_collections: usize) -> String {
    let (r, text) = run(program, arg, &checking(Backend::Custom));
    assert!(
        r.collections >= min_collections,
        "{program}: only {} collections",
        r.collections
    );
    assert_eq!(r.checked, r.collections, "{program}: every mark checked");
    assert!(r.peak_heap <= r.bound, "{program}: heap bounded");
    text
}

#[test]
fn binary_trees_small_checked() {
    let text = run_checked("binary-trees.scm", "8", 5);
    assert!(
        text.contains("stretch tree of depth 9\t check: 1023"),
        "{text}"
    );
    assert!(
        text.contains("long lived tree of depth 8\t check: 511"),
        "{text}"
    );
}

#[test]
fn gcbench_small_checked() {
    let text = run_checked("gcbench.scm", "6", 2);
    assert!(text.contains("Completed in"), "{text}");
}

#[test]
fn list_stress_small_checked() {
    let text = run_checked("list-stress.scm", "6", 5);
    assert!(text.contains("long list sum: 19999900000"), "{text}");
}

#[test]
fn weak_cache_small_checked() {
    let text = run_checked("weak-cache.scm", "4", 6);
    assert!(text.contains("misses: 8000"), "{text}");
    assert!(
        text.contains("cache after the last collection: 200"),
        "{text}"
    );
}

#[test]
fn finalizers_small_checked() {
    let text = run_checked("finalizers.scm", "4", 6);
    assert!(
        text.contains("finalized: 4000, finalizer calls: 4001"),
        "{text}"
    );
}

#[test]
fn programs_run_on_the_embedded_allocator() {
    for (p, a) in [
        ("binary-trees.scm", "8"),
        ("gcbench.scm", "6"),
        ("weak-cache.scm", "3"),
        ("finalizers.scm", "3"),
    ] {
        let (r, _) = run(p, a, &checking(Backend::Embedded));
        assert!(r.collections > 0 && r.checked == r.collections, "{p}");
    }
}

#[test]
fn every_program_is_tested() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("programs");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "binary-trees.scm",
            "finalizers.scm",
            "gcbench.scm",
            "list-stress.scm",
            "weak-cache.scm"
        ],
        "a new program needs a test above"
    );
}

fn eval(src: &str) -> Result<String, String> {
    let out = Capture::default();
    run_source(
        src,
        Vec::new(),
        &checking(Backend::Custom),
        Box::new(out.clone()),
    )
    .map(|_| out.text())
    .map_err(|e| e.to_string())
}

#[test]
fn language_basics() {
    let src = r#"
        (define (make-counter) (let ((n 0)) (lambda () (set! n (+ n 1)) n)))
        (define c (make-counter)) (c) (c)
        (display (c)) (newline)
        (display (map + '(1 2 3) '(10 20 30))) (newline)
        (display (apply max 3 '(9 4))) (newline)
        (write (list "s" #\a 1.5 'sym (vector 1 2))) (newline)
        (define (even2? n) (if (= n 0) #t (odd2? (- n 1))))
        (define (odd2? n) (if (= n 0) #f (even2? (- n 1))))
        (display (even2? 100001)) (newline)
        (display (let loop ((i 0) (acc 0)) (if (= i 100000) acc (loop (+ i 1) (+ acc i))))) (newline)
        (display (case 3 ((1 2) 'low) ((3 4) 'mid) (else 'high))) (newline)
        (display (do ((i 0 (+ i 1)) (s '() (cons i s))) ((= i 3) s))) (newline)
        (define (f) (define a 1) (define (g) (+ a 1)) (g))
        (display (f)) (newline)
        (display (cond ((assv 2 '((1 . a) (2 . b))) => cdr) (else 'none))) (newline)
        (display (* 99999999 99999999)) (newline)
    "#;
    assert_eq!(
        eval(src).unwrap(),
        "3\n(11 22 33)\n9\n(\"s\" #\\a 1.5 sym #(1 2))\n#f\n4999950000\nmid\n(2 1 0)\n2\nb\n9999999800000000.0\n"
    );
}

#[test]
fn closures_keep_captured_boxes_alive_across_collections() {
    // Closures capture boxes; many collections run while only closures reach the boxes.
    let src = r#"
        (define (make-acc) (let ((total 0)) (lambda (x) (set! total (+ total x)) total)))
        (define accs (map (lambda (i) (make-acc)) (iota 100)))
        (do ((round 0 (+ round 1))) ((= round 50))
          (for-each (lambda (a) (a 1)) accs)
          (make-vector 1000 0))
        (display (fold-left + 0 (map (lambda (a) (a 0)) accs)))
    "#;
    assert_eq!(eval(src).unwrap(), "5000");
}

#[test]
fn run_time_errors_are_reported_not_panics() {
    for (src, msg) in [
        ("(car 1)", "car"),
        ("(undefined-thing)", "unbound variable"),
        ("((lambda (x) x))", "expected 1 arguments"),
        ("(vector-ref (vector 1) 5)", "out of range"),
        ("(table-set! (make-weak-table) 1 2)", "heap objects"),
        (
            "(define o (list 1)) (on-collect o car) (on-collect o car)",
            "on-collect",
        ),
        ("(assert (= 1 2))", "assertion failed: (= 1 2)"),
        ("(1 2)", "not a procedure"),
        ("(quotient 1 0)", "division by zero"),
        ("(", "unterminated"),
    ] {
        let e = eval(src).unwrap_err();
        assert!(e.contains(msg), "{src}: {e}");
    }
}
