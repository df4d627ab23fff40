//! Issue 11.6c: gort's own paths never let another goroutine of the thread
//! run while the thread unwinds. A mutex hand-off (`semrelease` with
//! `handoff`) yields to the woken waiter — but not from a `Drop` run during
//! unwinding, where the waiter would run with std's per-thread panic state
//! set (`std::thread::panicking() == true`, poisoning its std locks).

use gort_sched::{go, gosched, init, run, Config};
use gort_sema::{semacquire, semrelease};
use std::panic::catch_unwind;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

#[test]
fn handoff_does_not_yield_while_unwinding() {
    init(Config {
        procs: 1,
        ..Config::default()
    });
    static SEMA: AtomicU32 = AtomicU32::new(0);
    run(|| {
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let waiter = go(move || {
            semacquire(&SEMA);
            *s2.lock().unwrap() = Some(std::thread::panicking());
        });
        // One P: the waiter runs now and queues on the semaphore.
        for _ in 0..3 {
            gosched();
        }
        struct Release;
        impl Drop for Release {
            fn drop(&mut self) {
                semrelease(&SEMA, true);
            }
        }
        let r = catch_unwind(|| {
            let _r = Release;
            panic!("unwinding through a hand-off (expected by this test)");
        });
        assert!(r.is_err());
        waiter.join().unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            Some(false),
            "the waiter ran while this thread was unwinding"
        );
    });
}
