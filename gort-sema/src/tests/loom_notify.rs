//! loom models of NotifyList tickets: a notify wakes only tickets taken
//! before it, whether or not their owner reached `wait` yet.

use crate::notify::NotifyList;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

/// A ticket taken before notify_one is woken, whatever the interleaving of
/// the waiter's `wait` with the notify.
#[test]
fn notify_one_wakes_an_earlier_ticket() {
    loom::model(|| {
        let l = Arc::new(NotifyList::new());
        let t = l.add();
        let l2 = l.clone();
        let w = thread::spawn(move || l2.wait(t));
        l.notify_one();
        w.join().unwrap();
    });
}

/// notify_all wakes the tickets issued before it; a ticket issued after
/// it stays asleep until the next notify.
#[test]
fn notify_all_then_late_ticket() {
    loom::model(|| {
        let l = Arc::new(NotifyList::new());
        let t0 = l.add();
        let l2 = l.clone();
        let early = thread::spawn(move || l2.wait(t0));
        l.notify_all();
        let late_woken = Arc::new(AtomicBool::new(false));
        let t1 = l.add();
        let (l3, lw) = (l.clone(), late_woken.clone());
        let late = thread::spawn(move || {
            l3.wait(t1);
            lw.store(true, Ordering::SeqCst);
        });
        early.join().unwrap();
        assert!(
            !late_woken.load(Ordering::SeqCst),
            "woken by an earlier notify_all"
        );
        l.notify_one();
        late.join().unwrap();
        assert!(late_woken.load(Ordering::SeqCst));
    });
}
