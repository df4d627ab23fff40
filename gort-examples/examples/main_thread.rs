//! The main goroutine on the process's main thread, as GUI toolkits
//! (macOS AppKit, GTK, ...) need: `gort::run_on_this_thread` runs it on the
//! calling thread, which runs nothing else (Go's m0 with `LockOSThread` in
//! `init`). Workers run on other threads and send their results to the
//! main goroutine's "event loop", which handles them on the main thread.
//!
//! ```text
//! cargo run --release -p gort-examples --example main_thread
//! ```

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn main() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let handled = gort::run_on_this_thread(move || {
        gort::lock_os_thread(); // states the intent: this goroutine is the UI
        println!(
            "main goroutine on thread {} (process {pid}): main thread: {}",
            gettid(),
            gettid() == pid
        );
        let (events_tx, events) = gort::chan::<(usize, i32)>(16);
        for w in 0..4 {
            let tx = events_tx.clone();
            gort::go(move || {
                for i in 0..3 {
                    gort::time::sleep(std::time::Duration::from_millis(1));
                    tx.send((w * 10 + i, gettid())).unwrap();
                }
            });
        }
        drop(events_tx);
        // The "event loop": every event is handled on the main thread.
        let mut handled = 0;
        for (event, from) in events.iter() {
            assert_eq!(gettid(), pid, "the UI left the main thread");
            assert_ne!(from, pid, "a worker ran on the main thread");
            handled += 1;
            if handled <= 3 {
                println!(
                    "event {event} from thread {from} handled on thread {}",
                    gettid()
                );
            }
        }
        handled
    });
    println!("{handled} events handled on the main thread");
    assert_eq!(handled, 12);
}
