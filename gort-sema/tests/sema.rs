//! semacquire/semrelease, NotifyList and Note from goroutines and plain
//! threads.

use gort_sched::{go, gosched, run};
use gort_sema::*;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `cond` until it holds, yielding so that the goroutines it waits for
/// run even on this goroutine's own M. Panics after a generous bound, so a
/// bug fails the test instead of hanging it.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        gosched();
    }
}

#[test]
fn release_before_acquire_is_kept() {
    let s = AtomicU32::new(0);
    semrelease(&s, false);
    semrelease(&s, false);
    semacquire(&s);
    semacquire(&s);
    assert_eq!(s.load(Ordering::SeqCst), 0);
}

#[test]
fn every_release_wakes_exactly_one_acquirer() {
    // 500 goroutines and 4 threads acquire; as many releases come from a mix
    // of goroutines and threads; all finish, and the counter ends at zero.
    let s = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let gs: Vec<_> = (0..500)
        .map(|_| {
            let (s, d) = (s.clone(), done.clone());
            go(move || {
                semacquire(&s);
                d.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (s, d) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                semacquire(&s);
                d.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let s2 = s.clone();
    let releaser = go(move || {
        for i in 0..252 {
            semrelease(&s2, i % 3 == 0);
        }
    });
    for _ in 0..252 {
        semrelease(&s, false);
    }
    releaser.join().unwrap();
    for g in gs {
        g.join().unwrap();
    }
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 504);
    assert_eq!(s.load(Ordering::SeqCst), 0);
}

#[test]
fn waiters_are_woken_in_fifo_order() {
    run(|| {
        let s = Arc::new(AtomicU32::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let (s2, o) = (s.clone(), order.clone());
                let h = go(move || {
                    semacquire(&s2);
                    o.lock().unwrap().push(i);
                });
                // Queued (its place fixed) before the next one starts.
                wait_until(&format!("waiter {i} is queued"), || semwaiters(&s) == i + 1);
                h
            })
            .collect();
        for k in 0..5 {
            semrelease(&s, true); // hand-off: no barging
                                  // The woken one records itself before the next is woken, so
                                  // `order` is the wake-up order whatever Ms they run on.
            wait_until(&format!("wake-up {k} is recorded"), || {
                order.lock().unwrap().len() == k + 1
            });
            assert_eq!(semwaiters(&s), 4 - k, "one release woke one waiter");
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(s.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn lifo_queues_at_the_head() {
    run(|| {
        let s = Arc::new(AtomicU32::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for (i, lifo) in [(0, false), (1, false), (2, true)] {
            let (s2, o) = (s.clone(), order.clone());
            hs.push(go(move || {
                semacquire_mutex(&s2, lifo);
                o.lock().unwrap().push(i);
            }));
            wait_until(&format!("waiter {i} is queued"), || semwaiters(&s) == i + 1);
        }
        for k in 0..3 {
            semrelease(&s, true);
            wait_until(&format!("wake-up {k} is recorded"), || {
                order.lock().unwrap().len() == k + 1
            });
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![2, 0, 1]);
    });
}

#[test]
fn distinct_addresses_do_not_interfere() {
    // Counters that share a root (same address modulo the table) each wake
    // only their own waiters.
    let sems: Arc<Vec<AtomicU32>> = Arc::new((0..600).map(|_| AtomicU32::new(0)).collect());
    let hs: Vec<_> = (0..600)
        .map(|i| {
            let sems = sems.clone();
            go(move || semacquire(&sems[i]))
        })
        .collect();
    for i in (0..600).rev() {
        semrelease(&sems[i], false);
    }
    for h in hs {
        h.join().unwrap();
    }
    assert!(sems.iter().all(|s| s.load(Ordering::SeqCst) == 0));
}

#[test]
fn notify_one_wakes_the_oldest_ticket_and_never_a_later_one() {
    run(|| {
        let l = Arc::new(NotifyList::new());
        let woken = Arc::new(Mutex::new(Vec::new()));
        // Tickets 0..3 taken in order; waiters reach wait() in reverse.
        let tickets: Vec<_> = (0..3).map(|_| l.add()).collect();
        let numbers: Vec<u32> = tickets.iter().map(|t| t.number()).collect();
        assert_eq!(numbers, vec![0, 1, 2]);
        let hs: Vec<_> = tickets
            .into_iter()
            .rev()
            .map(|t| {
                let (l, w) = (l.clone(), woken.clone());
                go(move || {
                    let n = t.number();
                    l.wait(t);
                    w.lock().unwrap().push(n);
                })
            })
            .collect();
        // All three sleep in wait() (queued in reverse ticket order).
        wait_until("the three waiters sleep", || l.waiting() == 3);
        l.notify_one();
        // Exactly one left the list: the oldest ticket; the later two are
        // still queued, so they were not woken (only a notify removes them).
        assert_eq!(l.waiting(), 2, "notify_one woke exactly one waiter");
        wait_until("the woken waiter records itself", || {
            !woken.lock().unwrap().is_empty()
        });
        assert_eq!(*woken.lock().unwrap(), vec![0]);
        assert_eq!(l.waiting(), 2, "a later ticket was woken");
        // A ticket taken after a notify_all is not woken by it.
        l.notify_all();
        let late = l.add();
        for h in hs {
            h.join().unwrap();
        }
        let mut got = woken.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        let l2 = l.clone();
        let late_waiter = go(move || l2.wait(late));
        // It queues: wait() returns at once for a notified ticket, so being
        // in the list proves the earlier notify_all did not cover it.
        wait_until("the late waiter sleeps", || l.waiting() == 1);
        assert!(!late_waiter.is_finished(), "woken by an earlier notify");
        l.notify_one();
        late_waiter.join().unwrap();
        assert_eq!(l.waiting(), 0);
    });
}

#[test]
#[should_panic(expected = "issued by another NotifyList")]
fn a_ticket_of_another_list_is_refused() {
    let (a, b) = (NotifyList::new(), NotifyList::new());
    let t = a.add();
    b.wait(t);
}

#[test]
fn notify_before_wait_is_not_lost() {
    let l = NotifyList::new();
    let t = l.add();
    l.notify_one();
    l.wait(t); // returns at once
    l.notify_one(); // no ticket outstanding: nothing happens
    let t2 = l.add();
    l.notify_all();
    l.wait(t2);
}

#[test]
fn cond_pattern_from_goroutines_and_threads() {
    // The sync.Cond protocol on top: lock, add, unlock, wait.
    let state = Arc::new((Mutex::new(0u32), NotifyList::new()));
    let mut hs = Vec::new();
    for _ in 0..50 {
        let st = state.clone();
        hs.push(go(move || {
            let (m, l) = &*st;
            let g = m.lock().unwrap();
            if *g == 0 {
                let t = l.add();
                drop(g);
                l.wait(t);
            }
        }));
    }
    let st = state.clone();
    let th = std::thread::spawn(move || {
        let (m, l) = &*st;
        let g = m.lock().unwrap();
        if *g == 0 {
            let t = l.add();
            drop(g);
            l.wait(t);
        }
    });
    // All 51 sleep in wait() before the notify, so it must wake each one.
    wait_until("all 51 waiters sleep", || state.1.waiting() == 51);
    {
        let (m, l) = &*state;
        *m.lock().unwrap() = 1;
        l.notify_all();
    }
    for h in hs {
        h.join().unwrap();
    }
    th.join().unwrap();
}

#[test]
fn note_sleep_and_wakeup() {
    let n = Arc::new(Note::new());
    let n2 = n.clone();
    let h = go(move || n2.sleep());
    // The wake-up must find the goroutine parked, not merely started.
    wait_until("the goroutine parks on the note", || n.has_sleeper());
    assert!(!h.is_finished());
    n.wakeup();
    h.join().unwrap();
    n.sleep(); // already woken: returns at once
    n.clear();
    assert!(!n.is_woken());
    // From a thread, with and without a timeout.
    assert!(!n.sleep_timeout(Duration::from_millis(10)));
    let n3 = n.clone();
    let t = std::thread::spawn(move || n3.sleep_timeout(Duration::from_secs(60)));
    wait_until("the thread parks on the note", || n.has_sleeper());
    n.wakeup();
    assert!(t.join().unwrap());
}

#[test]
fn note_double_wakeup_panics() {
    let n = Note::new();
    n.wakeup();
    let e = std::panic::catch_unwind(|| n.wakeup()).unwrap_err();
    let msg = e.downcast_ref::<&str>().copied().unwrap_or("");
    assert!(msg.contains("double wakeup"), "{msg}");
}

#[test]
fn handoff_gives_the_count_to_the_waiter() {
    // With hand-off the count goes to the queued waiter, never back to the
    // counter where the releaser (or a newcomer) could take it.
    run(|| {
        let s = Arc::new(AtomicU32::new(0));
        let s2 = s.clone();
        let waiter = go(move || semacquire(&s2));
        wait_until("the waiter is queued", || semwaiters(&s) == 1);
        semrelease(&s, true);
        assert_eq!(s.load(Ordering::SeqCst), 0, "the count went to the waiter");
        waiter.join().unwrap();
        gosched();
    });
}

#[test]
fn a_list_may_move_between_add_and_wait() {
    let l = NotifyList::new();
    let t = l.add();
    let l = Box::new(l); // moved
    l.notify_one();
    l.wait(t); // notified: returns at once, no false "another list"
}
