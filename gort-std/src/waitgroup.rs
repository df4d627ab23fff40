//! `WaitGroup`: Go's sync.WaitGroup (sync/waitgroup.go), including Go 1.25's
//! `WaitGroup.Go`.
//!
//! One 64-bit word: the counter in the high half, the number of waiters in
//! the low half; waiters sleep on a gort-sema semaphore. Misuse panics with
//! Go's messages: a negative counter, `add` racing with `wait` on a group
//! whose counter was zero, and reuse before the previous `wait` returned.

use crate::loom::{loom_const_fn, AtomicU32, AtomicU64, Ordering};
use gort_sched::WaitReason;
use gort_sema::{semacquire_with, semrelease};
use std::fmt;

/// Waits for a collection of goroutines (or threads) to finish.
pub struct WaitGroup {
    /// counter << 32 | waiters. SeqCst throughout: add/done pair with wait.
    state: AtomicU64,
    sema: AtomicU32,
}

impl WaitGroup {
    loom_const_fn! {
        /// A group with a zero counter.
        pub fn new() -> WaitGroup {
            WaitGroup {
                state: AtomicU64::new(0),
                sema: AtomicU32::new(0),
            }
        }
    }

    /// Adds `delta` (may be negative) to the counter; when it reaches zero,
    /// every `wait` returns.
    ///
    /// # Panics
    /// `sync: negative WaitGroup counter` if the counter goes below zero;
    /// `sync: WaitGroup misuse: Add called concurrently with Wait` when a
    /// positive add on a zero counter races with waiters.
    #[inline]
    pub fn add(&self, delta: i32) {
        let d = (delta as i64 as u64) << 32;
        let state = self.state.fetch_add(d, Ordering::SeqCst).wrapping_add(d);
        let v = (state >> 32) as i32;
        let w = state as u32;
        if v < 0 {
            // Restore, so the group is not left corrupted by the panic.
            self.state.fetch_sub(d, Ordering::SeqCst);
            panic!("sync: negative WaitGroup counter");
        }
        if w != 0 && delta > 0 && v == delta {
            panic!("sync: WaitGroup misuse: Add called concurrently with Wait");
        }
        if v > 0 || w == 0 {
            return;
        }
        self.wake_waiters(state, w);
    }

    /// The counter reached zero with `w` waiters: release them all.
    #[cold]
    fn wake_waiters(&self, state: u64, w: u32) {
        // Nothing else may change the state now.
        if self.state.load(Ordering::SeqCst) != state {
            panic!("sync: WaitGroup misuse: Add called concurrently with Wait");
        }
        self.state.store(0, Ordering::SeqCst);
        for _ in 0..w {
            semrelease(&self.sema, false);
        }
    }

    /// Decrements the counter by one.
    #[inline]
    pub fn done(&self) {
        self.add(-1)
    }

    /// Blocks until the counter is zero. From a goroutine it parks the
    /// goroutine; from a plain thread (e.g. `main`), the thread.
    ///
    /// # Panics
    /// `sync: WaitGroup is reused before previous Wait has returned`.
    pub fn wait(&self) {
        crate::loom::preempt_point();
        let mut state = self.state.load(Ordering::SeqCst);
        loop {
            if state >> 32 == 0 {
                return;
            }
            match self
                .state
                .compare_exchange(state, state + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    semacquire_with(&self.sema, false, WaitReason::SyncWaitGroupWait);
                    if self.state.load(Ordering::SeqCst) != 0 {
                        panic!("sync: WaitGroup is reused before previous Wait has returned");
                    }
                    return;
                }
                Err(cur) => state = cur,
            }
        }
    }

    /// Runs `f` in a new goroutine and adds it to the group (Go 1.25's
    /// `WaitGroup.Go`). The goroutine counts as done when `f` returns, panics
    /// or calls goexit.
    #[cfg(not(gort_loom))]
    pub fn go<F>(&'static self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.add(1);
        drop(gort_sched::go(move || {
            let _done = Done(self);
            f()
        }));
    }

    /// Like [`WaitGroup::go`] for a group shared through an `Arc`.
    #[cfg(not(gort_loom))]
    pub fn go_arc<F>(self: &std::sync::Arc<Self>, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.add(1);
        let wg = self.clone();
        drop(gort_sched::go(move || {
            let _done = Done(&wg);
            f()
        }));
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls `done` when dropped (also on panic and goexit).
#[cfg(not(gort_loom))]
struct Done<'a>(&'a WaitGroup);

#[cfg(not(gort_loom))]
impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::SeqCst);
        f.debug_struct("WaitGroup")
            .field("counter", &((s >> 32) as i32))
            .field("waiters", &(s as u32))
            .finish()
    }
}
