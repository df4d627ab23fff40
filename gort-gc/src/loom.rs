//! The one place this crate takes atomics, locks, thread-locals and parking
//! from.
//!
//! Under `--cfg gort_loom` they are loom's (and gort-sema's loom parker), so
//! the models in `src/tests/` explore the real header, registry and
//! collector code. Statics holding loom atomics must be created inside each
//! model, so the global heap is a `loom::lazy_static` there (see
//! `heap::heap`), and the registry has 2 shards instead of 64.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(gort_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(gort_loom))]
pub(crate) use gort_sched::{park, WaitReason, Waiter};
#[cfg(gort_loom)]
pub(crate) use gort_sema::loom_shim::{park, WaitReason, Waiter};

/// Yield while waiting for a short, bounded collector step (a claim pass).
#[cfg(not(gort_loom))]
pub(crate) fn spin_yield() {
    std::thread::yield_now();
}
#[cfg(gort_loom)]
pub(crate) fn spin_yield() {
    loom::thread::yield_now();
}

/// Registry shards (each a mutex-protected vector of headers).
#[cfg(not(gort_loom))]
pub(crate) const SHARDS: usize = 64;
#[cfg(gort_loom)]
pub(crate) const SHARDS: usize = 2;

/// `thread_local!`, loom's under the model (loom threads share an OS
/// thread).
#[cfg(not(gort_loom))]
macro_rules! gc_thread_local {
    ($($t:tt)*) => { std::thread_local!($($t)*); };
}
#[cfg(gort_loom)]
macro_rules! gc_thread_local {
    ($($t:tt)*) => { loom::thread_local!($($t)*); };
}
pub(crate) use gc_thread_local;

/// Locks a std/loom mutex, ignoring poisoning (the protected data is kept
/// consistent by every critical section before anything can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
