//! Ports of golang.org/x/sync/singleflight's tests (singleflight_test.go),
//! each citing its source.

use gort_kit::singleflight::Group;
use gort_std::{chan, WaitGroup};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn run(f: impl FnOnce() + Send + 'static) {
    gort_sched::run(f)
}

// singleflight_test.go TestDo.
#[test]
fn do_() {
    run(|| {
        let g: Group<&str, &str, String> = Group::new();
        let (v, shared) = g.do_("key", || Ok("bar"));
        assert_eq!(v, Ok("bar"));
        assert!(!shared);
    });
}

// singleflight_test.go TestDoErr.
#[test]
fn do_err() {
    run(|| {
        let g: Group<&str, &str, String> = Group::new();
        let (v, _) = g.do_("key", || Err("some error".to_string()));
        assert_eq!(v, Err("some error".to_string()));
    });
}

// singleflight_test.go TestDoDupSuppress.
#[test]
fn do_dup_suppress() {
    run(|| {
        let g: Arc<Group<&str, String, String>> = Arc::new(Group::new());
        let (c_tx, c_rx) = chan::<String>(1);
        let calls = Arc::new(AtomicI32::new(0));
        let wg1 = Arc::new(WaitGroup::new());
        let wg2 = Arc::new(WaitGroup::new());
        const N: i32 = 10;
        wg1.add(1);
        for _ in 0..N {
            wg1.add(1);
            wg2.add(1);
            let (g, c_tx, c_rx, calls, wg1, wg2) = (
                g.clone(),
                c_tx.clone(),
                c_rx.clone(),
                calls.clone(),
                wg1.clone(),
                wg2.clone(),
            );
            drop(gort_sched::go(move || {
                wg1.done();
                let (v, _) = g.do_("key", || {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        wg1.done(); // the first invocation
                    }
                    let v = c_rx.recv().unwrap();
                    c_tx.send(v.clone()).unwrap(); // pump for any waiting
                    gort_std::sleep(Duration::from_millis(10));
                    Ok(v)
                });
                assert_eq!(v, Ok("bar".to_string()));
                wg2.done();
            }));
        }
        wg1.wait();
        // At least one goroutine is in the function now, and all of them
        // reached the line before do_.
        c_tx.send("bar".to_string()).unwrap();
        wg2.wait();
        let got = calls.load(Ordering::SeqCst);
        assert!(
            got > 0 && got < N,
            "number of calls = {got}; want over 0 and less than {N}"
        );
    });
}

// singleflight_test.go TestForget (its DoChan third call as a do_ in a
// goroutine).
#[test]
fn forget() {
    run(|| {
        let g: Arc<Group<&str, i32, String>> = Arc::new(Group::new());
        let first_started = Arc::new(WaitGroup::new());
        let first_finished = Arc::new(WaitGroup::new());
        first_started.add(1);
        first_finished.add(1);
        let (first_tx, first_rx) = chan::<()>(0);
        {
            let (g, fs, ff) = (g.clone(), first_started.clone(), first_finished.clone());
            drop(gort_sched::go(move || {
                g.do_("key", || {
                    fs.done();
                    let _ = first_rx.recv();
                    ff.done();
                    Ok(1)
                })
            }));
        }
        first_started.wait();
        g.forget(&"key"); // from here no two calls for "key" run at once
        let (second_tx, second_rx) = chan::<()>(0);
        let second = {
            let g = g.clone();
            let (tx, rx) = (second_tx.clone(), second_rx.clone());
            gort_sched::go(move || {
                g.do_("key", || {
                    tx.send(()).unwrap(); // started
                    rx.recv().unwrap();
                    Ok(2)
                })
            })
        };
        second_rx.recv().unwrap();
        let third = {
            let g = g.clone();
            gort_sched::go(move || g.do_("key", || panic!("third must not be started")))
        };
        gort_std::sleep(Duration::from_millis(5)); // let the third join
        drop(first_tx);
        first_finished.wait();
        second_tx.send(()).unwrap();
        assert_eq!(second.join().unwrap().0, Ok(2));
        let (v, shared) = third.join().unwrap();
        assert_eq!(v, Ok(2));
        assert!(shared);
    });
}

// singleflight_test.go TestPanicDo: every caller sees the panic.
#[test]
fn panic_do() {
    run(|| {
        let g: Arc<Group<&str, i32, String>> = Arc::new(Group::new());
        const N: usize = 5;
        let gate = Arc::new(WaitGroup::new());
        gate.add(1);
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let (g, gate) = (g.clone(), gate.clone());
                gort_sched::go(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        g.do_("key", || {
                            gate.wait(); // let the others join
                            panic!("invalid memory address or nil pointer dereference")
                        })
                    }))
                    .map_err(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    })
                })
            })
            .collect();
        gort_std::sleep(Duration::from_millis(10));
        gate.done();
        let mut panics = 0;
        for h in hs {
            if let Err(msg) = h.join().unwrap() {
                assert!(msg.contains("invalid memory address"), "{msg}");
                panics += 1;
            }
        }
        assert_eq!(panics, N, "every caller panics");
        // The key is free again: a new call runs.
        assert_eq!(g.do_("key", || Ok(3)).0, Ok(3));
    });
}

// gort (review): a result whose clone panics releases the waiters and the
// key (it used to block the key for good).
#[test]
fn a_panicking_clone_does_not_block_the_key() {
    #[derive(Debug, PartialEq)]
    struct BadClone(u32);
    impl Clone for BadClone {
        fn clone(&self) -> Self {
            panic!("clone panicked")
        }
    }
    run(|| {
        let g: Arc<Group<u32, BadClone, String>> = Arc::new(Group::new());
        let gate = Arc::new(WaitGroup::new());
        gate.add(1);
        let leader = {
            let (g, gate) = (g.clone(), gate.clone());
            gort_sched::go(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    g.do_(1, || {
                        gate.wait();
                        Ok(BadClone(1))
                    })
                }))
                .is_err()
            })
        };
        gort_std::sleep(Duration::from_millis(5));
        let waiter = {
            let g = g.clone();
            gort_sched::go(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    g.do_(1, || Ok(BadClone(2)))
                }))
                .is_err()
            })
        };
        gort_std::sleep(Duration::from_millis(5));
        gate.done();
        assert!(leader.join().unwrap(), "the leader's copy panicked");
        assert!(
            waiter.join().unwrap(),
            "the waiter is told, not left waiting"
        );
        // The key is free: a new call runs (no one to copy for).
        assert_eq!(g.do_(1, || Ok(BadClone(3))).0, Ok(BadClone(3)));
    });
}

// gort (review): goexit in the shared call: the waiters goexit too, as
// Go's Do does.
#[test]
fn goexit_reaches_the_waiters() {
    run(|| {
        let g: Arc<Group<u32, u32, String>> = Arc::new(Group::new());
        let gate = Arc::new(WaitGroup::new());
        gate.add(1);
        let leader = {
            let (g, gate) = (g.clone(), gate.clone());
            gort_sched::go(move || {
                g.do_(1, || {
                    gate.wait();
                    gort_sched::goexit()
                })
            })
        };
        gort_std::sleep(Duration::from_millis(5));
        let waiter = {
            let g = g.clone();
            gort_sched::go(move || g.do_(1, || Ok(2)))
        };
        gort_std::sleep(Duration::from_millis(5));
        gate.done();
        assert!(matches!(leader.join(), Err(gort_sched::JoinError::Goexit)));
        assert!(matches!(waiter.join(), Err(gort_sched::JoinError::Goexit)));
        assert_eq!(g.do_(1, || Ok(3)).0, Ok(3));
    });
}
