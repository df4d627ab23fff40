//! Public API tests: go/join, Builder, panics, goexit, gosched, park/ready
//! from goroutines and plain threads, thread affinity, gomaxprocs.

mod common;
use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn join_returns_values_from_goroutines_and_threads() {
    let hs: Vec<_> = (0..1000u64).map(|i| go(move || i * 2)).collect();
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 999 * 1000);
    // join from inside a goroutine
    let v = run(|| go(|| "inner").join().unwrap());
    assert_eq!(v, "inner");
}

#[test]
fn run_returns_the_main_goroutines_value_and_resumes_its_panic() {
    assert!(run(|| goid().is_some()));
    let r = std::panic::catch_unwind(|| run(|| -> u8 { panic!("main went wrong") }));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"main went wrong"));
}

#[test]
fn panic_is_reported_to_join() {
    let n = std::hint::black_box(7); // a runtime value: the payload is a String
    let h = go(move || -> u32 { panic!("boom {n}") });
    let e = h.join().unwrap_err();
    assert!(e.is_panic() && !e.is_goexit());
    assert_eq!(e.to_string(), "goroutine panicked: boom 7");
    let p = e.into_panic();
    assert_eq!(
        p.downcast_ref::<String>().map(|s| s.as_str()),
        Some("boom 7")
    );
}

#[test]
fn goexit_runs_every_drop_and_is_told_apart() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let h = go(move || -> u32 {
        let _a = Flag(d.clone());
        fn deep(d: Arc<AtomicUsize>, n: u32) {
            let _b = Flag(d.clone());
            if n == 0 {
                goexit();
            }
            deep(d, n - 1);
        }
        deep(d.clone(), 5);
        unreachable!()
    });
    let e = h.join().unwrap_err();
    assert!(e.is_goexit() && !e.is_panic());
    assert_eq!(e.to_string(), "goroutine called goexit");
    assert_eq!(drops.load(Ordering::SeqCst), 7, "outer guard + 6 frames");
}

#[test]
fn goexit_outside_a_goroutine_panics_clearly() {
    let r = std::panic::catch_unwind(|| goexit());
    let p = r.unwrap_err();
    let msg = p.downcast_ref::<&str>().copied().unwrap_or("");
    assert!(msg.contains("not a goroutine"), "{msg}");
}

#[test]
fn builder_names_and_sizes() {
    let h = Builder::new()
        .name("worker-1")
        .stack_size(256 * 1024)
        .spawn(|| {
            // Use well over the default 64 KiB.
            let buf = [1u8; 160 * 1024];
            std::hint::black_box(&buf)
                .iter()
                .map(|&b| b as u32)
                .sum::<u32>()
        });
    assert!(h.id() > 0);
    assert_eq!(h.join().unwrap(), 160 * 1024);
}

#[test]
fn is_finished_and_detached_goroutines() {
    let s = Arc::new(Sema::new());
    let s2 = s.clone();
    let h = go(move || s2.acquire());
    let t0 = std::time::Instant::now();
    while s.waiters() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the goroutine never parked"
        );
        std::thread::yield_now();
    }
    assert!(!h.is_finished());
    s.release();
    while !h.is_finished() {
        std::thread::yield_now();
    }
    h.join().unwrap();
    // A dropped handle detaches: the goroutine still runs.
    let done = Arc::new(Sema::new());
    let d2 = done.clone();
    drop(go(move || d2.release()));
    done.acquire();
}

#[test]
fn gosched_lets_others_run() {
    // Two goroutines started on one M alternate strictly via gosched: a
    // yield queues the goroutine behind the M's other bound goroutines.
    // A fresh goroutine may be stolen by another P before it starts; such
    // an attempt proves nothing about one M and is retried.
    const ROUNDS: usize = 50;
    for _attempt in 0..200 {
        let same_m = run(|| {
            let log = Arc::new(Mutex::new(Vec::new()));
            let b_thread = Arc::new(Mutex::new(None));
            let (l2, bt) = (log.clone(), b_thread.clone());
            let other = go(move || {
                *bt.lock().unwrap() = Some(std::thread::current().id());
                for i in 0..ROUNDS {
                    l2.lock().unwrap().push(("b", i));
                    gosched();
                }
            });
            // Yield until `other` starts: from then on both are bound.
            while b_thread.lock().unwrap().is_none() {
                gosched();
            }
            for i in 0..ROUNDS {
                log.lock().unwrap().push(("a", i));
                gosched();
            }
            other.join().unwrap();
            if *b_thread.lock().unwrap() != Some(std::thread::current().id()) {
                return false; // started on another M
            }
            // `other` ran first (we were queued behind it when it started),
            // then each yield ran the other goroutine exactly once.
            let want: Vec<_> = (0..ROUNDS).flat_map(|i| [("b", i), ("a", i)]).collect();
            assert_eq!(*log.lock().unwrap(), want, "gosched did not alternate");
            true
        });
        if same_m {
            gosched(); // from a plain thread: a yield, no panic
            return;
        }
    }
    panic!("a fresh goroutine never started on its spawner's M in 200 attempts");
}

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// The crate's one departure from Go: a started goroutine always resumes on
/// its own OS thread, so thread-local addresses it saw stay valid across
/// parks — while other goroutines keep every P busy and wakers run on other
/// threads.
#[test]
fn a_started_goroutine_never_changes_thread() {
    let sems: Arc<Vec<Sema>> = Arc::new((0..32).map(|_| Sema::new()).collect());
    let stop = Arc::new(AtomicUsize::new(0));
    // Busy goroutines on all Ps.
    let busy: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            go(move || {
                while stop.load(Ordering::Relaxed) == 0 {
                    gosched();
                }
            })
        })
        .collect();
    let checkers: Vec<_> = (0..32)
        .map(|i| {
            let sems = sems.clone();
            go(move || {
                let addr = SLOT.with(|s| s as *const Cell<usize> as usize);
                let tid = std::thread::current().id();
                for _ in 0..200 {
                    sems[i].acquire();
                    assert_eq!(SLOT.with(|s| s as *const Cell<usize> as usize), addr);
                    assert_eq!(std::thread::current().id(), tid);
                }
            })
        })
        .collect();
    // Wake them from plain threads and from goroutines.
    let wakers: Vec<_> = (0..2)
        .map(|t| {
            let sems = sems.clone();
            std::thread::spawn(move || {
                for i in (t..32).step_by(2) {
                    for _ in 0..100 {
                        sems[i].release();
                    }
                }
            })
        })
        .collect();
    let gw = {
        let sems = sems.clone();
        go(move || {
            for s in sems.iter() {
                for _ in 0..100 {
                    s.release();
                }
            }
        })
    };
    for w in wakers {
        w.join().unwrap();
    }
    gw.join().unwrap();
    for c in checkers {
        c.join().unwrap();
    }
    stop.store(1, Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
}

#[test]
fn goroutines_readied_from_plain_threads() {
    let n = 2000;
    let sema = Arc::new(Sema::new());
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let s = sema.clone();
            go(move || s.acquire())
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = sema.clone();
            std::thread::spawn(move || {
                for _ in 0..n / 4 {
                    s.release();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn plain_threads_park_on_goroutines() {
    // A plain thread waits on a Sema a goroutine releases.
    let s = Arc::new(Sema::new());
    let s2 = s.clone();
    let t = std::thread::spawn(move || {
        for _ in 0..100 {
            s2.acquire();
        }
    });
    let s3 = s.clone();
    go(move || {
        for _ in 0..100 {
            s3.release();
            gosched();
        }
    })
    .join()
    .unwrap();
    t.join().unwrap();
}

#[test]
fn ready_before_park_is_not_lost_and_stale_waiters_are_noops() {
    run(|| {
        // ready() before park(): park returns at once.
        let w = Waiter::current();
        w.ready();
        park(WaitReason::Unspecified, || true);
        // A waiter whose park already completed does nothing to later parks,
        // and neither does a clone of it.
        let w1 = Waiter::current();
        let w1b = w1.clone();
        w1.ready();
        park(WaitReason::Unspecified, || true);
        w1b.ready(); // stale: its park completed
                     // A waiter superseded by a newer one is stale too.
        let old = Waiter::current();
        let w3 = Waiter::current();
        old.ready(); // no-op
        w3.ready();
        park(WaitReason::Unspecified, || true);
        // commit returning false abandons the park; its waiter goes stale.
        let abandoned = Waiter::current();
        park(WaitReason::Unspecified, || false);
        abandoned.ready();
        // Now a real park must wait for its own waiter.
        let w2 = Waiter::current();
        let readied = Arc::new(AtomicBool::new(false));
        let r2 = readied.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            r2.store(true, Ordering::SeqCst);
            w2.ready();
        });
        park(WaitReason::Unspecified, || true);
        assert!(readied.load(Ordering::SeqCst), "woken by a stale waiter");
        t.join().unwrap();
    });
}

#[test]
fn park_thread_timeout_times_out_and_wakes() {
    let w = Waiter::current();
    assert!(!w.is_goroutine());
    drop(w);
    assert!(!park_thread_timeout(
        WaitReason::Sleep,
        Duration::from_millis(10),
        || true
    ));
    let w = Waiter::current();
    let t = std::thread::spawn(move || w.ready());
    assert!(park_thread_timeout(
        WaitReason::Sleep,
        Duration::from_secs(10),
        || true
    ));
    t.join().unwrap();
}

/// Go-style migratable goroutines (the unsafe opt-in) are readied onto the
/// waker's P and may resume on any thread: with two Ps, some goroutine of
/// the ping-pong pairs must resume on more than one OS thread. A pinned
/// goroutine never would (see `a_started_goroutine_never_changes_thread`).
/// Runs in a child with GOMAXPROCS=2, whatever the machine's CPU count;
/// retries with more rounds rather than assuming a timing.
#[test]
fn migratable_goroutines_ping_pong_across_threads() {
    if !is_child() {
        let (ok, err) = run_child(
            "migratable_goroutines_ping_pong_across_threads",
            &[("GOMAXPROCS", "2")],
        );
        assert!(ok, "{err}");
        return;
    }
    assert_eq!(gomaxprocs(0), 2);
    let pairs = 8;
    let mut rounds = 2000;
    for _attempt in 0..8 {
        let hs: Vec<_> = (0..pairs)
            .flat_map(|_| {
                let (a, b) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
                let (a2, b2) = (a.clone(), b.clone());
                // SAFETY: these goroutines hold nothing thread-affine (only
                // Arcs, integers and a HashSet of thread ids) across their
                // blocking calls.
                let ping = unsafe { Builder::new().migratable(true) }.spawn(move || {
                    let mut threads = std::collections::HashSet::new();
                    for _ in 0..rounds {
                        a.release();
                        b.acquire();
                        threads.insert(std::thread::current().id());
                    }
                    threads.len()
                });
                // SAFETY: as above.
                let pong = unsafe { Builder::new().migratable(true) }.spawn(move || {
                    let mut threads = std::collections::HashSet::new();
                    for _ in 0..rounds {
                        a2.acquire();
                        threads.insert(std::thread::current().id());
                        b2.release();
                        gosched();
                        threads.insert(std::thread::current().id());
                    }
                    threads.len()
                });
                [ping, pong]
            })
            .collect();
        // Every goroutine ran to completion; the most threads any one of
        // them resumed on.
        let most = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
        if most >= 2 {
            return;
        }
        rounds *= 2;
    }
    panic!("no migratable goroutine ever resumed on a second OS thread");
}

/// Goroutines spawned from a plain thread (no P: they go to the global
/// queue) are always run, however the Ms happen to be going idle meanwhile.
/// A spinning M that gave up its P used to re-check only the Ps' queues, not
/// the global one: a spawn that saw it spinning woke nobody, and the
/// goroutine stayed queued with every M asleep (a hang).
#[test]
fn spawns_from_a_plain_thread_are_never_stranded() {
    for i in 0..20_000u32 {
        let h = go(move || i);
        assert_eq!(h.join().unwrap(), i);
    }
}

/// `can_wait_spin` (a channel sender's wait for room) is never true off a
/// goroutine (on a plain thread, inside `syscall`) or with a deadline
/// due.
#[test]
fn can_wait_spin_only_on_a_goroutine_with_nothing_due() {
    let now = gort_os::clock::nanotime();
    assert!(
        !std::thread::spawn(move || can_wait_spin(now))
            .join()
            .unwrap(),
        "a plain thread may spin"
    );
    let (in_syscall, due) = go(|| {
        let in_syscall = syscall(|| can_wait_spin(gort_os::clock::nanotime()));
        // At the end of time every deadline (even "none", i64::MAX) is due.
        (in_syscall, can_wait_spin(i64::MAX))
    })
    .join()
    .unwrap();
    assert!(!in_syscall, "a goroutine inside syscall may spin");
    assert!(!due, "spins with every deadline due");
}
