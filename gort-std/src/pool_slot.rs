//! [`PrivateSlot`]: the per-P private slot of a `Pool` shard (Go's
//! `poolLocalInternal.private`), with the one-bit lock that lets a
//! collection empty it while goroutines run (see `pool.rs`). Compiled under
//! loom too: `src/tests/loom_pool.rs` models a P's puts and gets racing
//! with a cleanup.

use crate::loom::{yield_now, AtomicBool, Ordering, UnsafeCell};

/// One value and its lock bit.
pub(crate) struct PrivateSlot<T> {
    /// Set (a compare-exchange, Acquire) by the P's goroutine around a take or a store, which
    /// never waits for it, and by a cleanup, which waits; cleared (Release)
    /// by whoever set it.
    held: AtomicBool,
    /// Only touched while holding `held`.
    v: UnsafeCell<Option<T>>,
}

// SAFETY: `v` is only accessed while holding `held` (Acquire/Release, so
// the accesses are ordered); values move between threads, so T: Send.
unsafe impl<T: Send> Sync for PrivateSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for PrivateSlot<T> {}

impl<T> PrivateSlot<T> {
    /// An empty slot.
    pub(crate) fn new() -> Self {
        PrivateSlot {
            held: AtomicBool::new(false),
            v: UnsafeCell::new(None),
        }
    }

    /// Runs `f` on the slot if its lock is free now; `None` if someone
    /// holds it (the P's goroutine: a cache may miss rather than wait).
    /// `f` must not run user code (it runs with the lock held).
    #[inline]
    pub(crate) fn try_with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> Option<R> {
        // Acquire pairs with the Release store below (of the last holder):
        // its writes to `v` are visible. A failed attempt writes nothing.
        if self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: we hold `held`, which gives exclusive access to `v`.
        let r = unsafe { self.v.with_mut(f) };
        // Release: our writes to `v` are visible to the next holder.
        self.held.store(false, Ordering::Release);
        Some(r)
    }

    /// Takes the value, waiting for the lock (a cleanup: the holder is a
    /// get or put a few instructions from releasing it).
    #[cold]
    pub(crate) fn take_wait(&self) -> Option<T> {
        let mut spins = 0u32;
        loop {
            if let Some(v) = self.try_with(Option::take) {
                return v;
            }
            spins += 1;
            if spins < 64 && cfg!(not(gort_loom)) {
                std::hint::spin_loop();
            } else {
                // The holder's thread may be descheduled: let it run.
                yield_now();
            }
        }
    }
}
