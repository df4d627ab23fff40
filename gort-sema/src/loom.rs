//! The one place this crate takes atomics, locks and parking from.
//!
//! Parking is always gort-sched's [`park`]/[`Waiter`], which serve
//! goroutines and plain threads alike; under `--cfg gort_loom` gort-sched
//! gives loom-thread versions with the same contract (its `park_model`).
//! There, atomics and mutexes are loom's too, and the public semaphore
//! functions take loom atomics, so the layers above can model their own
//! state machines on top of them.

#[cfg(not(gort_loom))]
pub(crate) use gort_sched::gosched as yield_now;
pub(crate) use gort_sched::{park, WaitReason, Waiter};
#[cfg(gort_loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::Mutex;

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(gort_loom)]
pub(crate) use loom::sync::Mutex;

/// The mutex profile's hooks (gort-sched's `prof`); off under loom.
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::prof::{mutex_released, mutex_wait_start};

#[cfg(gort_loom)]
pub(crate) fn mutex_wait_start(_reason: WaitReason) -> i64 {
    0
}

#[cfg(gort_loom)]
pub(crate) fn mutex_released(_head_start: i64, _tail_start: i64, _others: usize) {}
