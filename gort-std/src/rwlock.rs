//! `RwLock<T>` and `RawRwLock`: Go's sync.RWMutex (sync/rwmutex.go), with
//! per-P reader counts.
//!
//! Go semantics, kept: writer preference — once a writer waits, new readers
//! queue behind it, so a stream of readers cannot starve writers — and the
//! readers that queued behind a writer all get in when it unlocks, before
//! the next writer. Misuse (unlocking an unlocked lock) panics as in Go.
//!
//! What differs is where readers count themselves. Go's readers all
//! `fetch_add` one shared word, so readers on different Ps fight over its
//! cache line even though they never exclude each other. Here a reader
//! counts itself in a *slot*, which keeps two counters that only grow,
//! locks and unlocks; a writer waits until the sums match.
//!
//! * [`RwLock::read`] counts on the lock's own slot (`home`) until its
//!   readers have changed P often (8 times within 1 ms), then on one
//!   cache-padded slot per P (allocated once, at most `MAX_SLOTS`); the
//!   guard remembers its slot and releases the hold there, wherever its
//!   goroutine runs by then.
//! * [`RawRwLock::read_lock`] always counts on `home`: any goroutine may
//!   release such a hold ([`RawRwLock::read_unlock`]), as in Go, and
//!   `home`'s own counts catch an unlock without a hold.
//! * A reader adds to its slot's `locks`, then looks at `state`: no writer,
//!   it is in (no write shared with readers of other Ps). A writer there:
//!   it backs out (`unlocks` += 1) and queues behind the writer.
//! * A writer takes `w` (one writer at a time), announces itself in `state`
//!   (new readers back out from then on), then waits until the slots drain:
//!   the sum of `unlocks` equals the sum of `locks`. It reads every
//!   `unlocks` before every `locks`, so each unlock it counts has its lock
//!   counted too, and equal sums mean no reader is inside. (All SeqCst: a
//!   reader either sees the writer's announcement, or its `locks` increment
//!   is in the writer's sums — the Dekker pairing.)
//! * A writer that finds readers inside sleeps on `writer_sem` after
//!   raising `drain_waiter`; every release looks at that flag and the one
//!   that takes it wakes the writer, which sums again.
//! * On unlock the writer counts the readers queued behind it as holders
//!   (adds them to `home`'s locks; they release there) before waking them,
//!   so the next writer waits for them: Go's hand-off.

use crate::loom::{
    loom_const_fn, nanotime, seqcst_pair, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64,
    Ordering,
};
use crate::mutex::RawMutex;
use crossbeam_utils::CachePadded;
use gort_sched::WaitReason;
use gort_sema::{semacquire_with, semrelease};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// `state` while a writer is pending or inside, plus the readers queued
/// behind it.
const WRITER: i32 = -(1 << 30);

/// Most per-P slots a lock allocates (Ps beyond share): a bound on the
/// memory of a lock read from many Ps (each slot is cache-padded, 128 B on
/// x86-64). A power of two.
pub(crate) const MAX_SLOTS: usize = 8;

/// Guard readers seen switching P this many times within
/// `SPREAD_WINDOW_NS` before the per-P slots are allocated: a lock read
/// from one P at a time, or only now and then, never pays for them.
#[cfg(not(gort_loom))]
const SPREAD_AFTER: u32 = 8;
#[cfg(not(gort_loom))]
const SPREAD_WINDOW_NS: i64 = 1_000_000;
/// (Under loom: once readers came from both model Ps, so that the models
/// cover `home` and the slots together.)
#[cfg(gort_loom)]
const SPREAD_AFTER: u32 = 2;
#[cfg(gort_loom)]
const SPREAD_WINDOW_NS: i64 = 1 << 62; // (longer than any model runs)

/// Counts of read holds taken and released on one slot. Both only grow.
pub(crate) struct Slot {
    locks: AtomicU64,
    unlocks: AtomicU64,
}

impl Slot {
    loom_const_fn! {
        fn new() -> Slot {
            Slot {
                locks: AtomicU64::new(0),
                unlocks: AtomicU64::new(0),
            }
        }
    }
}

/// The per-P slots, allocated once per lock.
struct Slots {
    slots: Box<[CachePadded<Slot>]>,
}

/// A reader/writer lock without data, with Go's `RLock`/`RUnlock`/`Lock`/
/// `Unlock` semantics (misuse panics).
pub struct RawRwLock {
    /// Serialises writers.
    w: RawMutex,
    /// 0, or `WRITER` + the readers queued behind the pending or active
    /// writer.
    state: AtomicI32,
    /// 1 while the writer sleeps on `writer_sem` until the readers drain.
    drain_waiter: AtomicU32,
    /// The writer sleeps here until the readers inside have left.
    writer_sem: AtomicU32,
    /// Readers queue here behind a writer.
    reader_sem: AtomicU32,
    /// The lock's own slot: raw holds, guard holds until `slots` exists,
    /// and the readers a writer let in.
    home: Slot,
    /// 1 + the P of the last reader on `home` (0: none yet).
    last_p: AtomicU32,
    /// How often guard readers on `home` found a different P than the
    /// last, since `window`.
    switches: AtomicU32,
    /// When the current count of `switches` began (ns).
    window: AtomicI64,
    /// The per-P slots once guard readers changed P often; never removed
    /// until the lock drops.
    slots: AtomicPtr<Slots>,
}

impl Default for RawRwLock {
    fn default() -> RawRwLock {
        RawRwLock::new()
    }
}

impl RawRwLock {
    loom_const_fn! {
        /// An unlocked lock.
        pub fn new() -> RawRwLock {
            RawRwLock {
                w: RawMutex::new(),
                state: AtomicI32::new(0),
                drain_waiter: AtomicU32::new(0),
                writer_sem: AtomicU32::new(0),
                reader_sem: AtomicU32::new(0),
                home: Slot::new(),
                last_p: AtomicU32::new(0),
                switches: AtomicU32::new(0),
                window: AtomicI64::new(0),
                slots: AtomicPtr::new(std::ptr::null_mut()),
            }
        }
    }

    /// The slot for a guard's reader on the calling P: `home` until the
    /// lock spreads, then the P's own.
    #[inline]
    pub(crate) fn slot(&self) -> &Slot {
        let p = crate::loom::proc_pin();
        let slots = self.slots.load(Ordering::Acquire);
        if !slots.is_null() {
            // SAFETY: once published, `slots` stays allocated until the lock
            // drops, which cannot happen while `&self` lives.
            let s = unsafe { &(*slots).slots };
            // (A power of two: Ps beyond share by mask.)
            return &s[p.unwrap_or(0) & (s.len() - 1)];
        }
        if let Some(p) = p {
            let p1 = p as u32 + 1;
            if self.last_p.load(Ordering::Relaxed) != p1 {
                return self.switched(p1);
            }
        }
        &self.home
    }

    /// A guard reader on `home` from another P than the last: after
    /// `SPREAD_AFTER` such switches within `SPREAD_WINDOW_NS`, allocate the
    /// per-P slots (one per P at that moment, a power of two).
    #[cold]
    fn switched(&self, p1: u32) -> &Slot {
        self.last_p.store(p1, Ordering::Relaxed);
        let now = nanotime();
        if now.wrapping_sub(self.window.load(Ordering::Relaxed)) > SPREAD_WINDOW_NS {
            self.window.store(now, Ordering::Relaxed);
            self.switches.store(1, Ordering::Relaxed);
            return &self.home;
        }
        if self.switches.fetch_add(1, Ordering::Relaxed) + 1 < SPREAD_AFTER {
            return &self.home;
        }
        let n = crate::loom::gomaxprocs()
            .clamp(1, MAX_SLOTS)
            .next_power_of_two();
        let fresh = Box::into_raw(Box::new(Slots {
            slots: (0..n).map(|_| CachePadded::new(Slot::new())).collect(),
        }));
        // SeqCst: a writer's load of `slots` after announcing itself must
        // see this if a reader used these slots without seeing the writer.
        if let Err(_other) = self.slots.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` lost the race and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
        self.slot()
    }

    /// Every slot in use, `home` first.
    fn for_each_slot(&self, mut f: impl FnMut(&Slot)) {
        f(&self.home);
        let slots = self.slots.load(Ordering::SeqCst);
        if !slots.is_null() {
            // SAFETY: as in `slot`.
            for s in unsafe { (*slots).slots.iter() } {
                f(s);
            }
        }
    }

    /// The sums of every slot's (unlocks, locks), unlocks read first: each
    /// unlock counted has its lock counted too, so equal sums mean no reader
    /// is inside.
    fn sums(&self) -> (u64, u64) {
        let mut unlocks = 0u64;
        self.for_each_slot(|s| unlocks = unlocks.wrapping_add(s.unlocks.load(Ordering::SeqCst)));
        let mut locks = 0u64;
        self.for_each_slot(|s| locks = locks.wrapping_add(s.locks.load(Ordering::SeqCst)));
        (unlocks, locks)
    }

    /// Whether no reader is inside.
    fn drained(&self) -> bool {
        let (unlocks, locks) = self.sums();
        unlocks == locks
    }

    /// Ends one read hold (or a reader's backing out) on `s`, waking a
    /// writer that waits for the readers to drain.
    #[inline]
    pub(crate) fn leave(&self, s: &Slot) {
        s.unlocks.fetch_add(1, Ordering::SeqCst);
        seqcst_pair();
        if self.drain_waiter.load(Ordering::SeqCst) != 0 {
            self.wake_writer();
        }
    }

    #[cold]
    fn wake_writer(&self) {
        if self.drain_waiter.swap(0, Ordering::SeqCst) == 1 {
            semrelease(&self.writer_sem, false);
        }
    }

    /// Locks for reading; blocks while a writer holds or waits for it.
    ///
    /// The hold is counted on the lock's own slot, like Go's single reader
    /// count, so that any goroutine may release it with
    /// [`RawRwLock::read_unlock`]; [`RwLock::read`]'s guards count on
    /// per-P slots instead (no shared write between readers of different
    /// Ps).
    #[inline]
    pub fn read_lock(&self) {
        self.lock_on(&self.home);
    }

    /// Takes a read hold counted on `s` (or, if it had to queue behind a
    /// writer, on `home`, where that writer counted it); returns the slot
    /// that counts it, where it must be released.
    #[inline]
    pub(crate) fn lock_on<'a>(&'a self, s: &'a Slot) -> &'a Slot {
        crate::loom::preempt_point();
        if self.try_lock_on(s) {
            return s;
        }
        self.lock_slow(s)
    }

    /// A writer is pending or inside: queue behind it.
    #[cold]
    fn lock_slow<'a>(&'a self, s: &'a Slot) -> &'a Slot {
        loop {
            let st = self.state.load(Ordering::SeqCst);
            if st == 0 {
                // The writer left meanwhile: try again as a reader.
                if self.try_lock_on(s) {
                    return s;
                }
                continue;
            }
            // (Go's limit: 2^30 - 1 readers queued behind one writer.)
            if self
                .state
                .compare_exchange(st, st + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                // Queued: the writer counts this hold on `home` when it
                // unlocks.
                semacquire_with(&self.reader_sem, false, WaitReason::SyncRwLockRead);
                return &self.home;
            }
        }
    }

    /// Locks for reading if no writer holds or waits for it.
    pub fn try_read_lock(&self) -> bool {
        self.try_lock_on(&self.home)
    }

    /// Takes a read hold counted on `s` if no writer holds or waits.
    #[inline]
    fn try_lock_on(&self, s: &Slot) -> bool {
        // A writer already there: do not touch the counts (backing out
        // would wake it for nothing). Only readers racing its announcement
        // back out.
        if self.state.load(Ordering::Relaxed) != 0 {
            return false;
        }
        s.locks.fetch_add(1, Ordering::SeqCst);
        seqcst_pair();
        if self.state.load(Ordering::SeqCst) == 0 {
            return true;
        }
        self.leave(s);
        false
    }

    /// Unlocks one reader.
    ///
    /// ```
    /// let l = gort_std::RawRwLock::new();
    /// l.read_lock();
    /// // SAFETY: we took this read hold just above; nobody else relies on it.
    /// unsafe { l.read_unlock() };
    /// ```
    ///
    /// Safe code cannot release a read hold behind a guard's back:
    ///
    /// ```compile_fail,E0133
    /// let l = gort_std::RawRwLock::new();
    /// l.read_lock();
    /// l.read_unlock(); // error: call to unsafe function
    /// ```
    ///
    /// # Safety
    /// The caller owns the raw read hold it releases: it was taken with
    /// [`RawRwLock::read_lock`] or a successful [`RawRwLock::try_read_lock`]
    /// (by the caller, or by a goroutine that handed it over), and nobody
    /// relies on it any more. Releasing someone else's read hold can let a
    /// writer in while that reader still reads (for an [`RwLock`], a
    /// `&mut T` beside a `&T`). A hold taken through [`RwLock::read`] is not
    /// a raw hold: only its guard releases it (a guard passed to
    /// `mem::forget` keeps the lock read-locked, as std's does).
    ///
    /// # Panics
    /// `sync: RUnlock of unlocked RWMutex` when no hold counted on the
    /// lock's own slot is live — raw holds, and the guards taken before the
    /// lock spread to per-P slots or let in behind a writer — in particular
    /// whenever nobody holds the lock for reading (Go's check). A misused
    /// unlock that finds such a hold takes it, as in Go.
    #[inline]
    pub unsafe fn read_unlock(&self) {
        let home = &self.home;
        let mut unlocks = home.unlocks.load(Ordering::SeqCst);
        loop {
            // Every unlock counted on `home` follows its lock there (raw
            // holds, readers backing out, guards counted there, and the
            // readers a writer let in), so as many unlocks as locks means no
            // hold here to release. Never counting past the locks keeps a
            // misuse from cancelling someone's hold in the writer's sums.
            if unlocks >= home.locks.load(Ordering::SeqCst) {
                panic!("sync: RUnlock of unlocked RWMutex");
            }
            match home.unlocks.compare_exchange_weak(
                unlocks,
                unlocks + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => unlocks = now,
            }
        }
        seqcst_pair();
        if self.drain_waiter.load(Ordering::SeqCst) != 0 {
            self.wake_writer();
        }
    }

    /// Locks for writing.
    pub fn write_lock(&self) {
        self.w.lock(); // (a preemption point)
        self.announce();
        while !self.drained() {
            self.drain_waiter.store(1, Ordering::SeqCst);
            seqcst_pair();
            if self.drained() {
                if self.drain_waiter.swap(0, Ordering::SeqCst) == 0 {
                    // A leaving reader took the flag and is waking us:
                    // take that wake-up so it does not linger.
                    semacquire_with(&self.writer_sem, false, WaitReason::SyncRwLockWrite);
                }
                return;
            }
            semacquire_with(&self.writer_sem, false, WaitReason::SyncRwLockWrite);
        }
    }

    /// Under `w`: new readers back out and queue from now on.
    fn announce(&self) {
        let was = self.state.swap(WRITER, Ordering::SeqCst);
        seqcst_pair();
        debug_assert_eq!(was, 0, "a second writer announced itself");
    }

    /// Locks for writing if nobody holds it.
    pub fn try_write_lock(&self) -> bool {
        // Readers inside: fail without announcing (which would turn readers
        // arriving meanwhile away). Go's TryLock never disturbs readers;
        // here only those racing the announcement below can be.
        if !self.drained() || !self.w.try_lock() {
            return false;
        }
        self.announce();
        if self.drained() {
            return true;
        }
        // SAFETY: we took the write hold just above (`w` and the
        // announcement) and give it back before anyone relies on it; this
        // also lets in the readers that queued meanwhile.
        unsafe { self.write_unlock() };
        false
    }

    /// Unlocks the writer and lets the readers that queued behind it in.
    ///
    /// ```
    /// let l = gort_std::RawRwLock::new();
    /// l.write_lock();
    /// // SAFETY: we took the write hold just above; nobody else relies on it.
    /// unsafe { l.write_unlock() };
    /// ```
    ///
    /// ```compile_fail,E0133
    /// let l = gort_std::RawRwLock::new();
    /// l.write_lock();
    /// l.write_unlock(); // error: call to unsafe function
    /// ```
    ///
    /// # Safety
    /// The caller owns the write hold it releases: it took it (with
    /// [`RawRwLock::write_lock`] or a successful
    /// [`RawRwLock::try_write_lock`]) or the writer handed it over, and
    /// nobody relies on it any more — in particular no [`RwLockWriteGuard`]
    /// for it is live. Releasing someone else's write hold lets readers or
    /// another writer in beside that writer (for an [`RwLock`], a second
    /// reference beside a live `&mut T`).
    ///
    /// # Panics
    /// `sync: Unlock of unlocked RWMutex` if no writer holds it (Go's misuse
    /// check, kept: it catches a broken contract when no one else uses the
    /// lock at that moment).
    pub unsafe fn write_unlock(&self) {
        let st = self.state.swap(0, Ordering::SeqCst);
        if st == 0 {
            panic!("sync: Unlock of unlocked RWMutex");
        }
        // The readers queued behind us hold the lock from now on: count
        // them on `home` (where they release) before the next writer, which
        // needs `w`, can sum.
        let queued = (st - WRITER) as u32;
        if queued > 0 {
            self.home
                .locks
                .fetch_add(u64::from(queued), Ordering::SeqCst);
            for _ in 0..queued {
                semrelease(&self.reader_sem, false);
            }
        }
        // SAFETY: the caller owns the write hold (our contract), which
        // includes `w`, taken by `write_lock`/`try_write_lock`.
        unsafe { self.w.unlock() };
    }
}

impl Drop for RawRwLock {
    fn drop(&mut self) {
        let slots = self.slots.load(Ordering::Acquire);
        if !slots.is_null() {
            // SAFETY: allocated by `switched` with Box::into_raw and
            // published once; we are its only owner now.
            drop(unsafe { Box::from_raw(slots) });
        }
    }
}

impl fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unlocks, locks) = self.sums();
        f.debug_struct("RawRwLock")
            .field("readers", &locks.wrapping_sub(unlocks))
            .field("writer", &(self.state.load(Ordering::Relaxed) != 0))
            .finish()
    }
}

/// A reader/writer lock protecting a `T` (Go's sync.RWMutex with guards).
#[derive(Default)]
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: as std's RwLock: &mut T to one writer, &T to many readers.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above; readers share &T, so T must be Sync.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    loom_const_fn! {
        /// A new unlocked lock.
        pub fn new(value: T) -> RwLock<T> {
            RwLock {
                raw: RawRwLock::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the lock, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access; blocks while a writer holds or waits for the lock.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            slot: self.raw.lock_on(self.raw.slot()),
            l: self,
            _not_send: PhantomData,
        }
    }

    /// Shared access if no writer holds or waits for the lock.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let slot = self.raw.slot();
        self.raw.try_lock_on(slot).then(|| RwLockReadGuard {
            l: self,
            slot,
            _not_send: PhantomData,
        })
    }

    /// Exclusive access.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.raw.write_lock();
        RwLockWriteGuard {
            l: self,
            _not_send: PhantomData,
        }
    }

    /// Exclusive access if the lock is free.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.raw.try_write_lock().then(|| RwLockWriteGuard {
            l: self,
            _not_send: PhantomData,
        })
    }

    /// Mutable access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The underlying lock (Go-style `RLock`/`RUnlock` beside the guards).
    /// Its [`RawRwLock::read_unlock`] and [`RawRwLock::write_unlock`] are
    /// `unsafe`: only the owner of a hold may release it, and a live guard
    /// owns its hold.
    pub fn raw(&self) -> &RawRwLock {
        &self.raw
    }
}

impl<T: ?Sized> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").field("raw", &self.raw).finish()
    }
}

/// Shared access to an [`RwLock`]; unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    l: &'a RwLock<T>,
    /// The slot that counts this hold.
    slot: &'a Slot,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a read guard shares &T.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold a read lock: no writer is inside.
        unsafe { &*self.l.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        // The guard owns the read hold, counted on `slot`, and nobody relies
        // on it after this.
        self.l.raw.leave(self.slot);
    }
}

/// Exclusive access to an [`RwLock`]; unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    l: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a write guard shares &T.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the write lock.
        unsafe { &*self.l.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the write lock, exclusively.
        unsafe { &mut *self.l.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard was built from a successful write lock and owns
        // that hold; it is dropping, so nobody relies on it after.
        unsafe { self.l.raw.write_unlock() };
    }
}
