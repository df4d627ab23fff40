//! `Sudog`s (Go's name: a pseudo-G waiting on a channel) and the channel
//! wait queues that hold them.
//!
//! A sudog is one blocked channel operation: the owner's [`Waiter`], a slot
//! for the value (a sender's value waiting to be taken, or the place a
//! receiver gets one), how the operation ended, and — for `select` — a link
//! to the flag that lets only one case win. Sudogs live on the heap, never
//! on the blocked goroutine's stack: a waker writes into them while the
//! owner is parked, and a parked goroutine's stack may be compacted away
//! (gort-sched's `compact_when_parked`). Each thread keeps a small free list
//! of them, so a blocking operation does not allocate (Go: per-P sudog
//! caches). Values up to [`INLINE`] bytes (align ≤ 8) sit inside the sudog;
//! larger ones get a heap block for the duration of the operation.

use crate::loom::{AtomicU32, Ordering, Waiter};
use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr;

/// The operation is still waiting.
pub(crate) const PENDING: u8 = 0;
/// A value was handed over (sent, or received into `elem`).
pub(crate) const OK: u8 = 1;
/// Woken because the channel was closed.
pub(crate) const CLOSED: u8 = 2;
/// A sender woken because every receiver is gone (its value is still in `elem`).
pub(crate) const DISCONNECTED: u8 = 3;

/// Bytes of value storage inside a sudog.
pub(crate) const INLINE: usize = 32;

pub(crate) struct Sudog {
    /// Wait-queue links. Written under the lock of the channel whose queue
    /// holds this sudog; null when not queued.
    pub(crate) next: *mut Sudog,
    pub(crate) prev: *mut Sudog,
    /// The parked owner's waiter. Set by the owner before it queues the
    /// sudog; taken by the waker that dequeues it (under the channel lock),
    /// which readies it after unlocking.
    pub(crate) waiter: Option<Waiter>,
    /// The value slot: `store` or a heap block. Written by the owner before
    /// queueing; read/written by the waker under the channel lock; read by
    /// the owner after it is readied.
    pub(crate) elem: *mut u8,
    /// How the operation ended (`PENDING`/`OK`/`CLOSED`/`DISCONNECTED`);
    /// written by the waker before it readies the owner.
    pub(crate) result: u8,
    /// For a `select` case: the select's "a case has won" flag (in the
    /// select's first sudog). Null for a plain send or receive. A waker
    /// that dequeues a select sudog must win a CAS 0 -> 1 on it first.
    pub(crate) sel_done: *const AtomicU32,
    /// The flag `sel_done` points at, when this is a select's first sudog.
    pub(crate) done: AtomicU32,
    /// Owner-only: the value in `elem` is live and owned by the owner (a
    /// select's unsent value or received value); dropped with `drop_elem`.
    pub(crate) live: bool,
    /// Owner-only: drops the value in `elem` in place.
    pub(crate) drop_elem: Option<unsafe fn(*mut u8)>,
    /// Owner-only: `elem` is a heap block of this layout (else `store`).
    heap: Option<Layout>,
    store: [MaybeUninit<u64>; INLINE / 8],
}

impl Sudog {
    fn new() -> Box<Sudog> {
        Box::new(Sudog {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            waiter: None,
            elem: ptr::null_mut(),
            result: PENDING,
            sel_done: ptr::null(),
            done: AtomicU32::new(0),
            live: false,
            drop_elem: None,
            heap: None,
            store: [MaybeUninit::uninit(); INLINE / 8],
        })
    }

    /// A sudog with a slot for a `T`, from this thread's cache.
    pub(crate) fn acquire<T>() -> *mut Sudog {
        let sg = cache::pop().unwrap_or_else(|| Box::into_raw(Sudog::new()));
        // SAFETY: `sg` is ours alone: fresh, or just taken off the free list.
        let s = unsafe { &mut *sg };
        debug_assert!(s.next.is_null() && s.prev.is_null() && s.waiter.is_none());
        let layout = Layout::new::<T>();
        if layout.size() <= INLINE && layout.align() <= 8 {
            s.elem = s.store.as_mut_ptr().cast();
        } else {
            // SAFETY: the layout is non-zero-sized (larger than INLINE).
            let p = unsafe { std::alloc::alloc(layout) };
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            s.elem = p;
            s.heap = Some(layout);
        }
        s.drop_elem = Some(drop_elem::<T>);
        sg
    }

    /// Returns a sudog taken with [`Sudog::acquire`] to this thread's cache,
    /// dropping a live value if the owner left one.
    ///
    /// # Safety
    /// `sg` came from `acquire`, is not queued on any channel, and nobody
    /// else will touch it (its waker, if any, has readied the owner).
    pub(crate) unsafe fn release(sg: *mut Sudog) {
        // SAFETY: exclusive per the contract.
        let s = unsafe { &mut *sg };
        if s.live {
            if let Some(d) = s.drop_elem {
                // SAFETY: `live` says `elem` holds an initialised value we own.
                unsafe { d(s.elem) };
            }
        }
        if let Some(layout) = s.heap.take() {
            // SAFETY: allocated in `acquire` with this layout.
            unsafe { std::alloc::dealloc(s.elem, layout) };
        }
        s.live = false;
        s.drop_elem = None;
        s.elem = ptr::null_mut();
        s.waiter = None;
        s.result = PENDING;
        s.sel_done = ptr::null();
        s.next = ptr::null_mut();
        s.prev = ptr::null_mut();
        cache::push(sg);
    }

    /// Whether a waker may complete this operation: always for a plain one;
    /// for a select case only if it is the first to claim its select.
    #[inline]
    fn claim(&self) -> bool {
        // SAFETY: `sel_done` points into a sudog of the same select, which
        // lives until that select has removed all its sudogs from their
        // queues — and this one is (was, a moment ago) still queued.
        self.sel_done.is_null()
            || unsafe { &*self.sel_done }
                // AcqRel: orders this claim against the other wakers racing
                // for the same select (the loser sees the winner's claim).
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

unsafe fn drop_elem<T>(p: *mut u8) {
    // SAFETY: the caller says `p` holds a live `T`.
    unsafe { ptr::drop_in_place(p.cast::<T>()) }
}

/// A channel's FIFO queue of blocked senders or receivers (Go's `waitq`).
/// Protected by the channel's lock.
pub(crate) struct WaitQ {
    first: *mut Sudog,
    last: *mut Sudog,
}

impl WaitQ {
    pub(crate) const fn new() -> WaitQ {
        WaitQ {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// Queued sudogs a waker could still complete: all but the cases of
    /// selects that another case already won (they wait here to be
    /// skipped or removed). Walks the queue: for diagnostics only.
    pub(crate) fn waiting(&self) -> usize {
        let mut n = 0;
        let mut sg = self.first;
        while !sg.is_null() {
            // SAFETY: queued sudogs are valid (see `enqueue`), and so is
            // the select flag a queued case points at (it lives in a sudog
            // of the same select, released only after every case is
            // dequeued).
            unsafe {
                // Relaxed: a snapshot, ordered by nothing.
                let won =
                    !(*sg).sel_done.is_null() && (*(*sg).sel_done).load(Ordering::Relaxed) != 0;
                if !won {
                    n += 1;
                }
                sg = (*sg).next;
            }
        }
        n
    }

    /// Appends `sg`.
    ///
    /// # Safety
    /// `sg` is valid and not queued anywhere.
    pub(crate) unsafe fn enqueue(&mut self, sg: *mut Sudog) {
        // SAFETY: queued sudogs are valid while queued (their owners are
        // parked and remove them before freeing); `sg` is valid per contract.
        unsafe {
            (*sg).next = ptr::null_mut();
            (*sg).prev = self.last;
            if self.last.is_null() {
                self.first = sg;
            } else {
                (*self.last).next = sg;
            }
        }
        self.last = sg;
    }

    /// Removes and returns the first sudog a waker may complete, skipping
    /// (and dropping from the queue) select cases whose select another case
    /// already won.
    pub(crate) fn dequeue(&mut self) -> Option<*mut Sudog> {
        loop {
            let sg = self.first;
            if sg.is_null() {
                return None;
            }
            // SAFETY: queued sudogs are valid (see `enqueue`).
            unsafe {
                self.first = (*sg).next;
                if self.first.is_null() {
                    self.last = ptr::null_mut();
                } else {
                    (*self.first).prev = ptr::null_mut();
                }
                (*sg).next = ptr::null_mut();
                (*sg).prev = ptr::null_mut();
                if (*sg).claim() {
                    return Some(sg);
                }
            }
        }
    }

    /// Removes `sg` if it is still queued here (Go's `dequeueSudoG`): a
    /// select cleaning up its losing cases, some of which a waker may have
    /// already dropped from the queue.
    ///
    /// # Safety
    /// `sg` is valid, and is either in this queue or in none.
    pub(crate) unsafe fn remove(&mut self, sg: *mut Sudog) {
        // SAFETY: `sg` and its neighbours are valid queued sudogs.
        unsafe {
            let (x, y) = ((*sg).prev, (*sg).next);
            if !x.is_null() {
                if !y.is_null() {
                    (*x).next = y;
                    (*y).prev = x;
                } else {
                    (*x).next = ptr::null_mut();
                    self.last = x;
                }
            } else if !y.is_null() {
                (*y).prev = ptr::null_mut();
                self.first = y;
            } else if self.first == sg {
                self.first = ptr::null_mut();
                self.last = ptr::null_mut();
            } else {
                return; // not queued (a waker dropped it)
            }
            (*sg).next = ptr::null_mut();
            (*sg).prev = ptr::null_mut();
        }
    }

    /// Takes every sudog a waker may complete, marks each with `result`, and
    /// chains them through `next` for [`WaitQ::ready_all`] (close, and the
    /// last receiver leaving).
    pub(crate) fn drain(&mut self, result: u8, chain: &mut *mut Sudog) {
        while let Some(sg) = self.dequeue() {
            // SAFETY: dequeued and claimed: ours until we ready its owner.
            unsafe {
                (*sg).result = result;
                (*sg).next = *chain;
            }
            *chain = sg;
        }
    }

    /// Readies every sudog chained by [`WaitQ::drain`]. Call after
    /// unlocking the channel.
    ///
    /// # Safety
    /// `chain` came from `drain`; nothing else touches these sudogs.
    pub(crate) unsafe fn ready_all(mut chain: *mut Sudog) {
        while !chain.is_null() {
            // SAFETY: the owner stays parked (and the sudog valid) until we
            // ready it; read everything we need before that.
            let w = unsafe {
                let sg = chain;
                chain = (*sg).next;
                (*sg).next = ptr::null_mut();
                (*sg).waiter.take()
            };
            if let Some(w) = w {
                w.ready();
            }
        }
    }
}

/// The per-thread free list of sudogs. A bound goroutine never changes
/// thread, so the sudog it takes returns to the same list (one that opted in
/// to migration may return it to another thread's list: harmless). Under loom every sudog
/// is fresh (a cache would carry state between executions).
mod cache {
    use super::Sudog;

    #[cfg(not(gort_loom))]
    mod imp {
        use super::Sudog;
        use std::cell::Cell;
        use std::ptr;

        const MAX: usize = 128;

        pub(super) struct Cache {
            head: Cell<*mut Sudog>,
            len: Cell<usize>,
        }

        impl Drop for Cache {
            fn drop(&mut self) {
                let mut p = self.head.get();
                while !p.is_null() {
                    // SAFETY: cached sudogs are ours and came from Box.
                    let b = unsafe { Box::from_raw(p) };
                    p = b.next;
                }
            }
        }

        // Right across a park: a free list of unused sudogs, popped and
        // pushed in single steps; a sudog in use is owned by its goroutine,
        // not by the cache.
        thread_local! {
            pub(super) static CACHE: Cache = const {
                Cache { head: Cell::new(ptr::null_mut()), len: Cell::new(0) }
            };
        }

        pub(crate) fn pop() -> Option<*mut Sudog> {
            CACHE
                .try_with(|c| {
                    let p = c.head.get();
                    if p.is_null() {
                        return None;
                    }
                    // SAFETY: cached sudogs are valid and ours.
                    c.head.set(unsafe { (*p).next });
                    c.len.set(c.len.get() - 1);
                    // SAFETY: as above.
                    unsafe { (*p).next = ptr::null_mut() };
                    Some(p)
                })
                .ok()
                .flatten()
        }

        pub(crate) fn push(sg: *mut Sudog) {
            let kept = CACHE
                .try_with(|c| {
                    if c.len.get() >= MAX {
                        return false;
                    }
                    // SAFETY: `sg` is ours (released by its owner).
                    unsafe { (*sg).next = c.head.get() };
                    c.head.set(sg);
                    c.len.set(c.len.get() + 1);
                    true
                })
                .unwrap_or(false);
            if !kept {
                // SAFETY: `sg` came from Box and is ours.
                drop(unsafe { Box::from_raw(sg) });
            }
        }
    }

    #[cfg(gort_loom)]
    mod imp {
        use super::Sudog;

        pub(crate) fn pop() -> Option<*mut Sudog> {
            None
        }

        pub(crate) fn push(sg: *mut Sudog) {
            // SAFETY: `sg` came from Box and is ours.
            drop(unsafe { Box::from_raw(sg) });
        }
    }

    pub(super) fn pop() -> Option<*mut Sudog> {
        imp::pop()
    }

    pub(super) fn push(sg: *mut Sudog) {
        imp::push(sg)
    }
}
