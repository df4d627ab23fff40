//! loom models of the context tree: linking a child races its parent's
//! cancel, cancels race each other and drops, and a `done()` receiver
//! taken around a cancel is always closed by it. The invariant checked at
//! the end of each: every child of a cancelled parent is cancelled, and a
//! parent keeps no link to a child that is cancelled or gone.

use crate::context::{self, Error};
use loom::thread;

#[test]
fn child_creation_races_parent_cancel() {
    loom::model(|| {
        let (parent, cancel) = context::with_cancel(&context::background());
        let p2 = parent.clone();
        let t = thread::spawn(move || {
            let (child, _c) = context::with_cancel(&p2);
            child
        });
        cancel.cancel();
        let child = t.join().unwrap();
        // Linked before the cancel (cancelled with the parent) or created
        // after it (cancelled at once): either way, done.
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(parent.linked_children(), 0);
    });
}

#[test]
fn child_and_parent_cancel_race() {
    loom::model(|| {
        let (parent, pcancel) = context::with_cancel(&context::background());
        let (child, ccancel) = context::with_cancel(&parent);
        let t = thread::spawn(move || ccancel.cancel());
        pcancel.cancel();
        t.join().unwrap();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(parent.err(), Some(Error::Canceled));
        assert_eq!(parent.linked_children(), 0);
    });
}

#[test]
fn child_drop_races_parent_cancel() {
    loom::model(|| {
        let (parent, pcancel) = context::with_cancel(&context::background());
        let (child, ccancel) = context::with_cancel(&parent);
        let t = thread::spawn(move || drop((child, ccancel)));
        pcancel.cancel();
        t.join().unwrap();
        assert_eq!(parent.linked_children(), 0);
    });
}

#[test]
fn done_is_closed_by_a_racing_cancel() {
    loom::model(|| {
        let (parent, cancel) = context::with_cancel(&context::background());
        let (child, _c) = context::with_cancel(&parent);
        let t = thread::spawn(move || {
            // Whether the channel is made before or after the cancel, the
            // receive ends (closed), never blocks forever.
            assert!(child.done().recv().is_err());
            assert_eq!(child.err(), Some(Error::Canceled));
        });
        cancel.cancel();
        t.join().unwrap();
    });
}
