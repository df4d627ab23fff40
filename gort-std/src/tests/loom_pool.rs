//! loom model of a Pool shard's private slot: a P's put and get racing
//! with a collection's cleanup. No value is lost or duplicated, and the
//! cleanup always empties the slot (Go's poolCleanup moves private values
//! to the victim cache).

use crate::pool_slot::PrivateSlot;
use loom::sync::Arc;
use loom::thread;

#[test]
fn cleanup_takes_private_value_exactly_once() {
    loom::model(|| {
        let slot = Arc::new(PrivateSlot::new());
        let s = slot.clone();
        // The P's goroutine: put 1 (it may find the slot held by the
        // cleaner: then the value goes to the shared list), then get.
        let owner = thread::spawn(move || {
            let mut shared = Vec::new();
            let mut v = Some(1u32);
            s.try_with(|p| {
                if p.is_none() {
                    *p = v.take();
                }
            });
            shared.extend(v);
            let got = s.try_with(Option::take).flatten();
            (shared, got)
        });
        // The cleanup, concurrently.
        let victim = slot.take_wait();
        let (shared, got) = owner.join().unwrap();
        // After both: whatever is still in the slot was put after the
        // cleanup took its look.
        let left = slot.take_wait();
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
        assert_eq!(slot.try_with(|p| p.replace(7u32)), Some(None));
        let s = slot.clone();
        // The owner tries a get while the cleanup runs.
        let owner = thread::spawn(move || s.try_with(Option::take).flatten());
        let victim = slot.take_wait();
        let got = owner.join().unwrap();
        assert!(
            victim.is_some() != got.is_some(),
            "exactly one of them has the value: {victim:?} {got:?}"
        );
        assert_eq!(slot.take_wait(), None, "the cleanup left a value");
    });
}
