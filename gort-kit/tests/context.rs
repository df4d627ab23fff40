//! Ports of Go's context tests (src/context/x_test.go and context_test.go,
//! Go 1.23), each citing its source, plus gort's own: a parent that lives
//! forever while a million children come and go, timers stopped on
//! cancel, and children dropped without cancel.

use gort_kit::context::{self, Cause, Context, Error, Key};
use gort_std::{after, chan, select};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(1);
const VERY_LONG: Duration = Duration::from_secs(10);

fn run(f: impl FnOnce() + Send + 'static) {
    gort_sched::run(f)
}

/// Whether `ctx.done()` delivers (is closed) within `d`.
fn done_within(ctx: &Context, d: Duration) -> bool {
    let done = ctx.done();
    select! {
        recv(done) -> r => { assert!(r.is_err(), "done() never carries values"); true }
        recv(after(d)) -> _ => false,
    }
}

fn is_closed_now(ctx: &Context) -> bool {
    let done = ctx.done();
    select! {
        recv(done) -> _ => true,
        default => false,
    }
}

#[derive(Debug)]
struct MyErr(&'static str);
impl std::fmt::Display for MyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for MyErr {}

fn cause_of(s: &'static str) -> Cause {
    Arc::new(MyErr(s))
}

fn cause_str(ctx: &Context) -> Option<String> {
    context::cause(ctx).map(|c| c.to_string())
}

// x_test.go TestBackground / TestTODO.
#[test]
fn background_and_todo() {
    run(|| {
        for c in [context::background(), context::todo()] {
            assert_eq!(c.err(), None);
            assert_eq!(c.deadline(), None);
            assert!(!is_closed_now(&c));
            assert!(context::cause(&c).is_none());
        }
        assert_eq!(format!("{:?}", context::background()), "context.Background");
    });
}

// x_test.go TestWithCancel.
#[test]
fn with_cancel() {
    run(|| {
        let (c1, cancel) = context::with_cancel(&context::background());
        static K: Key<u8> = Key::new("k");
        let o = context::with_value(&c1, &K, 1); // Go's otherContext{c1}
        let (c2, _cancel2) = context::with_cancel(&o);
        let contexts = [c1.clone(), o.clone(), c2.clone()];
        for c in &contexts {
            assert!(!is_closed_now(c), "{c:?} done before cancel");
            assert_eq!(c.err(), None);
        }
        cancel.cancel();
        for c in &contexts {
            assert!(done_within(c, VERY_LONG), "{c:?} not done after cancel");
            assert_eq!(c.err(), Some(Error::Canceled));
        }
    });
}

// x_test.go TestParentFinishesChild.
#[test]
fn parent_finishes_child() {
    run(|| {
        let (parent, cancel) = context::with_cancel(&context::background());
        let (cancel_child, _stop1) = context::with_cancel(&parent);
        let (timer_child, _stop2) = context::with_timeout(&parent, VERY_LONG * 100);
        static K: Key<&str> = Key::new("key");
        let value_child = context::with_value(&parent, &K, "value");
        let (timer_child2, _stop3) = context::with_timeout(&value_child, VERY_LONG * 100);
        let after = Arc::new(AtomicUsize::new(0));
        let a2 = after.clone();
        let _af = context::after_func(&value_child, move || {
            a2.fetch_add(1, Ordering::SeqCst);
        });
        // cancel_child, timer_child, timer_child2 and the after_func are
        // linked to the parent (the value child passes through).
        assert_eq!(parent.linked_children(), 4);
        for c in [
            &parent,
            &cancel_child,
            &timer_child,
            &value_child,
            &timer_child2,
        ] {
            assert!(!is_closed_now(c));
        }
        cancel.cancel();
        for c in [
            &parent,
            &cancel_child,
            &timer_child,
            &value_child,
            &timer_child2,
        ] {
            assert!(done_within(c, VERY_LONG), "{c:?}");
            assert_eq!(c.err(), Some(Error::Canceled), "{c:?}");
        }
        assert_eq!(parent.linked_children(), 0, "the parent keeps no children");
        // A child of a cancelled parent is cancelled at once, unlinked.
        let (precanceled, _s) = context::with_cancel(&value_child);
        assert_eq!(precanceled.err(), Some(Error::Canceled));
        assert!(is_closed_now(&precanceled));
        assert_eq!(parent.linked_children(), 0);
        let t0 = Instant::now();
        while after.load(Ordering::SeqCst) == 0 && t0.elapsed() < VERY_LONG {
            gort_std::sleep(SHORT);
        }
        assert_eq!(after.load(Ordering::SeqCst), 1);
    });
}

// x_test.go TestChildFinishesFirst.
#[test]
fn child_finishes_first() {
    run(|| {
        let (cancelable, stop) = context::with_cancel(&context::background());
        for parent in [context::background(), cancelable.clone()] {
            let (child, cancel) = context::with_cancel(&parent);
            if parent.deadline().is_none() && parent.err().is_none() {
                // linked only under a cancellable parent
            }
            let before = parent.linked_children();
            cancel.cancel();
            assert_eq!(child.err(), Some(Error::Canceled));
            assert!(is_closed_now(&child));
            assert!(
                !is_closed_now(&parent),
                "the parent is not cancelled by its child"
            );
            assert_eq!(parent.err(), None);
            // The child unlinked itself from its parent.
            assert_eq!(parent.linked_children(), before.saturating_sub(1));
            assert_eq!(parent.linked_children(), 0);
        }
        stop.cancel();
    });
}

fn check_deadline(c: &Context, name: &str) {
    assert!(done_within(c, VERY_LONG), "{name}: context not timed out");
    assert_eq!(c.err(), Some(Error::DeadlineExceeded), "{name}");
}

// x_test.go TestDeadline.
#[test]
fn deadline() {
    run(|| {
        let (c, _s) = context::with_deadline(&context::background(), Instant::now() + 50 * SHORT);
        assert!(c.deadline().is_some());
        check_deadline(&c, "WithDeadline");

        let (c, _s) = context::with_deadline(&context::background(), Instant::now() + 50 * SHORT);
        static K: Key<u8> = Key::new("k");
        let o = context::with_value(&c, &K, 0);
        check_deadline(&o, "WithDeadline+otherContext");

        let (c, _s) = context::with_deadline(&context::background(), Instant::now() + 50 * SHORT);
        let o = context::with_value(&c, &K, 0);
        let (c2, _s2) = context::with_deadline(&o, Instant::now() + 200 * SHORT);
        // The parent's deadline is sooner: the child keeps it.
        assert_eq!(c2.deadline(), c.deadline());
        check_deadline(&c2, "WithDeadline+otherContext+WithDeadline");

        let (c, _s) = context::with_deadline(&context::background(), Instant::now() - SHORT);
        assert!(is_closed_now(&c), "an expired deadline is done at once");
        check_deadline(&c, "WithDeadline+inthepast");

        let (c, _s) = context::with_deadline(&context::background(), Instant::now());
        check_deadline(&c, "WithDeadline+now");
    });
}

// x_test.go TestTimeout.
#[test]
fn timeout() {
    run(|| {
        let (c, _s) = context::with_timeout(&context::background(), 50 * SHORT);
        check_deadline(&c, "WithTimeout");
        static K: Key<u8> = Key::new("k");
        let (c, _s) = context::with_timeout(&context::background(), 50 * SHORT);
        let o = context::with_value(&c, &K, 0);
        check_deadline(&o, "WithTimeout+otherContext");
        let (c, _s) = context::with_timeout(&context::background(), 50 * SHORT);
        let o = context::with_value(&c, &K, 0);
        let (c, _s) = context::with_timeout(&o, 200 * SHORT);
        check_deadline(&c, "WithTimeout+otherContext+WithTimeout");
    });
}

// x_test.go TestCanceledTimeout.
#[test]
fn canceled_timeout() {
    run(|| {
        let (c, _s) = context::with_timeout(&context::background(), Duration::from_secs(1));
        static K: Key<u8> = Key::new("k");
        let o = context::with_value(&c, &K, 0);
        let (c, cancel) = context::with_timeout(&o, Duration::from_secs(2));
        cancel.cancel();
        assert!(done_within(&c, VERY_LONG));
        assert_eq!(c.err(), Some(Error::Canceled));
    });
}

// x_test.go TestValues.
#[test]
fn values() {
    run(|| {
        static K1: Key<&str> = Key::new("k1");
        static K2: Key<&str> = Key::new("k2");
        static K3: Key<&str> = Key::new("k3");
        fn check(c: &Context, nm: &str, v1: Option<&str>, v2: Option<&str>, v3: Option<&str>) {
            assert_eq!(c.value(&K1).copied(), v1, "{nm}: k1");
            assert_eq!(c.value(&K2).copied(), v2, "{nm}: k2");
            assert_eq!(c.value(&K3).copied(), v3, "{nm}: k3");
        }
        let c0 = context::background();
        check(&c0, "c0", None, None, None);
        let c1 = context::with_value(&context::background(), &K1, "c1k1");
        check(&c1, "c1", Some("c1k1"), None, None);
        let c2 = context::with_value(&c1, &K2, "c2k2");
        check(&c2, "c2", Some("c1k1"), Some("c2k2"), None);
        let c3 = context::with_value(&c2, &K3, "c3k3");
        check(&c3, "c3", Some("c1k1"), Some("c2k2"), Some("c3k3"));
        let c4 = context::with_value(&c3, &K1, "c4k1"); // shadows
        check(&c4, "c4", Some("c4k1"), Some("c2k2"), Some("c3k3"));
        // Through cancellable and deadline layers (Go's otherContext).
        let (o1, _s) = context::with_cancel(&c4);
        check(&o1, "o1", Some("c4k1"), Some("c2k2"), Some("c3k3"));
        let (o2, _s2) = context::with_timeout(&o1, VERY_LONG);
        let o3 = context::with_value(&o2, &K2, "o3k2");
        check(&o3, "o3", Some("c4k1"), Some("o3k2"), Some("c3k3"));
        // Keys of another type with the same name never collide.
        static K1U: Key<u32> = Key::new("k1");
        assert_eq!(o3.value(&K1U), None);
        let c5 = context::with_value(&o3, &K1U, 7);
        assert_eq!(c5.value(&K1U), Some(&7));
        assert_eq!(c5.value(&K1).copied(), Some("c4k1"));
    });
}

// x_test.go TestWithValueChecksKey: Go panics for a nil or incomparable
// key; here a key is a typed static, so neither can be written.

// x_test.go TestSimultaneousCancels (a tree of contexts cancelled at once).
#[test]
fn simultaneous_cancels() {
    run(|| {
        let (root, cancel) = context::with_cancel(&context::background());
        let mut all = vec![root.clone()];
        let mut frontier = vec![root.clone()];
        let mut cancels = vec![];
        for _ in 0..3 {
            let mut next = vec![];
            for p in &frontier {
                for _ in 0..10 {
                    let (c, s) = context::with_cancel(p);
                    cancels.push(s);
                    next.push(c.clone());
                    all.push(c);
                }
            }
            frontier = next;
        }
        // Each leaf has a goroutine waiting on it.
        let (tx, rx) = chan::<()>(all.len());
        for c in &all {
            let (c, tx) = (c.clone(), tx.clone());
            drop(gort_sched::go(move || {
                let _ = c.done().recv();
                tx.send(()).unwrap();
            }));
        }
        drop(tx);
        cancel.cancel();
        for _ in 0..all.len() {
            assert!(
                rx.recv_timeout(VERY_LONG).is_ok(),
                "not all contexts were cancelled"
            );
        }
        for c in &all {
            assert_eq!(c.err(), Some(Error::Canceled));
        }
    });
}

// x_test.go TestInterlockedCancels.
#[test]
fn interlocked_cancels() {
    run(|| {
        let (parent, cancel_parent) = context::with_cancel(&context::background());
        let (child, cancel_child) = context::with_cancel(&parent);
        let p = parent.clone();
        drop(gort_sched::go(move || {
            let _ = p.done().recv();
            cancel_child.cancel();
        }));
        cancel_parent.cancel();
        assert!(done_within(&child, VERY_LONG), "child did not finish");
    });
}

// x_test.go TestLayersCancel / TestLayersTimeout (testLayers), a
// deterministic version: layers of values, cancels and timeouts.
#[test]
fn layers() {
    for timeout in [false, true] {
        run(move || {
            static K: Key<usize> = Key::new("layer");
            let mut ctx = context::background();
            let mut cancels = vec![];
            for i in 0..30usize {
                match i % 3 {
                    0 => ctx = context::with_value(&ctx, &K, i),
                    1 => {
                        let (c, s) = context::with_cancel(&ctx);
                        ctx = c;
                        cancels.push(s);
                    }
                    _ => {
                        let d = if timeout { 50 * SHORT } else { VERY_LONG * 100 };
                        let (c, s) = context::with_timeout(&ctx, d);
                        ctx = c;
                        cancels.push(s);
                    }
                }
            }
            assert_eq!(ctx.value(&K), Some(&27));
            if timeout {
                assert!(done_within(&ctx, VERY_LONG));
                assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
            } else {
                assert!(!is_closed_now(&ctx));
                cancels[cancels.len() / 2].cancel(); // a middle layer
                assert!(done_within(&ctx, VERY_LONG));
                assert_eq!(ctx.err(), Some(Error::Canceled));
            }
        });
    }
}

// x_test.go TestWithCancelCanceledParent.
#[test]
fn with_cancel_canceled_parent() {
    run(|| {
        let (parent, pcancel) = context::with_cancel_cause(&context::background());
        pcancel.cancel(Some(cause_of("whatever")));
        let (c, _cancel) = context::with_cancel(&parent);
        assert!(is_closed_now(&c), "child of a cancelled parent not done");
        assert_eq!(c.err(), Some(Error::Canceled));
        assert_eq!(cause_str(&c).as_deref(), Some("whatever"));
    });
}

// x_test.go TestWithCancelSimultaneouslyCanceledParent.
#[test]
fn with_cancel_simultaneously_canceled_parent() {
    run(|| {
        for _ in 0..200 {
            let (parent, pcancel) = context::with_cancel_cause(&context::background());
            let h = gort_sched::go(move || pcancel.cancel(Some(cause_of("whatever"))));
            let (c, _cancel) = context::with_cancel(&parent);
            assert!(
                done_within(&c, VERY_LONG),
                "child not cancelled with its parent"
            );
            assert_eq!(c.err(), Some(Error::Canceled));
            assert_eq!(cause_str(&c).as_deref(), Some("whatever"));
            h.join().unwrap();
        }
    });
}

// x_test.go TestCause: (err, cause) for each way a context ends.
#[test]
fn cause() {
    run(|| {
        let bg = context::background();
        type Case = (
            &'static str,
            Box<dyn Fn() -> Context>,
            Option<Error>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ("Background", Box::new(context::background), None, None),
            ("TODO", Box::new(context::todo), None, None),
            (
                "WithCancel",
                Box::new(|| {
                    let (c, s) = context::with_cancel(&context::background());
                    s.cancel();
                    c
                }),
                Some(Error::Canceled),
                Some("context canceled"),
            ),
            (
                "WithCancelCause",
                Box::new(|| {
                    let (c, s) = context::with_cancel_cause(&context::background());
                    s.cancel(Some(cause_of("cause")));
                    c
                }),
                Some(Error::Canceled),
                Some("cause"),
            ),
            (
                "WithCancelCause nil",
                Box::new(|| {
                    let (c, s) = context::with_cancel_cause(&context::background());
                    s.cancel(None);
                    c
                }),
                Some(Error::Canceled),
                Some("context canceled"),
            ),
            (
                "WithCancelCause: parent cause before child",
                Box::new(|| {
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    let (c, cs) = context::with_cancel_cause(&p);
                    ps.cancel(Some(cause_of("parentCause")));
                    cs.cancel(Some(cause_of("childCause")));
                    c
                }),
                Some(Error::Canceled),
                Some("parentCause"),
            ),
            (
                "WithCancelCause: parent cause after child",
                Box::new(|| {
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    let (c, cs) = context::with_cancel_cause(&p);
                    cs.cancel(Some(cause_of("childCause")));
                    ps.cancel(Some(cause_of("parentCause")));
                    c
                }),
                Some(Error::Canceled),
                Some("childCause"),
            ),
            (
                "WithCancelCause: parent cause before nil",
                Box::new(|| {
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    let (c, cs) = context::with_cancel(&p);
                    ps.cancel(Some(cause_of("parentCause")));
                    cs.cancel();
                    c
                }),
                Some(Error::Canceled),
                Some("parentCause"),
            ),
            (
                "WithCancelCause: parent cause after nil",
                Box::new(|| {
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    let (c, cs) = context::with_cancel(&p);
                    cs.cancel();
                    ps.cancel(Some(cause_of("parentCause")));
                    c
                }),
                Some(Error::Canceled),
                Some("context canceled"),
            ),
            (
                "WithTimeout",
                Box::new(|| {
                    let (c, _s) = context::with_timeout(&context::background(), Duration::ZERO);
                    c
                }),
                Some(Error::DeadlineExceeded),
                Some("context deadline exceeded"),
            ),
            (
                "WithTimeout canceled",
                Box::new(|| {
                    let (c, s) = context::with_timeout(&context::background(), VERY_LONG);
                    s.cancel();
                    c
                }),
                Some(Error::Canceled),
                Some("context canceled"),
            ),
            (
                "WithTimeoutCause",
                Box::new(|| {
                    let (c, _s) = context::with_timeout_cause(
                        &context::background(),
                        Duration::ZERO,
                        cause_of("timeoutCause"),
                    );
                    c
                }),
                Some(Error::DeadlineExceeded),
                Some("timeoutCause"),
            ),
            (
                "WithTimeoutCause canceled",
                Box::new(|| {
                    let (c, s) = context::with_timeout_cause(
                        &context::background(),
                        VERY_LONG,
                        cause_of("timeoutCause"),
                    );
                    s.cancel();
                    c
                }),
                Some(Error::Canceled),
                Some("context canceled"),
            ),
            (
                "WithTimeout timeout and cancel",
                Box::new(|| {
                    let (c, s) = context::with_timeout_cause(
                        &context::background(),
                        Duration::ZERO,
                        cause_of("timeoutCause"),
                    );
                    s.cancel();
                    c
                }),
                Some(Error::DeadlineExceeded),
                Some("timeoutCause"),
            ),
            (
                "WithValue canceled",
                Box::new(|| {
                    static K: Key<u8> = Key::new("k");
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    ps.cancel(Some(cause_of("cause")));
                    context::with_value(&p, &K, 1)
                }),
                Some(Error::Canceled),
                Some("cause"),
            ),
            (
                "WithoutCancel",
                Box::new(|| {
                    let (p, ps) = context::with_cancel_cause(&context::background());
                    ps.cancel(Some(cause_of("cause")));
                    context::without_cancel(&p)
                }),
                None,
                None,
            ),
            (
                "WithoutCancel timeout",
                Box::new(|| {
                    let (p, _s) = context::with_timeout_cause(
                        &context::background(),
                        Duration::ZERO,
                        cause_of("cause"),
                    );
                    context::without_cancel(&p)
                }),
                None,
                None,
            ),
        ];
        drop(bg);
        for (name, make, err, cause) in cases {
            let c = make();
            assert!(
                err.is_none() || done_within(&c, VERY_LONG),
                "{name}: not done"
            );
            assert_eq!(c.err(), err, "{name}: err");
            assert_eq!(cause_str(&c).as_deref(), cause, "{name}: cause");
        }
    });
}

// x_test.go TestCauseRace.
#[test]
fn cause_race() {
    run(|| {
        let (ctx, cancel) = context::with_cancel_cause(&context::background());
        let c2 = ctx.clone();
        let h = gort_sched::go(move || cancel.cancel(Some(cause_of("cause"))));
        loop {
            if let Some(c) = context::cause(&c2) {
                assert_eq!(c.to_string(), "cause");
                break;
            }
            gort_sched::gosched();
        }
        h.join().unwrap();
    });
}

// x_test.go TestWithoutCancel.
#[test]
fn without_cancel() {
    run(|| {
        static K: Key<&str> = Key::new("key");
        let (ctx, cancel) = context::with_cancel_cause(&context::background());
        let ctx = context::with_value(&ctx, &K, "value");
        let (ctx, _s) = context::with_timeout(&ctx, VERY_LONG);
        let wc = context::without_cancel(&ctx);
        cancel.cancel(Some(cause_of("cause")));
        assert!(done_within(&ctx, VERY_LONG));
        assert_eq!(wc.value(&K).copied(), Some("value"));
        assert_eq!(wc.err(), None);
        assert_eq!(wc.deadline(), None);
        assert!(!is_closed_now(&wc));
        assert!(context::cause(&wc).is_none());
        // Its children are cancellable on their own, unaffected by ctx.
        let (child, s) = context::with_cancel(&wc);
        assert_eq!(child.err(), None);
        s.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
    });
}

// x_test.go TestAfterFuncCalledAfterCancel.
#[test]
fn after_func_called_after_cancel() {
    run(|| {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let (tx, rx) = chan::<()>(1);
        let stop = context::after_func(&ctx, move || {
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(10 * SHORT).is_err(),
            "AfterFunc called before cancel"
        );
        cancel.cancel();
        assert!(
            rx.recv_timeout(VERY_LONG).is_ok(),
            "AfterFunc not called after cancel"
        );
        assert!(!stop.stop(), "stop returned true after the func was called");
    });
}

// x_test.go TestAfterFuncCalledAfterTimeout.
#[test]
fn after_func_called_after_timeout() {
    run(|| {
        let (ctx, _s) = context::with_timeout(&context::background(), 5 * SHORT);
        let (tx, rx) = chan::<()>(1);
        let stop = context::after_func(&ctx, move || tx.send(()).unwrap());
        assert!(
            rx.recv_timeout(VERY_LONG).is_ok(),
            "AfterFunc not called after timeout"
        );
        assert!(!stop.stop());
    });
}

// x_test.go TestAfterFuncCalledImmediately.
#[test]
fn after_func_called_immediately() {
    run(|| {
        let (ctx, cancel) = context::with_cancel(&context::background());
        cancel.cancel();
        let (tx, rx) = chan::<()>(1);
        let stop = context::after_func(&ctx, move || tx.send(()).unwrap());
        assert!(
            rx.recv_timeout(VERY_LONG).is_ok(),
            "AfterFunc not called for a done context"
        );
        assert!(!stop.stop());
    });
}

// x_test.go TestAfterFuncNotCalledAfterStop.
#[test]
fn after_func_not_called_after_stop() {
    run(|| {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let (tx, rx) = chan::<()>(1);
        let stop = context::after_func(&ctx, move || tx.send(()).unwrap());
        assert!(stop.stop(), "stop returned false, want true");
        assert!(!stop.stop(), "a second stop returned true");
        assert_eq!(ctx.linked_children(), 0, "a stopped func stays linked");
        cancel.cancel();
        assert!(
            rx.recv_timeout(10 * SHORT).is_err(),
            "AfterFunc called after stop"
        );
        // On a context that is never done: never called, stop says so.
        let (tx, rx) = chan::<()>(1);
        let stop = context::after_func(&context::background(), move || tx.send(()).unwrap());
        assert!(stop.stop());
        assert!(rx.recv_timeout(5 * SHORT).is_err());
    });
}

// x_test.go TestAfterFuncCalledAsynchronously: the function runs on its
// own goroutine, so cancel returns while it blocks.
#[test]
fn after_func_called_asynchronously() {
    run(|| {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let (block_tx, block_rx) = chan::<()>(0);
        let (ran_tx, ran_rx) = chan::<()>(1);
        let _stop = context::after_func(&ctx, move || {
            ran_tx.send(()).unwrap();
            let _ = block_rx.recv(); // blocks until the test lets it go
        });
        cancel.cancel(); // returns although the function blocks
        assert!(ran_rx.recv_timeout(VERY_LONG).is_ok());
        drop(block_tx);
    });
}

// gort: a parent that lives forever and a million children that come and
// go (cancelled, or just dropped) leave nothing behind in the parent.
#[test]
fn a_million_children_leave_no_trace() {
    run(|| {
        let (parent, _keep) = context::with_cancel(&context::background());
        for i in 0..1_000_000u32 {
            let (child, cancel) = context::with_cancel(&parent);
            if i % 2 == 0 {
                cancel.cancel();
                assert_eq!(child.err(), Some(Error::Canceled));
            } else {
                drop((child, cancel)); // never cancelled: unlinked on drop
            }
        }
        assert_eq!(parent.linked_children(), 0);
        // Deadline children and after_funcs too.
        for _ in 0..10_000 {
            let (c, s) = context::with_timeout(&parent, VERY_LONG);
            let f = context::after_func(&c, || {});
            assert!(f.stop());
            s.cancel();
        }
        assert_eq!(parent.linked_children(), 0);
        assert_eq!(parent.err(), None);
    });
}

// gort: deadlines are gort timers, stopped when the context is cancelled
// or dropped (no timer stays in the heap for an hour).
#[test]
fn timers_are_stopped_on_cancel_and_drop() {
    run(|| {
        let base = gort_timer::timers_pending();
        let mut keep = vec![];
        for _ in 0..1000 {
            keep.push(context::with_timeout(
                &context::background(),
                Duration::from_secs(3600),
            ));
        }
        assert!(gort_timer::timers_pending() >= base + 1000);
        for (_, cancel) in &keep[..500] {
            cancel.cancel();
        }
        assert!(gort_timer::timers_pending() <= base + 500);
        drop(keep);
        assert!(gort_timer::timers_pending() <= base);
    });
}

// gort: done() before and after cancel, from many goroutines; err() never
// goes back.
#[test]
fn done_from_many_goroutines() {
    run(|| {
        let (ctx, cancel) = context::with_timeout(&context::background(), VERY_LONG);
        let woke = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..100)
            .map(|_| {
                let (ctx, woke) = (ctx.clone(), woke.clone());
                gort_sched::go(move || {
                    let _ = ctx.done().recv();
                    assert_eq!(ctx.err(), Some(Error::Canceled));
                    woke.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        gort_std::sleep(5 * SHORT);
        assert_eq!(woke.load(Ordering::SeqCst), 0);
        cancel.cancel();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(woke.load(Ordering::SeqCst), 100);
        cancel.cancel();
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert!(ctx.deadline().is_some());
    });
}

// gort: usable from a plain thread, outside gort::run.
#[test]
fn from_a_plain_thread() {
    let (ctx, cancel) = context::with_cancel(&context::background());
    let c2 = ctx.clone();
    let t = std::thread::spawn(move || c2.done().recv().is_err());
    std::thread::sleep(SHORT);
    cancel.cancel();
    assert!(t.join().unwrap());
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

// gort (review): a chain 10,000 contexts deep is cancelled, and dropped,
// on a goroutine's default stack (both were recursive).
#[test]
fn deep_chains_cancel_and_drop_on_a_goroutine_stack() {
    run(|| {
        static K: Key<u32> = Key::new("depth");
        let (root, cancel) = context::with_cancel(&context::background());
        let mut ctx = root.clone();
        let mut cancels = vec![];
        for i in 0..10_000u32 {
            if i % 2 == 0 {
                let (c, s) = context::with_cancel(&ctx);
                cancels.push(s);
                ctx = c;
            } else {
                ctx = context::with_value(&ctx, &K, i);
            }
        }
        assert!(format!("{ctx:?}").starts_with("context.Background.WithCancel"));
        cancel.cancel();
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert!(is_closed_now(&ctx));
        drop((ctx, cancels, root));
        // A long chain of values, and one of deadlines, dropped.
        let mut v = context::background();
        for i in 0..100_000u32 {
            v = context::with_value(&v, &K, i);
        }
        assert_eq!(v.value(&K), Some(&99_999));
        drop(v);
        let mut d = context::background();
        let mut stops = vec![];
        for i in 0..5_000u64 {
            let (c, s) = context::with_timeout(&d, VERY_LONG + Duration::from_millis(i));
            stops.push(s);
            d = c;
        }
        drop((d, stops));
    });
}

// gort (review): an after_func whose function holds its own context keeps
// it alive (the documented exception), until cancelled or stopped.
#[test]
fn an_after_func_holding_its_context_is_released_by_cancel_or_stop() {
    run(|| {
        let (parent, stop_parent) = context::with_cancel(&context::background());
        let mut stops = vec![];
        for i in 0..100 {
            let (child, cancel) = context::with_cancel(&parent);
            let held = child.clone();
            let h = context::after_func(&child, move || drop(held));
            if i % 2 == 0 {
                cancel.cancel();
            } else {
                stops.push(h);
            }
        }
        // 50 cancelled (unlinked), 50 alive through their functions.
        assert_eq!(parent.linked_children(), 50);
        for h in &stops {
            assert!(h.stop());
        }
        drop(stops);
        assert_eq!(parent.linked_children(), 0, "stopping released them");
        stop_parent.cancel();
    });
}

// gort (review): equal deadlines: the child's own timer and cause (Go only
// inherits a strictly earlier deadline).
#[test]
fn equal_deadline_keeps_the_childs_cause() {
    run(|| {
        let at = Instant::now() + 20 * SHORT;
        let (p, _s) = context::with_deadline(&context::background(), at);
        let (c, _s2) = context::with_deadline_cause(&p, at, cause_of("child's"));
        assert!(done_within(&c, VERY_LONG));
        assert_eq!(c.err(), Some(Error::DeadlineExceeded));
        let cause = cause_str(&c).unwrap();
        assert!(
            cause == "child's" || cause == "context deadline exceeded",
            "{cause}"
        );
    });
}

/// A context done without a cause reports its error as the cause, and
/// every such cause of one kind is the same value (as Go's `Canceled`):
/// the parent's and the child's, on every call.
#[test]
fn a_cause_made_from_the_error_is_one_shared_value() {
    run(|| {
        let (p, stop) = context::with_cancel(&context::background());
        let (c, _c_stop) = context::with_cancel(&p);
        stop.cancel();
        let (a, b) = (context::cause(&p).unwrap(), context::cause(&c).unwrap());
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(std::sync::Arc::ptr_eq(&a, &context::cause(&p).unwrap()));
        assert_eq!(a.downcast_ref::<Error>(), Some(&Error::Canceled));
    });
}
