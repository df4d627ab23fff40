//! Regression tests for issue 11 (no undefined behaviour, crash or silent
//! hang reachable from safe code), gort-std's part.
//!
//! Item 1: releasing a raw lock is `unsafe` now, so `m.raw().unlock()`
//! under a live guard no longer compiles from safe code (the `compile_fail`
//! doc tests on `RawMutex::unlock`, `RawRwLock::read_unlock` and
//! `RawRwLock::write_unlock` check that). Here: the guard API still works,
//! the documented `unsafe` escape hatch works, and Go's misuse checks stay.

use gort_std::{Mutex, RawMutex, RwLock};

#[test]
fn mutex_guards_still_exclude_and_release() {
    let m = Mutex::new(vec![1u32]);
    {
        let mut g = m.lock();
        g.push(2);
        assert!(m.raw().is_locked());
        assert!(m.try_lock().is_none(), "a second guard while one is live");
    }
    assert!(!m.raw().is_locked(), "the guard's drop released the lock");
    m.lock().push(3);
    assert_eq!(*m.lock(), vec![1, 2, 3]);
    // From goroutines too.
    let m = std::sync::Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            gort_sched::go(move || {
                for _ in 0..1000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 8000);
}

#[test]
fn rwlock_guards_still_exclude_and_release() {
    let l = RwLock::new(String::from("a"));
    {
        let r1 = l.read();
        let r2 = l.read();
        assert_eq!(*r1, *r2);
        assert!(l.try_write().is_none(), "a writer beside readers");
    }
    {
        let mut w = l.write();
        w.push('b');
        assert!(l.try_read().is_none(), "a reader beside the writer");
        assert!(l.try_write().is_none(), "two writers");
    }
    assert_eq!(*l.read(), "ab");
    assert!(l.try_write().is_some(), "the guards released the lock");
}

/// The escape hatch for a forgotten guard: releasing the hold is an
/// explicit `unsafe` act whose contract the caller discharges.
#[test]
fn forgotten_guard_released_through_unsafe_raw_unlock() {
    let m = Mutex::new(5);
    std::mem::forget(m.lock());
    assert!(m.raw().is_locked());
    // SAFETY: the forgotten guard's hold is ours and no guard is live.
    unsafe { m.raw().unlock() };
    assert_eq!(*m.lock(), 5);
}

/// Go's misuse check is still there behind the `unsafe`.
#[test]
fn raw_unlock_of_unlocked_mutex_still_panics() {
    let m = RawMutex::new();
    // SAFETY: breaks the contract on purpose (no hold to release) to check
    // the misuse panic; nothing else uses this mutex and it guards no data.
    let e = std::panic::catch_unwind(|| unsafe { m.unlock() }).unwrap_err();
    let msg = e.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(msg, "sync: unlock of unlocked mutex");
    m.lock();
    // SAFETY: locked just above by this thread.
    unsafe { m.unlock() };
    assert!(!m.is_locked());
}
