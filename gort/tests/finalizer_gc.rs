//! Issue 12.4 and 12.5, through the facade (they need the collector, the
//! scheduler and channels together):
//! * Go's idiom "set a finalizer, drop the object, then up to ten times
//!   `runtime.GC()` followed by a non-blocking receive of what the finalizer
//!   sent" works reliably at GOMAXPROCS=1 and 2 (it failed 19 times in 20:
//!   `gc()` never let the finalizer goroutine run);
//! * the finalizer goroutine is a system goroutine: `num_goroutine` does not
//!   count it, as Go's `runtime.NumGoroutine` does not.
//!
//! Each case runs in a child process with its own GOMAXPROCS.

use gort::gc::{gc, set_finalizer, Gc};
use std::process::Command;

const ROUNDS: u32 = 200;

fn run_child(test: &str, procs: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("GORT_TEST_CHILD", "1")
        .env("GOMAXPROCS", procs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "GOMAXPROCS={procs}: {err}");
    assert!(
        err.contains(&format!("child ok: {test}")),
        "the child did not run {test}: {err}"
    );
}

fn is_child() -> bool {
    std::env::var_os("GORT_TEST_CHILD").is_some()
}

/// The idiom, `ROUNDS` times in a row, each round with a fresh object. A
/// round whose finalizer needs more than ten collections (the OS left the
/// finalizer goroutine's M without a CPU for their ~100 ms) is counted as
/// late, and two late rounds are tolerated; the broken runtime ran no
/// finalizer in most rounds, however many collections it was given.
fn finalizer_runs_within_ten_collections() {
    gort::run(|| {
        let mut late = Vec::new();
        for round in 0..ROUNDS {
            let (tx, rx) = gort::chan::<u32>(1);
            let obj = Gc::new(round as u64);
            set_finalizer(&obj, move |_obj| {
                let _ = tx.try_send(round);
            });
            drop(obj);
            let mut got = None;
            for calls in 1..=1000 {
                gc();
                if let Ok(v) = rx.try_recv() {
                    got = Some(v);
                    if calls > 10 {
                        late.push((round, calls));
                    }
                    break;
                }
            }
            assert_eq!(got, Some(round), "no finalizer within 1000 gc() calls");
        }
        assert!(
            late.len() <= 2,
            "finalizers not run within ten gc() calls (round, calls): {late:?}"
        );
    });
}

#[test]
fn gc_lets_finalizers_run_one_p() {
    if is_child() {
        finalizer_runs_within_ten_collections();
        eprintln!("child ok: gc_lets_finalizers_run_one_p");
        return;
    }
    run_child("gc_lets_finalizers_run_one_p", "1");
}

#[test]
fn gc_lets_finalizers_run_two_ps() {
    if is_child() {
        finalizer_runs_within_ten_collections();
        eprintln!("child ok: gc_lets_finalizers_run_two_ps");
        return;
    }
    run_child("gc_lets_finalizers_run_two_ps", "2");
}

#[test]
fn the_finalizer_goroutine_is_not_counted() {
    if is_child() {
        gort::run(|| {
            assert_eq!(gort::num_goroutine(), 1, "only main");
            let (tx, rx) = gort::chan::<()>(1);
            let obj = Gc::new(1u8);
            set_finalizer(&obj, move |_| {
                let _ = tx.try_send(());
            });
            drop(obj);
            while rx.try_recv().is_err() {
                gc();
            }
            // The finalizer goroutine exists now, parked in its loop.
            assert_eq!(
                gort::num_goroutine(),
                1,
                "system goroutines are not counted"
            );
            let h = gort::go(gort::num_goroutine);
            assert_eq!(h.join().unwrap(), 2);
        });
        eprintln!("child ok: the_finalizer_goroutine_is_not_counted");
        return;
    }
    run_child("the_finalizer_goroutine_is_not_counted", "2");
}
