//! loom model of a Pool shard's private slot: a P's puts and gets racing
//! with a collection's sweep (the busy flag and sweep flag handshake, with
//! both asymmetric fences modelled as `fence(SeqCst)`). No value is lost
//! or duplicated, and the sweep always empties the slot (Go's poolCleanup
//! moves private values to the victim cache).

use crate::pool_slot::{PrivateSlot, Sweeps};
use loom::sync::Arc;
use loom::thread;

/// What a sweep finds in the slot.
fn sweep(sweeps: &Sweeps, slot: &PrivateSlot<u32>) -> Option<u32> {
    let s = sweeps.begin();
    slot.take(&s)
}

#[test]
fn cleanup_takes_private_value_exactly_once() {
    loom::model(|| {
        let slot = Arc::new(PrivateSlot::new());
        let sweeps = Arc::new(Sweeps::new());
        let (s, sw) = (slot.clone(), sweeps.clone());
        // The P's goroutine: put 1 (during a sweep the value goes to the
        // shared list instead), then get.
        let owner = thread::spawn(move || {
            let mut shared = Vec::new();
            let mut v = Some(1u32);
            // SAFETY: this thread is the slot's only owner.
            unsafe {
                s.try_with(&sw, |p| {
                    if p.is_none() {
                        *p = v.take();
                    }
                })
            };
            shared.extend(v);
            // SAFETY: as above.
            let got = unsafe { s.try_with(&sw, Option::take) }.flatten();
            (shared, got)
        });
        // The cleanup, concurrently.
        let victim = sweep(&sweeps, &slot);
        let (shared, got) = owner.join().unwrap();
        // After both: whatever is still in the slot was put after the
        // sweep took its look.
        let left = sweep(&sweeps, &slot);
        let mut all: Vec<u32> = shared
            .into_iter()
            .chain(got)
            .chain(victim)
            .chain(left)
            .collect();
        all.sort_unstable();
        assert_eq!(all, [1], "value lost or duplicated");
    });
}

#[test]
fn cleanup_empties_a_full_slot() {
    loom::model(|| {
        let slot = Arc::new(PrivateSlot::new());
        let sweeps = Arc::new(Sweeps::new());
        // SAFETY: no other thread exists yet.
        let before = unsafe { slot.try_with(&sweeps, |p| p.replace(7u32)) };
        assert_eq!(before, Some(None));
        let (s, sw) = (slot.clone(), sweeps.clone());
        // The owner tries a get while the sweep runs.
        // SAFETY: this thread is the slot's only owner from here on.
        let owner = thread::spawn(move || unsafe { s.try_with(&sw, Option::take) }.flatten());
        let victim = sweep(&sweeps, &slot);
        let got = owner.join().unwrap();
        assert!(
            victim.is_some() != got.is_some(),
            "exactly one of them has the value: {victim:?} {got:?}"
        );
        assert_eq!(sweep(&sweeps, &slot), None, "the sweep left a value");
    });
}
