//! A worker goroutine that owns a thread-affine C library (`csrc/affine.c`,
//! built with `cc`): every call must come from the thread that initialised
//! it, as with OpenGL contexts or GUI toolkits. The worker is spawned with
//! `Builder::lock_os_thread()`, so it runs on a thread of its own from its
//! first instruction; requests reach it over a channel from 200 goroutines
//! that run and park on every P meanwhile. It prints the OS thread id of
//! every call (always the same), and each goroutine checks, every time it
//! resumes, that it is not on the worker's thread: none ever is.
//!
//! ```text
//! cargo run --release -p gort-examples --example thread_affine
//! ```

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use gort_examples::affine::{affine_call, affine_gettid, affine_init, affine_shutdown};

fn gettid() -> i64 {
    // SAFETY: a plain system call wrapper with no preconditions.
    let t: libc::c_long = unsafe { affine_gettid() };
    t as i64
}

// Set on the worker's thread while it owns the library: a goroutine that
// sees it set would be running on the locked thread. (Read without a
// borrow held, so right across parks.)
thread_local! {
    static OWNER_THREAD: Cell<bool> = const { Cell::new(false) };
}

const CLIENTS: usize = 200;
const CALLS_EACH: usize = 50;

fn main() {
    let intruders = Arc::new(AtomicUsize::new(0));
    let worker_tid = Arc::new(AtomicI64::new(0));
    let (calls_printed, tids) = gort::run({
        let intruders = intruders.clone();
        let worker_tid = worker_tid.clone();
        move || {
            // Requests: a reply channel per call.
            let (req_tx, req_rx) = gort::chan::<gort::Sender<(i64, i64)>>(0);
            let wt = worker_tid.clone();
            let worker = gort::Builder::new()
                .name("affine-worker")
                .lock_os_thread()
                .spawn(move || {
                    // SAFETY: the library's functions have no preconditions
                    // beyond being called from one thread, which the lock
                    // guarantees.
                    let tid = unsafe { affine_init() } as i64;
                    wt.store(tid, Ordering::SeqCst);
                    OWNER_THREAD.with(|o| o.set(true));
                    println!("worker: library bound to OS thread {tid}");
                    let mut printed = 0;
                    let mut tids = BTreeSet::new();
                    while let Ok(reply) = req_rx.recv() {
                        // SAFETY: as above; -1 would mean another thread.
                        let n = unsafe { affine_call() } as i64;
                        assert!(n > 0, "the C library was called off its thread");
                        let here = gettid();
                        tids.insert(here);
                        if n <= 3 || n as usize % 2_500 == 0 {
                            println!("worker: call {n} on OS thread {here}");
                            printed += 1;
                        }
                        let _ = reply.send((n, here));
                    }
                    OWNER_THREAD.with(|o| o.set(false));
                    // SAFETY: as above.
                    let total = unsafe { affine_shutdown() };
                    println!("worker: {total} calls, all on OS thread(s) {tids:?}");
                    (printed, tids)
                });
            // Clients: every goroutine parks on each call, on every P.
            let mut clients = Vec::new();
            for _ in 0..CLIENTS {
                let req_tx = req_tx.clone();
                let (bad, wt) = (intruders.clone(), worker_tid.clone());
                clients.push(gort::go(move || {
                    let check = || {
                        if OWNER_THREAD.with(|o| o.get()) || gettid() == wt.load(Ordering::SeqCst) {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                    };
                    for _ in 0..CALLS_EACH {
                        check();
                        let (tx, rx) = gort::chan(1);
                        req_tx.send(tx).unwrap();
                        let (n, _tid) = rx.recv().unwrap();
                        assert!(n > 0);
                        check();
                        gort::gosched();
                    }
                }));
            }
            for c in clients {
                c.join().unwrap();
            }
            drop(req_tx); // the worker's loop ends; it exits, still locked
            worker.join().unwrap()
        }
    });
    let n = intruders.load(Ordering::SeqCst);
    println!(
        "{CLIENTS} goroutines made {} calls; the worker's OS thread ids: {tids:?}; \
         goroutines seen on the worker's thread: {n}",
        CLIENTS * CALLS_EACH
    );
    assert_eq!(tids.len(), 1, "the worker changed OS thread");
    assert_eq!(n, 0, "another goroutine ran on the locked thread");
    assert!(calls_printed > 0);
    // The worker ended locked: its thread exited with it (Go's rule: its
    // state may be tainted). Give the exit a moment.
    let t = worker_tid.load(Ordering::SeqCst);
    let gone = (0..1000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        !std::path::Path::new(&format!("/proc/self/task/{t}")).exists()
    });
    println!("worker's thread {t} exited with it: {gone}");
    assert!(gone);
}
