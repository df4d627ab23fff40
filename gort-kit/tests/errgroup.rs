//! Ports of golang.org/x/sync/errgroup's tests (errgroup_test.go), each
//! citing its source, plus panics and nested spawns.

use gort_kit::{context, errgroup};
use gort_std::chan;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn run(f: impl FnOnce() + Send + 'static) {
    gort_sched::run(f)
}

type Err = Arc<str>;

fn e(s: &str) -> Option<Err> {
    Some(Arc::from(s))
}

/// Starts one task per entry, returning that error (or none).
fn go_each(g: &errgroup::Group<Err>, errs: Vec<Option<Err>>) {
    for err in errs {
        g.go(move || err.map_or(Ok(()), Err));
    }
}

// errgroup_test.go TestZeroGroup: Wait returns the first error, at every
// call.
#[test]
fn zero_group() {
    run(|| {
        let cases: Vec<Vec<Option<Err>>> = vec![
            vec![],
            vec![None],
            vec![e("errgroup_test: 1")],
            vec![e("errgroup_test: 1"), None, e("errgroup_test: 2")],
        ];
        for errs in cases {
            let g: errgroup::Group<Err> = errgroup::Group::new();
            let mut first: Option<Err> = None;
            for err in errs {
                let err2 = err.clone();
                g.go(move || match err2 {
                    Some(x) => Err(x),
                    None => Ok(()),
                });
                if first.is_none() {
                    first = err;
                }
                let got = g.wait().err();
                assert_eq!(got, first);
            }
        }
    });
}

// errgroup_test.go TestWithContext: after Wait the context is done.
#[test]
fn with_context() {
    run(|| {
        let cases: Vec<(Vec<Option<Err>>, Option<Err>)> = vec![
            (vec![], None),
            (vec![None], None),
            (vec![e("doomed")], e("doomed")),
            (vec![e("doomed"), None], e("doomed")),
        ];
        for (errs, want) in cases {
            let (g, ctx) = errgroup::with_context::<Err>(&context::background());
            go_each(&g, errs);
            assert_eq!(g.wait().err(), want);
            assert!(ctx.is_done(), "ctx.done() was not closed after Wait");
        }
    });
}

// errgroup_test.go TestCancelCause.
#[test]
fn cancel_cause() {
    run(|| {
        let cases: Vec<(Vec<Option<Err>>, &str)> = vec![
            (vec![], "context canceled"),
            (vec![None], "context canceled"),
            (vec![e("group_test: doomed")], "group_test: doomed"),
            (vec![e("group_test: doomed"), None], "group_test: doomed"),
        ];
        for (errs, want) in cases {
            let (g, ctx) = errgroup::with_context::<Err>(&context::background());
            go_each(&g, errs);
            let _ = g.wait();
            let cause = context::cause(&ctx).expect("a cause");
            assert_eq!(cause.to_string(), want);
        }
    });
}

// errgroup_test.go TestTryGo.
#[test]
fn try_go() {
    run(|| {
        let g: errgroup::Group<Err> = errgroup::Group::new();
        let n = 42;
        g.set_limit(Some(n));
        let (tx, rx) = chan::<()>(0);
        let f = {
            let tx = tx.clone();
            move || {
                let tx = tx.clone();
                move || {
                    tx.send(()).unwrap();
                    Ok(())
                }
            }
        };
        for i in 0..n {
            assert!(
                g.try_go(f()),
                "TryGo should succeed but got fail at {i}-th call"
            );
        }
        assert!(!g.try_go(f()), "TryGo is expected to fail but succeeded");
        let drain = |k: usize| {
            let rx = rx.clone();
            drop(gort_sched::go(move || {
                for _ in 0..k {
                    rx.recv().unwrap();
                }
            }));
        };
        drain(n);
        g.wait().unwrap();
        assert!(
            g.try_go(f()),
            "TryGo should succeed but got fail after all goroutines"
        );
        drain(1);
        g.wait().unwrap();
        // Switch the limit.
        g.set_limit(Some(1));
        assert!(g.try_go(f()), "TryGo should succeed but got failed");
        assert!(!g.try_go(f()), "TryGo should fail but succeeded");
        drain(1);
        g.wait().unwrap();
        // Block all calls.
        g.set_limit(Some(0));
        for _ in 0..1 << 10 {
            assert!(!g.try_go(f()), "TryGo should fail but got succeeded");
        }
        g.wait().unwrap();
    });
}

// errgroup_test.go TestGoLimit.
#[test]
fn go_limit() {
    run(|| {
        const LIMIT: i32 = 10;
        let g: errgroup::Group<String> = errgroup::Group::new();
        g.set_limit(Some(LIMIT as usize));
        let active = Arc::new(AtomicI32::new(0));
        for _ in 0..=1 << 10 {
            let active = active.clone();
            g.go(move || {
                let n = active.fetch_add(1, Ordering::SeqCst) + 1;
                if n > LIMIT {
                    return Err(format!("saw {n} active goroutines; want <= {LIMIT}"));
                }
                gort_std::sleep(Duration::from_micros(1));
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            });
        }
        g.wait().unwrap();
    });
}

// errgroup_test.go: SetLimit while goroutines are active panics.
#[test]
fn set_limit_while_active_panics() {
    run(|| {
        let g: errgroup::Group<Err> = errgroup::Group::new();
        g.set_limit(Some(2));
        let (tx, rx) = chan::<()>(0);
        g.go(move || {
            let _ = rx.recv();
            Ok(())
        });
        let g2 = g.clone();
        let r = std::panic::catch_unwind(move || g2.set_limit(Some(3)));
        let msg = r.expect_err("set_limit must panic");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("errgroup: modify limit while 1 goroutines in the group are still active"),
            "{msg}"
        );
        drop(tx);
        g.wait().unwrap();
        assert_eq!(g.limit(), Some(2));
    });
}

// errgroup_test.go TestPanic (x/sync v0.13+): a panic reaches Wait; the
// group's context is cancelled by it.
#[test]
fn panic_reaches_wait() {
    run(|| {
        let (g, ctx) = errgroup::with_context::<Err>(&context::background());
        g.go(|| panic!("errgroup_test: panicked"));
        g.go(|| Err(Arc::from("later error")));
        let g2 = g.clone();
        let r = std::panic::catch_unwind(move || g2.wait());
        let p = r.expect_err("wait must re-raise the panic");
        assert_eq!(p.downcast_ref::<&str>(), Some(&"errgroup_test: panicked"));
        assert!(ctx.is_done());
        // A second wait panics too.
        assert!(std::panic::catch_unwind(move || g.wait()).is_err());
    });
}

// gort: tasks start more tasks in the same group; wait waits for all.
#[test]
fn nested_tasks() {
    run(|| {
        let g: errgroup::Group<Err> = errgroup::Group::new();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let (g2, ran) = (g.clone(), ran.clone());
            g.go(move || {
                for _ in 0..10 {
                    let ran = ran.clone();
                    g2.go(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    });
                }
                Ok(())
            });
        }
        g.wait().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 100);
    });
}

// gort: the first error cancels the context at once, before Wait, so the
// other tasks can stop early (a context-cancelled fan-out).
#[test]
fn first_error_cancels_the_others() {
    run(|| {
        let (g, ctx) = errgroup::with_context::<Err>(&context::background());
        let stopped = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let (ctx, stopped) = (ctx.clone(), stopped.clone());
            g.go(move || {
                if i == 50 {
                    return Err(Arc::from("task 50 failed"));
                }
                let _ = ctx.done().recv(); // would wait forever otherwise
                stopped.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        assert_eq!(g.wait().err().as_deref(), Some("task 50 failed"));
        assert_eq!(stopped.load(Ordering::SeqCst), 99);
    });
}

// gort (review): an error whose Display panics is the task's panic, not a
// hang of wait.
#[test]
fn a_panicking_display_does_not_hang_wait() {
    #[derive(Clone, Debug)]
    struct BadDisplay;
    impl std::fmt::Display for BadDisplay {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("Display panicked")
        }
    }
    run(|| {
        let (g, ctx) = errgroup::with_context::<BadDisplay>(&context::background());
        g.go(|| Err(BadDisplay));
        let p = std::panic::catch_unwind(move || g.wait()).expect_err("wait re-raises");
        assert_eq!(p.downcast_ref::<&str>(), Some(&"Display panicked"));
        assert!(ctx.is_done());
    });
}

// gort (review): goexit in a task ends it without failing the group.
#[test]
fn goexit_in_a_task_is_no_failure() {
    run(|| {
        let (g, ctx) = errgroup::with_context::<Err>(&context::background());
        g.set_limit(Some(1));
        g.go(|| gort_sched::goexit());
        g.go(|| Ok(())); // the token came back
        assert_eq!(g.wait(), Ok(()));
        assert_eq!(
            context::cause(&ctx).map(|c| c.to_string()).as_deref(),
            Some("context canceled")
        );
    });
}
