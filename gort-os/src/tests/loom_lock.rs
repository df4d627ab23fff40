//! loom model: `RawLock` excludes (loom's cell checker sees every access to
//! the protected data) and a sleeper is never left asleep after an unlock.

use crate::lock::RawLock;
use loom::cell::UnsafeCell;
use loom::sync::Arc;

struct Shared {
    lock: RawLock,
    n: UnsafeCell<u32>,
}
// SAFETY: `n` is only accessed under `lock`.
unsafe impl Sync for Shared {}

#[test]
fn lock_excludes_and_wakes() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            n: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    s.lock.lock();
                    // SAFETY: held.
                    s.n.with_mut(|p| unsafe { *p += 1 });
                    // SAFETY: held.
                    unsafe { s.lock.unlock() };
                })
            })
            .collect();
        s.lock.lock();
        // SAFETY: held.
        s.n.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: held.
        unsafe { s.lock.unlock() };
        for t in ts {
            t.join().unwrap();
        }
        // SAFETY: all others joined.
        assert_eq!(s.n.with(|p| unsafe { *p }), 3);
    });
}
