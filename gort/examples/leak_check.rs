//! A leak check at the end of a test, as goleak's `defer goleak.VerifyNone(t)`:
//! a small worker pool is started, used and torn down, then
//! `gort::leak::find` looks for goroutines left running.
//!
//! ```text
//! cargo run --example leak_check        # workers torn down: passes, exit 0
//! cargo run --example leak_check leak   # one worker forgotten: the report
//!                                       # on stderr, exit 1
//! ```
//!
//! In a `#[test]` the same check is one line, `gort::leak::verify_none(&Options::new())`
//! at the end (it panics with the report, failing the test), or a guard
//! made first: `let _leaks = gort::leak::guard();`.

use gort::leak::{self, Options};
use gort::{Receiver, Sender};

/// A pool of workers squaring numbers, stopped by closing its job channel.
struct Pool {
    jobs: Sender<u64>,
    results: Receiver<u64>,
    workers: Vec<gort::JoinHandle<()>>,
}

impl Pool {
    fn start(n: usize) -> Pool {
        let (jobs, job_rx) = gort::chan::<u64>(0);
        let (res_tx, results) = gort::chan::<u64>(16);
        let workers = (0..n)
            .map(|_| {
                let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
                gort::go(move || worker(job_rx, res_tx))
            })
            .collect();
        Pool {
            jobs,
            results,
            workers,
        }
    }

    /// Closes the job channel: every worker's loop ends; waits for them.
    fn stop(self) {
        drop(self.jobs);
        for w in self.workers {
            w.join().unwrap();
        }
    }
}

#[inline(never)]
fn worker(jobs: Receiver<u64>, results: Sender<u64>) {
    for j in jobs.iter() {
        if results.send(j * j).is_err() {
            break;
        }
    }
}

/// The bug the check catches: a goroutine waiting for a message nobody
/// will ever send (its sender is kept, never used, never dropped).
#[inline(never)]
fn forgotten_worker(wake: Receiver<()>) {
    let _ = wake.recv();
    // Not a tail call, so this frame stays on the stack to be reported.
    std::hint::black_box(0x1eaf);
}

fn main() {
    let leaky = std::env::args().nth(1).as_deref() == Some("leak");
    let outcome = gort::run(move || {
        let pool = Pool::start(4);
        for i in 1..=10 {
            pool.jobs.send(i).unwrap();
        }
        let sum: u64 = (0..10).map(|_| pool.results.recv().unwrap()).sum();
        assert_eq!(sum, 385);
        pool.stop();

        let mut keep = None;
        if leaky {
            let (wake, rx) = gort::chan::<()>(0);
            gort::go(move || forgotten_worker(rx));
            keep = Some(wake); // never sent on, never closed
        }
        // The end of the "test": anything still running is a leak.
        let r = leak::find(&Options::new());
        drop(keep);
        r
    });
    match outcome {
        Ok(()) => println!("leak_check: no goroutines leaked"),
        Err(leaks) => {
            eprintln!("{leaks}");
            std::process::exit(1);
        }
    }
}
