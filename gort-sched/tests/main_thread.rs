//! `run_on_this_thread` called from `main` runs the main goroutine on the
//! process's main thread (gettid == getpid), as Go's main goroutine starts
//! on m0: what GUI toolkits need. A test binary of its own (no libtest), so
//! that `main` is the process's first thread.

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn main() {
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    assert_eq!(pid, tid, "main() is not on the main thread");
    let (inside, locks, others) = gort_sched::run_on_this_thread(|| {
        gort_sched::lock_os_thread(); // as a GUI program's main would
        let locks = gort_sched::os_thread_lock_count();
        let others: Vec<i32> = (0..8)
            .map(|_| gort_sched::go(gettid))
            .map(|h| h.join().unwrap())
            .collect();
        (gettid(), locks, others)
    });
    assert_eq!(inside, pid, "the main goroutine left the main thread");
    assert_eq!(locks, 1);
    assert!(
        others.iter().all(|&t| t != pid),
        "a goroutine started on the main thread"
    );
    println!("main_thread: ok (main goroutine on thread {inside} == pid {pid})");
}
