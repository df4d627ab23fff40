//! What this crate takes from the runtime, in one place: atomics, timers
//! and spawning. Under `--cfg gort_loom` the atomics are loom's, and the
//! models (`src/tests/`) cover the context tree's linking, cancelling and
//! unlinking; timers and goroutines are not modelled there (deadlines
//! cannot be made; an `after_func`'s function runs inline).

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// A deadline's timer.
#[cfg(not(gort_loom))]
pub(crate) type Timer = gort_std::AfterFunc;

/// Calls `f` on a goroutine of its own `d` from now.
#[cfg(not(gort_loom))]
pub(crate) fn timer(d: std::time::Duration, f: impl Fn() + Send + Sync + 'static) -> Timer {
    gort_std::after_func(d, f)
}

/// Runs `f` on a goroutine of its own.
#[cfg(not(gort_loom))]
pub(crate) fn spawn(f: Box<dyn FnOnce() + Send>) {
    drop(gort_sched::go(f));
}

#[cfg(gort_loom)]
pub(crate) enum Timer {}

#[cfg(gort_loom)]
impl Timer {
    pub(crate) fn stop(&self) -> bool {
        match *self {}
    }
}

#[cfg(gort_loom)]
pub(crate) fn spawn(f: Box<dyn FnOnce() + Send>) {
    f();
}
