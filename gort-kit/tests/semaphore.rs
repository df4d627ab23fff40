//! Ports of golang.org/x/sync/semaphore's tests (semaphore_test.go), each
//! citing its source.

use gort_kit::context::{self, Error};
use gort_kit::errgroup;
use gort_kit::semaphore::Weighted;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn run(f: impl FnOnce() + Send + 'static) {
    gort_sched::run(f)
}

// semaphore_test.go TestWeighted (HammerWeighted).
#[test]
fn weighted_hammer() {
    run(|| {
        let n = gort_sched::gomaxprocs(0).max(2) as u64;
        let loops = 10_000 / n;
        let sem = Arc::new(Weighted::new(n));
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let sem = sem.clone();
                gort_sched::go(move || {
                    let ctx = context::background();
                    for _ in 0..loops {
                        sem.acquire(&ctx, i).unwrap();
                        gort_sched::gosched();
                        sem.release(i);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(sem.try_acquire(n), "every unit is free again");
    });
}

// semaphore_test.go TestWeightedPanic.
#[test]
fn weighted_panic() {
    run(|| {
        let r = std::panic::catch_unwind(|| Weighted::new(1).release(1));
        let p = r.expect_err("release of an unheld unit must panic");
        assert_eq!(
            p.downcast_ref::<&str>(),
            Some(&"semaphore: released more than held")
        );
    });
}

// semaphore_test.go TestWeightedTryAcquire.
#[test]
fn weighted_try_acquire() {
    run(|| {
        let ctx = context::background();
        let sem = Weighted::new(2);
        let mut tries = vec![];
        sem.acquire(&ctx, 1).unwrap();
        tries.push(sem.try_acquire(1));
        tries.push(sem.try_acquire(1));
        sem.release(2);
        tries.push(sem.try_acquire(1));
        sem.acquire(&ctx, 1).unwrap();
        tries.push(sem.try_acquire(1));
        assert_eq!(tries, [true, false, true, false]);
    });
}

// semaphore_test.go TestWeightedAcquire.
#[test]
fn weighted_acquire() {
    run(|| {
        let ctx = context::background();
        let sem = Weighted::new(2);
        let try_acquire = |n| {
            let (ctx, cancel) = context::with_timeout(&ctx, Duration::from_millis(10));
            let ok = sem.acquire(&ctx, n).is_ok();
            cancel.cancel();
            ok
        };
        let mut tries = vec![];
        sem.acquire(&ctx, 1).unwrap();
        tries.push(try_acquire(1));
        tries.push(try_acquire(1));
        sem.release(2);
        tries.push(try_acquire(1));
        sem.acquire(&ctx, 1).unwrap();
        tries.push(try_acquire(1));
        assert_eq!(tries, [true, false, true, false]);
    });
}

// semaphore_test.go TestWeightedDoesntBlockIfTooBig.
#[test]
fn weighted_doesnt_block_if_too_big() {
    run(|| {
        const N: u64 = 2;
        let sem = Arc::new(Weighted::new(N));
        let (big_ctx, big_cancel) = context::with_cancel(&context::background());
        let big = {
            let sem = sem.clone();
            gort_sched::go(move || sem.acquire(&big_ctx, N + 1))
        };
        let (g, ctx) = errgroup::with_context::<Error>(&context::background());
        for _ in 0..N * 3 {
            let (sem, ctx) = (sem.clone(), ctx.clone());
            g.go(move || {
                sem.acquire(&ctx, 1)?;
                gort_std::sleep(Duration::from_millis(1));
                sem.release(1);
                Ok(())
            });
        }
        g.wait()
            .expect("NewWeighted(2) failed to acquire 1 while another waits for 3");
        big_cancel.cancel();
        assert_eq!(big.join().unwrap(), Err(Error::Canceled));
    });
}

// semaphore_test.go TestLargeAcquireDoesntStarve.
#[test]
fn large_acquire_doesnt_starve() {
    run(|| {
        let ctx = context::background();
        let n = gort_sched::gomaxprocs(0).max(2) as u64;
        let sem = Arc::new(Weighted::new(n));
        let running = Arc::new(AtomicBool::new(true));
        let mut hs = vec![];
        for _ in 0..n {
            sem.acquire(&ctx, 1).unwrap();
            let (sem, running, ctx) = (sem.clone(), running.clone(), ctx.clone());
            hs.push(gort_sched::go(move || {
                while running.load(Ordering::SeqCst) {
                    gort_std::sleep(Duration::from_millis(1));
                    sem.release(1);
                    sem.acquire(&ctx, 1).unwrap();
                }
                sem.release(1);
            }));
        }
        sem.acquire(&ctx, n).unwrap(); // must not starve behind the 1s
        running.store(false, Ordering::SeqCst);
        sem.release(n);
        for h in hs {
            h.join().unwrap();
        }
    });
}

// semaphore_test.go TestAllocCancelDoesntStarve.
#[test]
fn alloc_cancel_doesnt_starve() {
    run(|| {
        let sem = Arc::new(Weighted::new(10));
        // Block off a portion so that acquire(10) can eventually succeed.
        sem.acquire(&context::background(), 1).unwrap();
        let (ctx, cancel) = context::with_cancel(&context::background());
        let big = {
            let sem = sem.clone();
            gort_sched::go(move || sem.acquire(&ctx, 10))
        };
        // Wait until the acquire(10) call blocks.
        while sem.try_acquire(1) {
            sem.release(1);
            gort_sched::gosched();
        }
        // Now grab one unit while the acquire(10) call is cancelled: both
        // calls return, in either order.
        drop(gort_sched::go(move || cancel.cancel()));
        sem.acquire(&context::background(), 1)
            .expect("acquire(1) failed unexpectedly");
        sem.release(1);
        assert_eq!(big.join().unwrap(), Err(Error::Canceled));
    });
}

// semaphore_test.go TestWeightedAcquireCanceled.
#[test]
fn weighted_acquire_canceled() {
    run(|| {
        let sem = Arc::new(Weighted::new(2));
        let (ctx, cancel) = context::with_cancel(&context::background());
        sem.acquire(&ctx, 1).unwrap();
        let h = {
            let sem = sem.clone();
            gort_sched::go(move || {
                // Synchronise with the acquire(2) below.
                while sem.try_acquire(1) {
                    sem.release(1);
                    gort_sched::gosched();
                }
                // Cancel, then release the token.
                cancel.cancel();
                sem.release(1);
            })
        };
        // The context is done before enough units are free: this fails.
        assert_eq!(sem.acquire(&ctx, 2), Err(Error::Canceled));
        h.join().unwrap();
        // Both units are free after the other goroutine released its one.
        assert!(
            sem.try_acquire(2),
            "TryAcquire after canceled Acquire failed"
        );
        // A done context fails even when the units are free.
        sem.release(2);
        assert!(
            sem.acquire(&ctx, 1).is_err(),
            "Acquire with canceled context succeeded"
        );
    });
}

// gort: FIFO: a waiter queued first is served first, even if a later one
// is smaller.
#[test]
fn fifo_order() {
    run(|| {
        let ctx = context::background();
        let sem = Arc::new(Weighted::new(3));
        sem.acquire(&ctx, 3).unwrap();
        let order = Arc::new(std::sync::Mutex::new(vec![]));
        let spawn = |n: u64, tag: &'static str| {
            let (sem, order, ctx) = (sem.clone(), order.clone(), ctx.clone());
            gort_sched::go(move || {
                sem.acquire(&ctx, n).unwrap();
                order.lock().unwrap().push(tag);
            })
        };
        let a = spawn(3, "big");
        gort_std::sleep(Duration::from_millis(5)); // it queues first
        let b = spawn(1, "small");
        gort_std::sleep(Duration::from_millis(5));
        sem.release(1); // 1 free: the small one must not overtake
        gort_std::sleep(Duration::from_millis(5));
        assert!(
            order.lock().unwrap().is_empty(),
            "the small waiter overtook the head"
        );
        sem.release(2); // 3 free: the big one, then nothing is left for small
        a.join().unwrap();
        sem.release(3);
        b.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["big", "small"]);
    });
}

// gort (review): more units than the size with a context that can never
// be done panics instead of blocking forever (Go blocks).
#[test]
fn an_impossible_acquire_without_cancellation_panics() {
    run(|| {
        let sem = Weighted::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sem.acquire(&context::background(), 3)
        }));
        let p = r.expect_err("must panic");
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("semaphore: acquire of 3 units"), "{msg}");
    });
}
