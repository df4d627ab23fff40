//! loom model: `Parker` never loses an unpark that races with park.

use crate::futex::Parker;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;

#[test]
fn unpark_racing_park_is_not_lost() {
    loom::model(|| {
        let p = Arc::new(Parker::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (p2, f2) = (p.clone(), flag.clone());
        let t = loom::thread::spawn(move || {
            f2.store(true, Ordering::Release);
            p2.unpark();
        });
        // The owner waits for the flag, parking between checks: if an unpark
        // were lost, loom would find the schedule where this never ends.
        while !flag.load(Ordering::Acquire) {
            p.park();
        }
        t.join().unwrap();
    });
}
