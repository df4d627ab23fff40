//! `Pool<T>`: Go's sync.Pool — a cache of reusable values with per-P shards
//! and a victim cache.
//!
//! Each P has a shard, as in Go's `poolLocal`: a private slot for one value
//! and a shared list other Ps steal from (under a short lock). `put` fills
//! the private slot if it is empty, else pushes onto the shared list; `get`
//! takes the private value first, then the top of its shared list, then
//! steals from the other shards, then from the victim cache, and only then
//! calls `new` (Go's order, so `put(a); put(b); get()` gives `a`). Plain
//! threads (no P) use the shared lists only.
//!
//! A collection (the GC layer calls [`pool_cleanup`], Go's `poolCleanup`)
//! moves every pool's contents — private slots *and* shared lists — into
//! its victim cache and drops the previous victims: a value left unused
//! survives exactly one cycle (a `get` after it may still find it in the
//! victim cache), and is dropped by the second. The first `Pool::new`
//! registers [`pool_cleanup`] as a gort-gc hook, so every collection
//! (`gort_gc::gc()` or a paced background cycle) runs it.
//!
//! ## The private slot's handshake
//!
//! Go's poolCleanup runs with the world stopped, so it may empty the
//! private slots with plain stores. gort's collection hooks run while
//! goroutines keep running, so a cleanup and a slot's owner shake hands
//! (`pool_slot.rs`): the owner raises the slot's `busy` flag with a plain
//! store and a light fence, and keeps off the slot while a sweep is on; the
//! cleanup raises the sweep flag, runs a heavy fence (`membarrier(2)`: an
//! interrupt to each CPU running one of our threads), and waits for each
//! slot's `busy` to fall before it takes the value. The goroutine never
//! waits: during a sweep it uses the shared list (a cache may always miss).
//! The cleanup's wait is bounded by the few instructions of a take or a
//! store, unless the OS deschedules the owner's thread.
//!
//! Rejected: leaving private slots alone at cleanup (a value could outlive
//! any number of collections, and a P that stopped using the pool kept its
//! value forever); stamping private values with a collection count and
//! discarding stale ones on the P's next get (the same retention for an
//! idle P, and the value is dropped late, not by the collection); a
//! pointer-sized atomic slot (a `Box` per put); a one-bit lock per slot,
//! taken with a compare-exchange around each take and store (the previous
//! design: two locked instructions per put and get, 7-8 ns each on the
//! 2-core VM gort is measured on, and 9.8 ns per operation against Go's
//! 7.2).
//!
//! # Invariants
//! * A shard's private value is only accessed by the goroutine running on
//!   the shard's P (inside `PrivateSlot::try_with`, which runs no user code
//!   and never switches) while no sweep is on, or by the one sweep in
//!   progress once that goroutine is out.
//! * After `pool_cleanup` returns, no value that was in a pool before it
//!   started is outside that pool's victim cache, and nothing that was in
//!   the victim cache before it started is still in the pool.

use crate::pool_slot::{PrivateSlot, Sweep, Sweeps};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Go's `poolLocal`.
struct Shard<T> {
    /// One value for the shard's P (see "The private slot's handshake").
    private: PrivateSlot<T>,
    /// Values any P or thread may take (Go's `shared` poolChain).
    shared: Mutex<Vec<T>>,
}

struct Inner<T> {
    /// Cache-padded: two Ps writing their private slots must not share a
    /// line.
    shards: Box<[CachePadded<Shard<T>>]>,
    /// Go's `victim`: what the last collection moved out. Get may still
    /// take from it; the next collection drops what is left.
    victim: Mutex<Vec<T>>,
}

/// The handshake every pool's private slots use with the cleanups.
static SWEEPS: Sweeps = Sweeps::new();

trait Clean: Send + Sync {
    /// Moves this pool's cache to its victim cache during `sweep`, and puts
    /// the old victims in `trash` (dropped once the sweep is over: a
    /// value's Drop is user code).
    fn clean(&self, sweep: &Sweep<'_>, trash: &mut Vec<Box<dyn Send>>);
}

impl<T: Send + 'static> Clean for Inner<T> {
    /// Go's poolCleanup for one pool: the primary cache (private slots and
    /// shared lists) becomes the victim cache; the old victims go to `trash`.
    fn clean(&self, sweep: &Sweep<'_>, trash: &mut Vec<Box<dyn Send>>) {
        let mut moved = Vec::new();
        for s in self.shards.iter() {
            moved.append(&mut s.shared.lock().unwrap_or_else(|e| e.into_inner()));
            // Pushed last so the victim's `pop` offers it first, as Go's
            // getSlow takes the victim's private before its shared.
            moved.extend(s.private.take(sweep));
        }
        let old = std::mem::replace(
            &mut *self.victim.lock().unwrap_or_else(|e| e.into_inner()),
            moved,
        );
        trash.push(Box::new(old));
    }
}

fn registry() -> &'static Mutex<Vec<Weak<dyn Clean>>> {
    static R: OnceLock<Mutex<Vec<Weak<dyn Clean>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Moves every pool's cached values (private slots and shared lists) to
/// its victim cache and drops the previous victims (Go's poolCleanup). The
/// garbage collector calls this at the start of each cycle; calling it by
/// hand is harmless.
pub fn pool_cleanup() {
    let pools: Vec<Arc<dyn Clean>> = {
        let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|w| w.strong_count() > 0);
        r.iter().filter_map(Weak::upgrade).collect()
    };
    let mut trash = Vec::new();
    {
        let sweep = SWEEPS.begin();
        for p in &pools {
            p.clean(&sweep, &mut trash);
        }
    }
    // After the sweep and outside every lock: a value's Drop may use a
    // pool. (Not collect: as a collection hook this runs inside the
    // collection, and gort-gc refuses a nested one.)
    drop(trash);
}

/// A set of temporary values to reuse (Go's sync.Pool).
///
/// ```
/// let p = gort_std::Pool::new(|| String::from("new"));
/// p.put("a".to_string());
/// p.put("b".to_string());
/// // On a goroutine the first put is in its P's private slot and comes
/// // back first; on a plain thread the shared list hands back "b". Either
/// // way both come back before `new` is called.
/// let (x, y) = (p.get(), p.get());
/// assert!(x != y && x != "new" && y != "new");
/// assert_eq!(p.get(), "new");
/// ```
pub struct Pool<T: Send + 'static> {
    inner: Arc<Inner<T>>,
    new: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T: Send + 'static> Pool<T> {
    /// A pool that makes a value with `new` when it has none.
    pub fn new(new: impl Fn() -> T + Send + Sync + 'static) -> Pool<T> {
        static GC_HOOK: std::sync::Once = std::sync::Once::new();
        GC_HOOK.call_once(|| {
            gort_gc::add_gc_hook(pool_cleanup);
            gort_os::barrier::prepare(); // cheap light fences in get and put
        });
        let n = gort_sched::gomaxprocs(0).max(1);
        let inner = Arc::new(Inner {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Shard {
                        private: PrivateSlot::new(),
                        shared: Mutex::new(Vec::new()),
                    })
                })
                .collect(),
            victim: Mutex::new(Vec::new()),
        });
        let weak: Weak<dyn Clean> = Arc::downgrade(&(inner.clone() as Arc<dyn Clean>));
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(weak);
        Pool {
            inner,
            new: Box::new(new),
        }
    }

    /// The calling P's shard if it may use the private slot, and the index
    /// of the shared list to use first.
    #[inline]
    fn shard(&self) -> (Option<&Shard<T>>, usize) {
        let shards = &self.inner.shards;
        match gort_sched::proc_pin() {
            // Ps beyond the shard count (gomaxprocs grew) share by modulo and
            // may not use the private slot.
            Some(p) if p < shards.len() => (Some(&shards[p]), p),
            Some(p) => (None, p % shards.len()),
            None => (None, thread_index() % shards.len()),
        }
    }

    /// Takes a cached value, or makes a new one: the private slot first,
    /// then this P's shared list, the other shards', the victim cache, and
    /// last `new` (Go's Get).
    #[inline]
    pub fn get(&self) -> T {
        let (own, idx) = self.shard();
        if let Some(s) = own {
            // SAFETY: `own` is the shard of the P we run on, and try_with
            // neither parks nor yields: no other thread uses its slot now.
            if let Some(Some(v)) = unsafe { s.private.try_with(&SWEEPS, Option::take) } {
                return v;
            }
        }
        self.get_slow(idx)
    }

    #[cold]
    fn get_slow(&self, idx: usize) -> T {
        let shards = &self.inner.shards;
        if let Some(v) = shards[idx]
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            return v;
        }
        // Steal from the other shards, then the victims.
        for i in 1..shards.len() {
            let s = &shards[(idx + i) % shards.len()];
            if let Some(v) = s.shared.lock().unwrap_or_else(|e| e.into_inner()).pop() {
                return v;
            }
        }
        if let Some(v) = self
            .inner
            .victim
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            return v;
        }
        (self.new)()
    }

    /// Returns a value to the pool for reuse: into the P's private slot if
    /// it is empty, else onto the shared list (Go's Put).
    #[inline]
    pub fn put(&self, v: T) {
        let (own, idx) = self.shard();
        let mut v = Some(v);
        if let Some(s) = own {
            // SAFETY: as in `get`.
            unsafe {
                s.private.try_with(&SWEEPS, |slot| {
                    if slot.is_none() {
                        *slot = v.take();
                    }
                })
            };
        }
        if let Some(v) = v {
            self.put_slow(idx, v);
        }
    }

    #[cold]
    fn put_slow(&self, idx: usize, v: T) {
        self.inner.shards[idx]
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(v);
    }
}

impl<T: Send + 'static> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Collections clean every pool of the process: the tests that count
    /// cleanups run one at a time (no other test of this binary collects).
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each collection moves the pools' contents to their victim caches and
    /// drops the previous victims: after two collections a plain thread's
    /// pooled value is gone.
    #[test]
    fn collections_clear_pools() {
        let _serial = serial();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let p = Pool::new(move || {
            m.fetch_add(1, SeqCst);
            vec![0u8; 16]
        });
        let v = p.get();
        assert_eq!(made.load(SeqCst), 1);
        p.put(v);
        let v = p.get();
        assert_eq!(made.load(SeqCst), 1, "reused before any collection");
        p.put(v);
        gort_gc::gc();
        let v = p.get();
        assert_eq!(
            made.load(SeqCst),
            1,
            "a value survives one cycle (victim cache)"
        );
        p.put(v);
        gort_gc::gc();
        gort_gc::gc();
        let _ = p.get();
        assert_eq!(made.load(SeqCst), 2, "two cycles drop the value");
    }

    /// A value that counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A goroutine's private slot is emptied by the collections too (Go's
    /// poolCleanup): the first moves it to the victim cache (dropped by
    /// nothing yet), the second drops it, while the P that put it never
    /// touches the pool again.
    #[test]
    fn collections_empty_private_slots() {
        let _serial = serial();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let p = Arc::new(Pool::new(move || Counted(d.clone())));
        let p2 = p.clone();
        let d = dropped.clone();
        gort_sched::go(move || {
            let on_p = gort_sched::proc_pin().is_some();
            p2.put(Counted(d));
            on_p
        })
        .join()
        .unwrap()
        .then_some(())
        .expect("a goroutine runs on a P");
        pool_cleanup();
        assert_eq!(dropped.load(SeqCst), 0, "one cleanup keeps it (victim)");
        pool_cleanup();
        assert_eq!(dropped.load(SeqCst), 1, "two cleanups drop it");
    }

    /// Cleanups racing with gets and puts on every P: no value is lost
    /// twice or duplicated — each value made is dropped exactly once, and
    /// none is held by two getters at once.
    #[test]
    fn cleanup_races_with_private_slots() {
        let _serial = serial();
        let made = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (m, d) = (made.clone(), dropped.clone());
        let p = Arc::new(Pool::new(move || {
            m.fetch_add(1, SeqCst);
            (Counted(d.clone()), Arc::new(AtomicUsize::new(0)))
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let cleaner = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    pool_cleanup();
                    rounds.fetch_add(1, SeqCst);
                    std::thread::yield_now();
                }
            })
        };
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (p, rounds) = (p.clone(), rounds.clone());
                gort_sched::go(move || {
                    // Until the cleaner has run many times meanwhile.
                    let mut i = 0u32;
                    while i < 20_000 || rounds.load(SeqCst) < 500 {
                        i += 1;
                        let v = p.get();
                        // Exclusive: nobody else holds this value now.
                        assert_eq!(v.1.fetch_add(1, SeqCst), 0, "value shared");
                        v.1.fetch_sub(1, SeqCst);
                        p.put(v);
                        if i % 64 == 0 {
                            gort_sched::gosched();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, SeqCst);
        cleaner.join().unwrap();
        pool_cleanup();
        pool_cleanup();
        assert_eq!(
            made.load(SeqCst),
            dropped.load(SeqCst),
            "a value was lost or duplicated"
        );
    }
}
