//! loom models of the address-keyed wait queue: a release racing an acquire
//! is never lost, and a hand-off gives the count to the waiter.

use crate::loom::WaitReason;
use crate::sema::SemaTable;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

/// An acquirer and a releaser race; the acquirer always gets through and
/// the count is consumed exactly once.
#[test]
fn release_racing_acquire_is_not_lost() {
    loom::model(|| {
        let t = Arc::new(SemaTable::new());
        let s = Arc::new(AtomicU32::new(0));
        let (t2, s2) = (t.clone(), s.clone());
        let rel = thread::spawn(move || {
            t2.release(&s2, false);
        });
        t.acquire(&s, false, WaitReason::SemAcquire);
        rel.join().unwrap();
        assert_eq!(s.load(Ordering::SeqCst), 0);
    });
}

/// Two acquirers, two releases (one a hand-off): both acquirers finish and
/// no count is created or lost.
#[test]
fn two_acquirers_two_releases_with_handoff() {
    loom::model(|| {
        let t = Arc::new(SemaTable::new());
        let s = Arc::new(AtomicU32::new(0));
        let acq: Vec<_> = (0..2)
            .map(|_| {
                let (t, s) = (t.clone(), s.clone());
                thread::spawn(move || t.acquire(&s, false, WaitReason::SemAcquire))
            })
            .collect();
        t.release(&s, true);
        t.release(&s, false);
        for a in acq {
            a.join().unwrap();
        }
        assert_eq!(s.load(Ordering::SeqCst), 0);
    });
}
