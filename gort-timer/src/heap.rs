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
//!
//! `stop` is lazy, as Go's (1.23's `timerZombie`): a stopped entry stays
//! in the vector, marked a zombie, and is removed in bulk once zombies
//! are a quarter of the heap (one O(n) rebuild instead of an O(log n)
//! sift through a cold heap per stop), or by `run` when it reaches the
//! top. So `min` may be a zombie's deadline: a poller can wake early and
//! find nothing due (never late). A zombie is never run, and a `reset`
//! revives it in place. Dropping the
//! handle removes its entry at once (`remove`), and so does detaching a
//! stopped one (`remove_zombie`): a zombie always has a live handle, so the
//! heap never holds the last reference to a stopped callback's captures
//! (nor drops them under some other caller's lock).

use crate::loom::{AtomicBool, AtomicI64, Ordering};
use gort_os::cell::UnsafeCell;
use gort_os::lock::RawLock;
use gort_sched::Waiter;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A heap callback; its argument says whether the timer is periodic (the
/// safe `RawTimer` skips a tick while the previous one still runs).
pub(crate) enum Callback {
    /// The runtime's own (`RawTimer::new_unchecked`): runs as it is, under
    /// the heap lock.
    Raw(Box<dyn FnMut(bool) + Send>),
    /// User code (`RawTimer::new`): a fire only starts a goroutine that
    /// runs it. Shared with that goroutine, so one allocation serves both
    /// (a boxed closure around the `Arc` was a second one per timer).
    User(Arc<dyn Fire>),
    /// Readies a waiter (`sleep`): no closure to allocate. A fire after
    /// the first, or after the park it was made for, is a no-op (the
    /// waiter's epoch).
    Wake(Waiter),
}

/// A user callback's fire: start the goroutine that runs it.
pub(crate) trait Fire: Send + Sync {
    fn fire(self: Arc<Self>, periodic: bool);
}

impl Callback {
    fn call(&mut self, periodic: bool) {
        match self {
            Callback::Raw(f) => f(periodic),
            Callback::User(u) => u.clone().fire(periodic),
            Callback::Wake(w) => w.clone().ready(),
        }
    }
}

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
    /// Whether it is in its heap's vector (`EntrySt::idx` set): written
    /// under the heap lock with it, read without the lock by `remove`,
    /// whose handle drop then skips a heap another M is running.
    queued: AtomicBool,
    /// Protected by that heap's lock.
    st: UnsafeCell<EntrySt>,
}

struct EntrySt {
    /// 0 for a one-shot timer.
    period: i64,
    /// Position in the heap's vector, or NOT_QUEUED.
    idx: usize,
    /// Stopped, still in the vector (see the module docs).
    zombie: bool,
    f: Callback,
}

// SAFETY: the mutable state is only touched under the heap lock; the
// callback is Send.
unsafe impl Sync for Entry {}
// SAFETY: as above.
unsafe impl Send for Entry {}

impl Entry {
    pub(crate) fn new(heap: usize, f: Callback) -> Arc<Entry> {
        Arc::new(Entry {
            heap,
            user: matches!(f, Callback::User(_)),
            queued: AtomicBool::new(false),
            st: UnsafeCell::new(EntrySt {
                period: 0,
                idx: NOT_QUEUED,
                zombie: false,
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
    /// Zombies in `v`; under the lock.
    zombies: UnsafeCell<usize>,
    /// An M is running this heap's due timers (set and cleared under the
    /// lock): other pollers skip it rather than wait (`try_run`).
    running: AtomicBool,
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
            zombies: UnsafeCell::new(0),
            running: AtomicBool::new(false),
        }
    }

    /// Timers armed in this heap (a snapshot under the lock).
    pub(crate) fn len(&self) -> usize {
        self.lock.lock();
        // SAFETY: we hold the lock that protects the vector and the count.
        let n = unsafe { self.v.with_mut(|v| v.len()) - self.zombies.with_mut(|z| *z) };
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
        let mut removed = Vec::new();
        self.lock.lock();
        // SAFETY: we hold the lock that protects both cells.
        let r = unsafe {
            self.v.with_mut(|v| {
                let (queued, zombie, i) = e.st.with_mut(|st| {
                    let queued = st.idx != NOT_QUEUED;
                    let zombie = std::mem::replace(&mut st.zombie, false);
                    st.period = period;
                    if !queued {
                        st.idx = v.len();
                        e.queued.store(true, Ordering::Relaxed);
                    }
                    (queued, zombie, st.idx)
                });
                if zombie {
                    // Revived in place.
                    self.zombies.with_mut(|z| *z -= 1);
                }
                if queued {
                    v[i].0 = when;
                    sift_down(v, i);
                    sift_up(v, i);
                } else {
                    v.push((when, e.clone()));
                    sift_up(v, i);
                }
                // A top moved down may have uncovered a zombie: `min`
                // stays exact where it is cheap to keep it so.
                self.zombies.with_mut(|z| clean_head(v, z, &mut removed));
                queued && !zombie
            })
        };
        let first = self.publish_min() == when;
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        drop(removed);
        (r, first)
    }

    /// Disarms `e`. Returns whether it was armed (Go's Stop result). When
    /// this returns, `e`'s callback is not running and will not run.
    pub(crate) fn stop(&self, e: &Arc<Entry>) -> bool {
        let mut removed = Vec::new();
        self.lock.lock();
        // SAFETY: we hold the lock.
        let was = unsafe {
            self.v.with_mut(|v| {
                let was = e.st.with_mut(|st| {
                    let was = st.idx != NOT_QUEUED && !st.zombie;
                    if was {
                        st.zombie = true;
                    }
                    was
                });
                if !was {
                    return false;
                }
                self.zombies.with_mut(|z| {
                    *z += 1;
                    if *z * 4 > v.len() {
                        clean_all(v, z, &mut removed);
                    }
                });
                true
            })
        };
        self.publish_min();
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        // (The stopper's handle keeps each alive: only counts drop here.)
        drop(removed);
        was
    }

    /// Removes `e` from the heap at once, for its handle's drop: returns
    /// whether it was armed. Nothing can revive it, so it must not linger
    /// as a zombie (the heap would hold its callback's last reference).
    pub(crate) fn remove(&self, e: &Arc<Entry>) -> bool {
        self.take_out(e, false)
    }

    /// Takes `e` out at once if it is a zombie (stopped): for a handle
    /// that is detached, after which nothing could revive or remove it.
    pub(crate) fn remove_zombie(&self, e: &Arc<Entry>) {
        self.take_out(e, true);
    }

    /// [`Heap::remove`], or with `only_zombie` [`Heap::remove_zombie`];
    /// whether it was armed (queued and not a zombie).
    fn take_out(&self, e: &Arc<Entry>, only_zombie: bool) -> bool {
        // Fired (or never armed): nothing to take out, and no lock to wait
        // for while another M runs this heap. Acquire: pairs with the
        // Release that cleared it (the entry's state is settled). A fired
        // callback may still be returning; the Arc keeps it alive.
        if !e.queued.load(Ordering::Acquire) {
            return false;
        }
        let mut removed = Vec::new();
        self.lock.lock();
        // SAFETY: we hold the lock.
        let was = unsafe {
            self.v.with_mut(|v| {
                let (i, zombie) = e.st.with_mut(|st| {
                    if only_zombie && !st.zombie {
                        return (NOT_QUEUED, false); // armed: left to fire
                    }
                    (
                        std::mem::replace(&mut st.idx, NOT_QUEUED),
                        std::mem::replace(&mut st.zombie, false),
                    )
                });
                if i == NOT_QUEUED {
                    return false;
                }
                e.queued.store(false, Ordering::Release);
                if zombie {
                    self.zombies.with_mut(|z| *z -= 1);
                }
                remove_at(v, i);
                // Removing the top may have uncovered a zombie.
                self.zombies.with_mut(|z| clean_head(v, z, &mut removed));
                !zombie
            })
        };
        self.publish_min();
        // SAFETY: locked above.
        unsafe { self.lock.unlock() };
        drop(removed);
        was
    }

    /// Runs every entry due at `now` (re-arming periodic ones); returns the
    /// new earliest deadline. The one-shot entries that fired are pushed to
    /// `fired`, for the caller to drop after the lock is released (a
    /// detached timer's last reference may be that one, and its callback's
    /// captures must not drop under the lock).
    #[cfg(test)] // (the scheduler's poll uses `try_run`)
    pub(crate) fn run(&self, now: i64, fired: &mut Vec<Arc<Entry>>) -> i64 {
        self.lock.lock();
        self.run_locked(now, fired)
    }

    /// [`Heap::run`], unless another M is running this heap right now:
    /// waiting for its lock would only stall this M, and that M runs
    /// everything due and publishes the next deadline itself. Then returns
    /// `i64::MAX` (nothing for this poller). A lock held for anything else
    /// (arming or stopping a timer, an instant) is waited for.
    pub(crate) fn try_run(&self, now: i64, fired: &mut Vec<Arc<Entry>>) -> i64 {
        if !self.lock.try_lock() {
            if self.running.load(Ordering::Relaxed) {
                return i64::MAX;
            }
            self.lock.lock();
        }
        self.run_locked(now, fired)
    }

    /// The body of `run`, with the lock held; releases it.
    fn run_locked(&self, now: i64, fired: &mut Vec<Arc<Entry>>) -> i64 {
        self.running.store(true, Ordering::Relaxed);
        loop {
            // SAFETY: we hold the lock.
            let due = unsafe {
                self.v.with_mut(|v| {
                    // Stopped timers at the top are dropped, never run.
                    self.zombies.with_mut(|z| clean_head(v, z, fired));
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
                        e.queued.store(false, Ordering::Release);
                        remove_at(v, 0);
                    }
                    Some((e, period > 0))
                })
            };
            let Some((e, periodic)) = due else { break };
            // SAFETY: we hold the lock; the callback is exclusive to it.
            let r = unsafe {
                e.st.with_mut(|st| catch_unwind(AssertUnwindSafe(|| st.f.call(periodic))))
            };
            if let Err(p) = r {
                callback_panicked(p);
            }
            if !periodic {
                fired.push(e);
            }
        }
        let m = self.publish_min();
        self.running.store(false, Ordering::Relaxed);
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

/// If `e` is a zombie, marks it out of the heap (the caller takes it out
/// of the vector); whether it was.
///
/// # Safety
/// The heap's lock is held.
unsafe fn unqueue_zombie(e: &Entry) -> bool {
    // SAFETY: forwarded (the lock protects the entry's state).
    unsafe {
        e.st.with_mut(|st| {
            let z = st.zombie;
            if z {
                st.zombie = false;
                st.idx = NOT_QUEUED;
                e.queued.store(false, Ordering::Release);
            }
            z
        })
    }
}

/// Removes the zombies at the top until a live entry (or nothing) is
/// there; they go to `out`, to be dropped after the lock.
fn clean_head(v: &mut Vec<(i64, Arc<Entry>)>, zombies: &mut usize, out: &mut Vec<Arc<Entry>>) {
    while let Some((_, e)) = v.first() {
        // SAFETY: lock held (see `swap`).
        if !unsafe { unqueue_zombie(e) } {
            return;
        }
        out.push(v[0].1.clone());
        *zombies -= 1;
        remove_at(v, 0);
    }
}

/// Removes every zombie and rebuilds the heap (O(n)); they go to `out`.
fn clean_all(v: &mut Vec<(i64, Arc<Entry>)>, zombies: &mut usize, out: &mut Vec<Arc<Entry>>) {
    let old = std::mem::take(v);
    v.reserve(old.len() - *zombies);
    for (when, e) in old {
        // SAFETY: lock held (see `swap`).
        if unsafe { unqueue_zombie(&e) } {
            out.push(e);
        } else {
            // SAFETY: as above.
            unsafe { e.st.with_mut(|st| st.idx = v.len()) };
            v.push((when, e));
        }
    }
    *zombies = 0;
    // Heapify: sift down every inner node, the last one first.
    if v.len() > 1 {
        for i in (0..=(v.len() - 2) / 4).rev() {
            sift_down(v, i);
        }
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

#[cfg(all(test, not(gort_loom)))]
mod zombie_tests {
    //! Lazy stop: the heap's answers and its firing are exactly those of
    //! an eager heap, whatever the zombies.
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn entry(fired: &Arc<AtomicUsize>) -> Arc<Entry> {
        let f = fired.clone();
        Entry::new(
            0,
            Callback::Raw(Box::new(move |_| {
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })),
        )
    }

    /// The heap property and every entry's `idx`.
    fn check(h: &Heap, step: usize) {
        // SAFETY: no other thread touches the heap in these tests.
        unsafe {
            h.v.with_mut(|v| {
                for i in 1..v.len() {
                    assert!(v[(i - 1) / 4].0 <= v[i].0, "heap order at {i}, step {step}");
                }
                for (i, (_, e)) in v.iter().enumerate() {
                    assert_eq!(e.st.with_mut(|st| st.idx), i, "idx, step {step}");
                }
            })
        }
    }

    /// Runs what is due; returns how many callbacks ran (`fired` also
    /// holds zombies cleaned from the top, to drop after the lock).
    fn run_all(h: &Heap, n: &AtomicUsize, now: i64) -> usize {
        let before = n.load(std::sync::atomic::Ordering::SeqCst);
        let mut fired = Vec::new();
        h.run(now, &mut fired);
        n.load(std::sync::atomic::Ordering::SeqCst) - before
    }

    #[test]
    fn stopped_timers_never_fire_and_answers_match_go() {
        let h = Heap::new();
        let n = Arc::new(AtomicUsize::new(0));
        let es: Vec<_> = (0..1000).map(|_| entry(&n)).collect();
        for (i, e) in es.iter().enumerate() {
            assert!(!h.reset(e, 1000 + i as i64, 0).0);
        }
        assert_eq!(h.len(), 1000);
        // Stop every other one: true once, then false.
        for e in es.iter().step_by(2) {
            assert!(h.stop(e));
            assert!(!h.stop(e));
        }
        assert_eq!(h.len(), 500);
        // A stopped top stays until `run` meets it: min is never late.
        assert!(h.min() <= 1001);
        // A stopped timer reset: not armed before, armed now.
        assert!(!h.reset(&es[0], 5000, 0).0);
        assert!(h.reset(&es[0], 6000, 0).0);
        assert_eq!(h.len(), 501);
        // Everything up to 2000 fires: exactly the live ones.
        let fired_before = n.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(fired_before, 0);
        run_all(&h, &n, 2000);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 500);
        assert_eq!(h.len(), 1);
        assert_eq!(h.min(), 6000);
        run_all(&h, &n, 6000);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 501);
        assert_eq!(h.len(), 0);
        assert_eq!(h.min(), i64::MAX);
    }

    #[test]
    fn bulk_cleaning_keeps_the_heap_a_heap() {
        let h = Heap::new();
        let n = Arc::new(AtomicUsize::new(0));
        let es: Vec<_> = (0..10_000).map(|_| entry(&n)).collect();
        // Deadlines in a scrambled order.
        for (i, e) in es.iter().enumerate() {
            h.reset(e, ((i * 7919) % 10_000) as i64 + 1, 0);
        }
        for (k, e) in es.iter().take(9_000).enumerate() {
            assert!(h.stop(e));
            check(&h, k);
        }
        assert_eq!(h.len(), 1_000);
        // SAFETY: no other thread touches the heap in this test.
        let (len, zombies) = unsafe { (h.v.with_mut(|v| v.len()), h.zombies.with_mut(|z| *z)) };
        assert!(zombies * 4 <= len, "cleaned in bulk: {zombies} of {len}");
        // They fire in deadline order, each once.
        let mut last = 0;
        for t in 1..=10_000i64 {
            if h.min() == t {
                assert!(t > last);
                last = t;
                assert_eq!(run_all(&h, &n, t), 1);
            }
        }
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1_000);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn moving_or_removing_the_top_never_uncovers_a_zombie() {
        let h = Heap::new();
        let n = Arc::new(AtomicUsize::new(0));
        let es: Vec<_> = (0..8).map(|_| entry(&n)).collect();
        for (i, e) in es.iter().enumerate() {
            h.reset(e, 10 * (i as i64 + 1), 0);
        }
        assert!(h.stop(&es[1])); // 20: under the top, a zombie
        h.reset(&es[0], 1000, 0); // the top moves down
        check(&h, 0);
        assert_eq!(h.min(), 30);
        assert!(h.stop(&es[3])); // 40: a zombie under the new top
        assert!(h.remove(&es[2])); // the top (30) goes
        check(&h, 1);
        assert_eq!(h.min(), 50);
        assert_eq!(run_all(&h, &n, 100), 4); // 50..80
        assert_eq!(run_all(&h, &n, 1000), 1);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn remove_takes_zombies_and_live_entries_out() {
        let h = Heap::new();
        let n = Arc::new(AtomicUsize::new(0));
        let (a, b) = (entry(&n), entry(&n));
        h.reset(&a, 10, 0);
        h.reset(&b, 20, 0);
        assert!(h.stop(&b)); // a zombie (not the top)
        assert!(!h.remove(&b), "a stopped timer was not armed");
        assert!(h.remove(&a));
        assert_eq!(h.len(), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { h.v.with_mut(|v| v.len()) }, 0);
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 1);
    }
}
