//! loom models of the PollDesc direction word: readiness racing a waiter's
//! park is never lost, a deadline or a close racing the park always wakes
//! the waiter with its error, and readiness that arrives first is consumed
//! without parking.

use crate::pd::{Dir, PollError, CLOSING, EXPIRED};
use loom::sync::Arc;
use loom::thread;

#[test]
fn readiness_racing_park_is_not_lost() {
    loom::model(|| {
        let d = Arc::new(Dir::new());
        let d2 = d.clone();
        let t = thread::spawn(move || d2.ready());
        assert_eq!(d.wait(), Ok(()));
        t.join().unwrap();
        // Consumed: the word is back to NIL with no flag.
        assert_eq!(d.check(), Ok(()));
    });
}

#[test]
fn deadline_racing_park_wakes_with_timeout() {
    loom::model(|| {
        let d = Arc::new(Dir::new());
        let d2 = d.clone();
        let t = thread::spawn(move || d2.set_flag(EXPIRED));
        assert_eq!(d.wait(), Err(PollError::Timeout));
        t.join().unwrap();
        // The flag stays until a new deadline clears it.
        assert_eq!(d.check(), Err(PollError::Timeout));
        d.clear_flag(EXPIRED);
        assert_eq!(d.check(), Ok(()));
    });
}

#[test]
fn close_and_readiness_racing_park() {
    loom::model(|| {
        let d = Arc::new(Dir::new());
        let (d2, d3) = (d.clone(), d.clone());
        let a = thread::spawn(move || d2.ready());
        let b = thread::spawn(move || d3.set_flag(CLOSING));
        // Either the readiness was consumed first, or the close is seen;
        // never a hang. After both, the close is sticky.
        let r = d.wait();
        assert!(matches!(r, Ok(()) | Err(PollError::Closing)), "{r:?}");
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(d.wait(), Err(PollError::Closing));
    });
}

#[test]
fn two_rounds_of_readiness() {
    loom::model(|| {
        let d = Arc::new(Dir::new());
        let d2 = d.clone();
        let ack = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let ack2 = ack.clone();
        // The waker readies, waits for the first round to be consumed, and
        // readies again: the second wait must see the second readiness.
        let t = thread::spawn(move || {
            d2.ready();
            while ack2.load(loom::sync::atomic::Ordering::Acquire) == 0 {
                thread::yield_now();
            }
            d2.ready();
        });
        assert_eq!(d.wait(), Ok(()));
        ack.store(1, loom::sync::atomic::Ordering::Release);
        assert_eq!(d.wait(), Ok(()));
        t.join().unwrap();
    });
}

/// The short-read hint (`NetFd::read_stream`): the reader drops a pending
/// readiness before each read, and after a read that emptied the socket
/// waits for readiness before reading again. A writer that queues bytes
/// and then raises readiness (as the kernel's callback and the poller do)
/// twice, racing every step of it, never leaves bytes stranded (a lost
/// readiness would park the reader for good: loom reports the deadlock).
#[test]
fn the_short_read_hint_strands_no_bytes() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    loom::model(|| {
        let d = Arc::new(Dir::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let (d2, q2) = (d.clone(), queued.clone());
        let t = thread::spawn(move || {
            for _ in 0..2 {
                q2.fetch_add(1, Ordering::SeqCst);
                d2.ready();
            }
        });
        let (mut got, mut drained) = (0, false);
        while got < 2 {
            if std::mem::take(&mut drained) {
                assert_eq!(d.wait(), Ok(()));
            }
            d.clear_ready();
            match queued.swap(0, Ordering::SeqCst) {
                0 => assert_eq!(d.wait(), Ok(())), // EAGAIN
                n => {
                    got += n;
                    drained = true; // a short read: the queue is empty
                }
            }
        }
        t.join().unwrap();
    });
}
