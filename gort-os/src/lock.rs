//! [`RawLock`]: the runtime's own short-hold lock (Go's `runtime.mutex`,
//! lock_futex.go).
//!
//! It protects data structures that are held for a handful of instructions
//! and never across a park: a channel's buffer and wait queues, timer heaps.
//! A contended locker spins a little (the holder is almost certainly running
//! on another CPU and about to release), yields its time slice once, then
//! sleeps on a futex. It blocks the calling *thread*: a goroutine never parks
//! while holding one, so there is nothing to gain from parking the goroutine
//! and much to lose (a scheduler round trip per contended acquire).
//!
//! Rejected: `std::sync::Mutex` (it owns its data, so `select` could not lock
//! several channels of different element types and release them all from a
//! park's commit); a pure spin lock (a preempted holder would burn the other
//! CPUs' slices).
//!
//! # Invariants
//! `key` is `UNLOCKED`, `LOCKED` or `SLEEPING`; `SLEEPING` means the lock is
//! held and a thread may be asleep in `futex_wait` on it, so the unlocker
//! must wake one.

use crate::futex::{futex_wait, futex_wake};
use crate::loom::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const SLEEPING: u32 = 2;

/// A contended locker looks at the lock `SPIN_ROUNDS` times, `SPIN_PAUSES`
/// pauses apart, before yielding its time slice once and then sleeping.
#[cfg(not(gort_loom))]
const SPIN_ROUNDS: u32 = 2;
#[cfg(not(gort_loom))]
const SPIN_PAUSES: u32 = 200;

/// A futex-based mutual-exclusion lock without data (see the module docs).
///
/// Not reentrant. Unlocking is `unsafe`: only the holder may do it. A
/// contended locker blocks its OS thread, not its goroutine: never hold a
/// `RawLock` across a park (another goroutine of the same thread that wants
/// it would block the thread the holder needs to run on: a deadlock). It is
/// for short critical sections inside the runtime.
#[derive(Debug)]
pub struct RawLock {
    /// Written by lockers (CAS/swap) and the unlocker (swap to UNLOCKED).
    key: AtomicU32,
    /// Under loom: creation order, the lock-ordering key (see
    /// [`RawLock::order_key`]). Written once at creation.
    #[cfg(gort_loom)]
    seq: u64,
}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawLock {
    /// An unlocked lock.
    #[cfg(not(gort_loom))]
    pub const fn new() -> Self {
        RawLock {
            key: AtomicU32::new(UNLOCKED),
        }
    }

    /// An unlocked lock.
    #[cfg(gort_loom)]
    pub fn new() -> Self {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        RawLock {
            key: AtomicU32::new(UNLOCKED),
            seq: SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A total order for taking several of these locks (select locks its
    /// channels in this order): the lock's address — except under loom,
    /// where it is the creation order. Addresses of a model's objects can
    /// differ between loom's executions (the allocator is shared with other
    /// tests), which flipped the lock order between replays of the same
    /// schedule ("expected to be able to acquire lock"); creation order is
    /// the same in every execution.
    #[inline]
    pub fn order_key(&self) -> usize {
        #[cfg(not(gort_loom))]
        {
            self as *const RawLock as usize
        }
        #[cfg(gort_loom)]
        {
            self.seq as usize + 1
        }
    }

    /// Acquires the lock, spinning briefly and then sleeping the thread.
    #[inline]
    pub fn lock(&self) {
        // Acquire pairs with the Release swap in `unlock`.
        if self
            .key
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    /// Acquires the lock if it is free. A failed attempt still sees what
    /// was done before the last unlock (Acquire on failure too: the word it
    /// read is in that unlock's release sequence), so a caller may trust a
    /// flag the last holder cleared before unlocking (gort-timer's
    /// `try_run` reads `running` after a failed attempt; with a Relaxed
    /// failure, a weakly ordered CPU could show it still set and the
    /// caller skip a heap nobody runs).
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.key
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
    }

    #[cold]
    #[cfg_attr(gort_loom, allow(unused_assignments, unused_variables))]
    fn lock_slow(&self) {
        // Once we have slept, other sleepers may exist: keep SLEEPING so the
        // unlocker wakes one of them.
        let mut wait = LOCKED;
        loop {
            #[cfg(not(gort_loom))]
            {
                // Active spin while there is a CPU the holder could run on:
                // a few long rounds. Looking at the word often steals its
                // cache line from the holder and slows the release we wait
                // for (measured: 128 single-pause looks made select2 ~1.7x
                // slower; 2 x 200 pauses beat Go's 4 x 30 by ~1.5x on
                // chan_mpmc).
                if multicore() {
                    for _ in 0..SPIN_ROUNDS {
                        if self.try_take(wait) {
                            return;
                        }
                        for _ in 0..SPIN_PAUSES {
                            std::hint::spin_loop();
                        }
                    }
                }
                if self.try_take(wait) {
                    return;
                }
                std::thread::yield_now();
            }
            // Announce a sleeper. Acquire pairs with the Release in `unlock`.
            if self.key.swap(SLEEPING, Ordering::Acquire) == UNLOCKED {
                return;
            }
            wait = SLEEPING;
            futex_wait(&self.key, SLEEPING, None);
        }
    }

    #[cfg(not(gort_loom))]
    #[inline]
    fn try_take(&self, wait: u32) -> bool {
        self.key.load(Ordering::Relaxed) == UNLOCKED
            && self
                .key
                .compare_exchange(UNLOCKED, wait, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Releases the lock, waking one sleeper if there may be one.
    ///
    /// # Safety
    /// The calling thread holds the lock (it returned from [`RawLock::lock`]
    /// or a successful [`RawLock::try_lock`] and has not unlocked since).
    #[inline]
    pub unsafe fn unlock(&self) {
        // Release pairs with the Acquire CAS/swap of the next locker.
        let v = self.key.swap(UNLOCKED, Ordering::Release);
        debug_assert_ne!(v, UNLOCKED, "RawLock: unlock of unlocked lock");
        if v == SLEEPING {
            futex_wake(&self.key, 1);
        }
    }

    /// Whether the lock is held by someone (a racy snapshot, for assertions).
    pub fn is_locked(&self) -> bool {
        self.key.load(Ordering::Relaxed) != UNLOCKED
    }
}

/// Whether spinning can help: more than one CPU (cached; the affinity mask
/// is a system call away).
#[cfg(not(gort_loom))]
fn multicore() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
    static MULTI: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
    match MULTI.load(Relaxed) {
        0 => {
            let m = crate::cpu::num_cpu() > 1;
            MULTI.store(if m { 2 } else { 1 }, Relaxed);
            m
        }
        v => v == 2,
    }
}

#[cfg(all(test, not(gort_loom)))]
mod tests {
    use super::RawLock;
    use std::cell::UnsafeCell;
    use std::sync::Arc;

    struct Counter {
        lock: RawLock,
        n: UnsafeCell<u64>,
    }
    // SAFETY: `n` is only touched under `lock`.
    unsafe impl Sync for Counter {}

    #[test]
    fn excludes_under_contention() {
        let c = Arc::new(Counter {
            lock: RawLock::new(),
            n: UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        c.lock.lock();
                        // SAFETY: we hold the lock.
                        unsafe { *c.n.get() += 1 };
                        // SAFETY: we hold the lock.
                        unsafe { c.lock.unlock() };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: all writers joined.
        assert_eq!(unsafe { *c.n.get() }, 400_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let l = RawLock::new();
        assert!(l.try_lock());
        assert!(!l.try_lock());
        assert!(l.is_locked());
        // SAFETY: held.
        unsafe { l.unlock() };
        assert!(l.try_lock());
        // SAFETY: held.
        unsafe { l.unlock() };
    }
}
