//! Loom model checks of the termination protocol: the real [`run`](super::run) loop and
//! [`Termination`] counter, driven by a toy worker whose queues are loom mutexes. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p sencha --release --lib termination::loom_tests`.
//!
//! A task `n > 0` produces task `n - 1` on the executing worker's own queue (as scanning a
//! span produces spans); idle workers steal. Every interleaving must end with every task
//! executed exactly once and every worker returned — the no-lost-work and it-ends halves of
//! the module docs' argument. A second model checks that a worker that stops without going
//! idle (a panic) cannot hang the others once `abort` is set.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::collections::VecDeque;

use super::{Termination, Worker, run};

struct Shared {
    term: Termination,
    queues: Vec<Mutex<VecDeque<u32>>>,
    executed: AtomicUsize,
    abort: AtomicBool,
}

struct Toy {
    id: usize,
    shared: Arc<Shared>,
}

impl Worker for Toy {
    type Task = u32;

    fn find_work(&mut self) -> Option<u32> {
        if self.aborted() {
            return None;
        }
        if let Some(t) = self.shared.queues[self.id].lock().unwrap().pop_back() {
            return Some(t);
        }
        // Steal from the others (oldest first, as a stealer takes).
        let n = self.shared.queues.len();
        (1..n).find_map(|k| {
            let v = (self.id + k) % n;
            self.shared.queues[v].lock().unwrap().pop_front()
        })
    }

    fn execute(&mut self, task: u32) {
        self.shared.executed.fetch_add(1, Ordering::Relaxed);
        if task > 0 {
            self.shared.queues[self.id]
                .lock()
                .unwrap()
                .push_back(task - 1);
        }
    }

    fn any_work(&self) -> bool {
        self.shared
            .queues
            .iter()
            .any(|q| !q.lock().unwrap().is_empty())
    }

    fn aborted(&self) -> bool {
        self.shared.abort.load(Ordering::Relaxed)
    }
}

fn shared(workers: usize, first: u32) -> Arc<Shared> {
    let queues: Vec<_> = (0..workers).map(|_| Mutex::new(VecDeque::new())).collect();
    queues[0].lock().unwrap().push_back(first);
    Arc::new(Shared {
        term: Termination::new(),
        queues,
        executed: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
    })
}

/// Two workers, a chain of three tasks produced one by one on worker 0: every task runs once
/// and both workers return, whichever starts first.
#[test]
fn loom_termination_loses_no_work_and_ends() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let s = shared(2, 2);
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                run(
                    &s.term,
                    &mut Toy {
                        id: 1,
                        shared: s.clone(),
                    },
                );
            })
        };
        run(
            &s.term,
            &mut Toy {
                id: 0,
                shared: s.clone(),
            },
        );
        t.join().unwrap();
        assert_eq!(
            s.executed.load(Ordering::Relaxed),
            3,
            "a task was lost or run twice"
        );
        assert!(s.queues.iter().all(|q| q.lock().unwrap().is_empty()));
    });
}

/// Worker 0 "panics": it entered and never goes idle. Once `abort` is set, worker 1 returns.
#[test]
fn loom_abort_ends_the_wait_for_a_dead_worker() {
    loom::model(|| {
        let s = shared(2, 0);
        s.term.enter(); // worker 0 entered, then died holding its count
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                run(
                    &s.term,
                    &mut Toy {
                        id: 1,
                        shared: s.clone(),
                    },
                );
            })
        };
        s.abort.store(true, Ordering::Relaxed);
        t.join().unwrap();
    });
}
