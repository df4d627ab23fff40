//! Regression tests for the soundness findings of issue 11 that live in the
//! scheduler: stale waiters, where a detached goroutine's result is dropped,
//! joining yourself, and unusable configuration. Each failed (or hung) on
//! the code before the fix.

mod common;

use common::Sema;
use gort_sched::{go, goid, init, park, run, Builder, Config, WaitReason, Waiter};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Every test here runs on one P, where a spurious wake-up or a blocked M
/// shows at once.
fn one_p() {
    init(Config {
        procs: 1,
        ..Config::default()
    });
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Issue 11.2: a waiter kept past an abandoned park and readied late used
/// to wake the goroutine's next park (in gort-std, a channel receive that
/// then returned with its sudog still queued).
#[test]
fn late_waiter_of_an_abandoned_park_wakes_nothing() {
    one_p();
    run(|| {
        let stale = Waiter::current();
        park(WaitReason::Unspecified, || false); // abandoned
        stale.ready(); // a late waker

        // The next wait, with its own waiter readied 50 ms from now.
        let w = Waiter::current();
        let t0 = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w.ready();
        });
        park(WaitReason::Unspecified, || true);
        assert!(
            t0.elapsed() >= Duration::from_millis(45),
            "woken by the stale waiter after {:?}",
            t0.elapsed()
        );
        t.join().unwrap();
    });
}

/// Issue 11.2: a waiter superseded by a newer one (never parked on) cannot
/// wake the park the newer one was made for.
#[test]
fn superseded_waiter_cannot_wake_a_later_park() {
    one_p();
    run(|| {
        let old = Waiter::current();
        let new = Waiter::current();
        let t0 = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            old.ready();
            std::thread::sleep(Duration::from_millis(80));
            new.ready();
        });
        park(WaitReason::Unspecified, || true);
        assert!(
            t0.elapsed() >= Duration::from_millis(80),
            "woken by a superseded waiter after {:?}",
            t0.elapsed()
        );
        t.join().unwrap();
    });
}

/// Issue 11.2, the mutex case: a semaphore built on park/ready (as gort-sema
/// is) keeps mutual exclusion when a stale waiter is readied at the
/// acquirer.
#[test]
fn stale_waiter_does_not_break_a_semaphore() {
    one_p();
    run(|| {
        let sema = Arc::new(Sema::new());
        let inside = Arc::new(AtomicU64::new(0));
        // Held by another goroutine for 50 ms.
        let (s2, in2) = (sema.clone(), inside.clone());
        let holder = go(move || {
            in2.store(1, Ordering::SeqCst);
            gort_sched_sleep(Duration::from_millis(50));
            in2.store(0, Ordering::SeqCst);
            s2.release();
        });
        gort_sched::gosched(); // let the holder take it
        let stale = Waiter::current();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            stale.ready();
        });
        sema.acquire();
        assert_eq!(
            inside.load(Ordering::SeqCst),
            0,
            "acquired while the holder is inside"
        );
        holder.join().unwrap();
    });
}

/// Sleeps a goroutine by parking it until a thread readies it.
fn gort_sched_sleep(d: Duration) {
    let w = Waiter::current();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        w.ready();
    });
    park(WaitReason::Sleep, || true);
}

/// Records which goroutine its destructor ran on, and can block in it.
struct DropProbe {
    ran_on: Arc<Mutex<Option<Option<u64>>>>,
    block_on: Option<Arc<Sema>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if let Some(s) = &self.block_on {
            s.acquire(); // parks: must be on a goroutine, not on the M
        }
        *self.ran_on.lock().unwrap() = Some(goid());
    }
}

/// Issue 11.7: a detached goroutine's result is dropped on its own stack
/// (it used to be dropped on the M's scheduler stack, where `goid()` is
/// `None` and a blocking `Drop` blocks the whole M).
#[test]
fn detached_result_is_dropped_on_the_goroutine() {
    one_p();
    run(|| {
        let ran_on = Arc::new(Mutex::new(None));
        let r2 = ran_on.clone();
        let (tx, rx) = mpsc::channel();
        let h = go(move || {
            tx.send(goid().unwrap()).unwrap();
            DropProbe {
                ran_on: r2,
                block_on: None,
            }
        });
        drop(h); // detached before it ran (one P: it has not)
        let id = loop {
            if let Ok(id) = rx.try_recv() {
                break id;
            }
            gort_sched::gosched();
        };
        while ran_on.lock().unwrap().is_none() {
            gort_sched::gosched();
        }
        assert_eq!(*ran_on.lock().unwrap(), Some(Some(id)));
    });
}

/// Issue 11.7: a detached goroutine's result whose `Drop` blocks until
/// another goroutine of the same M acts does not block that M.
#[test]
fn detached_result_drop_may_block() {
    one_p();
    run(|| {
        let sema = Arc::new(Sema::new());
        let ran_on = Arc::new(Mutex::new(None));
        let (s2, r2) = (sema.clone(), ran_on.clone());
        drop(go(move || DropProbe {
            ran_on: r2,
            block_on: Some(s2),
        }));
        // Let it finish and block in its result's Drop, then release it from
        // this goroutine, on the same (only) P.
        for _ in 0..10 {
            gort_sched::gosched();
        }
        sema.release();
        while ran_on.lock().unwrap().is_none() {
            gort_sched::gosched();
        }
        assert!(ran_on.lock().unwrap().unwrap().is_some());
    });
}

/// The result of a goroutine that finished before its handle was dropped is
/// dropped where the handle is dropped.
#[test]
fn finished_result_is_dropped_with_the_handle() {
    one_p();
    run(|| {
        let ran_on = Arc::new(Mutex::new(None));
        let r2 = ran_on.clone();
        let h = go(move || DropProbe {
            ran_on: r2,
            block_on: None,
        });
        while !h.is_finished() {
            gort_sched::gosched();
        }
        assert!(ran_on.lock().unwrap().is_none(), "dropped before detach");
        drop(h);
        assert_eq!(*ran_on.lock().unwrap(), Some(goid()));
    });
}

/// Issue 11.10: a goroutine joining its own handle panics instead of
/// hanging forever.
#[test]
fn joining_yourself_panics() {
    one_p();
    run(|| {
        let slot = Arc::new(Mutex::new(None::<gort_sched::JoinHandle<String>>));
        let s2 = slot.clone();
        let (tx, rx) = mpsc::channel();
        let h = go(move || {
            let me = loop {
                if let Some(h) = s2.lock().unwrap().take() {
                    break h;
                }
                gort_sched::gosched();
            };
            let r = catch_unwind(AssertUnwindSafe(move || me.join()));
            tx.send(panic_message(r.unwrap_err())).unwrap();
            String::new()
        });
        *slot.lock().unwrap() = Some(h);
        let msg = loop {
            if let Ok(m) = rx.try_recv() {
                break m;
            }
            gort_sched::gosched();
        };
        assert!(msg.contains("join itself"), "{msg}");
    });
}

/// Issue 11.9: unusable explicit configuration and stack sizes are reported
/// with a message, not a hang, an index out of bounds or a SIGSEGV.
#[test]
fn bad_config_and_stack_size_panic_clearly() {
    for procs in [0, 5000] {
        let r = catch_unwind(|| {
            init(Config {
                procs,
                ..Config::default()
            })
        });
        let msg = panic_message(r.unwrap_err());
        assert!(msg.contains("procs") && msg.contains("1 to"), "{msg}");
    }
    let r = catch_unwind(|| {
        init(Config {
            procs: 1,
            stack_size: usize::MAX,
        })
    });
    assert!(panic_message(r.unwrap_err()).contains("stack_size"));
    let r = catch_unwind(|| Builder::new().stack_size(usize::MAX));
    let msg = panic_message(r.unwrap_err());
    assert!(msg.contains("exceeds the maximum"), "{msg}");
    // A large but allowed size still works (pages are committed lazily).
    one_p();
    let v = Builder::new()
        .stack_size(64 << 20)
        .spawn(|| 7)
        .join()
        .unwrap();
    assert_eq!(v, 7);
}

/// Issue 11.6d: a goroutine that parks while its thread unwinds (a `Drop`
/// run by `goexit` that blocks) is reported, naming it, since other
/// goroutines of the thread then see std's panic state.
#[test]
fn parking_while_unwinding_is_reported() {
    if !common::is_child() {
        let (ok, err) = common::run_child("parking_while_unwinding_is_reported", &[]);
        assert!(ok, "{err}");
        assert!(
            err.contains("child: ran"),
            "child did not run the test: {err}"
        );
        assert!(
            err.contains("parks while its thread is unwinding") && err.contains("goroutine"),
            "{err}"
        );
        return;
    }
    one_p();
    struct ParkInDrop(Arc<Sema>);
    impl Drop for ParkInDrop {
        fn drop(&mut self) {
            self.0.acquire();
        }
    }
    run(|| {
        let sema = Arc::new(Sema::new());
        let s2 = sema.clone();
        let h = go(move || {
            let _d = ParkInDrop(s2);
            gort_sched::goexit();
        });
        while sema.waiters() == 0 {
            gort_sched::gosched();
        }
        sema.release();
        assert!(h.join().unwrap_err().is_goexit());
    });
    eprintln!("child: ran");
}

/// A goroutine whose detached result's `Drop` is still running (parked)
/// counts as live: `run`'s "no goroutines (main called goexit)" check waits
/// for it (it fired while the Drop was parked, before the fix).
#[test]
fn detached_result_drop_counts_as_live() {
    one_p();
    struct SlowDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            gort_sched_sleep(Duration::from_millis(50));
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = dropped.clone();
    let r = catch_unwind(AssertUnwindSafe(move || {
        run(move || {
            drop(go(move || SlowDrop(d2)));
            gort_sched::goexit();
        })
    }));
    let msg = panic_message(r.unwrap_err());
    assert!(msg.contains("no goroutines"), "{msg}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "run reported no goroutines while a result's Drop was still running"
    );
}
