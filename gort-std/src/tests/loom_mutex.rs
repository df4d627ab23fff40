//! loom models of the mutex state machine. Under loom every waiter counts
//! as starved (see `loom.rs`), so a woken waiter switches the mutex to
//! starvation mode and the next unlock hands the lock over directly: the
//! models cover normal mode, the switch, the hand-off and leaving it.

use crate::mutex::RawMutex;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// Mutual exclusion: increments under the lock from two threads are never
/// lost (loom's UnsafeCell flags any unsynchronised access).
#[test]
fn two_lockers_exclude_each_other() {
    loom::model(|| {
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
