//! RwLock's per-P reader slots on the real runtime: a guard's hold may end
//! on another P than it began on (its goroutine's M changed P in a
//! syscall), raw holds may be released by another goroutine, beside guard
//! readers on every P; writers still wait for every hold, nothing leaks,
//! and the misuse check still fires afterwards.

use gort_sched::{go, gosched, run, syscall};
use gort_std::{chan, RwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Raw readers on every P hand their holds to one releaser goroutine,
/// beside guard readers; writers check that no hold is live while they are
/// inside.
#[test]
fn read_holds_released_by_another_goroutine() {
    run(|| {
        let l = Arc::new(RwLock::new(()));
        let writer_inside = Arc::new(AtomicBool::new(false));
        let (tx, rx) = chan::<()>(16);
        let releaser = {
            let (l, writer_inside) = (l.clone(), writer_inside.clone());
            go(move || {
                let mut n = 0;
                while rx.recv().is_ok() {
                    assert!(
                        !writer_inside.load(Ordering::SeqCst),
                        "writer beside a reader"
                    );
                    // SAFETY: a reader handed us its hold with the message.
                    unsafe { l.raw().read_unlock() };
                    n += 1;
                }
                n
            })
        };
        let readers: Vec<_> = (0..6)
            .map(|r| {
                let (l, writer_inside, tx) = (l.clone(), writer_inside.clone(), tx.clone());
                go(move || {
                    for i in 0..2000 {
                        if r % 2 == 0 {
                            l.raw().read_lock();
                            assert!(
                                !writer_inside.load(Ordering::SeqCst),
                                "writer beside a reader"
                            );
                            tx.send(()).unwrap(); // the hold goes with it
                        } else {
                            let _g = l.read();
                            assert!(
                                !writer_inside.load(Ordering::SeqCst),
                                "writer beside a reader"
                            );
                        }
                        if i % 100 == 0 {
                            gosched();
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (l, writer_inside) = (l.clone(), writer_inside.clone());
                go(move || {
                    for _ in 0..200 {
                        let _w = l.write();
                        assert!(!writer_inside.swap(true, Ordering::SeqCst), "two writers");
                        gosched();
                        writer_inside.store(false, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in readers.into_iter().chain(writers) {
            h.join().unwrap();
        }
        drop(tx);
        assert_eq!(releaser.join().unwrap(), 3 * 2000);
        assert!(l.try_write().is_some(), "a read hold leaked");
        assert!(format!("{:?}", l.raw()).contains("readers: 0"), "{l:?}");
        // The misuse check still works after all that.
        let raw = l.raw();
        // SAFETY: the contract is broken on purpose (no hold); nothing
        // else uses the lock now.
        let e = std::panic::catch_unwind(|| unsafe { raw.read_unlock() }).unwrap_err();
        assert_eq!(
            e.downcast_ref::<&str>().copied(),
            Some("sync: RUnlock of unlocked RWMutex")
        );
        assert!(
            l.try_write().is_some(),
            "the failed unlock left the lock unusable"
        );
    });
}

/// Goroutines hold read guards across syscalls (their P may be retaken and
/// another one found after), beside a writer that must wait for each.
#[test]
fn read_guards_held_across_syscalls() {
    run(|| {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let l = l.clone();
                go(move || {
                    for j in 0..30 {
                        if (i + j) % 3 == 0 {
                            let mut w = l.write();
                            w.0 += 1;
                            gosched();
                            w.1 += 1;
                        } else {
                            let r = l.read();
                            // Long enough for sysmon to retake the P.
                            syscall(|| std::thread::sleep(Duration::from_millis(1)));
                            assert_eq!(r.0, r.1, "reader saw a partial write");
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let w = l.try_write().expect("a read hold leaked");
        assert_eq!(w.0, w.1);
        assert_eq!(w.0, 60);
    });
}

/// Go's TryLock never disturbs readers: while a reader holds the lock,
/// goroutines polling `try_write` (and failing) never make a concurrent
/// `try_read` fail.
#[test]
fn failing_try_write_does_not_turn_readers_away() {
    run(|| {
        let l = Arc::new(RwLock::new(0u32));
        let held = l.read();
        let stop = Arc::new(AtomicBool::new(false));
        let pollers: Vec<_> = (0..2)
            .map(|_| {
                let (l, stop) = (l.clone(), stop.clone());
                go(move || {
                    let mut tries = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        assert!(l.try_write().is_none(), "try_write beside a reader");
                        tries += 1;
                        if tries % 64 == 0 {
                            gosched();
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                go(move || {
                    for i in 0..20_000 {
                        assert!(
                            l.try_read().is_some(),
                            "try_read failed with only readers in"
                        );
                        if i % 64 == 0 {
                            gosched();
                        }
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for p in pollers {
            p.join().unwrap();
        }
        drop(held);
        assert!(l.try_write().is_some());
    });
}
