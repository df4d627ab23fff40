//! semacquire/semrelease, NotifyList and Note from goroutines and plain
//! threads.

use gort_sched::{go, gosched, run};
use gort_sema::*;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Waits until a goroutine signalled it is about to block, then a few ms:
/// it does not yield between the signal and its enqueue, so this covers
/// that window even when the machine is loaded.
fn wait_started(started: &AtomicBool) {
    while !started.load(Ordering::SeqCst) {
        gosched(); // lets it run even on this goroutine's own M
    }
    std::thread::sleep(Duration::from_millis(5));
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
                let (s, o) = (s.clone(), order.clone());
                let started = Arc::new(AtomicBool::new(false));
                let st = started.clone();
                let h = go(move || {
                    st.store(true, Ordering::SeqCst);
                    semacquire(&s);
                    o.lock().unwrap().push(i);
                });
                // Let it run and queue before the next one.
                wait_started(&started);
                h
            })
            .collect();
        for _ in 0..5 {
            semrelease(&s, true); // hand-off: no barging
            std::thread::sleep(Duration::from_millis(2));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn lifo_queues_at_the_head() {
    run(|| {
        let s = Arc::new(AtomicU32::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for (i, lifo) in [(0, false), (1, false), (2, true)] {
            let (s, o) = (s.clone(), order.clone());
            let started = Arc::new(AtomicBool::new(false));
            let st = started.clone();
            hs.push(go(move || {
                st.store(true, Ordering::SeqCst);
                semacquire_mutex(&s, lifo);
                o.lock().unwrap().push(i);
            }));
            wait_started(&started);
        }
        for _ in 0..3 {
            semrelease(&s, true);
            std::thread::sleep(Duration::from_millis(2));
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
        std::thread::sleep(Duration::from_millis(10));
        l.notify_one();
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(*woken.lock().unwrap(), vec![0]);
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
        std::thread::sleep(Duration::from_millis(10));
        assert!(!late_waiter.is_finished(), "woken by an earlier notify");
        l.notify_one();
        late_waiter.join().unwrap();
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
    std::thread::sleep(Duration::from_millis(20));
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
    std::thread::sleep(Duration::from_millis(5));
    assert!(!h.is_finished());
    n.wakeup();
    h.join().unwrap();
    n.sleep(); // already woken: returns at once
    n.clear();
    assert!(!n.is_woken());
    // From a thread, with and without a timeout.
    assert!(!n.sleep_timeout(Duration::from_millis(10)));
    let n3 = n.clone();
    let t = std::thread::spawn(move || n3.sleep_timeout(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(5));
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
        let started = Arc::new(AtomicBool::new(false));
        let st = started.clone();
        let waiter = go(move || {
            st.store(true, Ordering::SeqCst);
            semacquire(&s2)
        });
        wait_started(&started);
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
