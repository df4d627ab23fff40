//! The one place this crate takes its atomics from (see gort-os's twin).
//!
//! Under `--cfg gort_loom` these are loom's, so the models in `src/tests/`
//! run the real run queue and park protocol. Capacities shrink under loom
//! (a run queue of 4) so the models stay small.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Slots in a P's local run queue: 256 as in Go, 4 under loom.
#[cfg(not(gort_loom))]
pub(crate) const RUNQ_SIZE: usize = 256;
#[cfg(gort_loom)]
pub(crate) const RUNQ_SIZE: usize = 4;
