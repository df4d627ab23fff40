//! loom model of WaitGroup: wait returns only after every done, and what
//! the workers wrote before done is visible to the waiter.

use crate::waitgroup::WaitGroup;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

#[test]
fn wait_sees_every_done() {
    loom::model(|| {
        let wg = Arc::new(WaitGroup::new());
        let slots = Arc::new([UnsafeCell::new(0u32), UnsafeCell::new(0u32)]);
        wg.add(2);
        for i in 0..2 {
            let (wg, slots) = (wg.clone(), slots.clone());
            thread::spawn(move || {
                // SAFETY: each worker owns its slot until done().
                slots[i].with_mut(|p| unsafe { *p = 1 });
                wg.done();
            });
        }
        wg.wait();
        // SAFETY: both workers called done(): their writes happen before.
        let sum: u32 = slots.iter().map(|s| s.with(|p| unsafe { *p })).sum();
        assert_eq!(sum, 2);
    });
}
