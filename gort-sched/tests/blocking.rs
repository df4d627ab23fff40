//! `blocking`: the call runs on a pool thread while the goroutine parks, so
//! the goroutines of its M keep running; the closure may borrow the
//! caller's locals; panics come back with their payload; plain threads run
//! the call inline; pool threads do not leak.

mod common;
use common::{is_child, run_child, watchdog};
use gort_sched::*;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[test]
fn closure_borrows_and_mutates_caller_locals() {
    let (v, n) = run(|| {
        let mut v = vec![1, 2, 3];
        let name = String::from("gort");
        let n = blocking(|| {
            v.push(4); // mutable borrow of the caller's local
            assert!(goid().is_none(), "runs on a pool thread, not a goroutine");
            name.len() // shared borrow
        });
        (v, n)
    });
    assert_eq!(v, [1, 2, 3, 4]);
    assert_eq!(n, 4);
}

#[test]
fn result_is_returned_and_runs_on_another_thread() {
    let (caller, pool, name) = run(|| {
        let caller = std::thread::current().id();
        let (pool, name) = blocking(|| {
            let t = std::thread::current();
            (t.id(), t.name().map(str::to_string))
        });
        (caller, pool, name)
    });
    assert_ne!(caller, pool, "the call ran on the goroutine's own thread");
    assert_eq!(name.as_deref(), Some("gort-blocking"));
}

#[test]
fn panic_propagates_with_its_payload() {
    run(|| {
        let mut touched = false;
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            blocking(|| {
                touched = true;
                panic::panic_any(42u32)
            })
        }));
        let payload = r.expect_err("the panic in the closure came back");
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
        assert!(touched);

        // (A runtime argument: rustc folds constant ones into a `&str`.)
        let n = std::hint::black_box(7);
        let r = panic::catch_unwind(|| blocking(|| panic!("formatted {n}")));
        let payload = r.expect_err("the panic in the closure came back");
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("formatted 7")
        );
        // The goroutine and the pool are fine afterwards.
        assert_eq!(blocking(|| 5), 5);
    });
}

#[test]
fn panic_ends_the_goroutine_and_join_reports_it() {
    let e = go(|| blocking(|| -> u8 { panic!("in the pool") }))
        .join()
        .expect_err("the goroutine panicked");
    assert_eq!(e.to_string(), "goroutine panicked: in the pool");
}

#[test]
fn from_a_plain_thread_runs_inline() {
    let mut x = 1;
    let me = std::thread::current().id();
    let ran_on = blocking(|| {
        x += 1;
        std::thread::current().id()
    });
    assert_eq!(ran_on, me);
    assert_eq!(x, 2);
}

#[test]
fn nested_blocking_runs_inline_on_the_pool_thread() {
    let (outer, inner, v) = run(|| {
        blocking(|| {
            let outer = std::thread::current().id();
            let (inner, v) = blocking(|| (std::thread::current().id(), 9));
            (outer, inner, v)
        })
    });
    assert_eq!(outer, inner);
    assert_eq!(v, 9);
}

/// While a goroutine's blocking call is in flight, another goroutine on the
/// same M (there is one P) runs: a counter it increments advances before
/// the call returns. And the calls of many goroutines of that M overlap:
/// each waits at a barrier that only opens when all of them are in flight,
/// which would deadlock if a call held the M.
#[test]
fn goroutines_of_one_m_keep_running_during_blocking_calls() {
    if !is_child() {
        let (ok, err) = run_child(
            "goroutines_of_one_m_keep_running_during_blocking_calls",
            &[("GOMAXPROCS", "1")],
        );
        assert!(ok, "{err}");
        return;
    }
    let _w = watchdog("blocking calls on one M", Duration::from_secs(60));
    assert_eq!(gomaxprocs(0), 1);
    const N: usize = 10;
    let counter = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (counter, stop) = (counter.clone(), stop.clone());
        go(move || {
            while !stop.load(Ordering::Relaxed) {
                counter.fetch_add(1, Ordering::Relaxed);
                gosched();
            }
        })
    };
    // Sleeps: every call sees the counter advance while it is in flight.
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let counter = counter.clone();
            go(move || {
                let before = counter.load(Ordering::Relaxed);
                let during = blocking(|| {
                    std::thread::sleep(Duration::from_millis(100));
                    counter.load(Ordering::Relaxed)
                });
                assert!(
                    during > before,
                    "no goroutine ran on the M during the blocking call ({before} -> {during})"
                );
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // A barrier: all N calls are in flight at once.
    let barrier = Arc::new(Barrier::new(N));
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let barrier = barrier.clone();
            go(move || blocking(|| barrier.wait().is_leader()))
        })
        .collect();
    let leaders = hs.into_iter().map(|h| h.join().unwrap());
    assert_eq!(leaders.filter(|&l| l).count(), 1, "one barrier leader");
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
}

/// A `Drop` that calls `blocking` while its goroutine unwinds runs the call
/// inline: parking then would show the thread's other goroutines
/// `panicking() == true`.
#[test]
fn while_unwinding_the_call_runs_inline() {
    struct D(Arc<std::sync::Mutex<Option<bool>>>);
    impl Drop for D {
        fn drop(&mut self) {
            let me = std::thread::current().id();
            let same = blocking(|| std::thread::current().id() == me);
            *self.0.lock().unwrap() = Some(same);
        }
    }
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    let e = go(move || {
        let _d = D(s);
        panic!("unwind through a Drop that calls blocking");
    })
    .join()
    .expect_err("it panicked");
    assert!(e.is_panic());
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

/// 10,000 calls, sequential and concurrent, leave a handful of threads, and
/// those exit after the keep-alive (shortened here); nothing stays counted
/// as pending.
#[test]
fn ten_thousand_calls_do_not_leak_threads() {
    if !is_child() {
        let (ok, err) = run_child("ten_thousand_calls_do_not_leak_threads", &[]);
        assert!(ok, "{err}");
        return;
    }
    let _w = watchdog("10,000 blocking calls", Duration::from_secs(120));
    set_blocking_keep_alive(Duration::from_millis(50));
    let total = Arc::new(AtomicUsize::new(0));
    // One goroutine, 5,000 calls in a row: one job at a time, so the pool
    // stays small (a thread that just finished may not be idle yet when
    // the next call comes, so it can be more than one).
    let t = total.clone();
    let most = run(move || {
        let mut most = 0;
        for _ in 0..5_000 {
            blocking(|| t.fetch_add(1, Ordering::Relaxed));
            most = most.max(blocking_pool_state().0);
        }
        most
    });
    assert!(most <= 8, "{most} pool threads for one sequential caller");
    // Ten goroutines, 500 calls each.
    let hs: Vec<_> = (0..10)
        .map(|_| {
            let t = total.clone();
            go(move || {
                for _ in 0..500 {
                    blocking(|| t.fetch_add(1, Ordering::Relaxed));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(total.load(Ordering::Relaxed), 10_000);
    wait_no_pending();
    // Idle threads exit after the keep-alive.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (alive, pending) = blocking_pool_state();
        assert_eq!(pending, 0);
        if alive == 0 && pool_threads_in_proc() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} pool threads alive ({} in /proc) 30 s after the last call",
            pool_threads_in_proc()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // And the pool starts again on demand.
    assert_eq!(run(|| blocking(|| 1)), 1);
}

/// A keep-alive too long for `Instant` arithmetic means "never exit", not
/// a pool thread that dies (and hangs the next caller).
#[test]
fn an_endless_keep_alive_is_accepted() {
    if !is_child() {
        let (ok, err) = run_child("an_endless_keep_alive_is_accepted", &[]);
        assert!(ok, "{err}");
        return;
    }
    let _w = watchdog("endless keep-alive", Duration::from_secs(60));
    set_blocking_keep_alive(Duration::MAX);
    for i in 0..3 {
        assert_eq!(run(move || blocking(move || i)), i);
    }
    wait_no_pending();
}

/// Waits (up to 10 s) until no job is counted as pending. A job stops
/// counting only after it readied its caller (see the pool's invariants),
/// so a caller that just returned may read it for a moment.
fn wait_no_pending() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocking_pool_state().1 != 0 {
        assert!(Instant::now() < deadline, "a job still pending after 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Threads of this process named `gort-blocking`.
fn pool_threads_in_proc() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == "gort-blocking")
        .count()
}

/// A goroutine that allowed stack compaction (`unsafe`) lends its locals to
/// a blocking call that outlasts a compaction interval; the pool thread's
/// writes must land and its reads see the real values.
/// (Compaction skips goroutines parked in `blocking`: without that, the
/// pool thread read zeroed pages and its writes were lost.)
#[test]
fn compactable_goroutine_lends_its_stack_to_a_blocking_call() {
    // SAFETY: the goroutine's stack is touched while it is parked only by
    // the `blocking` call, which the scheduler never compacts.
    let b = unsafe { Builder::new().compact_when_parked(true) };
    let (sum, arr) = b
        .spawn(|| {
            let mut arr = [7u64; 512];
            let sum = blocking(|| {
                // Several compaction intervals (10-20 ms each).
                std::thread::sleep(Duration::from_millis(100));
                let s: u64 = arr.iter().sum();
                arr[3] = 99;
                s
            });
            (sum, arr)
        })
        .join()
        .unwrap();
    assert_eq!(sum, 7 * 512, "the pool thread read the lent stack");
    assert_eq!(arr[3], 99, "the pool thread's write was kept");
}
