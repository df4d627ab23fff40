//! Process-wide behaviour: num_goroutine, gomaxprocs at run time, the
//! GOMAXPROCS variable, goexit on the main goroutine. Each test that needs a
//! pristine runtime runs in a child process.

mod common;
use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn num_goroutine_counts_live_goroutines() {
    if !is_child() {
        let (ok, err) = run_child("num_goroutine_counts_live_goroutines", &[]);
        assert!(ok, "{err}");
        return;
    }
    assert_eq!(num_goroutine(), 0);
    let s = Arc::new(Sema::new());
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let s = s.clone();
            go(move || s.acquire())
        })
        .collect();
    assert_eq!(num_goroutine(), 100);
    for _ in 0..100 {
        s.release();
    }
    for h in hs {
        h.join().unwrap();
    }
    // A joined goroutine is no longer counted, deterministically.
    assert_eq!(num_goroutine(), 0);
    assert_eq!(run(num_goroutine), 1, "the main goroutine itself");
}

#[test]
fn gomaxprocs_reads_and_changes_while_goroutines_run() {
    if !is_child() {
        let (ok, err) = run_child(
            "gomaxprocs_reads_and_changes_while_goroutines_run",
            &[("GOMAXPROCS", "3")],
        );
        assert!(ok, "{err}");
        return;
    }
    assert_eq!(gomaxprocs(0), 3, "from the environment");
    let total = Arc::new(AtomicUsize::new(0));
    let s = Arc::new(Sema::new());
    let hs: Vec<_> = (0..200)
        .map(|i| {
            let (total, s) = (total.clone(), s.clone());
            go(move || {
                for j in 0..200 {
                    if (i + j) % 7 == 0 {
                        s.release();
                        s.acquire();
                    } else {
                        gosched();
                    }
                    total.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut prev = 3;
    for n in [1, 4, 2, 1, 8, 2, 5, 1, 2] {
        assert_eq!(gomaxprocs(n), prev);
        prev = n;
        std::thread::sleep(Duration::from_millis(3));
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(total.load(Ordering::Relaxed), 200 * 200);
    assert_eq!(gomaxprocs(0), 2);
    // Out-of-range values are refused with a message.
    let e = std::panic::catch_unwind(|| gomaxprocs(MAX_PROCS + 1)).unwrap_err();
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("out of range"), "{msg}");
    // Shrinking to 1 still runs everything (one P, several Ms take turns).
    gomaxprocs(1);
    let hs: Vec<_> = (0..50).map(|i| go(move || i)).collect();
    assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 1225);
}

#[test]
fn invalid_gomaxprocs_is_reported() {
    if !is_child() {
        for bad in ["abc", "0", "-2", "99999"] {
            let (ok, err) = run_child("invalid_gomaxprocs_is_reported", &[("GOMAXPROCS", bad)]);
            assert!(!ok);
            assert!(
                err.contains(&format!("invalid GOMAXPROCS={bad:?}")),
                "{err}"
            );
        }
        return;
    }
    go(|| ()).join().unwrap();
}

#[test]
fn goexit_on_main_goroutine_behaves_as_go() {
    if !is_child() {
        let (ok, err) = run_child("goexit_on_main_goroutine_behaves_as_go", &[]);
        assert!(ok, "{err}");
        return;
    }
    // Other goroutines keep running after main calls goexit; when none is
    // left, run panics with Go's message.
    let finished = Arc::new(AtomicUsize::new(0));
    let f2 = finished.clone();
    let r = std::panic::catch_unwind(move || {
        run(move || {
            for _ in 0..10 {
                let f = f2.clone();
                go(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    f.fetch_add(1, Ordering::SeqCst);
                });
            }
            goexit()
        })
    });
    let p = r.unwrap_err();
    assert_eq!(
        p.downcast_ref::<&str>(),
        Some(&"no goroutines (main called goexit) - deadlock!")
    );
    assert_eq!(finished.load(Ordering::SeqCst), 10);
}

#[test]
fn explicit_init_configures_the_runtime() {
    if !is_child() {
        let (ok, err) = run_child(
            "explicit_init_configures_the_runtime",
            &[("GOMAXPROCS", "junk")],
        );
        assert!(ok, "init() must not read the environment: {err}");
        return;
    }
    assert!(init(Config {
        procs: 2,
        stack_size: 32 * 1024
    }));
    assert!(!init(Config::default()), "second init is refused");
    assert_eq!(gomaxprocs(0), 2);
    assert_eq!(go(|| 5).join().unwrap(), 5);
}

/// GORT_STACK_SIZE sets the default goroutine stack (issue 13: untested
/// before): a deep recursion on a 32K default stack overflows and the report
/// names that size; an unusable value is a startup error.
#[test]
fn gort_stack_size_from_the_environment() {
    if !is_child() {
        let (ok, err) = run_child(
            "gort_stack_size_from_the_environment",
            &[("GORT_STACK_SIZE", "32K")],
        );
        assert!(!ok, "the child must abort: {err}");
        assert!(err.contains("child: recursing"), "child did not run: {err}");
        assert!(
            err.contains("stack overflow") && err.contains("(32768-byte stack"),
            "{err}"
        );
        for bad in ["lots", "1K", "4096M"] {
            let (ok, err) = run_child(
                "gort_stack_size_from_the_environment",
                &[("GORT_STACK_SIZE", bad)],
            );
            assert!(!ok);
            assert!(
                err.contains(&format!("invalid GORT_STACK_SIZE={bad:?}")),
                "{err}"
            );
        }
        return;
    }
    fn recurse(n: u64) -> u64 {
        let buf = [n as u8; 512];
        std::hint::black_box(&buf);
        if n == 0 {
            return 0;
        }
        recurse(n - 1) + buf[3] as u64
    }
    go(|| {
        eprintln!("child: recursing");
        recurse(1_000) // ~0.5 MB: fits no 32K stack
    })
    .join()
    .unwrap();
}
