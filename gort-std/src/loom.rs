//! The one place this crate takes atomics, time and spinning from.
//!
//! Under `--cfg gort_loom`, atomics are loom's and gort-sema runs its loom
//! parker, so the models in `src/tests/` explore the real mutex and
//! WaitGroup code. There, spinning is off (it only adds states) and every
//! waiter counts as starved, so the models exercise the hand-off path.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::Arc;

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(gort_loom)]
pub(crate) use loom::sync::Arc;

// Channels park directly on the scheduler (under loom: on gort-sema's loom
// parker, which keeps the same contract).
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::{park, WaitReason, Waiter};
#[cfg(gort_loom)]
pub(crate) use gort_sema::loom_shim::{park, WaitReason, Waiter};

pub(crate) use gort_os::cell::UnsafeCell;

#[cfg(not(gort_loom))]
pub(crate) use gort_os::clock::nanotime;
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::{can_spin, do_spin};

/// A waiter blocked longer than this switches a mutex to starvation mode
/// (Go: 1 ms; under loom every waiter does).
#[cfg(not(gort_loom))]
pub(crate) const STARVATION_NS: i64 = 1_000_000;
#[cfg(gort_loom)]
pub(crate) const STARVATION_NS: i64 = -1;

#[cfg(gort_loom)]
pub(crate) fn nanotime() -> i64 {
    0
}

#[cfg(gort_loom)]
pub(crate) fn can_spin(_iter: u32) -> bool {
    false
}

#[cfg(gort_loom)]
pub(crate) fn do_spin() {}

/// Declares a constructor that is `const` in normal builds (usable in
/// statics) and plain under loom (loom atomics have no const constructor).
macro_rules! loom_const_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        #[cfg(not(gort_loom))]
        $(#[$m])* $vis const fn $name($($arg: $ty),*) -> $ret $body
        #[cfg(gort_loom)]
        $(#[$m])* $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;

/// Lets another thread run (a waiting loop's back-off; under loom, the
/// model's yield, which loom needs to leave a spin loop).
#[cfg(not(gort_loom))]
pub(crate) fn yield_now() {
    std::thread::yield_now()
}
#[cfg(gort_loom)]
pub(crate) use loom::thread::yield_now;
