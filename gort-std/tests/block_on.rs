//! `block_on`: a future's waker readies the goroutine (or thread) parked on
//! it, whoever fires it — another OS thread, a gort timer, a tokio task —
//! and however the wake races the park. Every test runs at GOMAXPROCS=1, so
//! a `block_on` that blocked its M would stall every other goroutine (and
//! the tests that prove the M runs on would time out).

mod common;
use common::wait_until;
use gort_sched::{go, init, Config};
use gort_std::{after_func, block_on, chan};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

fn one_p() {
    init(Config {
        procs: 1,
        ..Config::default()
    });
}

/// A one-shot event with a runtime-agnostic future: `fire` sets it and
/// wakes the waker the last poll registered.
#[derive(Clone, Default)]
struct Flag(Arc<FlagInner>);

#[derive(Default)]
struct FlagInner {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
    /// Polls that returned Pending.
    pending_polls: AtomicUsize,
}

impl Flag {
    fn fire(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        let w = self.0.waker.lock().unwrap().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn is_set(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    fn pending_polls(&self) -> usize {
        self.0.pending_polls.load(Ordering::SeqCst)
    }

    fn wait(&self) -> FlagWait {
        FlagWait(self.clone())
    }
}

struct FlagWait(Flag);

impl Future for FlagWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let f = &self.0 .0;
        // Register first, then check: a fire in between finds the waker.
        *f.waker.lock().unwrap() = Some(cx.waker().clone());
        if f.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        f.pending_polls.fetch_add(1, Ordering::SeqCst);
        Poll::Pending
    }
}

#[test]
fn ready_future_returns_its_value() {
    one_p();
    async fn add(a: u32, b: u32) -> u32 {
        a + b
    }
    assert_eq!(gort_sched::run(|| block_on(add(2, 3))), 5);
    assert_eq!(block_on(std::future::ready("thread")), "thread");
}

#[test]
fn pending_future_woken_from_another_os_thread() {
    one_p();
    let flag = Flag::default();
    let f2 = flag.clone();
    gort_sched::run(move || {
        let f3 = f2.clone();
        let t = std::thread::spawn(move || {
            wait_until("the goroutine polls", || f3.pending_polls() > 0);
            f3.fire();
        });
        block_on(f2.wait());
        assert!(f2.is_set());
        t.join().unwrap();
    });
    assert_eq!(flag.pending_polls(), 1, "woken once, polled once more");
}

#[test]
fn woken_by_a_gort_timer() {
    one_p();
    gort_sched::run(|| {
        // A future that arms an after_func on its first poll; the timer's
        // goroutine wakes it.
        struct Sleep {
            fired: Arc<AtomicBool>,
            timer: Option<gort_std::AfterFunc>,
        }
        impl Future for Sleep {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if self.fired.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                if self.timer.is_none() {
                    let (fired, waker) = (self.fired.clone(), cx.waker().clone());
                    self.timer = Some(after_func(Duration::from_millis(20), move || {
                        fired.store(true, Ordering::SeqCst);
                        waker.wake_by_ref();
                    }));
                }
                Poll::Pending
            }
        }
        let fired = Arc::new(AtomicBool::new(false));
        block_on(Sleep {
            fired: fired.clone(),
            timer: None,
        });
        assert!(fired.load(Ordering::SeqCst));

        // And a future that awaits an event an after_func fires.
        let flag = Flag::default();
        let f2 = flag.clone();
        let _t = after_func(Duration::from_millis(10), move || f2.fire());
        block_on(async { flag.wait().await });
        assert!(flag.is_set());
    });
}

#[test]
fn woken_by_a_tokio_task() {
    one_p();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let r2 = rt.handle().clone();
    gort_sched::run(move || {
        // A task that needs tokio's timer runs on the runtime; the
        // goroutine blocks on its JoinHandle.
        let h = r2.spawn(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            42
        });
        assert_eq!(block_on(h).unwrap(), 42);

        // A tokio oneshot (runtime-agnostic) completed by a tokio task.
        let (tx, rx) = tokio::sync::oneshot::channel();
        r2.spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send("from tokio").unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), "from tokio");

        // A task's panic comes back through the JoinHandle.
        let h = r2.spawn(async { panic!("task panicked") });
        assert!(block_on(h).unwrap_err().is_panic());
    });
    rt.shutdown_timeout(Duration::from_secs(10));
}

#[test]
fn many_goroutines_parked_in_block_on_leave_the_m_running() {
    one_p();
    const N: usize = 1000;
    gort_sched::run(|| {
        let flags: Vec<Flag> = (0..N).map(|_| Flag::default()).collect();
        let done = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = flags
            .iter()
            .map(|f| {
                let (f, done) = (f.clone(), done.clone());
                go(move || {
                    block_on(f.wait());
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        wait_until("every goroutine is pending in block_on", || {
            flags.iter().all(|f| f.pending_polls() > 0)
        });
        // With one P, this goroutine and the channel below run only if the
        // M is free: a block_on that blocked the thread would hang here.
        let (tx, rx) = chan::<u64>(0);
        let worker = go(move || (0..100).for_each(|i| tx.send(i).unwrap()));
        assert_eq!(rx.iter().sum::<u64>(), 4950);
        worker.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 0);

        // Fire them all from a plain thread.
        let fs = flags.clone();
        std::thread::spawn(move || fs.iter().for_each(Flag::fire))
            .join()
            .unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), N);
    });
}

#[test]
fn wake_inside_poll_is_not_lost() {
    one_p();
    // A future that wakes itself during poll and returns Pending (the way
    // a cooperative yield does), with wake_by_ref and with wake on a clone.
    struct YieldN(u32);
    impl Future for YieldN {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.0 == 0 {
                return Poll::Ready(7);
            }
            if self.0 % 2 == 0 {
                cx.waker().wake_by_ref();
            } else {
                // By value, on a clone (the `Wake::wake` path).
                let w = cx.waker().clone();
                w.wake();
            }
            self.0 -= 1;
            Poll::Pending
        }
    }
    assert_eq!(gort_sched::run(|| block_on(YieldN(1000))), 7);
    assert_eq!(block_on(YieldN(1000)), 7);
}

#[test]
fn wake_racing_the_park_from_another_thread() {
    one_p();
    const ROUNDS: usize = 10_000;
    gort_sched::run(|| {
        // Each round's flag is fired by a thread as soon as it gets it:
        // the wake lands before the poll, during it, between the poll and
        // the park's commit, or after the park, at random.
        let (tx, rx) = std::sync::mpsc::channel::<Flag>();
        let t = std::thread::spawn(move || {
            for f in rx {
                f.fire();
            }
        });
        for _ in 0..ROUNDS {
            let f = Flag::default();
            tx.send(f.clone()).unwrap();
            block_on(f.wait());
            assert!(f.is_set());
        }
        drop(tx);
        t.join().unwrap();
    });
}

#[test]
fn wakes_from_many_threads_at_once() {
    one_p();
    const TARGET: u64 = 20_000;
    // Four threads bump a counter and wake the same waker in a tight loop;
    // the future is ready once the counter reaches the target. Every
    // increment is followed by a wake, so the last one is never lost.
    struct AtLeast {
        count: Arc<AtomicU64>,
        waker: Arc<Mutex<Option<Waker>>>,
    }
    impl Future for AtLeast {
        type Output = u64;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            let n = self.count.load(Ordering::SeqCst);
            if n >= TARGET {
                Poll::Ready(n)
            } else {
                Poll::Pending
            }
        }
    }
    gort_sched::run(|| {
        let count = Arc::new(AtomicU64::new(0));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (count, waker) = (count.clone(), waker.clone());
                std::thread::spawn(move || {
                    for _ in 0..TARGET / 4 {
                        count.fetch_add(1, Ordering::SeqCst);
                        let w = waker.lock().unwrap().clone();
                        if let Some(w) = w {
                            w.wake();
                        }
                    }
                })
            })
            .collect();
        let n = block_on(AtLeast {
            count: count.clone(),
            waker: waker.clone(),
        });
        assert!(n >= TARGET);
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}

#[test]
fn stale_waker_after_return_is_harmless() {
    one_p();
    gort_sched::run(|| {
        // Keep a waker of a finished block_on (via a self-waking future).
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let k2 = kept.clone();
        let mut first = true;
        block_on(std::future::poll_fn(move |cx| {
            *k2.lock().unwrap() = Some(cx.waker().clone());
            if std::mem::take(&mut first) {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        let stale = kept.lock().unwrap().take().unwrap();

        // A later block_on on this goroutine waits for its own wake-up.
        let flag = Flag::default();
        let f2 = flag.clone();
        let firer = go(move || {
            wait_until("the second block_on is pending", || f2.pending_polls() > 0);
            stale.wake_by_ref();
            let by_value = stale.clone();
            by_value.wake();
            // Time for a wrongly readied owner to run (one P: it would
            // run while we sleep) and poll again.
            gort_std::sleep(Duration::from_millis(20));
            assert_eq!(f2.pending_polls(), 1, "polled again after a stale wake");
            f2.fire();
            stale.wake();
        });
        block_on(flag.wait());
        assert!(flag.is_set());
        firer.join().unwrap();
        assert_eq!(flag.pending_polls(), 1);

        // Nor does it complete a later channel receive.
        let stale = {
            let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
            let k2 = kept.clone();
            block_on(std::future::poll_fn(move |cx| {
                *k2.lock().unwrap() = Some(cx.waker().clone());
                Poll::Ready(())
            }));
            let w = kept.lock().unwrap().take();
            w.unwrap()
        };
        let (tx, rx) = chan::<u32>(0);
        let sender = go(move || {
            wait_until("the receive parks", || tx.blocked_receivers() == 1);
            stale.wake_by_ref();
            tx.send(9).unwrap();
        });
        assert_eq!(rx.recv(), Ok(9));
        sender.join().unwrap();
    });
}

#[test]
fn panic_in_poll_propagates_to_the_caller() {
    one_p();
    gort_sched::run(|| {
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let k2 = kept.clone();
        let mut polls = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            block_on(std::future::poll_fn(move |cx| -> Poll<()> {
                polls += 1;
                *k2.lock().unwrap() = Some(cx.waker().clone());
                if polls == 1 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                panic!("boom in poll {polls}")
            }))
        }));
        let err = r.unwrap_err();
        assert_eq!(err.downcast_ref::<String>().unwrap(), "boom in poll 2");
        // Its waker is stale now, and the goroutine blocks on as before.
        kept.lock().unwrap().take().unwrap().wake();
        assert_eq!(block_on(async { 1 }), 1);
    });
    // From a plain thread too.
    let r = catch_unwind(|| block_on(async { panic!("thread boom") }));
    assert_eq!(
        *r.unwrap_err().downcast_ref::<&str>().unwrap(),
        "thread boom"
    );
}

#[test]
fn plain_threads_park_in_block_on() {
    one_p();
    let flag = Flag::default();
    let f2 = flag.clone();
    // Not a goroutine: block_on parks the thread itself.
    let waiter = std::thread::spawn(move || {
        block_on(f2.wait());
        f2.is_set()
    });
    // Fired by a goroutine.
    let f3 = flag.clone();
    gort_sched::run(move || {
        wait_until("the thread is pending", || f3.pending_polls() > 0);
        f3.fire();
    });
    assert!(waiter.join().unwrap());

    // And by a plain thread, with the caller the test's own thread.
    let flag = Flag::default();
    let f2 = flag.clone();
    let t = std::thread::spawn(move || {
        wait_until("the test thread is pending", || f2.pending_polls() > 0);
        f2.fire();
    });
    block_on(flag.wait());
    t.join().unwrap();
}

#[test]
fn nested_block_on_parks_the_goroutine_not_the_m() {
    one_p();
    // The outer future's poll blocks in an inner block_on (a park of the
    // same goroutine, with its own waiter); the outer wake comes during
    // the inner wait (`early`) or after the outer call parked (`!early`).
    for early in [true, false] {
        gort_sched::run(move || {
            let outer = Flag::default();
            let inner = Flag::default();
            let outer_parks = Arc::new(AtomicUsize::new(0));
            let (o2, i2, p2) = (outer.clone(), inner.clone(), outer_parks.clone());
            // Runs only while the main goroutine is parked (one P).
            let helper = go(move || {
                wait_until("the inner block_on is pending", || i2.pending_polls() > 0);
                if early {
                    o2.fire();
                    i2.fire();
                } else {
                    i2.fire();
                    wait_until("the outer block_on is pending again", || {
                        p2.load(Ordering::SeqCst) > 0
                    });
                    o2.fire();
                }
            });
            let (o3, i3) = (outer.clone(), inner.clone());
            let mut nested = false;
            block_on(std::future::poll_fn(move |cx| {
                // Register first, then check (as Flag's own future does).
                *o3.0.waker.lock().unwrap() = Some(cx.waker().clone());
                if !std::mem::replace(&mut nested, true) {
                    block_on(i3.wait());
                }
                if o3.is_set() {
                    Poll::Ready(())
                } else {
                    outer_parks.fetch_add(1, Ordering::SeqCst);
                    Poll::Pending
                }
            }));
            assert!(outer.is_set() && inner.is_set());
            helper.join().unwrap();
        });
    }
}
