//! `semacquire` / `semrelease`: Go's runtime semaphores (runtime/sema.go).
//!
//! Not a semaphore to hand out to users, but a sleep/wakeup primitive keyed by
//! the address of a `u32` counter, for the contended paths of sync types:
//! every sleep pairs with exactly one wake-up, even when the wake-up comes
//! first (the counter keeps it).
//!
//! Waiters queue in a fixed table of 251 cache-padded roots, chosen by the
//! counter's address; each root maps an address to its FIFO queue (Go keeps
//! a treap per root; a hash map gives the same O(1) per-address queues and
//! independence between addresses that share a root). A root's `nwait`
//! lets `semrelease` skip the lock when nobody waits.
//!
//! * FIFO by default; `lifo` queues at the head (sync.Mutex re-queues a
//!   waiter that already waited there, to keep its place).
//! * A woken waiter that loses the race for the count to a newcomer goes
//!   back to the *head* of the queue: it keeps its turn.
//! * `handoff`: the releaser takes the count on the woken waiter's behalf,
//!   so no newcomer can barge in (sync.Mutex's starvation mode), and yields
//!   to let it run.

use crate::loom::{
    fence, mutex_released, mutex_wait_start, park, AtomicU32, Mutex, Ordering, WaitReason, Waiter,
};
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::collections::{HashMap, VecDeque};

/// Roots in the table: a prime, so user address patterns spread out.
const SEM_TAB_SIZE: usize = 251;

/// One blocked acquirer. Heap-allocated (like Go's sudogs), never on the
/// acquirer's stack: other threads touch it while its owner is parked, and a
/// parked goroutine's stack may be compacted away.
struct Sudog {
    /// Written by the acquirer before it queues itself; taken by the
    /// releaser that dequeues it. Both under the root lock.
    waiter: UnsafeCell<Option<Waiter>>,
    /// 1 when the releaser handed the count to this waiter. Written by the
    /// releaser before it readies the waiter (Release), read by the waiter
    /// after it wakes (Acquire; the park/ready handshake orders it too).
    ticket: AtomicU32,
    /// When a Mutex/RwLock waiter began waiting, or was last charged for,
    /// while the mutex profile is on (nanotime; 0: not profiled). Written
    /// before queueing, then read and moved forward by releasers under the
    /// root lock (Go's `acquiretime`). Not modelled under loom (always 0).
    acquiretime: std::sync::atomic::AtomicI64,
}

/// Queued sudogs, as raw pointers to the acquirers' boxed records.
struct Queues(HashMap<usize, VecDeque<*const Sudog>>);

// SAFETY: the pointers are only dereferenced under the root lock (or by the
// releaser that removed one, before readying its owner), while the owner is
// parked and its stack frame alive.
unsafe impl Send for Queues {}

struct Root {
    queues: Mutex<Queues>,
    /// Waiters in this root. Incremented under the lock before the final
    /// check of the counter; read without the lock by releasers (SeqCst: a
    /// Dekker pair with the counter).
    nwait: AtomicU32,
}

/// The address-keyed wait queues. The process has one ([`semacquire`]);
/// loom models make their own.
pub(crate) struct SemaTable {
    roots: Box<[CachePadded<Root>]>,
}

impl SemaTable {
    pub(crate) fn new() -> SemaTable {
        SemaTable {
            roots: (0..SEM_TAB_SIZE)
                .map(|_| {
                    CachePadded::new(Root {
                        queues: Mutex::new(Queues(HashMap::new())),
                        nwait: AtomicU32::new(0),
                    })
                })
                .collect(),
        }
    }

    fn root(&self, addr: usize) -> &Root {
        &self.roots[(addr >> 3) % SEM_TAB_SIZE]
    }

    /// Waits until `*sema > 0`, then decrements it.
    pub(crate) fn acquire(&self, sema: &AtomicU32, lifo: bool, reason: WaitReason) {
        if can_acquire(sema) {
            return;
        }
        self.acquire_slow(sema, lifo, reason)
    }

    #[cold]
    fn acquire_slow(&self, sema: &AtomicU32, mut lifo: bool, reason: WaitReason) {
        let addr = sema as *const AtomicU32 as usize;
        let root = self.root(addr);
        let acquiretime = mutex_wait_start(reason);
        let s = Box::new(Sudog {
            waiter: UnsafeCell::new(None),
            ticket: AtomicU32::new(0),
            acquiretime: std::sync::atomic::AtomicI64::new(acquiretime),
        });
        let sp: *const Sudog = &*s;
        loop {
            let mut q = root.queues.lock().unwrap_or_else(|e| e.into_inner());
            // Count ourselves before the last look at the counter: a release
            // that misses us in nwait must have raised the counter first.
            root.nwait.fetch_add(1, Ordering::SeqCst);
            // Store-load ordering with semrelease's fence (a Dekker pair):
            // either we see its count, or it sees our nwait.
            fence(Ordering::SeqCst);
            if can_acquire(sema) {
                root.nwait.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            // SAFETY: under the root lock; nobody else holds `s` yet.
            unsafe { *s.waiter.get() = Some(Waiter::current()) };
            let list = q.0.entry(addr).or_default();
            if lifo {
                list.push_front(sp);
            } else {
                list.push_back(sp);
            }
            park(reason, move || {
                drop(q);
                true
            });
            // Acquire pairs with the releaser's Release store.
            if s.ticket.load(Ordering::Acquire) == 1 || can_acquire(sema) {
                return;
            }
            // Woken, but a newcomer took the count: keep our turn.
            lifo = true;
        }
    }

    /// Waiters queued on `sema` now (a snapshot under the root lock).
    pub(crate) fn waiters(&self, sema: &AtomicU32) -> usize {
        let addr = sema as *const AtomicU32 as usize;
        let q = self
            .root(addr)
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.0.get(&addr).map_or(0, VecDeque::len)
    }

    /// Increments `*sema` and wakes one waiter, if any. With `handoff`, the
    /// count goes straight to that waiter. Returns whether it was handed off.
    pub(crate) fn release(&self, sema: &AtomicU32, handoff: bool) -> bool {
        let addr = sema as *const AtomicU32 as usize;
        let root = self.root(addr);
        sema.fetch_add(1, Ordering::SeqCst);
        // Pairs with the acquirer's fence between its nwait increment and
        // its look at the counter.
        fence(Ordering::SeqCst);
        if root.nwait.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut q = root.queues.lock().unwrap_or_else(|e| e.into_inner());
        if root.nwait.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let Some(list) = q.0.get_mut(&addr) else {
            return false; // the waiters are on other addresses of this root
        };
        let s = list.pop_front().expect("empty queues are removed");
        // SAFETY: queued sudogs stay alive while queued (we hold the lock).
        let (head_start, tail_start) = unsafe { charge_waits(s, list) };
        let others = list.len();
        if list.is_empty() {
            q.0.remove(&addr);
        }
        root.nwait.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: `s` was queued by an acquirer that stays parked until we
        // ready it below; we took it off the queue under the lock.
        let w = unsafe { (*(*s).waiter.get()).take() }.expect("queued sudog has a waiter");
        drop(q);
        let handed = handoff && can_acquire(sema);
        if handed {
            // SAFETY: as above; the owner is still parked.
            unsafe { (*s).ticket.store(1, Ordering::Release) };
        }
        w.ready(); // `s` may be gone from here on
        if head_start != 0 {
            // Charged to this (the unlocker's) stack, after the lock.
            mutex_released(head_start, tail_start, others);
        }
        handed
    }
}

/// For the mutex profile, under the root lock: the dequeued waiter's wait
/// start and the queue's tail's, each waiter still queued at the head or
/// tail moved forward to now -- so the next release charges only the time
/// since (Go's `dequeue` resets the same two, which keeps the O(1) head/tail
/// approximation from charging one wait many times). (0, 0) when the
/// waiter was not stamped.
///
/// # Safety
/// `s` was just dequeued from `list`, whose sudogs are alive (the caller
/// holds the root lock and every queued owner is parked).
unsafe fn charge_waits(s: *const Sudog, list: &VecDeque<*const Sudog>) -> (i64, i64) {
    use std::sync::atomic::Ordering::Relaxed;
    // SAFETY: forwarded.
    let head_start = unsafe { (*s).acquiretime.load(Relaxed) };
    if head_start == 0 {
        return (0, 0);
    }
    // (The clock, while the profile is still on.)
    let now = crate::loom::mutex_wait_start(WaitReason::SyncMutexLock);
    // SAFETY: forwarded (queued sudogs are alive).
    unsafe {
        let tail_start = list.back().map_or(0, |&t| (*t).acquiretime.load(Relaxed));
        for w in [list.front(), list.back()].into_iter().flatten() {
            if (**w).acquiretime.load(Relaxed) != 0 && now != 0 {
                (**w).acquiretime.store(now, Relaxed);
            }
        }
        (head_start, tail_start)
    }
}

/// Takes one from the counter if it is positive.
#[inline]
fn can_acquire(sema: &AtomicU32) -> bool {
    let mut v = sema.load(Ordering::SeqCst);
    loop {
        if v == 0 {
            return false;
        }
        match sema.compare_exchange_weak(v, v - 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(cur) => v = cur,
        }
    }
}

mod global {
    use super::SemaTable;
    use crate::loom::{AtomicU32, WaitReason};

    #[cfg(not(gort_loom))]
    fn table() -> &'static SemaTable {
        static T: std::sync::OnceLock<SemaTable> = std::sync::OnceLock::new();
        T.get_or_init(SemaTable::new)
    }

    // Under loom the table must be fresh for every explored execution.
    #[cfg(gort_loom)]
    fn table() -> &'static SemaTable {
        loom::lazy_static! {
            static ref T: SemaTable = SemaTable::new();
        }
        &T
    }

    /// Waits until `*sema > 0`, then atomically decrements it (Go's
    /// `runtime_Semacquire`). Parks the goroutine, or the thread if called
    /// from a plain thread.
    #[inline]
    pub fn semacquire(sema: &AtomicU32) {
        table().acquire(sema, false, WaitReason::SemAcquire)
    }

    /// Like [`semacquire`]; with `lifo` the caller queues at the head (Go's
    /// `runtime_SemacquireMutex`: a waiter that already waited keeps its
    /// place). A goroutine waiting here shows as `sync.Mutex.Lock` in dumps.
    #[inline]
    pub fn semacquire_mutex(sema: &AtomicU32, lifo: bool) {
        table().acquire(sema, lifo, WaitReason::SyncMutexLock)
    }

    /// Like [`semacquire_mutex`], with the wait reason goroutine dumps show
    /// (Go's `semacquire1` with its `reason`: `sync.RWMutex.RLock`,
    /// `sync.WaitGroup.Wait`, ...).
    #[inline]
    pub fn semacquire_with(sema: &AtomicU32, lifo: bool, reason: WaitReason) {
        table().acquire(sema, lifo, reason)
    }

    /// Atomically increments `*sema` and wakes one goroutine or thread
    /// blocked on it (Go's `runtime_Semrelease`). With `handoff` the count
    /// passes directly to the first waiter and the caller yields so that it
    /// runs soon.
    #[inline]
    ///
    /// No yield while the thread unwinds (a guard dropped by a panic or
    /// `goexit`): another goroutine of this thread would run while std's
    /// per-thread panic state is set, and see `panicking() == true`.
    pub fn semrelease(sema: &AtomicU32, handoff: bool) {
        if table().release(sema, handoff) && !std::thread::panicking() {
            crate::loom::yield_now();
        }
    }

    /// How many goroutines or threads are queued on `sema` right now: a
    /// snapshot taken under the queue's lock, for tests and diagnostics.
    /// A waiter counts from the moment it is queued (its place in the
    /// order is fixed and the next [`semrelease`] will find it, even if it
    /// has not finished parking yet) until a release dequeues it.
    pub fn semwaiters(sema: &AtomicU32) -> usize {
        table().waiters(sema)
    }
}

pub use global::{semacquire, semacquire_mutex, semacquire_with, semrelease, semwaiters};
