//! loom models of the RwLock with per-P reader slots. Each model thread
//! stands for a goroutine on the P it sets (`model_p`); after guard readers
//! from both Ps the lock spreads to per-P slots (`SPREAD_AFTER` is 2 under
//! loom), so the models cover holds counted on `home` (raw holds, and the
//! readers a writer let in) and on the slots together. loom's UnsafeCell
//! flags a writer beside a reader.

use crate::loom::model_p;
use crate::rwlock::{RawRwLock, Slot};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Send + Sync + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

/// A guard's read hold (`RwLock::read` without the data): returns the slot
/// to release it on.
fn guard_read(l: &RawRwLock) -> &Slot {
    l.lock_on(l.slot())
}

/// Guard readers from both Ps, one after the other: the lock spreads to
/// per-P slots.
fn spread(l: &RawRwLock) {
    for p in [0, 1] {
        model_p::set(p);
        let s = guard_read(l);
        l.leave(s);
    }
}

/// A thread on P `p` that takes the write hold and adds `add` to `data`.
fn spawn_writer(
    l: &Arc<RawRwLock>,
    data: &Arc<UnsafeCell<u32>>,
    p: usize,
    add: u32,
) -> thread::JoinHandle<()> {
    let (l, data) = (l.clone(), data.clone());
    thread::spawn(move || {
        model_p::set(p);
        l.write_lock();
        // SAFETY: under the write hold.
        data.with_mut(|d| unsafe { *d += add });
        // SAFETY: taken just above.
        unsafe { l.write_unlock() };
    })
}

/// Nobody holds the lock: a writer gets it at once.
fn assert_free(l: &RawRwLock, what: &str) {
    assert!(l.try_write_lock(), "{what}");
    // SAFETY: taken just above.
    unsafe { l.write_unlock() };
}

/// Readers on two Ps (the second spreads the lock) and a writer: the
/// writer never runs beside a reader, and no hold is left behind.
#[test]
fn writer_excludes_readers_on_both_ps() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let readers: Vec<_> = (0..2)
            .map(|p| {
                let (l, data) = (l.clone(), data.clone());
                thread::spawn(move || {
                    model_p::set(p);
                    let s = guard_read(&l);
                    // SAFETY: under a read hold: no writer inside.
                    let v = data.with(|d| unsafe { *d });
                    assert!(v <= 1);
                    l.leave(s);
                })
            })
            .collect();
        model_p::set(0);
        l.write_lock();
        // SAFETY: under the write hold: nobody else inside.
        data.with_mut(|d| unsafe { *d += 1 });
        // SAFETY: taken just above.
        unsafe { l.write_unlock() };
        for r in readers {
            r.join().unwrap();
        }
        assert_free(&l, "a read hold leaked");
    });
}

/// A raw read hold taken on P0 and released by another thread on P1 (a
/// hold handed over), on a lock whose guards already use per-P slots: the
/// writer still waits for it, and the lock ends free.
#[test]
fn raw_hold_released_by_another_thread() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let handed = Arc::new(AtomicBool::new(false));
        // Guard readers on both Ps spread the lock.
        spread(&l);
        l.read_lock();
        // SAFETY: under the read hold.
        data.with(|d| unsafe { *d });
        let releaser = {
            let (l, handed) = (l.clone(), handed.clone());
            thread::spawn(move || {
                model_p::set(1);
                while !handed.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                // SAFETY: the main thread handed its hold over.
                unsafe { l.read_unlock() };
            })
        };
        let writer = spawn_writer(&l, &data, 0, 1);
        handed.store(true, Ordering::Release);
        releaser.join().unwrap();
        writer.join().unwrap();
        assert_free(&l, "the handed hold leaked");
    });
}

/// A guard reader that queued behind a writer gets in when the writer
/// unlocks (its hold counted for it on `home`, where it releases it), and
/// a second writer waits for it.
#[test]
fn queued_reader_holds_against_the_next_writer() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        // Spread the lock first (guard readers from both Ps).
        spread(&l);
        model_p::set(0);
        l.write_lock();
        let reader = {
            let (l, data) = (l.clone(), data.clone());
            thread::spawn(move || {
                model_p::set(1);
                let s = guard_read(&l);
                // SAFETY: under the read hold.
                let v = data.with(|d| unsafe { *d });
                l.leave(s);
                v
            })
        };
        let writer = spawn_writer(&l, &data, 0, 10);
        // SAFETY: under the first write hold.
        data.with_mut(|d| unsafe { *d += 1 });
        // SAFETY: taken above by this thread.
        unsafe { l.write_unlock() };
        let seen = reader.join().unwrap();
        writer.join().unwrap();
        assert!(seen == 1 || seen == 11, "reader saw {seen}");
        assert_free(&l, "a read hold leaked");
    });
}

/// A misused raw `read_unlock` (no hold) panics without disturbing a
/// writer: the writer neither sleeps forever nor enters beside a guard
/// that holds on a per-P slot.
#[test]
fn misused_read_unlock_vs_writer_and_guard() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        // Spread the lock, then hold a guard on P1's slot.
        spread(&l);
        let guard = guard_read(&l);
        let writer = spawn_writer(&l, &data, 0, 1);
        let raw = &*l;
        // SAFETY: the contract is broken on purpose (no raw hold) to test
        // the misuse check; it must not count against the guard's hold.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            raw.read_unlock()
        }));
        assert!(r.is_err(), "read_unlock without a hold did not panic");
        // SAFETY: the guard's read hold is still live: no writer inside.
        data.with(|d| unsafe { *d });
        l.leave(guard);
        writer.join().unwrap();
    });
}

/// try_write never gets in beside a reader, and a failed one leaves no
/// trace (readers still come and go, a writer still gets in after);
/// try_read fails while a writer holds the lock.
#[test]
fn try_locks_against_holders() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        model_p::set(0);
        let s = guard_read(&l);
        let t = {
            let (l, data) = (l.clone(), data.clone());
            thread::spawn(move || {
                model_p::set(1);
                if l.try_write_lock() {
                    // SAFETY: under the write hold.
                    data.with_mut(|d| unsafe { *d += 1 });
                    // SAFETY: taken just above.
                    unsafe { l.write_unlock() };
                }
            })
        };
        // SAFETY: under the read hold `s`.
        data.with(|d| unsafe { *d });
        let r = guard_read(&l);
        l.leave(s);
        // SAFETY: under the read hold `r`.
        data.with(|d| unsafe { *d });
        l.leave(r);
        t.join().unwrap();
        l.write_lock();
        assert!(!l.try_read_lock(), "try_read beside a writer");
        // SAFETY: taken just above.
        unsafe { l.write_unlock() };
        assert!(l.try_read_lock());
        // SAFETY: taken just above.
        unsafe { l.read_unlock() };
    });
}
