//! LockOSThread (issue 17): a locked goroutine keeps its thread and, alone
//! on it, has it to itself; nested counts; exit while locked retires the
//! thread; the P is handed off while it is parked; `run_on_this_thread`
//! runs on the calling thread; the documented semantics when the thread is
//! shared. Ports of Go's TestLockOSThreadNesting, TestLockOSThreadExit
//! (LockOSThreadAlt) and TestLockOSThreadAvoidsStatePropagation.
//!
//! Tests that need one P (to make a thread shared on purpose, or to see the
//! P hand-off) run in a child process with GOMAXPROCS=1.

mod common;

use common::{is_child, run_child, watchdog, Sema};
use gort_sched::{
    go, gosched, lock_os_thread, os_thread_lock_count, os_thread_siblings, preempt_point,
    run_on_this_thread, unlock_os_thread, Builder,
};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    i64::from(unsafe { libc::gettid() })
}

/// Whether thread `tid` of this process still exists.
fn thread_alive(tid: i64) -> bool {
    Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// Waits (up to 10 s) until thread `tid` is gone; false if it never goes.
fn wait_thread_gone(tid: i64) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while thread_alive(tid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

// The marker a locked goroutine leaves on its thread: a goroutine of this
// binary that ever sees it set ran on a thread while a goroutine was locked
// to it alone. Right across a park: read and written without a borrow held.
thread_local! {
    static MARK: Cell<bool> = const { Cell::new(false) };
}

/// A locked goroutine sees one thread id across many parks while hundreds
/// of goroutines run and park on every P, and no other goroutine ever runs
/// on its thread while it is locked (the thread-local marker).
#[test]
fn a_locked_goroutine_has_its_thread_to_itself() {
    let _w = watchdog(
        "a_locked_goroutine_has_its_thread_to_itself",
        Duration::from_secs(120),
    );
    const ROUNDS: usize = 300;
    const PAIRS: usize = 100;
    const WORKER_ROUNDS: usize = 500;
    let locked_tid = Arc::new(AtomicI64::new(0));
    let intruders = Arc::new(AtomicUsize::new(0));
    let (ping, pong) = (Arc::new(Sema::new()), Arc::new(Sema::new()));

    let (lt, p1, p2) = (locked_tid.clone(), ping.clone(), pong.clone());
    let locked = Builder::new().lock_os_thread().spawn(move || {
        assert_eq!(os_thread_lock_count(), 1);
        assert_eq!(os_thread_siblings(), 0);
        let me = tid();
        MARK.with(|m| m.set(true));
        lt.store(me, Ordering::SeqCst);
        let mut moved = 0;
        for _ in 0..ROUNDS {
            p1.acquire(); // a park
            if tid() != me {
                moved += 1;
            }
            p2.release();
        }
        MARK.with(|m| m.set(false));
        moved
    });
    while locked_tid.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }

    // Pairs of goroutines ping-ponging on every P meanwhile, each checking
    // at every resume that it is not on the locked thread. (A bounded
    // number of rounds: pairs that ping-pong through `runnext` for ever
    // would hold the driver below to one step per 10 ms time slice.)
    let mut workers = Vec::new();
    for _ in 0..PAIRS {
        let (a, b) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
        for side in 0..2 {
            let (mine, theirs) = if side == 0 {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            let (lt, bad) = (locked_tid.clone(), intruders.clone());
            workers.push(go(move || {
                let check = || {
                    if MARK.with(|m| m.get()) || tid() == lt.load(Ordering::SeqCst) {
                        bad.fetch_add(1, Ordering::SeqCst);
                    }
                };
                check();
                if side == 0 {
                    theirs.release();
                }
                for _ in 0..WORKER_ROUNDS {
                    mine.acquire();
                    check();
                    theirs.release();
                }
            }));
        }
    }
    let driver = go(move || {
        for _ in 0..ROUNDS {
            ping.release();
            pong.acquire();
        }
    });
    driver.join().unwrap();
    assert_eq!(
        locked.join().unwrap(),
        0,
        "the locked goroutine changed thread"
    );
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        intruders.load(Ordering::SeqCst),
        0,
        "goroutines ran on a thread locked by a goroutine alone on it"
    );
}

/// Go's TestLockOSThreadNesting: counts nest; unlock without lock is a
/// no-op; a plain thread's calls do nothing.
#[test]
fn lock_counts_nest() {
    go(|| {
        assert_eq!(os_thread_lock_count(), 0);
        unlock_os_thread(); // without a lock: nothing
        assert_eq!(os_thread_lock_count(), 0);
        lock_os_thread();
        lock_os_thread();
        assert_eq!(os_thread_lock_count(), 2);
        unlock_os_thread();
        assert_eq!(os_thread_lock_count(), 1);
        let me = tid();
        for _ in 0..10 {
            gosched();
            assert_eq!(tid(), me);
        }
        unlock_os_thread();
        assert_eq!(os_thread_lock_count(), 0);
        unlock_os_thread();
        assert_eq!(os_thread_lock_count(), 0);
    })
    .join()
    .unwrap();
    // The Builder's lock counts as one.
    Builder::new()
        .lock_os_thread()
        .spawn(|| {
            assert_eq!(os_thread_lock_count(), 1);
            lock_os_thread();
            assert_eq!(os_thread_lock_count(), 2);
            unlock_os_thread();
            unlock_os_thread();
            assert_eq!(os_thread_lock_count(), 0);
        })
        .join()
        .unwrap();
    // A plain thread is its own already.
    lock_os_thread();
    assert_eq!(os_thread_lock_count(), 0);
    unlock_os_thread();
    assert_eq!(os_thread_siblings(), 0);
}

/// Go's TestLockOSThreadExit (LockOSThreadAlt): a goroutine that ends while
/// locked takes its thread with it, whether its lock came from the Builder
/// or from `lock_os_thread`, and however it ended (return, panic, goexit).
#[test]
fn exit_while_locked_retires_the_thread() {
    let _w = watchdog(
        "exit_while_locked_retires_the_thread",
        Duration::from_secs(60),
    );
    let ends: [fn(); 3] = [
        || (),
        || panic!("locked and panicking"),
        || gort_sched::goexit(),
    ];
    for end in ends {
        let t = Arc::new(AtomicI64::new(0));
        let t2 = t.clone();
        let r = Builder::new()
            .lock_os_thread()
            .spawn(move || {
                t2.store(tid(), Ordering::SeqCst);
                gosched();
                end();
            })
            .join();
        let t = t.load(Ordering::SeqCst);
        assert!(t != 0);
        let _ = r;
        assert!(
            wait_thread_gone(t),
            "thread {t} outlived its locked goroutine"
        );
    }
    // Unlocked, then locked again, from inside: still retired.
    let t = Builder::new()
        .lock_os_thread()
        .spawn(|| {
            unlock_os_thread();
            lock_os_thread();
            tid()
        })
        .join()
        .unwrap();
    assert!(
        wait_thread_gone(t),
        "thread {t} outlived its locked goroutine"
    );
}

/// `lock_os_thread_alone` (unsafe) gives the full guarantee on a shared
/// thread by moving the caller to a thread of its own: its siblings stay
/// on the old thread and no goroutine ever runs on the new one; it exits
/// with the goroutine.
#[test]
fn lock_os_thread_alone_moves_the_caller_off_a_shared_thread() {
    in_child("lock_os_thread_alone_moves_the_caller_off_a_shared_thread");
    if !is_child() {
        return;
    }
    let _w = watchdog("lock_os_thread_alone", Duration::from_secs(30));
    let (to_sib, from_sib) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
    let (ts, fs) = (to_sib.clone(), from_sib.clone());
    let main = Builder::new().lock_os_thread().spawn(move || {
        unlock_os_thread();
        let old = tid();
        let (ts2, fs2) = (ts.clone(), fs.clone());
        let sib = go(move || {
            let first = tid();
            fs2.release();
            ts2.acquire();
            (first, tid())
        });
        fs.acquire();
        assert_eq!(os_thread_siblings(), 1, "the sibling did not start here");
        // SAFETY: nothing thread-affine is held across the call.
        unsafe { gort_sched::lock_os_thread_alone() };
        let new = tid();
        assert_ne!(new, old, "the caller did not move");
        assert_eq!(os_thread_siblings(), 0);
        assert_eq!(os_thread_lock_count(), 1);
        MARK.with(|m| m.set(true));
        // Its thread is its own: parks come back to it, fresh goroutines
        // run elsewhere, the sibling stays on the old thread.
        for _ in 0..20 {
            assert_ne!(go(tid).join().unwrap(), new);
            assert_eq!(tid(), new);
        }
        ts.release();
        let (a, b) = sib.join().unwrap();
        assert_eq!((a, b), (old, old), "the sibling moved");
        MARK.with(|m| m.set(false));
        (old, new)
    });
    let (old, new) = main.join().unwrap();
    assert!(
        wait_thread_gone(new),
        "the new thread outlived its locked goroutine"
    );
    // The old thread (unlocked, not exiting) stays.
    assert!(thread_alive(old));
}

/// Already alone, `lock_os_thread_alone` just locks (no move).
#[test]
fn lock_os_thread_alone_when_alone_does_not_move() {
    let (a, b, n) = Builder::new()
        .lock_os_thread()
        .spawn(|| {
            let a = tid();
            // SAFETY: nothing thread-affine is held across the call.
            unsafe { gort_sched::lock_os_thread_alone() };
            (a, tid(), os_thread_lock_count())
        })
        .join()
        .unwrap();
    assert_eq!((a, n), (b, 2));
}

/// Ms of exited locked threads are reused (a program that spawns locked
/// goroutines in a loop must not grow an M record per spawn): one after
/// the other, each on a new thread, they all get the same M (its thread
/// name, `gort-m<id>`, says which).
#[test]
fn exited_locked_threads_ms_are_reused() {
    in_child_procs("exited_locked_threads_ms_are_reused", "2");
    if !is_child() {
        return;
    }
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let (t, name) = Builder::new()
            .lock_os_thread()
            .spawn(|| {
                let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                (tid(), name.trim().to_string())
            })
            .join()
            .unwrap();
        assert!(wait_thread_gone(t));
        names.insert(name);
    }
    assert_eq!(names.len(), 1, "Ms were not reused: {names:?}");
}

/// A goroutine that unlocks before it ends leaves its thread to the
/// scheduler: the thread lives on (Go reuses it too).
#[test]
fn unlocked_before_exit_keeps_the_thread() {
    let t = Builder::new()
        .lock_os_thread()
        .spawn(|| {
            unlock_os_thread();
            tid()
        })
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(thread_alive(t), "an unlocked goroutine's thread exited");
}

/// Go's TestLockOSThreadAvoidsStatePropagation: a locked goroutine that
/// unshares its thread's filesystem state and changes directory, then ends
/// locked, leaves nothing behind: no goroutine sees its working directory.
#[test]
fn thread_state_of_a_locked_goroutine_dies_with_it() {
    let cwd = std::env::current_dir().unwrap();
    let t = Builder::new()
        .lock_os_thread()
        .spawn(|| {
            // SAFETY: unshare(CLONE_FS) affects the calling thread only.
            let rc = unsafe { libc::unshare(libc::CLONE_FS) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            std::env::set_current_dir("/").unwrap();
            assert_eq!(std::env::current_dir().unwrap(), Path::new("/"));
            tid()
        })
        .join()
        .unwrap();
    assert!(wait_thread_gone(t));
    // And `blocking` from a locked goroutine runs on its thread (its state
    // is what it relies on), not on a pool thread.
    let (inner, outer) = Builder::new()
        .lock_os_thread()
        .spawn(|| (gort_sched::blocking(tid), tid()))
        .join()
        .unwrap();
    assert_eq!(
        inner, outer,
        "a locked goroutine's blocking call left its thread"
    );
    let seen: Vec<_> = (0..64)
        .map(|_| go(|| std::env::current_dir().unwrap()))
        .collect();
    for h in seen {
        assert_eq!(h.join().unwrap(), cwd);
    }
}

/// The main-goroutine variant runs on the calling thread, alone: what it
/// spawns runs elsewhere; its value and its panic come back to the caller.
#[test]
fn run_on_this_thread_runs_on_the_caller() {
    let me = tid();
    let (inside, spawned) = run_on_this_thread(|| {
        assert_eq!(os_thread_siblings(), 0);
        let spawned: Vec<i64> = (0..16)
            .map(|_| go(tid))
            .map(|h| h.join().unwrap())
            .collect();
        gosched();
        (tid(), spawned)
    });
    assert_eq!(inside, me);
    assert!(
        spawned.iter().all(|&t| t != me),
        "a goroutine started on the caller's thread"
    );
    // Twice on one thread: the thread is a plain thread again in between.
    assert_eq!(run_on_this_thread(tid), me);
    let p = std::panic::catch_unwind(|| run_on_this_thread(|| panic!("main panicked")));
    assert!(p.is_err());
    assert_eq!(run_on_this_thread(|| 7), 7, "usable again after a panic");
}

#[test]
fn run_on_this_thread_from_a_goroutine_panics() {
    let r = go(|| run_on_this_thread(|| ())).join();
    let msg = r.unwrap_err().into_panic();
    let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("called from a goroutine"), "{msg}");
}

// ---------------------------------------------------------------------------
// One P (child processes).

fn in_child(test: &str) {
    in_child_procs(test, "1");
}

/// Runs `test` in a child process with GOMAXPROCS=`procs` (from the
/// parent); in the child, returns at once.
fn in_child_procs(test: &str, procs: &str) {
    if is_child() {
        return;
    }
    let (ok, err) = run_child(test, &[("GOMAXPROCS", procs)]);
    assert!(ok, "child failed:\n{err}");
}

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A goroutine on another M, parked on `b` (started when this returns, its
/// M idle again).
fn other_m_goroutine(b: Arc<Sema>) -> gort_sched::JoinHandle<()> {
    let started = Arc::new(Sema::new());
    let s2 = started.clone();
    let h = go(move || {
        s2.release();
        b.acquire();
    });
    started.acquire();
    std::thread::sleep(Duration::from_millis(5));
    h
}

/// More than a P quantum (64) of schedules on the caller's P, then readies
/// the goroutine parked on `b` (with one P, its M queues for ours), then
/// returns the caller's thread id.
fn quantum_then_exit(b: Arc<Sema>) -> i64 {
    for _ in 0..100 {
        gosched();
    }
    b.release();
    busy(Duration::from_millis(5)); // the other M reaches mwaitp
    tid()
}

// Regressions from the hostile review of the first version (each hung).

/// An M whose locked goroutine ended after a P quantum, while another M
/// waited for the P, handed the P over and went to sleep for good (its
/// exit check came after the hand-off): the thread never exited.
#[test]
fn exit_after_a_p_quantum_still_retires_the_thread() {
    in_child("exit_after_a_p_quantum_still_retires_the_thread");
    if !is_child() {
        return;
    }
    let _w = watchdog("exit_after_a_p_quantum", Duration::from_secs(30));
    let b = Arc::new(Sema::new());
    let other = other_m_goroutine(b.clone());
    let b2 = b.clone();
    let t = Builder::new()
        .lock_os_thread()
        .spawn(move || quantum_then_exit(b2))
        .join()
        .unwrap();
    other.join().unwrap();
    assert!(wait_thread_gone(t), "locked thread {t} never exited");
}

/// The same for `run_on_this_thread`: it never returned.
#[test]
fn run_on_this_thread_returns_after_a_p_quantum() {
    in_child("run_on_this_thread_returns_after_a_p_quantum");
    if !is_child() {
        return;
    }
    let _w = watchdog("run_on_this_thread_after_quantum", Duration::from_secs(30));
    let b = Arc::new(Sema::new());
    let other = other_m_goroutine(b.clone());
    let b2 = b.clone();
    run_on_this_thread(move || quantum_then_exit(b2));
    other.join().unwrap();
}

/// And after GOMAXPROCS shrank below the P it held (`retire_p`).
#[test]
fn run_on_this_thread_returns_after_gomaxprocs_shrinks() {
    in_child_procs("run_on_this_thread_returns_after_gomaxprocs_shrinks", "2");
    if !is_child() {
        return;
    }
    let _w = watchdog("run_on_this_thread_after_shrink", Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    // Holds P0 (the idle list gives P0 first), so the main goroutine gets P1.
    let spinner = go(move || {
        while !s2.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let s3 = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        s3.store(true, Ordering::SeqCst);
    });
    run_on_this_thread(|| {
        gort_sched::gomaxprocs(1);
    });
    spinner.join().unwrap();
}

/// With one P, a locked goroutine that yields in a loop (`gosched`) must
/// let fresh goroutines run (Go: a locked M's Gosched hands its P off).
#[test]
fn a_locked_gosched_loop_lets_fresh_goroutines_run() {
    in_child("a_locked_gosched_loop_lets_fresh_goroutines_run");
    if !is_child() {
        return;
    }
    let _w = watchdog("a_locked_gosched_loop", Duration::from_secs(30));
    Builder::new()
        .lock_os_thread()
        .spawn(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let f2 = flag.clone();
            go(move || f2.store(true, Ordering::SeqCst));
            while !flag.load(Ordering::SeqCst) {
                gosched();
            }
        })
        .join()
        .unwrap();
}

/// Two locked goroutines yielding in loops with one P: a P handed over on
/// a yield must not bounce between their Ms for ever (the yield flag
/// survived the hand-off; found by the second review).
#[test]
fn two_locked_gosched_loops_share_one_p() {
    in_child("two_locked_gosched_loops_share_one_p");
    if !is_child() {
        return;
    }
    let _w = watchdog("two_locked_gosched_loops", Duration::from_secs(30));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            Builder::new().lock_os_thread().spawn(|| {
                for _ in 0..2_000 {
                    gosched();
                }
            })
        })
        .collect();
    // Fresh goroutines keep running meanwhile too.
    let n: usize = (0..50).map(|i| go(move || i).join().unwrap()).sum();
    assert_eq!(n, 49 * 50 / 2);
    for h in hs {
        h.join().unwrap();
    }
}

/// On a shared locked thread, two goroutines ping-ponging through
/// `runnext` must not starve a third goroutine of the same thread readied
/// from elsewhere (time-slice inheritance, as on any M).
#[test]
fn a_locked_pingpong_does_not_starve_a_sibling() {
    in_child("a_locked_pingpong_does_not_starve_a_sibling");
    if !is_child() {
        return;
    }
    let _w = watchdog("a_locked_pingpong_starves", Duration::from_secs(30));
    let c = Arc::new(Sema::new());
    let c_plain = c.clone();
    let main = Builder::new().lock_os_thread().spawn(move || {
        unlock_os_thread();
        let flag = Arc::new(AtomicBool::new(false));
        let (a, b) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
        let started = Arc::new(Sema::new());
        let (f3, c3, s3) = (flag.clone(), c.clone(), started.clone());
        let g3 = go(move || {
            s3.release();
            c3.acquire();
            f3.store(true, Ordering::SeqCst);
        });
        let (f2, a2, b2, s2) = (flag.clone(), a.clone(), b.clone(), started.clone());
        let g2 = go(move || {
            s2.release();
            loop {
                a2.acquire();
                b2.release();
                if f2.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
        started.acquire();
        started.acquire();
        assert_eq!(os_thread_siblings(), 2, "the siblings did not start here");
        lock_os_thread();
        loop {
            a.release();
            b.acquire();
            if flag.load(Ordering::SeqCst) {
                a.release();
                break;
            }
        }
        g3.join().unwrap();
        g2.join().unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    c_plain.release(); // readies g3 into the locked M's inbox
    main.join().unwrap();
}

/// A locked goroutine asked to yield (it ran 10 ms without a preemption
/// point) that then ends: its M leaves, and the request must not stay
/// pending for good (it kept every preemption point on its slow path).
#[test]
fn an_exiting_locked_m_leaves_no_preemption_request() {
    in_child_procs("an_exiting_locked_m_leaves_no_preemption_request", "2");
    if !is_child() {
        return;
    }
    Builder::new()
        .lock_os_thread()
        .spawn(|| busy(Duration::from_millis(40)))
        .join()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while gort_sched::preempt_requests_pending() != 0 {
        assert!(Instant::now() < end, "a preemption request stayed pending");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// With GOMAXPROCS=1, a locked goroutine's park hands its P to another M:
/// fresh goroutines keep running while it waits; and one that runs without
/// parking gives the P up when sysmon asks it to yield.
#[test]
fn a_parked_locked_goroutine_hands_its_p_off() {
    in_child("a_parked_locked_goroutine_hands_its_p_off");
    if !is_child() {
        return;
    }
    let _w = watchdog(
        "a_parked_locked_goroutine_hands_its_p_off",
        Duration::from_secs(60),
    );
    assert_eq!(gort_sched::gomaxprocs(0), 1);
    let wake = Arc::new(Sema::new());
    let w2 = wake.clone();
    let locked = Builder::new().lock_os_thread().spawn(move || {
        let me = tid();
        w2.acquire();
        tid() == me
    });
    // The locked goroutine is parked (or about to): everything else runs.
    let others: Vec<_> = (0..100)
        .map(|i| {
            go(move || {
                gosched();
                i
            })
        })
        .collect();
    let sum: usize = others.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 99 * 100 / 2);
    wake.release();
    assert!(locked.join().unwrap());

    // A locked goroutine that never parks: sysmon's yield request makes it
    // hand the only P to a goroutine spawned from a plain thread.
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    let spinner = Builder::new().lock_os_thread().spawn(move || {
        while !f2.load(Ordering::SeqCst) {
            preempt_point();
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let f3 = flag.clone();
    go(move || f3.store(true, Ordering::SeqCst)).join().unwrap();
    spinner.join().unwrap();
}

/// The shared case (documented on `lock_os_thread`): a goroutine that locks
/// a thread other goroutines started on earlier does not strand them --
/// they keep running there while it is parked -- but no goroutine starts
/// there any more; if it ends while locked, the thread exits once they have
/// ended too.
#[test]
fn locking_a_shared_thread_strands_nobody() {
    in_child("locking_a_shared_thread_strands_nobody");
    if !is_child() {
        return;
    }
    let _w = watchdog(
        "locking_a_shared_thread_strands_nobody",
        Duration::from_secs(60),
    );
    assert_eq!(gort_sched::gomaxprocs(0), 1);
    let (to_sib, from_sib) = (Arc::new(Sema::new()), Arc::new(Sema::new()));
    let (ts, fs) = (to_sib.clone(), from_sib.clone());
    // An ordinary goroutine (an unlocked thread of its own, so that no
    // goroutine of other tests or of the runtime shares it).
    let main = Builder::new().lock_os_thread().spawn(move || {
        unlock_os_thread();
        let me = tid();
        // With one P, the sibling starts on this thread once we park.
        let (ts2, fs2) = (ts.clone(), fs.clone());
        let sib = go(move || {
            let (ts, fs) = (ts2, fs2);
            let mut seen = vec![tid()];
            fs.release();
            ts.acquire();
            seen.push(tid());
            fs.release();
            ts.acquire();
            seen
        });
        fs.acquire();
        assert_eq!(os_thread_siblings(), 1, "the sibling did not start here");
        lock_os_thread();
        // A goroutine spawned now starts elsewhere.
        let fresh = go(tid).join().unwrap();
        assert_ne!(fresh, me, "a goroutine started on a locked thread");
        // The sibling still runs here while we are parked.
        ts.release();
        fs.acquire();
        (me, sib)
    });
    let (me, sib) = main.join().unwrap();
    // Ended locked, with its sibling still parked: the thread stays for it.
    std::thread::sleep(Duration::from_millis(20));
    assert!(thread_alive(me), "the thread exited under its sibling");
    to_sib.release();
    let seen = sib.join().unwrap();
    assert_eq!(seen, [me, me], "the sibling left its thread");
    assert!(
        wait_thread_gone(me),
        "the thread outlived its last goroutine"
    );
}
