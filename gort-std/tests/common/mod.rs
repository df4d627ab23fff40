//! Helpers shared by gort-std's test binaries.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How long a test waits for something the runtime should do promptly
/// before it fails (instead of hanging) with a message.
pub(crate) const LONG: Duration = Duration::from_secs(30);

/// Waits until `cond` holds: something the runtime reports (a goroutine
/// queued on a channel, a waiter on a lock), not a sleep that hopes so.
/// Yields between checks (gosched: on a goroutine it lets the others of its
/// M run; on a plain thread it yields the thread). Fails after [`LONG`].
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < LONG, "timed out waiting until {what}");
        gort_sched::gosched();
    }
}
