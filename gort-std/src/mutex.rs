//! `Mutex<T>` and `RawMutex`: Go's sync.Mutex (internal/sync/mutex.go).
//!
//! One `i32` of state — locked bit, woken bit, starving bit, waiter count —
//! and a gort-sema semaphore for sleeping.
//!
//! * Fast path: one CAS, no call into the runtime when uncontended.
//! * Normal mode: waiters queue FIFO, but a woken waiter competes with
//!   newly arriving lockers (which are already running, so they usually
//!   win: good throughput). A woken waiter that loses goes back to the
//!   *front* of the queue. Lockers spin a few rounds first, only when that
//!   can help (`gort_sched::can_spin`: several Ps, another one running,
//!   nothing else to run here).
//! * Starvation mode: a waiter that waited more than 1 ms switches the
//!   mutex to direct hand-off: unlock passes ownership to the first waiter;
//!   newcomers neither spin nor barge, they queue at the tail. The mode ends
//!   when the last waiter takes the lock or one waited less than 1 ms.
//!
//! Like Go's (and parking_lot's) mutex there is no poisoning: a panic while
//! locked unlocks (the guard drops) and the data stays usable.

use crate::loom::{
    can_spin, do_spin, loom_const_fn, nanotime, AtomicI32, AtomicU32, Ordering, STARVATION_NS,
};
use gort_sema::{semacquire_mutex, semrelease};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

const LOCKED: i32 = 1;
const WOKEN: i32 = 2;
const STARVING: i32 = 4;
const WAITER_SHIFT: u32 = 3;

/// A mutual-exclusion lock without data, with Go's `Lock`/`Unlock`
/// semantics: any goroutine or thread may unlock it, and unlocking an
/// unlocked mutex panics.
pub struct RawMutex {
    /// LOCKED | WOKEN | STARVING | waiters << WAITER_SHIFT. All transitions
    /// are CAS or fetch_add with AcqRel: Acquire on taking the lock pairs with
    /// Release on unlocking it.
    state: AtomicI32,
    /// Semaphore the waiters sleep on (gort-sema).
    sema: AtomicU32,
}

impl RawMutex {
    loom_const_fn! {
        /// An unlocked mutex.
        pub fn new() -> RawMutex {
            RawMutex {
                state: AtomicI32::new(0),
                sema: AtomicU32::new(0),
            }
        }
    }

    /// Locks, parking the goroutine (or thread) while another holds it.
    #[inline]
    pub fn lock(&self) {
        crate::loom::preempt_point();
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.lock_slow();
    }

    /// Locks if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> bool {
        let old = self.state.load(Ordering::Relaxed);
        if old & (LOCKED | STARVING) != 0 {
            return false;
        }
        self.state
            .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether some goroutine or thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Waiters queued on the semaphore right now (not those about to
    /// queue): what the loom models wait for to fix the queue's order.
    #[cfg(all(test, gort_loom))]
    pub(crate) fn queued(&self) -> usize {
        gort_sema::semwaiters(&self.sema)
    }

    #[cold]
    fn lock_slow(&self) {
        let mut wait_start = 0i64;
        let mut starving = false;
        let mut awoke = false;
        let mut iter = 0u32;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin while locked (not starving) and spinning can help.
            if old & (LOCKED | STARVING) == LOCKED && can_spin(iter) {
                // Tell unlock not to wake anyone: we are awake already.
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                do_spin();
                iter += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // A starving mutex is handed off: newcomers must queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += 1 << WAITER_SHIFT;
            }
            // Switch to starvation mode, unless it is unlocked right now
            // (unlock expects a starving mutex to have waiters).
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                assert!(new & WOKEN != 0, "sync: inconsistent mutex state");
                new &= !WOKEN;
            }
            if self
                .state
                .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            if old & (LOCKED | STARVING) == 0 {
                return; // took the lock with the CAS
            }
            // Waited before: back to the front of the queue.
            let lifo = wait_start != 0;
            if wait_start == 0 {
                wait_start = nanotime();
            }
            semacquire_mutex(&self.sema, lifo);
            starving = starving || nanotime() - wait_start > STARVATION_NS;
            old = self.state.load(Ordering::Acquire);
            if old & STARVING != 0 {
                // Handed off to us: we own it, but the state still counts us
                // as a waiter and does not show it locked.
                assert!(
                    old & (LOCKED | WOKEN) == 0 && old >> WAITER_SHIFT != 0,
                    "sync: inconsistent mutex state"
                );
                let mut delta = LOCKED - (1 << WAITER_SHIFT);
                if !starving || old >> WAITER_SHIFT == 1 {
                    // Leave starvation mode: we are the last waiter, or we
                    // did not wait long.
                    delta -= STARVING;
                }
                self.state.fetch_add(delta, Ordering::Acquire);
                return;
            }
            awoke = true;
            iter = 0;
        }
    }

    /// Unlocks.
    ///
    /// Go lets any goroutine unlock a mutex, so the hold may have been
    /// taken by someone else and handed over; what matters is that the
    /// caller owns it now. A [`MutexGuard`] unlocks for you when it drops:
    /// prefer [`Mutex`].
    ///
    /// ```
    /// let m = gort_std::RawMutex::new();
    /// m.lock();
    /// // SAFETY: we locked it just above and nobody else relies on the hold.
    /// unsafe { m.unlock() };
    /// ```
    ///
    /// Safe code cannot release a lock behind a guard's back (that would
    /// let a second guard in while the first is live: two `&mut T`):
    ///
    /// ```compile_fail,E0133
    /// let m = gort_std::Mutex::new(vec![1]);
    /// let g = m.lock();
    /// m.raw().unlock(); // error: call to unsafe function
    /// let g2 = m.lock();
    /// ```
    ///
    /// # Safety
    /// The caller owns the hold it releases: it locked this mutex (with
    /// [`RawMutex::lock`] or a successful [`RawMutex::try_lock`]), or a
    /// holder handed that hold to it, and nobody else relies on it any more —
    /// in particular no [`MutexGuard`] for it is live. Releasing a hold
    /// someone else relies on lets a second party into the critical section
    /// while the first is still in it (for a [`Mutex`], two live `&mut T`).
    ///
    /// # Panics
    /// With `sync: unlock of unlocked mutex` if it is not locked (Go's
    /// misuse check, kept: it catches a broken contract when no one else
    /// uses the mutex at that moment; the state is left as it was).
    #[inline]
    pub unsafe fn unlock(&self) {
        // Release pairs with the Acquire of the next locker.
        let new = self.state.fetch_sub(LOCKED, Ordering::Release) - LOCKED;
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    #[cold]
    fn unlock_slow(&self, new: i32) {
        if (new + LOCKED) & LOCKED == 0 {
            // Undo, so the panic leaves the state as it was.
            self.state.fetch_add(LOCKED, Ordering::Relaxed);
            panic!("sync: unlock of unlocked mutex");
        }
        if new & STARVING != 0 {
            // Hand ownership to the first waiter and yield to it.
            semrelease(&self.sema, true);
            return;
        }
        let mut old = new;
        loop {
            // Nobody to wake, or someone is already awake/locked it, or it
            // turned starving (then the owner hands off): nothing to do.
            if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                return;
            }
            let next = (old - (1 << WAITER_SHIFT)) | WOKEN;
            match self
                .state
                .compare_exchange(old, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    semrelease(&self.sema, false);
                    return;
                }
                Err(cur) => old = cur,
            }
        }
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawMutex")
            .field("locked", &(s & LOCKED != 0))
            .field("starving", &(s & STARVING != 0))
            .field("waiters", &(s >> WAITER_SHIFT))
            .finish()
    }
}

/// A mutex protecting a `T`, with an RAII guard (Go's sync.Mutex, the Rust
/// way). Works from goroutines (parks the goroutine) and plain threads.
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out &mut T to one holder at a time, as std's.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    loom_const_fn! {
        /// A new unlocked mutex.
        pub fn new(value: T) -> Mutex<T> {
            Mutex {
                raw: RawMutex::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking while another holds it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard {
            m: self,
            _not_send: PhantomData,
        }
    }

    /// Locks if free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_lock().then(|| MutexGuard {
            m: self,
            _not_send: PhantomData,
        })
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The underlying lock (e.g. to ask [`RawMutex::is_locked`]). Its
    /// [`RawMutex::unlock`] is `unsafe`: only the owner of a hold may
    /// release it, and a live guard owns its hold.
    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(g) => f.debug_struct("Mutex").field("data", &&*g).finish(),
            None => f.write_str("Mutex { <locked> }"),
        }
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop.
///
/// `!Send` like std's guard. It may be held across blocking calls in a
/// goroutine: the goroutine never changes OS thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    m: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares &T.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.m
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the lock.
        unsafe { &*self.m.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock, exclusively.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard was built from a successful lock of this mutex
        // and owns that hold; it is dropping, so nobody relies on it after.
        unsafe { self.m.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
