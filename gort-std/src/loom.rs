//! The one place this crate takes atomics, time and spinning from.
//!
//! Under `--cfg gort_loom`, atomics are loom's and gort-sema runs its loom
//! parker, so the models in `src/tests/` explore the real mutex and
//! WaitGroup code. There, spinning is off (it only adds states) and the
//! mutex reads the time from `model_clock`, which each model sets: one
//! where every read moves the clock past the starvation threshold (every
//! woken waiter counts as starved: the hand-off path), or one that stands
//! still until the model advances it (normal mode: woken waiters compete
//! with barging lockers, and starve only once the model lets 1 ms pass).

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::Arc;

// (AtomicBool and yield_now serve pool_slot, which a loom build has only
// for its model: unused when another crate's loom build uses this one.)
#[cfg(gort_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(gort_loom)]
pub(crate) use loom::sync::Arc;

#[cfg(gort_loom)]
pub(crate) use loom::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard};
/// A plain lock for short holds under which nothing parks (`block_on`'s
/// waiter slot), so that loom sees it too.
#[cfg(not(gort_loom))]
pub(crate) use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard};

// Channels park directly on the scheduler (under loom: on gort-sched's
// loom parker, which keeps the same contract).
pub(crate) use gort_sched::{park, WaitReason, Waiter};

pub(crate) use gort_os::cell::UnsafeCell;

#[cfg(not(gort_loom))]
pub(crate) use gort_os::clock::nanotime;
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::{can_spin, can_wait_spin, do_spin};

/// Every operation that may park is a preemption point (sysmon's request
/// to a long runner is honoured here); nothing under loom.
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::preempt_point;
#[cfg(gort_loom)]
#[inline]
pub(crate) fn preempt_point() {}

/// A waiter blocked longer than this switches a mutex to starvation mode
/// (Go: 1 ms; under loom, measured on `model_clock`).
pub(crate) const STARVATION_NS: i64 = 1_000_000;

#[cfg(gort_loom)]
pub(crate) use model_clock::nanotime;

/// The loom models' clock: the time is whatever the model says.
///
/// A plain `std` thread-local, not a loom object: reading it adds no
/// interleavings, and it is per test, since loom runs a model's threads as
/// coroutines on the test's own OS thread (and libtest runs each test on a
/// thread of its own). A model starts each execution with [`reset`], which
/// also says how far every read moves the clock.
#[cfg(gort_loom)]
pub(crate) mod model_clock {
    use std::cell::Cell;

    // Loom builds only, where no goroutine exists: a loom model runs all its
    // threads on the test's OS thread, so this is one clock per model (reset
    // by each model's setup), which is the intent; nothing parks across it.
    std::thread_local! {
        /// (now, step): the time in ns, and how far each read advances it.
        static CLOCK: Cell<(i64, i64)> = const { Cell::new((1, EVERY_WAIT_STARVES)) };
    }

    /// A step that makes every wait longer than the starvation threshold:
    /// each woken waiter counts as starved.
    pub(crate) const EVERY_WAIT_STARVES: i64 = 2 * super::STARVATION_NS;

    /// Starts an execution: the clock at 1 (never 0, which the mutex takes
    /// for "has not waited yet"), moving `step` ns at each read (0: it moves
    /// only through [`advance`]).
    #[cfg(test)] // (the models; gort-kit's loom build uses the crate too)
    pub(crate) fn reset(step: i64) {
        CLOCK.with(|c| c.set((1, step)));
    }

    /// Lets `ns` pass at this point of the execution.
    #[cfg(test)] // (the models; gort-kit's loom build uses the crate too)
    pub(crate) fn advance(ns: i64) {
        CLOCK.with(|c| {
            let (now, step) = c.get();
            c.set((now + ns, step));
        });
    }

    /// The mutex's clock under loom.
    pub(crate) fn nanotime() -> i64 {
        CLOCK.with(|c| {
            let (now, step) = c.get();
            c.set((now + step, step));
            now
        })
    }
}

/// Between the two halves of a Dekker pair whose accesses are all SeqCst
/// (RwLock: a reader's count increment then its look at the writer flag,
/// against the writer's flag then its sums). SeqCst accesses already keep
/// that store-to-load order (they sit in one total order), so this is
/// nothing in a normal build; loom models SeqCst accesses as AcqRel only
/// and needs the fence to see the real guarantee.
#[inline(always)]
pub(crate) fn seqcst_pair() {
    #[cfg(gort_loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// The calling goroutine's P (RwLock's per-P reader slots), and how many
/// Ps there are.
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::proc_pin;
#[cfg(not(gort_loom))]
pub(crate) fn gomaxprocs() -> usize {
    gort_sched::gomaxprocs(0)
}

/// Under loom, each model thread says which P it stands for
/// ([`model_p::set`]); two Ps.
#[cfg(gort_loom)]
pub(crate) use model_p::get as proc_pin;
#[cfg(gort_loom)]
pub(crate) fn gomaxprocs() -> usize {
    2
}

#[cfg(gort_loom)]
pub(crate) mod model_p {
    use std::cell::Cell;

    // A loom thread-local: one per model thread (they all run on the
    // test's OS thread), which is what a P is to the code under test.
    // Right across a park: loom builds run no goroutines (a model thread
    // never shares its copy with another, and nothing parks a goroutine
    // in between), and each model thread sets it before using the lock.
    loom::thread_local! {
        static P: Cell<Option<usize>> = Cell::new(None);
    }

    /// The P the calling model thread runs on.
    #[cfg(test)] // (the models; gort-kit's loom build uses the crate too)
    pub(crate) fn set(p: usize) {
        P.with(|c| c.set(Some(p)));
    }

    pub(crate) fn get() -> Option<usize> {
        P.with(|c| c.get())
    }
}

#[cfg(gort_loom)]
pub(crate) fn can_spin(_iter: u32) -> bool {
    false
}

#[cfg(gort_loom)]
pub(crate) fn do_spin() {}

#[cfg(gort_loom)]
pub(crate) fn can_wait_spin(_now: i64) -> bool {
    false
}

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
#[allow(unused_imports)]
pub(crate) use loom::thread::yield_now;
