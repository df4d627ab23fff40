//! Ports of Go's finalizer, cleanup and weak pointer tests
//! (runtime/mfinal_test.go, runtime/mcleanup_test.go, weak/pointer_test.go),
//! plus Go-documented behaviour of SetFinalizer/AddCleanup. Each case cites
//! what it ports. Under miri, the cases that wait for the finalizer
//! goroutine are skipped (miri cannot switch corosensei stacks).

use gort_gc::{add_cleanup, clear_finalizer, gc, keep_alive, set_finalizer, Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Runs `gc()` until `rx` yields (Go's tests: `runtime.GC(); <-ch` with a
/// 4 s timeout; gort's finalizer goroutine may need a moment to start).
fn gc_recv<T>(rx: &Receiver<T>) -> T {
    let end = std::time::Instant::now() + WAIT;
    loop {
        gc();
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(v) => return v,
            Err(_) if std::time::Instant::now() < end => continue,
            Err(e) => panic!("finalizer/cleanup didn't run within {WAIT:?}: {e}"),
        }
    }
}

/// Runs `gc()` until `done` holds, failing with `what` after [`WAIT`].
fn gc_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(std::time::Instant::now() < end, "after {WAIT:?}: {what}");
        gc();
        std::thread::yield_now();
    }
}

#[derive(Trace)]
struct T {
    v: i64,
    p: Mutex<Option<Gc<T>>>,
}

fn t(v: i64) -> Gc<T> {
    Gc::new(T {
        v,
        p: Mutex::new(None),
    })
}

/// TestFinalizerType: the finalizer gets the object, with its value.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_type() {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let x = t(97531);
    set_finalizer(&x, move |x: Gc<T>| {
        tx.lock().unwrap().send(x.v).unwrap();
    });
    drop(x);
    assert_eq!(gc_recv(&rx), 97531);
}

#[derive(Trace, Clone, PartialEq, Debug)]
struct BigValue {
    fill: u64,
    it: bool,
    up: String,
}

/// TestFinalizerInterfaceBig: a larger value arrives intact.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_interface_big() {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let v = BigValue {
        fill: 0xDEADBEEFDEADBEEF,
        it: true,
        up: "It matters not how strait the gate".into(),
    };
    let old = v.clone();
    let g = Gc::new(v);
    set_finalizer(&g, move |g: Gc<BigValue>| {
        tx.lock().unwrap().send((*g).clone()).unwrap();
    });
    drop(g);
    assert_eq!(gc_recv(&rx), old);
}

/// TestFinalizerZeroSizedStruct (Go checks only that SetFinalizer does
/// not crash): the finalizer of a zero-sized value runs, with its object.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_zero_sized_struct() {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let z = Gc::new(());
    let addr = Gc::as_ptr(&z) as usize;
    set_finalizer(&z, move |z: Gc<()>| {
        tx.lock().unwrap().send(Gc::as_ptr(&z) as usize).unwrap()
    });
    drop(z);
    assert_eq!(gc_recv(&rx), addr, "the finalizer got another object");
}

/// TestFinalizerOnGlobal: set then clear on long-lived objects.
#[test]
fn finalizer_on_global() {
    static FOO: std::sync::OnceLock<Gc<Vec<u8>>> = std::sync::OnceLock::new();
    let foo = FOO.get_or_init(|| Gc::new(vec![1, 2, 3]));
    set_finalizer(foo, |_p| {});
    let again = std::panic::catch_unwind(|| set_finalizer(foo, |_p| {}));
    assert!(again.is_err(), "the first finalizer was not set");
    clear_finalizer(foo);
    // Setting again after a clear is allowed (it would panic otherwise).
    set_finalizer(foo, |_p| {});
    clear_finalizer(foo);
}

/// TestDeferKeepAlive: a finalizer does not run while the object is kept
/// alive; it runs after.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn defer_keep_alive() {
    let (ran_tx, ran) = channel();
    let ran_tx = Mutex::new(ran_tx);
    let x = t(1);
    set_finalizer(&x, move |_x| ran_tx.lock().unwrap().send(()).unwrap());
    gc();
    // A sentinel finalizer queued after a gc() proves the queue drained.
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let s = t(2);
    set_finalizer(&s, move |_| tx.lock().unwrap().send(()).unwrap());
    drop(s);
    gc_recv(&rx);
    assert!(ran.try_recv().is_err(), "finalizer ran prematurely");
    keep_alive(&x);
    drop(x);
    gc_recv(&ran);
}

/// SetFinalizer docs: "finalizer already set" on a second finalizer.
#[test]
fn finalizer_already_set_panics() {
    let x = t(1);
    set_finalizer(&x, |_| {});
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| set_finalizer(&x, |_| {})));
    let msg = *r.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(msg, "runtime.SetFinalizer: finalizer already set");
    clear_finalizer(&x);
}

/// SetFinalizer docs: the object is resurrected for its finalizer, which
/// may store it; it is freed on a later cycle once unreachable again, and
/// the finalizer is one-shot.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_resurrects_once() {
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    // SAFETY: no handles.
    unsafe impl Trace for D {
        fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let saved: Arc<Mutex<Option<Gc<D>>>> = Arc::new(Mutex::new(None));
    let x = Gc::new(D(drops.clone()));
    let (s, r) = (saved.clone(), runs.clone());
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    set_finalizer(&x, move |x| {
        r.fetch_add(1, SeqCst);
        *s.lock().unwrap() = Some(x);
        tx.lock().unwrap().send(()).unwrap();
    });
    drop(x);
    gc_recv(&rx);
    assert_eq!(drops.load(SeqCst), 0, "resurrected object was freed");
    let back = saved.lock().unwrap().take().unwrap();
    drop(back);
    // Freed at once, or, if another test's collection was examining it,
    // when that collection ends (`gc()` waits for it).
    gc_until("the resurrected object was not freed", || {
        drops.load(SeqCst) == 1
    });
    assert_eq!(runs.load(SeqCst), 1, "finalizer is one-shot");
}

#[derive(Trace)]
struct Holder {
    canary: u64,
    fin: Mutex<Option<Gc<Holder>>>,
    next: Mutex<Option<Gc<Holder>>>,
}

fn holder() -> Gc<Holder> {
    Gc::new(Holder {
        canary: 0xC0FFEE,
        fin: Mutex::new(None),
        next: Mutex::new(None),
    })
}

/// mgcmark.go markrootSpans / SetFinalizer docs: an object with a finalizer
/// hanging off a garbage cycle is finalized by the cycle collector, and
/// what it points to (here another cycle) is kept alive until the
/// finalizer has run.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_referents_kept_alive() {
    let c1 = holder();
    let c2 = holder();
    *c1.next.lock().unwrap() = Some(c2.clone());
    *c2.next.lock().unwrap() = Some(c1.clone());
    let f = holder();
    *c1.fin.lock().unwrap() = Some(f.clone());
    let x = holder();
    let y = holder();
    *x.next.lock().unwrap() = Some(y.clone());
    *y.next.lock().unwrap() = Some(x.clone());
    *f.next.lock().unwrap() = Some(x.clone());
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    set_finalizer(&f, move |f: Gc<Holder>| {
        let x = f.next.lock().unwrap().clone().unwrap();
        let y = x.next.lock().unwrap().clone().unwrap();
        tx.lock().unwrap().send((x.canary, y.canary)).unwrap();
    });
    drop((c1, c2, f, x, y));
    assert_eq!(gc_recv(&rx), (0xC0FFEE, 0xC0FFEE));
}

/// SetFinalizer docs: a finalizer that captures its own object keeps it
/// reachable, so it never runs.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn finalizer_capturing_its_object_never_runs() {
    let ran = Arc::new(AtomicUsize::new(0));
    let x = t(5);
    let me = x.clone();
    let r = ran.clone();
    set_finalizer(&x, move |_| {
        keep_alive(&me);
        r.fetch_add(1, SeqCst);
    });
    drop(x);
    for _ in 0..3 {
        gc();
    }
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let s = t(6);
    set_finalizer(&s, move |_| tx.lock().unwrap().send(()).unwrap());
    drop(s);
    gc_recv(&rx);
    assert_eq!(ran.load(SeqCst), 0);
}

/// gc() from inside a finalizer does not deadlock.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn gc_inside_finalizer() {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let x = t(1);
    set_finalizer(&x, move |_| {
        gc();
        gc();
        tx.lock().unwrap().send(()).unwrap();
    });
    drop(x);
    gc_recv(&rx);
}

/// TestCleanup.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup() {
    let (tx, rx) = channel();
    let x = t(97531);
    add_cleanup(
        &x,
        move |(v, tx): (i64, Mutex<std::sync::mpsc::Sender<i64>>)| {
            tx.lock().unwrap().send(v).unwrap()
        },
        (97531i64, Mutex::new(tx)),
    );
    drop(x);
    assert_eq!(gc_recv(&rx), 97531);
}

/// Wraps a sender so it can be a cleanup argument.
struct Tx(Mutex<std::sync::mpsc::Sender<i32>>);
// SAFETY: no handles.
unsafe impl Trace for Tx {
    fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
}

/// TestCleanupMultiple.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup_multiple() {
    let (tx, rx) = channel();
    let x = t(1);
    for _ in 0..3 {
        add_cleanup(
            &x,
            |tx: Tx| tx.0.lock().unwrap().send(97531).unwrap(),
            Tx(Mutex::new(tx.clone())),
        );
    }
    drop(x);
    for _ in 0..3 {
        assert_eq!(gc_recv(&rx), 97531);
    }
}

/// TestCleanupZeroSizedStruct (Go checks only that AddCleanup does not
/// crash): the cleanup of a zero-sized value runs, with its argument.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup_zero_sized_struct() {
    let (tx, rx) = channel();
    let z = Gc::new(());
    add_cleanup(
        &z,
        |(s, tx): (String, Mutex<std::sync::mpsc::Sender<String>>)| {
            tx.lock().unwrap().send(s).unwrap()
        },
        ("foo".to_string(), Mutex::new(tx)),
    );
    drop(z);
    assert_eq!(gc_recv(&rx), "foo");
}

/// TestCleanupAfterFinalizer: the finalizer runs first; the cleanup only
/// after the object is really freed.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup_after_finalizer() {
    let (tx, rx) = channel();
    let x = t(97531);
    add_cleanup(
        &x,
        |tx: Tx| tx.0.lock().unwrap().send(2).unwrap(),
        Tx(Mutex::new(tx.clone())),
    );
    let tx1 = Mutex::new(tx);
    set_finalizer(&x, move |_| tx1.lock().unwrap().send(1).unwrap());
    drop(x);
    assert_eq!(gc_recv(&rx), 1);
    assert_eq!(gc_recv(&rx), 2);
}

/// AddCleanup docs: "ptr is equal to arg" panics.
#[test]
fn cleanup_arg_is_object_panics() {
    let x = t(1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        add_cleanup(&x, |_a: Gc<T>| {}, x.clone());
    }));
    let msg = *r.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(
        msg,
        "runtime.AddCleanup: ptr is equal to arg, cleanup will never run"
    );
    // A handle to another object is fine.
    let y = t(2);
    add_cleanup(&x, |_a: Gc<T>| {}, y.clone());
}

/// Sets its flag when dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// TestCleanupStop: a stopped cleanup never runs. Go runs a GC and relies
/// on the cleanup's t.Error; here `stop` is seen to drop the cleanup (its
/// closure and argument) at once, so it cannot run later, and the other
/// cleanup of the object still runs.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup_stop() {
    let (tx, rx) = channel();
    let x = t(1);
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = add_cleanup(
        &x,
        |(tx, _flag): (Tx, DropFlag)| tx.0.lock().unwrap().send(1).unwrap(),
        (Tx(Mutex::new(tx.clone())), DropFlag(gone.clone())),
    );
    add_cleanup(
        &x,
        |tx: Tx| tx.0.lock().unwrap().send(2).unwrap(),
        Tx(Mutex::new(tx)),
    );
    assert!(!gone.load(SeqCst));
    c.stop();
    assert!(gone.load(SeqCst), "stop did not drop the cleanup");
    drop(x);
    assert_eq!(gc_recv(&rx), 2);
    // Stop after the fact is harmless.
    c.stop();
    assert!(rx.try_recv().is_err(), "the stopped cleanup ran");
}

/// AddCleanup docs: cleanups do not keep cycles alive.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn cleanup_on_cycle_runs() {
    let (tx, rx) = channel();
    let a = t(1);
    let b = t(2);
    *a.p.lock().unwrap() = Some(b.clone());
    *b.p.lock().unwrap() = Some(a.clone());
    add_cleanup(
        &a,
        |tx: Tx| tx.0.lock().unwrap().send(1).unwrap(),
        Tx(Mutex::new(tx.clone())),
    );
    add_cleanup(
        &b,
        |tx: Tx| tx.0.lock().unwrap().send(2).unwrap(),
        Tx(Mutex::new(tx)),
    );
    drop((a, b));
    let mut got = [gc_recv(&rx), gc_recv(&rx)];
    got.sort();
    assert_eq!(got, [1, 2]);
}

/// weak TestPointer.
#[test]
fn weak_pointer() {
    let bt = t(1);
    let wt = Gc::downgrade(&bt);
    assert!(Gc::ptr_eq(&wt.upgrade().unwrap(), &bt));
    gc();
    assert!(Gc::ptr_eq(&wt.upgrade().unwrap(), &bt));
    drop(bt);
    gc();
    assert!(wt.upgrade().is_none());
}

/// weak TestPointerEquality (minus the zero weak pointer, which gort has no
/// value for).
#[test]
fn weak_pointer_equality() {
    let bt: Vec<Gc<T>> = (0..10).map(t).collect();
    let wt: Vec<_> = bt.iter().map(Gc::downgrade).collect();
    for round in 0..2 {
        for i in 0..10 {
            let st = wt[i].upgrade().unwrap();
            assert!(Gc::ptr_eq(&st, &bt[i]));
            assert!(gort_gc::Weak::ptr_eq(&Gc::downgrade(&st), &wt[i]));
            if i > 0 {
                assert!(!gort_gc::Weak::ptr_eq(&wt[i], &wt[i - 1]));
            }
        }
        if round == 0 {
            gc();
        }
    }
    drop(bt);
    gc();
    for w in &wt {
        assert!(w.upgrade().is_none());
    }
}

/// weak TestPointerFinalizer: weak pointers go nil when the finalizer is
/// queued, and stay nil after it ran.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn weak_pointer_finalizer() {
    let bt = t(1);
    let wt = Gc::downgrade(&bt);
    let wt2 = wt.clone();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    set_finalizer(&bt, move |_bt| {
        tx.lock().unwrap().send(wt2.upgrade().is_none()).unwrap();
    });
    gc();
    assert!(wt.upgrade().is_some(), "weak pointer went nil too soon");
    keep_alive(&bt);
    drop(bt);
    gc();
    assert!(
        wt.upgrade().is_none(),
        "weak pointer did not go nil when finalizer was enqueued"
    );
    assert!(
        gc_recv(&rx),
        "weak pointer did not go nil before finalizer ran"
    );
    gc();
    assert!(wt.upgrade().is_none());
}

/// weak TestPointerCleanup.
#[test]
#[cfg_attr(miri, ignore = "runs the finalizer goroutine (corosensei stacks)")]
fn weak_pointer_cleanup() {
    let bt = t(1);
    let wt = Gc::downgrade(&bt);
    let wt2 = Mutex::new(Some(wt.clone()));
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    add_cleanup(
        &bt,
        move |_b: bool| {
            let w = wt2.lock().unwrap().take().unwrap();
            tx.lock().unwrap().send(w.upgrade().is_none()).unwrap();
        },
        true,
    );
    gc();
    assert!(wt.upgrade().is_some());
    drop(bt);
    gc();
    assert!(wt.upgrade().is_none());
    assert!(gc_recv(&rx));
}

/// weak TestIssue69210: weak-to-strong conversions racing collections
/// never produce a freed object.
#[test]
fn weak_issue_69210() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let collector = std::thread::spawn(move || {
        while !s.load(SeqCst) {
            gc();
        }
    });
    let workers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..if cfg!(miri) { 10 } else { 2000 } {
                    let bt = t(7);
                    *bt.p.lock().unwrap() = Some(bt.clone()); // a cycle
                    let wt = Gc::downgrade(&bt);
                    drop(bt);
                    std::thread::yield_now();
                    if let Some(bt) = wt.upgrade() {
                        std::thread::yield_now();
                        assert_eq!(bt.v, 7);
                        *bt.p.lock().unwrap() = Some(bt.clone());
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, SeqCst);
    collector.join().unwrap();
}
