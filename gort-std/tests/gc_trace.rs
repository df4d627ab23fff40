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

/// A held lock makes its object a root for the collection: an object
/// reachable only through its own locked mutex (a self-cycle, no handle
/// outside the heap) survives a collection run while the lock is held —
/// without the collector waiting for the lock (this thread holds it and
/// runs the collection: waiting would deadlock) — and is collected once
/// the lock is released. (A collector that read through the held lock
/// would find the cycle unreferenced and free it under the holder.)
#[test]
fn collecting_while_a_lock_is_held_does_not_wait() {
    let a = node();
    *a.next.lock() = Some(a.clone()); // a self-cycle
    let w = Gc::downgrade(&a);
    // Held without a guard, so no handle outside the heap remains: only
    // the cycle through the locked mutex keeps `a`.
    a.next.raw().lock();
    drop(a);
    for _ in 0..3 {
        gc();
    }
    let a = w
        .upgrade()
        .expect("collected while its lock was held: the collector read through it");
    // SAFETY: this thread took the hold with `raw().lock()` above; no guard
    // relies on it.
    unsafe { a.next.raw().unlock() };
    drop(a);
    assert!(collected(&w));
}
