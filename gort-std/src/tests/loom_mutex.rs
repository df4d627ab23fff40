//! loom models of the mutex state machine, on the model clock of `loom.rs`.
//! In the first two every woken waiter counts as starved, so it switches
//! the mutex to starvation mode and the next unlock hands the lock over
//! directly: they cover the switch, the hand-off and leaving it. The third
//! keeps the clock still until it lets 1 ms pass: normal mode, where a
//! woken waiter loses to a barging locker and goes back to the front of
//! the queue, and the switch to starvation after 1 ms of waiting.

use crate::loom::{model_clock, STARVATION_NS};
use crate::mutex::RawMutex;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// Mutual exclusion: increments under the lock from two threads are never
/// lost (loom's UnsafeCell flags any unsynchronised access).
#[test]
fn two_lockers_exclude_each_other() {
    loom::model(|| {
        model_clock::reset(model_clock::EVERY_WAIT_STARVES);
        let m = Arc::new(RawMutex::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, data) = (m.clone(), data.clone());
                thread::spawn(move || {
                    m.lock();
                    // SAFETY: under the lock.
                    data.with_mut(|p| unsafe { *p += 1 });
                    // SAFETY: this thread locked it above.
                    unsafe { m.unlock() };
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        m.lock();
        // SAFETY: under the lock.
        assert_eq!(data.with(|p| unsafe { *p }), 2);
        // SAFETY: locked above by this thread.
        unsafe { m.unlock() };
        assert!(!m.is_locked());
    });
}

/// Three contenders with a holder that relocks: the waiters become
/// starving and the lock is handed off; everyone gets it exactly once more
/// and the state ends clean (no waiter bits, no starving bit).
#[test]
fn starvation_hand_off() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        model_clock::reset(model_clock::EVERY_WAIT_STARVES);
        let m = Arc::new(RawMutex::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        m.lock();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (m, data) = (m.clone(), data.clone());
                thread::spawn(move || {
                    m.lock();
                    // SAFETY: under the lock.
                    data.with_mut(|p| unsafe { *p += 1 });
                    // SAFETY: this thread locked it above.
                    unsafe { m.unlock() };
                })
            })
            .collect();
        // SAFETY: locked above by this thread.
        unsafe { m.unlock() };
        m.lock(); // competes with the woken waiters (barging or queueing)
                  // SAFETY: under the lock.
        data.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: this thread locked it just above.
        unsafe { m.unlock() };
        for w in waiters {
            w.join().unwrap();
        }
        // SAFETY: all threads joined.
        assert_eq!(data.with(|p| unsafe { *p }), 3);
        assert!(format!("{m:?}").contains("waiters: 0"), "{m:?}");
        assert!(format!("{m:?}").contains("starving: false"), "{m:?}");
    });
}

/// Spins (yielding to the model) until `n` waiters are queued on the
/// mutex's semaphore: their order in the queue is then fixed.
fn wait_queued(m: &RawMutex, n: usize) {
    while m.queued() != n {
        thread::yield_now();
    }
}

/// Go's normal mode, with a barging locker (`main`) and two waiters queued
/// in the order W1, W2; the clock stands still until `main` lets 1 ms pass.
///
/// 1. `main` unlocks: W1 is woken (not handed the lock) and `main` locks
///    again at once, racing it. If W1 loses, it must go back to the *front*
///    of the queue (LIFO requeue), ahead of W2.
/// 2. `main` holds the lock past 1 ms, unlocks (waking the front waiter)
///    and barges again. A woken W1 that loses now has waited over 1 ms: it
///    switches the mutex to starvation mode, and `main`'s unlock hands the
///    lock to it directly; W2 then leaves starvation mode as the last
///    waiter.
///
/// Whichever way each race goes, W1 takes the lock before W2, no hold
/// overlaps another (loom's `UnsafeCell` checks), and the state ends
/// clean. With a FIFO requeue W2 would overtake W1.
#[test]
fn normal_mode_barging_lifo_requeue_then_starvation() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        model_clock::reset(0);
        let m = Arc::new(RawMutex::new());
        // Who held the lock, in order (0 = main), written under the lock.
        let order = Arc::new(UnsafeCell::new(Vec::<u8>::new()));
        // Called with `m` held, which guards `order`.
        let record = |order: &UnsafeCell<Vec<u8>>, who: u8| {
            // SAFETY: the caller holds `m`.
            order.with_mut(|p| unsafe { (*p).push(who) });
        };
        m.lock();
        let spawn_waiter = |who: u8| {
            let (m, order) = (m.clone(), order.clone());
            thread::spawn(move || {
                m.lock();
                // SAFETY: under the lock.
                order.with_mut(|p| unsafe { (*p).push(who) });
                // SAFETY: this thread locked it just above.
                unsafe { m.unlock() };
            })
        };
        let w1 = spawn_waiter(1);
        wait_queued(&m, 1);
        let w2 = spawn_waiter(2);
        wait_queued(&m, 2); // the queue is W1, W2

        // SAFETY: locked above by this thread.
        unsafe { m.unlock() }; // wakes W1; normal mode: no hand-off
        m.lock(); // barges
        record(&order, 0);
        // SAFETY: read under the lock.
        let w1_ran = order.with(|p| unsafe { (*p).contains(&1) });
        if !w1_ran {
            // W1 lost the race: it requeues, and must go to the front.
            wait_queued(&m, 2);
        }
        model_clock::advance(2 * STARVATION_NS); // held past 1 ms
                                                 // SAFETY: this thread locked it above.
        unsafe { m.unlock() }; // wakes the front waiter
        m.lock(); // barges again
        record(&order, 0);
        // SAFETY: read under the lock.
        let w1_ran = order.with(|p| unsafe { (*p).contains(&1) });
        if !w1_ran {
            // W1 lost again, after waiting over 1 ms: it switches the
            // mutex to starvation mode and requeues at the front.
            wait_queued(&m, 2);
            assert!(format!("{m:?}").contains("starving: true"), "{m:?}");
        }
        // SAFETY: this thread locked it above.
        unsafe { m.unlock() }; // hands off if starving
        w1.join().unwrap();
        w2.join().unwrap();
        // SAFETY: all threads joined.
        let order = order.with(|p| unsafe { (*p).clone() });
        let pos = |who| order.iter().position(|&w| w == who).unwrap();
        assert!(pos(1) < pos(2), "W2 overtook W1: {order:?}");
        assert!(!m.is_locked());
        assert!(format!("{m:?}").contains("waiters: 0"), "{m:?}");
        assert!(format!("{m:?}").contains("starving: false"), "{m:?}");
    });
}
