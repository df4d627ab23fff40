//! [`PrivateSlot`]: the per-P private slot of a `Pool` shard (Go's
//! `poolLocalInternal.private`), and [`Sweeps`], the handshake that lets a
//! collection empty every slot while goroutines run (see `pool.rs`).
//! Compiled under loom too: `src/tests/loom_pool.rs` models a P's puts and
//! gets racing with a cleanup.
//!
//! The slot's owner (the goroutine running on its P) announces an access
//! with a plain store to `busy` and a [`light`] fence, then checks whether
//! a sweep is on; a sweep raises its flag, runs a [`heavy`] fence, and
//! waits for each slot's `busy` to fall before it takes the value (a
//! Dekker handshake: at least one side sees the other). The owner pays no
//! atomic read-modify-write: a locked instruction costs 7-8 ns on the VM
//! gort is measured on, and a put and a get were two of them.

use crate::loom::{yield_now, AtomicBool, Ordering, StdMutex, StdMutexGuard, UnsafeCell};
use gort_os::barrier::{heavy, light};

/// One value and its owner's busy flag.
pub(crate) struct PrivateSlot<T> {
    /// True while the owner looks at `v` (raised Relaxed, fenced by
    /// [`light`]; cleared with Release). A sweep waits for it to fall.
    busy: AtomicBool,
    /// Touched by the owner between raising `busy` and clearing it, having
    /// found no sweep on; by a sweep once it saw `busy` down.
    v: UnsafeCell<Option<T>>,
}

// SAFETY: `v` is accessed either by the one owner (see `try_with`'s
// contract) while no sweep is on, or by the one sweep (`Sweeps::begin`
// serialises them) once the owner is out; the busy/sweep handshake orders
// the two (see the module doc). Values move between threads, so T: Send.
unsafe impl<T: Send> Sync for PrivateSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for PrivateSlot<T> {}

impl<T> PrivateSlot<T> {
    /// An empty slot.
    pub(crate) fn new() -> Self {
        PrivateSlot {
            busy: AtomicBool::new(false),
            v: UnsafeCell::new(None),
        }
    }

    /// Runs `f` on the slot unless a sweep of `sweeps` is on (then `None`:
    /// a cache may miss rather than wait). `f` must not run user code and
    /// must not switch goroutines.
    ///
    /// # Safety
    /// No other thread calls `try_with` on this slot meanwhile: the caller
    /// is the goroutine running on the slot's P (an M holds one P at a
    /// time, and nothing here parks or yields). Every sweep that may empty
    /// this slot goes through `sweeps`.
    #[inline]
    pub(crate) unsafe fn try_with<R>(
        &self,
        sweeps: &Sweeps,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> Option<R> {
        self.busy.store(true, Ordering::Relaxed);
        // Our `busy` store before our load of `on`, against the sweep's
        // heavy fence between its store of `on` and its load of `busy`.
        light();
        // Acquire pairs with `Sweep::drop`'s Release: a finished sweep's
        // take of `v` is visible.
        if sweeps.on.load(Ordering::Acquire) {
            // `v` untouched; Release anyway, so that the sweep's Acquire
            // load still synchronises with our last access of `v` (a
            // Relaxed store would end that release sequence).
            self.busy.store(false, Ordering::Release);
            return None;
        }
        // SAFETY: we are the only owner (the contract), and the sweep that
        // could touch `v` sees `busy` up and waits (the handshake).
        let r = unsafe { self.v.with_mut(f) };
        // Release: a sweep that sees `busy` down sees our writes to `v`.
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    /// Takes the value during a sweep, waiting out an owner inside
    /// `try_with` (a few instructions from clearing `busy`).
    #[cold]
    pub(crate) fn take(&self, sweep: &Sweep<'_>) -> Option<T> {
        debug_assert!(
            sweep.sweeps.on.load(Ordering::Relaxed),
            "a sweep in progress: `on` is up"
        );
        let mut spins = 0u32;
        // Acquire pairs with `try_with`'s Release store of `busy`.
        while self.busy.load(Ordering::Acquire) {
            spins += 1;
            if spins < 64 && cfg!(not(gort_loom)) {
                std::hint::spin_loop();
            } else {
                // The owner's thread may be descheduled: let it run.
                yield_now();
            }
        }
        // SAFETY: a sweep is on (the `Sweep` borrow; sweeps are serialised)
        // and the heavy fence in `begin` came before our load of `busy`:
        // the owner either finished (its writes visible through `busy`) or
        // will find `on` up and not touch `v` until the sweep ends.
        unsafe { self.v.with_mut(Option::take) }
    }
}

/// The sweeps' side of the handshake: one flag for every slot it covers
/// (all pools share one), up for the length of a sweep, and a lock that
/// lets one sweep run at a time. Go stops the world for poolCleanup
/// instead.
pub(crate) struct Sweeps {
    on: AtomicBool,
    one_at_a_time: StdMutex<()>,
}

impl Sweeps {
    #[cfg(not(gort_loom))]
    pub(crate) const fn new() -> Self {
        Sweeps {
            on: AtomicBool::new(false),
            one_at_a_time: StdMutex::new(()),
        }
    }

    /// (loom's atomics and mutexes are not `const`.)
    #[cfg(gort_loom)]
    pub(crate) fn new() -> Self {
        Sweeps {
            on: AtomicBool::new(false),
            one_at_a_time: StdMutex::new(()),
        }
    }

    /// Starts a sweep: from now until the returned guard drops, owners
    /// keep off their slots, and [`PrivateSlot::take`] may empty them.
    pub(crate) fn begin(&self) -> Sweep<'_> {
        let guard = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        self.on.store(true, Ordering::Relaxed);
        // Our store of `on` before our loads of `busy`, against each
        // owner's light fence (see the module doc).
        heavy();
        Sweep {
            sweeps: self,
            _one: guard,
        }
    }
}

/// A sweep in progress (see [`Sweeps::begin`]).
pub(crate) struct Sweep<'a> {
    sweeps: &'a Sweeps,
    _one: StdMutexGuard<'a, ()>,
}

impl Drop for Sweep<'_> {
    fn drop(&mut self) {
        // Release: owners that see `on` down see our takes.
        self.sweeps.on.store(false, Ordering::Release);
    }
}
