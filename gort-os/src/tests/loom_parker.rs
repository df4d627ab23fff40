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

/// A timed park that times out while an unpark races it: the token is
/// consumed exactly once, by that park or by the next one (the timeout
/// path's swap must not drop a token stored after the wait ended).
#[test]
fn timed_out_park_racing_unpark_keeps_the_token() {
    loom::model(|| {
        crate::futex::timeouts_fire(true);
        let p = Arc::new(Parker::new());
        let p2 = p.clone();
        let t = loom::thread::spawn(move || p2.unpark());
        let first = p.park_timeout(std::time::Duration::from_secs(1));
        t.join().unwrap();
        let second = p.park_timeout(std::time::Duration::from_secs(1));
        assert!(
            first ^ second,
            "one unpark consumed {} times",
            u8::from(first) + u8::from(second)
        );
    });
}

/// The futex model wakes per word: waiters on one word are woken by a wake
/// of that word (up to n of them), never by one of another word.
#[test]
fn futex_wakes_the_waiters_of_its_word() {
    use crate::futex::{futex_wait, futex_wake};
    use loom::sync::atomic::AtomicU32;
    loom::model(|| {
        let words = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let waiter = |w: Arc<(AtomicU32, AtomicU32)>, second: bool| {
            loom::thread::spawn(move || {
                let word = if second { &w.1 } else { &w.0 };
                while word.load(Ordering::Acquire) == 0 {
                    futex_wait(word, 0, None);
                }
            })
        };
        let a = waiter(words.clone(), false);
        let b = waiter(words.clone(), true);
        words.0.store(1, Ordering::Release);
        futex_wake(&words.0, 1);
        a.join().unwrap();
        words.1.store(1, Ordering::Release);
        futex_wake(&words.1, 1);
        b.join().unwrap();
    });
}

/// A timed waiter that leaves by its timeout withdraws from the word's wait
/// list: a later wake(1) goes to the waiter still there, not to the one that
/// left (which would strand it: loom reports the deadlock).
#[test]
fn futex_wake_landing_on_a_timing_out_waiter() {
    use crate::futex::{futex_wait, futex_wake};
    use loom::sync::atomic::AtomicU32;
    loom::model(|| {
        crate::futex::timeouts_fire(true);
        let word = Arc::new(AtomicU32::new(0));
        let w2 = word.clone();
        let untimed = loom::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                futex_wait(&w2, 0, None);
            }
        });
        // A timed waiter that gives up (its caller does not loop).
        futex_wait(&word, 0, Some(std::time::Duration::from_millis(1)));
        word.store(1, Ordering::Release);
        futex_wake(&word, 1);
        untimed.join().unwrap();
    });
}
