//! gort-std's Mutex and RwLock inside gort-gc objects: cycles through them
//! are collected; a lock held during a collection never makes it wait.

use gort_gc::{gc, Gc, Trace, Weak};
use gort_std::{Mutex, RwLock};

#[derive(Trace)]
struct Node {
    next: Mutex<Option<Gc<Node>>>,
    side: RwLock<Vec<Gc<Node>>>,
}

fn node() -> Gc<Node> {
    Gc::new(Node {
        next: Mutex::new(None),
        side: RwLock::new(Vec::new()),
    })
}

fn collected(w: &Weak<Node>) -> bool {
    for _ in 0..100 {
        gc();
        if w.upgrade().is_none() {
            return true;
        }
    }
    false
}

#[test]
fn cycles_through_gort_locks_are_collected() {
    let a = node();
    let b = node();
    *a.next.lock() = Some(b.clone());
    b.side.write().push(a.clone());
    let w = Gc::downgrade(&a);
    drop((a, b));
    assert!(collected(&w));
}

#[test]
fn collecting_while_a_lock_is_held_does_not_wait() {
    let a = node();
    *a.next.lock() = Some(a.clone()); // a self-cycle
    let w = Gc::downgrade(&a);
    let keep = a.clone();
    drop(a);
    {
        let _held = keep.next.lock();
        // The collector cannot read the field: it treats the object as a
        // root for this cycle instead of waiting for the lock (waiting would
        // deadlock here: this thread holds it and runs the collection).
        gc();
        assert!(w.upgrade().is_some());
    }
    drop(keep);
    assert!(collected(&w));
}
