//! `RwLock<T>` and `RawRwLock`: Go's sync.RWMutex (sync/rwmutex.go).
//!
//! Writer preference: once a writer waits, new readers block until it has
//! had its turn, so a stream of readers cannot starve writers. A reader
//! count that goes negative by `MAX_READERS` marks a pending writer; the
//! writer waits for the readers that were already inside (`reader_wait`),
//! and on unlock releases every reader that queued behind it.

use crate::mutex::RawMutex;
use gort_sched::WaitReason;
use gort_sema::{semacquire_with, semrelease};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

const MAX_READERS: i32 = 1 << 30;

/// A reader/writer lock without data, with Go's `RLock`/`RUnlock`/`Lock`/
/// `Unlock` semantics (misuse panics).
#[derive(Default)]
pub struct RawRwLock {
    /// Serialises writers.
    w: RawMutex,
    /// Writers wait here for the readers that were inside.
    writer_sem: AtomicU32,
    /// Readers wait here for a pending or active writer.
    reader_sem: AtomicU32,
    /// Readers inside or waiting, minus MAX_READERS while a writer is
    /// pending or active. SeqCst: the counts pair with each other.
    reader_count: AtomicI32,
    /// Readers the pending writer still waits for.
    reader_wait: AtomicI32,
}

impl RawRwLock {
    /// An unlocked lock.
    pub const fn new() -> RawRwLock {
        RawRwLock {
            w: RawMutex::new(),
            writer_sem: AtomicU32::new(0),
            reader_sem: AtomicU32::new(0),
            reader_count: AtomicI32::new(0),
            reader_wait: AtomicI32::new(0),
        }
    }

    /// Locks for reading; blocks while a writer holds or waits for it.
    #[inline]
    pub fn read_lock(&self) {
        crate::loom::preempt_point();
        if self.reader_count.fetch_add(1, Ordering::SeqCst) + 1 < 0 {
            // A writer is pending: wait for it.
            semacquire_with(&self.reader_sem, false, WaitReason::SyncRwLockRead);
        }
    }

    /// Locks for reading if no writer holds or waits for it.
    pub fn try_read_lock(&self) -> bool {
        let mut c = self.reader_count.load(Ordering::SeqCst);
        loop {
            if c < 0 {
                return false;
            }
            match self
                .reader_count
                .compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(cur) => c = cur,
            }
        }
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
    /// The caller owns the read hold it releases: it took it (with
    /// [`RawRwLock::read_lock`] or a successful [`RawRwLock::try_read_lock`])
    /// or a reader handed it over, and nobody relies on it any more — in
    /// particular no [`RwLockReadGuard`] for it is live. Releasing someone
    /// else's read hold can let a writer in while that reader still reads
    /// (for an [`RwLock`], a `&mut T` beside a `&T`).
    ///
    /// # Panics
    /// `sync: RUnlock of unlocked RWMutex` if no reader holds it (Go's
    /// misuse check, kept: it catches a broken contract when no one else
    /// uses the lock at that moment).
    #[inline]
    pub unsafe fn read_unlock(&self) {
        let r = self.reader_count.fetch_sub(1, Ordering::SeqCst) - 1;
        if r < 0 {
            self.read_unlock_slow(r);
        }
    }

    #[cold]
    fn read_unlock_slow(&self, r: i32) {
        if r + 1 == 0 || r + 1 == -MAX_READERS {
            self.reader_count.fetch_add(1, Ordering::SeqCst);
            panic!("sync: RUnlock of unlocked RWMutex");
        }
        // A writer is pending; the last reader it waits for lets it in.
        if self.reader_wait.fetch_sub(1, Ordering::SeqCst) - 1 == 0 {
            semrelease(&self.writer_sem, false);
        }
    }

    /// Locks for writing.
    pub fn write_lock(&self) {
        self.w.lock(); // (a preemption point)
                       // Announce the writer: new readers now block.
        let r = self.reader_count.fetch_sub(MAX_READERS, Ordering::SeqCst);
        // Wait for the readers that were inside.
        if r != 0 && self.reader_wait.fetch_add(r, Ordering::SeqCst) + r != 0 {
            semacquire_with(&self.writer_sem, false, WaitReason::SyncRwLockWrite);
        }
    }

    /// Locks for writing if nobody holds it.
    pub fn try_write_lock(&self) -> bool {
        if !self.w.try_lock() {
            return false;
        }
        if self
            .reader_count
            .compare_exchange(0, -MAX_READERS, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // SAFETY: we took `w` with the successful try_lock above and
            // give it back before anyone could rely on it.
            unsafe { self.w.unlock() };
            return false;
        }
        true
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
        let r = self.reader_count.fetch_add(MAX_READERS, Ordering::SeqCst) + MAX_READERS;
        if r >= MAX_READERS {
            self.reader_count.fetch_sub(MAX_READERS, Ordering::SeqCst);
            panic!("sync: Unlock of unlocked RWMutex");
        }
        for _ in 0..r {
            semrelease(&self.reader_sem, false);
        }
        // SAFETY: the caller owns the write hold (our contract), which
        // includes `w`, taken by `write_lock`/`try_write_lock`.
        unsafe { self.w.unlock() };
    }
}

impl fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRwLock")
            .field("reader_count", &self.reader_count.load(Ordering::Relaxed))
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
    /// A new unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
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
        self.raw.read_lock();
        RwLockReadGuard {
            l: self,
            _not_send: PhantomData,
        }
    }

    /// Shared access if no writer holds or waits for the lock.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.raw.try_read_lock().then(|| RwLockReadGuard {
            l: self,
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
        // SAFETY: the guard was built from a successful read lock and owns
        // that read hold; it is dropping, so nobody relies on it after.
        unsafe { self.l.raw.read_unlock() };
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
