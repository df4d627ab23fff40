//! loom model of the park/ready handshake: a ready racing a park is never
//! lost, the parked side is resumed exactly once, and a stale waiter is a
//! no-op.

use crate::park_state::{Notify, ParkState};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// The owner runs the goroutine side (commit, switch out, try_park); the
/// waker notifies. Exactly one of them resumes the owner: the owner itself
/// (try_park failed or consume_notified) or the waker (Notify::Resume).
#[test]
fn ready_racing_park_resumes_exactly_once() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let resumed = Arc::new(AtomicUsize::new(0));
        let epoch = st.epoch();
        let (st2, r2) = (st.clone(), resumed.clone());
        let waker = thread::spawn(move || {
            if st2.notify(epoch) == Notify::Resume {
                r2.fetch_add(1, Ordering::SeqCst);
            }
        });
        // park_g: commit done; fast check, then (after the switch) try_park.
        if st.consume_notified() || !st.try_park() {
            resumed.fetch_add(1, Ordering::SeqCst);
        }
        waker.join().unwrap();
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
        // The park completed either way: the epoch moved on.
        assert!(st.woken(epoch));
    });
}

/// Two wakers with the same waiter epoch (a stale copy): one wake-up only.
#[test]
fn two_wakers_one_resume() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let resumed = Arc::new(AtomicUsize::new(0));
        let epoch = st.epoch();
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let (st2, r2) = (st.clone(), resumed.clone());
                thread::spawn(move || {
                    if st2.notify(epoch) == Notify::Resume {
                        r2.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        if !st.try_park() {
            resumed.fetch_add(1, Ordering::SeqCst);
        }
        for w in ws {
            w.join().unwrap();
        }
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
    });
}

/// A timed-out park withdrawing itself races a waker: exactly one wins.
#[test]
fn cancel_racing_notify() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let epoch = st.epoch();
        assert!(st.try_park());
        let st2 = st.clone();
        let waker = thread::spawn(move || st2.notify(epoch) == Notify::Resume);
        let cancelled = st.cancel(epoch);
        let woke = waker.join().unwrap();
        assert!(cancelled != woke, "exactly one of cancel and notify wins");
        // Either way the next park starts fresh in a new epoch.
        assert!(st.woken(epoch));
    });
}

/// A stale waiter (made before the owner's newest one) racing the owner's
/// new epoch and park: it never resumes the park; the current waiter does,
/// exactly once. (Issue 11.2: a late `ready` of an old waiter used to wake
/// the runtime's next internal park.)
#[test]
fn stale_waiter_racing_a_new_epoch_never_wakes() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let resumed_by = Arc::new(AtomicUsize::new(0));
        let stale = st.new_epoch();
        let (st2, r2) = (st.clone(), resumed_by.clone());
        let late = thread::spawn(move || {
            if st2.notify(stale) == Notify::Resume {
                r2.fetch_add(100, Ordering::SeqCst);
            }
        });
        let current = st.new_epoch();
        assert_ne!(stale, current);
        let (st3, r3) = (st.clone(), resumed_by.clone());
        let waker = thread::spawn(move || {
            if st3.notify(current) == Notify::Resume {
                r3.fetch_add(1, Ordering::SeqCst);
            }
        });
        if st.consume_notified() || !st.try_park() {
            resumed_by.fetch_add(1, Ordering::SeqCst);
        } else {
            // Parked: only a waker resumes us; wait for them to finish.
        }
        late.join().unwrap();
        waker.join().unwrap();
        assert_eq!(resumed_by.load(Ordering::SeqCst), 1);
        assert!(st.woken(current));
    });
}

/// An inspector pins the park while a waker wakes it (goroutine dumps):
/// the owner is resumed exactly once — by the waker, by the inspector at
/// unpin, or by itself if the wake came before the park — and never while
/// pinned.
#[test]
fn pin_racing_a_wake_resumes_exactly_once() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let resumed = Arc::new(AtomicUsize::new(0));
        let pinned = Arc::new(AtomicUsize::new(0));
        let epoch = st.epoch();
        let (st2, r2, p2) = (st.clone(), resumed.clone(), pinned.clone());
        let waker = thread::spawn(move || {
            if st2.notify(epoch) == Notify::Resume {
                assert_eq!(p2.load(Ordering::SeqCst), 0, "resumed while pinned");
                r2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (st3, r3, p3) = (st.clone(), resumed.clone(), pinned.clone());
        let inspector = thread::spawn(move || {
            if st3.pin() {
                p3.store(1, Ordering::SeqCst);
                // ... the stack is read here ...
                p3.store(0, Ordering::SeqCst);
                if st3.unpin() == Notify::Resume {
                    r3.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        if !st.try_park() {
            resumed.fetch_add(1, Ordering::SeqCst);
        }
        waker.join().unwrap();
        inspector.join().unwrap();
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
        assert!(st.woken(epoch));
    });
}

/// Pinning a park nobody wakes leaves it parked: a later wake resumes it.
#[test]
fn unpin_without_a_wake_leaves_it_parked() {
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        let epoch = st.epoch();
        assert!(st.try_park());
        let st2 = st.clone();
        let inspector = thread::spawn(move || {
            if st2.pin() {
                assert_eq!(st2.unpin(), Notify::Done);
            }
        });
        inspector.join().unwrap();
        assert!(st.is_parked());
        assert_eq!(st.notify(epoch), Notify::Resume);
    });
}
