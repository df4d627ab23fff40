//! The one place this crate takes atomics, cells and parking from.
//!
//! Under `--cfg gort_loom` they are loom's (parking through gort-sched's loom
//! parker, which keeps the real park's contract), so the model in `src/tests/`
//! explores the real [`Dir`](crate::pd::Dir) state machine. The socket layer
//! is not compiled then.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

// gort-sched's parker; under loom, its loom-thread version (same contract).
pub(crate) use gort_sched::{park, WaitReason, Waiter};

pub(crate) use gort_os::cell::UnsafeCell;
