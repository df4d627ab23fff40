//! A worker that sets up per-thread state, waits for cancellation, and
//! tears the state down (Go's LockOSThread guide: "set up thread-local
//! state, do work, clean up"). The state here is the kernel's name for the
//! thread (`prctl(PR_SET_NAME)`, seen in `top -H` and `/proc/self/task`)
//! and a Rust thread-local; both belong to the worker's thread for as long
//! as it is locked, and no other goroutine runs there to see them.
//!
//! ```text
//! cargo run --release -p gort-examples --example thread_state
//! ```

use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    // The worker's per-thread state. Right across a park: the worker is
    // locked to its thread from its first instruction, so no other
    // goroutine ever runs there to see it (the example checks that), and
    // it is never borrowed across a park anyway.
    static SESSION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn thread_name() -> String {
    let tid = tid();
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    i64::from(unsafe { libc::gettid() })
}

fn set_thread_name(name: &str) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes
    // are used); it names the calling thread only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
    assert_eq!(rc, 0);
}

fn main() {
    gort::run(|| {
        let (work_tx, work_rx) = gort::chan::<u32>(0);
        let (cancel_tx, cancel_rx) = gort::chan::<()>(0);
        let worker = gort::Builder::new().lock_os_thread().spawn(move || {
            // Set up.
            let old = thread_name();
            set_thread_name("session-worker");
            SESSION.with(|s| *s.borrow_mut() = Some(format!("session on {}", tid())));
            println!(
                "worker: set up on thread {} ({:?} -> {:?})",
                tid(),
                old,
                thread_name()
            );
            // Work until cancelled.
            let mut done = 0;
            loop {
                gort::select! {
                    recv(work_rx) -> job => {
                        let job = job.unwrap();
                        let s = SESSION.with(|s| s.borrow().clone()).unwrap();
                        assert_eq!(thread_name(), "session-worker");
                        println!("worker: job {job} in {s}");
                        done += 1;
                    },
                    recv(cancel_rx) -> _c => break,
                }
            }
            // Tear down: the thread would exit anyway (the goroutine ends
            // locked), but a worker that unlocks must leave the thread as
            // it found it.
            SESSION.with(|s| s.borrow_mut().take());
            set_thread_name(&old);
            println!(
                "worker: cancelled after {done} jobs; state torn down ({:?})",
                thread_name()
            );
            gort::unlock_os_thread();
            done
        });
        // Meanwhile other goroutines never see the worker's state.
        let others: Vec<_> = (0..50)
            .map(|_| {
                gort::go(|| {
                    gort::time::sleep(Duration::from_millis(1));
                    SESSION.with(|s| s.borrow().is_none()) && thread_name() != "session-worker"
                })
            })
            .collect();
        for job in 0..5 {
            work_tx.send(job).unwrap();
        }
        let clean = others.into_iter().all(|h| h.join().unwrap());
        drop(cancel_tx); // cancellation: the channel closes
        let done = worker.join().unwrap();
        println!("main: worker did {done} jobs; other goroutines saw no worker state: {clean}");
        assert_eq!(done, 5);
        assert!(clean);
    });
}
