//! One timer heap (Go's per-P `timers`): a 4-ary min-heap of entries keyed
//! by their deadline, behind a short-hold [`RawLock`].
//!
//! Entries belong to one heap for life (the one of the P that created them),
//! so every operation on an entry locks that heap and nothing else. Due
//! entries are run *under the heap lock*: a callback is a few instructions
//! (ready a waiter, try a channel send, spawn a goroutine), and running it
//! there makes `stop` exact: once `stop` returns, the callback is neither
//! running nor going to run (Go 1.23's "no stale values" rests on this).
//! Callbacks must therefore not block, park or touch timers — the contract
//! of the `unsafe` `RawTimer::new_unchecked`; the safe `RawTimer::new`
//! gives the heap a callback that only spawns a goroutine. A callback that
//! panics anyway ends the process ([`callback_panicked`]): unwinding out of
//! `run` would leave the heap locked and every later timer hung.
//! One-shot entries that fired are handed back to the caller of `run`,
//! which drops them after the lock is released, so their callbacks'
//! captures never drop under it.

use crate::loom::{AtomicI64, Ordering};
use gort_os::cell::UnsafeCell;
use gort_os::lock::RawLock;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A heap callback; its argument says whether the timer is periodic (the
/// safe `RawTimer` skips a tick while the previous one still runs).
pub(crate) type Callback = Box<dyn FnMut(bool) + Send>;

/// A timer callback panicked: Go treats a panic in a timer function as
/// fatal, and so does gort (unwinding on would kill the M, and from under
/// the heap lock, leave every later timer hung). std's panic hook has
/// already printed the panic and its location.
#[cold]
pub(crate) fn callback_panicked(p: Box<dyn Any + Send>) -> ! {
    let msg = p
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    gort_os::fatal(&format!("panic in a timer callback: {msg}"))
}

/// `EntrySt::idx` of an entry not in its heap.
const NOT_QUEUED: usize = usize::MAX;

/// A timer: its deadline, period and callback.
pub(crate) struct Entry {
    /// The heap this entry lives in (fixed).
    pub(crate) heap: usize,
    /// Whether the callback holds user code (the safe `RawTimer::new`):
    /// then the entry must not be freed on an M's scheduler stack (fixed).
    pub(crate) user: bool,
    /// Protected by that heap's lock.
    st: UnsafeCell<EntrySt>,
}

struct EntrySt {
    /// 0 for a one-shot timer.
    period: i64,
    /// Position in the heap's vector, or NOT_QUEUED.
    idx: usize,
    f: Callback,
}

// SAFETY: the mutable state is only touched under the heap lock; the
// callback is Send.
unsafe impl Sync for Entry {}
// SAFETY: as above.
unsafe impl Send for Entry {}

impl Entry {
    pub(crate) fn new(heap: usize, user: bool, f: Callback) -> Arc<Entry> {
        Arc::new(Entry {
            heap,
            user,
            st: UnsafeCell::new(EntrySt {
                period: 0,
                idx: NOT_QUEUED,
                f,
            }),
        })
    }
}

/// A 4-ary min-heap of timers.
pub(crate) struct Heap {
    lock: RawLock,
    /// The earliest deadline here (i64::MAX when empty): written under the
    /// lock, read without it by pollers deciding whether to lock.
    min: AtomicI64,
    v: UnsafeCell<Vec<(i64, Arc<Entry>)>>,
}

// SAFETY: the vector (and the entries' state) is only touched under `lock`.
unsafe impl Sync for Heap {}
// SAFETY: as above.
unsafe impl Send for Heap {}

impl Heap {
    pub(crate) fn new() -> Heap {
        Heap {
            lock: RawLock::new(),
            min: AtomicI64::new(i64::MAX),
            v: UnsafeCell::new(Vec::new()),
        }
    }

    /// Timers armed in this heap (a snapshot under the lock).
    pub(crate) fn len(&self) -> usize {
        self.lock.lock();
        // SAFETY: we hold the lock that protects the vector.
        let n = unsafe { self.v.with_mut(|v| v.len()) };
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        n
    }

    /// The earliest deadline (a snapshot).
    #[inline]
    pub(crate) fn min(&self) -> i64 {
        // Acquire pairs with the Release stores under the lock, so a poller
        // that sees a due deadline also sees the entry when it locks.
        self.min.load(Ordering::Acquire)
    }

    /// Arms `e` (of this heap) for `when`, repeating every `period` ns if
    /// non-zero. Returns whether it was armed before, and whether `when` is
    /// now the heap's earliest deadline (the caller tells the scheduler).
    pub(crate) fn reset(&self, e: &Arc<Entry>, when: i64, period: i64) -> (bool, bool) {
        self.lock.lock();
        // SAFETY: we hold the lock that protects both cells.
        let r = unsafe {
            self.v.with_mut(|v| {
                let (was, i) = e.st.with_mut(|st| {
                    let was = st.idx != NOT_QUEUED;
                    st.period = period;
                    if !was {
                        st.idx = v.len();
                    }
                    (was, st.idx)
                });
                if was {
                    v[i].0 = when;
                    sift_down(v, i);
                    sift_up(v, i);
                } else {
                    v.push((when, e.clone()));
                    sift_up(v, i);
                }
                was
            })
        };
        let first = self.publish_min() == when;
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        (r, first)
    }

    /// Disarms `e`. Returns whether it was armed (Go's Stop result). When
    /// this returns, `e`'s callback is not running and will not run.
    pub(crate) fn stop(&self, e: &Arc<Entry>) -> bool {
        self.lock.lock();
        // SAFETY: we hold the lock.
        let was = unsafe {
            self.v.with_mut(|v| {
                let i =
                    e.st.with_mut(|st| std::mem::replace(&mut st.idx, NOT_QUEUED));
                if i == NOT_QUEUED {
                    return false;
                }
                remove_at(v, i);
                true
            })
        };
        self.publish_min();
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        was
    }

    /// Runs every entry due at `now` (re-arming periodic ones); returns the
    /// new earliest deadline. The one-shot entries that fired are pushed to
    /// `fired`, for the caller to drop after the lock is released (a
    /// detached timer's last reference may be that one, and its callback's
    /// captures must not drop under the lock).
    pub(crate) fn run(&self, now: i64, fired: &mut Vec<Arc<Entry>>) -> i64 {
        self.lock.lock();
        loop {
            // SAFETY: we hold the lock.
            let due = unsafe {
                self.v.with_mut(|v| {
                    let (when, e) = match v.first() {
                        Some((w, e)) if *w <= now => (*w, e.clone()),
                        _ => return None,
                    };
                    let period = e.st.with_mut(|st| st.period);
                    if period > 0 {
                        // Next tick after now; missed ticks are dropped.
                        let next =
                            when.saturating_add(period.saturating_mul(1 + (now - when) / period));
                        v[0].0 = next;
                        sift_down(v, 0);
                    } else {
                        e.st.with_mut(|st| st.idx = NOT_QUEUED);
                        remove_at(v, 0);
                    }
                    Some((e, period > 0))
                })
            };
            let Some((e, periodic)) = due else { break };
            // SAFETY: we hold the lock; the callback is exclusive to it.
            let r = unsafe {
                e.st.with_mut(|st| catch_unwind(AssertUnwindSafe(|| (st.f)(periodic))))
            };
            if let Err(p) = r {
                callback_panicked(p);
            }
            if !periodic {
                fired.push(e);
            }
        }
        let m = self.publish_min();
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        m
    }

    /// Stores the earliest deadline in `min`; lock held.
    fn publish_min(&self) -> i64 {
        // SAFETY: the caller holds the lock.
        let m = unsafe { self.v.with_mut(|v| v.first().map_or(i64::MAX, |x| x.0)) };
        // Release: see `min`.
        self.min.store(m, Ordering::Release);
        m
    }
}

/// Moves `v[i]` up to its place; keeps entries' `idx` in step.
fn sift_up(v: &mut [(i64, Arc<Entry>)], mut i: usize) {
    while i > 0 {
        let p = (i - 1) / 4;
        if v[p].0 <= v[i].0 {
            break;
        }
        swap(v, i, p);
        i = p;
    }
}

/// Moves `v[i]` down to its place (4 children per node).
fn sift_down(v: &mut [(i64, Arc<Entry>)], mut i: usize) {
    loop {
        let c = 4 * i + 1;
        if c >= v.len() {
            return;
        }
        let end = (c + 4).min(v.len());
        let m = (c..end).min_by_key(|&k| v[k].0).expect("non-empty range");
        if v[m].0 >= v[i].0 {
            return;
        }
        swap(v, i, m);
        i = m;
    }
}

fn swap(v: &mut [(i64, Arc<Entry>)], a: usize, b: usize) {
    v.swap(a, b);
    // SAFETY: the heap lock, held by every caller, protects entries' state.
    unsafe {
        v[a].1.st.with_mut(|st| st.idx = a);
        v[b].1.st.with_mut(|st| st.idx = b);
    }
}

/// Removes `v[i]` (its `idx` already cleared by the caller).
fn remove_at(v: &mut Vec<(i64, Arc<Entry>)>, i: usize) {
    let last = v.len() - 1;
    if i != last {
        v.swap(i, last);
        // SAFETY: lock held (see `swap`).
        unsafe { v[i].1.st.with_mut(|st| st.idx = i) };
    }
    v.pop();
    if i < v.len() {
        sift_down(v, i);
        sift_up(v, i);
    }
}
