//! `Pool<T>`: Go's sync.Pool — a cache of reusable values with per-P shards
//! and a victim cache.
//!
//! Each P has a shard: a private slot that only goroutines running on that P
//! touch (no lock: a goroutine keeps its P until it parks, and pool
//! operations never park), and a shared list other Ps steal from (under a
//! short lock). Plain threads use the shared lists only. A collection (the
//! GC layer calls [`pool_cleanup`]) moves every pool's contents to its
//! victim cache and drops the previous victims: a value survives one cycle
//! unused, as in Go. The first `Pool::new` registers [`pool_cleanup`] as a
//! gort-gc hook, so every collection (`gort_gc::gc()` or a paced
//! background cycle) runs it.

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

struct Shard<T> {
    /// Only touched by goroutines on this shard's P (see module docs).
    private: UnsafeCell<Option<T>>,
    shared: Mutex<Vec<T>>,
}

struct Inner<T> {
    /// Cache-padded: two Ps writing their private slots must not share a
    /// line.
    shards: Box<[CachePadded<Shard<T>>]>,
    victim: Mutex<Vec<T>>,
}

// SAFETY: `private` is only accessed by the goroutine currently running on
// that shard's P (one at a time; P hand-offs synchronise); the rest is
// behind mutexes. Values move between threads, so T: Send.
unsafe impl<T: Send> Sync for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Inner<T> {}

trait Clean: Send + Sync {
    fn clean(&self);
}

impl<T: Send> Clean for Inner<T> {
    fn clean(&self) {
        let mut moved = Vec::new();
        for s in self.shards.iter() {
            moved.append(&mut s.shared.lock().unwrap_or_else(|e| e.into_inner()));
            // Private slots belong to their P's goroutines; they are
            // emptied into the shared list on their next put/get instead.
        }
        let old = std::mem::replace(
            &mut *self.victim.lock().unwrap_or_else(|e| e.into_inner()),
            moved,
        );
        drop(old);
    }
}

fn registry() -> &'static Mutex<Vec<Weak<dyn Clean>>> {
    static R: OnceLock<Mutex<Vec<Weak<dyn Clean>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Moves every pool's cached values to its victim cache and drops the
/// previous victims (Go's poolCleanup). The garbage collector calls this at
/// the start of each cycle; calling it by hand is harmless.
pub fn pool_cleanup() {
    let pools: Vec<Arc<dyn Clean>> = {
        let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|w| w.strong_count() > 0);
        r.iter().filter_map(Weak::upgrade).collect()
    };
    for p in pools {
        p.clean();
    }
}

/// A set of temporary values to reuse (Go's sync.Pool).
pub struct Pool<T: Send + 'static> {
    inner: Arc<Inner<T>>,
    new: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T: Send + 'static> Pool<T> {
    /// A pool that makes a value with `new` when it has none.
    pub fn new(new: impl Fn() -> T + Send + Sync + 'static) -> Pool<T> {
        static GC_HOOK: std::sync::Once = std::sync::Once::new();
        GC_HOOK.call_once(|| gort_gc::add_gc_hook(pool_cleanup));
        let n = gort_sched::gomaxprocs(0).max(1);
        let inner = Arc::new(Inner {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Shard {
                        private: UnsafeCell::new(None),
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

    /// Takes a cached value, or makes a new one.
    pub fn get(&self) -> T {
        let (own, idx) = self.shard();
        if let Some(s) = own {
            // SAFETY: we run on this shard's P and do not park here.
            if let Some(v) = unsafe { (*s.private.get()).take() } {
                return v;
            }
        }
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

    /// Returns a value to the pool for reuse.
    pub fn put(&self, v: T) {
        let (own, idx) = self.shard();
        let mut v = v;
        if let Some(s) = own {
            // SAFETY: we run on this shard's P and do not park here.
            let slot = unsafe { &mut *s.private.get() };
            match slot {
                None => {
                    *slot = Some(v);
                    return;
                }
                Some(_) => {
                    // Keep the newest private; the older one goes shared.
                    v = slot.replace(v).expect("checked Some");
                }
            }
        }
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

    /// Each collection moves the pools' contents to their victim caches and
    /// drops the previous victims: after two collections a plain thread's
    /// pooled value is gone.
    #[test]
    fn collections_clear_pools() {
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
}
