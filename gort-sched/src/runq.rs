//! A P's local run queue: Go's `runqput` / `runqget` / `runqsteal`.
//!
//! A fixed ring of [`RUNQ_SIZE`] slots plus a `runnext` slot. The owner (the M
//! holding the P) is the only producer: it writes slots and publishes them by
//! a Release store of `tail`. Consumers — the owner and thieves — claim slots
//! by CAS on `head`. A thief copies up to half of the victim's queue into its
//! own ring *before* claiming them with one CAS, so a failed CAS costs nothing
//! but the copy. When the ring is full the owner moves half of it (plus the
//! new entry) out in one batch for the global queue (`runqputslow`).
//!
//! `runnext` holds the entry that should run next (Go puts a just-spawned or
//! just-readied G there for locality). The owner sets it by swap; anyone may
//! take it by CAS.
//!
//! Entries are raw pointers; the queue never dereferences them.
//!
//! # Invariants
//! * `tail - head <= RUNQ_SIZE` (wrapping arithmetic on u32).
//! * Slots in `[head, tail)` hold published entries; only the owner writes
//!   slots, and only outside `[head, tail)`.

use crate::loom::{AtomicPtr, AtomicU32, Ordering, RUNQ_SIZE};
use crossbeam_utils::CachePadded;
use std::ptr;

pub(crate) struct RunQueue<T> {
    /// Next slot to consume. CAS by the owner and thieves.
    head: CachePadded<AtomicU32>,
    /// Next slot to fill. Stored (Release) only by the owner.
    tail: CachePadded<AtomicU32>,
    /// The entry to run next, or null. Swapped by the owner, CAS by anyone.
    runnext: CachePadded<AtomicPtr<T>>,
    /// Slots. Written by the owner (and by a thief into its *own* ring),
    /// read by consumers; published through `tail`.
    buf: Box<[AtomicPtr<T>]>,
}

// SAFETY: the queue only moves raw pointers between threads; it never
// dereferences them. What they point at is the user's to make Send.
unsafe impl<T> Send for RunQueue<T> {}
// SAFETY: every shared field is atomic; see the module invariants.
unsafe impl<T> Sync for RunQueue<T> {}

const MASK: u32 = RUNQ_SIZE as u32 - 1;

impl<T> RunQueue<T> {
    pub(crate) fn new() -> Self {
        RunQueue {
            head: CachePadded::new(AtomicU32::new(0)),
            tail: CachePadded::new(AtomicU32::new(0)),
            runnext: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            buf: (0..RUNQ_SIZE)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
        }
    }

    /// Owner only. Queues `g` at the tail, or in `runnext` when `next` (the old
    /// `runnext`, if any, then goes to the tail). When the ring is full,
    /// returns half of it plus the entry as a batch for the global queue.
    #[inline]
    pub(crate) fn put(&self, mut g: *mut T, next: bool) -> Result<(), Vec<*mut T>> {
        if next {
            // AcqRel pairs with take_runnext's CAS (only the owner stores
            // non-null). SeqCst: the spawner then loads npidle (wakep), an
            // M dropping its P stores npidle and then re-checks every queue
            // (`len`, SeqCst loads): a Dekker pair, so one of them sees the
            // other (tests/loom_idle.rs, the bug-2 model; the same `xchg`
            // on x86 and `swpal` on AArch64 as AcqRel).
            let old = self.runnext.swap(g, Ordering::SeqCst);
            if old.is_null() {
                return Ok(());
            }
            g = old;
        }
        loop {
            // Acquire pairs with consumers' Release CAS on head: after it we
            // may overwrite the slots they consumed.
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Relaxed);
            if t.wrapping_sub(h) < RUNQ_SIZE as u32 {
                self.buf[(t & MASK) as usize].store(g, Ordering::Relaxed);
                // Release publishes the slot to consumers (their Acquire of tail).
                self.tail.store(t.wrapping_add(1), Ordering::Release);
                return Ok(());
            }
            if let Some(batch) = self.put_slow(g, h, t) {
                return Err(batch);
            }
            // A thief moved head meanwhile: the ring has room now.
        }
    }

    #[cold]
    fn put_slow(&self, g: *mut T, h: u32, t: u32) -> Option<Vec<*mut T>> {
        let n = t.wrapping_sub(h) / 2;
        debug_assert_eq!(n as usize, RUNQ_SIZE / 2);
        let mut batch = Vec::with_capacity(n as usize + 1);
        for i in 0..n {
            batch.push(self.buf[(h.wrapping_add(i) & MASK) as usize].load(Ordering::Relaxed));
        }
        // Release pairs with the owner's Acquire of head in put (it may reuse
        // these slots); claims the batch against thieves.
        if self
            .head
            .compare_exchange(h, h.wrapping_add(n), Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        batch.push(g);
        Some(batch)
    }

    /// Owner only. Takes the next entry: `runnext` first, then the head.
    /// The flag says whether it came from `runnext`.
    #[inline]
    pub(crate) fn get(&self) -> Option<(*mut T, bool)> {
        let next = self.take_runnext();
        if !next.is_null() {
            return Some((next, true));
        }
        loop {
            // Acquire pairs with the Release CAS of other consumers.
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Relaxed);
            if t == h {
                return None;
            }
            let g = self.buf[(h & MASK) as usize].load(Ordering::Relaxed);
            // Release: we are done reading the slot before it can be reused.
            if self
                .head
                .compare_exchange(h, h.wrapping_add(1), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return Some((g, false));
            }
        }
    }

    fn take_runnext(&self) -> *mut T {
        let mut next = self.runnext.load(Ordering::Acquire);
        while !next.is_null() {
            // AcqRel pairs with the owner's swap in put.
            match self.runnext.compare_exchange_weak(
                next,
                ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return next,
                Err(cur) => next = cur,
            }
        }
        ptr::null_mut()
    }

    /// Thief: moves about half of `self`'s entries into `dst` (which the
    /// caller owns) and returns one of them to run. Takes `runnext` only when
    /// `steal_runnext` and the ring is empty.
    pub(crate) fn steal_into(&self, dst: &RunQueue<T>, steal_runnext: bool) -> Option<*mut T> {
        let t = dst.tail.load(Ordering::Relaxed);
        let n = self.grab(dst, t, steal_runnext);
        if n == 0 {
            return None;
        }
        let n = n - 1;
        let g = dst.buf[(t.wrapping_add(n) & MASK) as usize].load(Ordering::Relaxed);
        if n == 0 {
            return Some(g);
        }
        let h = dst.head.load(Ordering::Acquire);
        debug_assert!(t.wrapping_sub(h).wrapping_add(n) < RUNQ_SIZE as u32);
        // Release publishes the copied slots to consumers of dst.
        dst.tail.store(t.wrapping_add(n), Ordering::Release);
        Some(g)
    }

    /// Copies up to half of `self` into `dst`'s ring starting at `dst_tail`
    /// and claims them; returns how many (Go's runqgrab).
    fn grab(&self, dst: &RunQueue<T>, dst_tail: u32, steal_runnext: bool) -> u32 {
        loop {
            // Acquire on both: head pairs with other consumers' CAS, tail with
            // the owner's Release store that published the slots.
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let mut n = t.wrapping_sub(h);
            n -= n / 2;
            if n == 0 {
                if steal_runnext {
                    let next = self.take_runnext();
                    if !next.is_null() {
                        dst.buf[(dst_tail & MASK) as usize].store(next, Ordering::Relaxed);
                        return 1;
                    }
                }
                return 0;
            }
            if n > RUNQ_SIZE as u32 / 2 {
                continue; // read an inconsistent h/t pair; retry
            }
            for i in 0..n {
                let g = self.buf[(h.wrapping_add(i) & MASK) as usize].load(Ordering::Relaxed);
                dst.buf[(dst_tail.wrapping_add(i) & MASK) as usize].store(g, Ordering::Relaxed);
            }
            // Release: our reads of the slots happen before the owner may
            // overwrite them (pairs with its Acquire of head in put).
            if self
                .head
                .compare_exchange(h, h.wrapping_add(n), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return n;
            }
        }
    }

    /// Entries queued (a racy snapshot, including `runnext`). SeqCst: the
    /// re-check side of the spawner/idle-M pair (see `put`); plain loads on
    /// x86 and AArch64 alike.
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        let h = self.head.load(Ordering::SeqCst);
        let t = self.tail.load(Ordering::SeqCst);
        let n = t.wrapping_sub(h).min(RUNQ_SIZE as u32) as usize;
        n + usize::from(!self.runnext.load(Ordering::SeqCst).is_null())
    }

    /// Whether empty (racy snapshot).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
