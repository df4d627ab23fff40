//! Issue 11.2, as the hostile review wrote it: a stale `Waiter` (kept past an
//! abandoned park, readied late) used to wake the runtime's next internal
//! park — a channel receive returned `Err(RecvError)` on an open channel with
//! its sudog still queued, and a `Mutex::lock` returned while another held
//! the lock. Both must now wait for their own wake-up.

mod common;
use common::wait_until;
use gort_sched::{init, park, Config, WaitReason, Waiter};
use gort_std::{chan, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn one_p() {
    init(Config {
        procs: 1,
        ..Config::default()
    });
}

#[test]
fn stale_waiter_does_not_complete_a_channel_receive() {
    one_p();
    gort_sched::run(|| {
        let (tx, rx) = chan::<String>(0);
        let (tx2, rx2) = chan::<u64>(0);
        let stale = Waiter::current();
        park(WaitReason::Unspecified, || false); // abandoned
        stale.ready(); // late waker
        let sender = gort_sched::go(move || {
            // Send only once the receive has parked (after the late
            // wake-up): a receive the stale waiter completed never parks,
            // and fails below.
            wait_until("the receive parks", || tx.blocked_receivers() == 1);
            tx.send("hello".to_string()).unwrap();
            // A send on another channel must not land in a recycled sudog.
            let _ = tx2.try_send(0x4141_4141_4141_4141);
        });
        assert_eq!(rx.recv().as_deref(), Ok("hello"));
        sender.join().unwrap();
        drop(rx2);
    });
}

#[test]
fn stale_waiter_does_not_break_mutex_exclusion() {
    one_p();
    gort_sched::run(|| {
        let m = Arc::new(Mutex::new(0u64));
        let held = Arc::new(AtomicBool::new(false));
        let (release_tx, release) = chan::<()>(0);
        let (m2, h2) = (m.clone(), held.clone());
        let holder = gort_sched::go(move || {
            let mut g = m2.lock();
            h2.store(true, Ordering::SeqCst);
            release.recv().unwrap();
            *g += 1;
            h2.store(false, Ordering::SeqCst);
        });
        while !held.load(Ordering::SeqCst) {
            gort_sched::gosched();
        }
        let stale = Waiter::current();
        park(WaitReason::Unspecified, || false);
        let m3 = m.clone();
        let t = std::thread::spawn(move || {
            // The late wake-up comes while this goroutine waits in lock.
            let t0 = Instant::now();
            while !format!("{:?}", m3.raw()).contains("waiters: 1") {
                assert!(t0.elapsed() < Duration::from_secs(30), "never queued");
                std::thread::yield_now();
            }
            stale.ready();
            // Time for a wrong wake-up to return from lock while held.
            std::thread::sleep(Duration::from_millis(5));
            release_tx.send(()).unwrap();
        });
        let g = m.lock();
        assert!(
            !held.load(Ordering::SeqCst),
            "locked while another holds it"
        );
        assert_eq!(*g, 1);
        drop(g);
        holder.join().unwrap();
        t.join().unwrap();
    });
}
