//! Loom models of the collector protocol on the real code: registration,
//! snapshot tracing, touches, the claim CAS, and weak upgrades, racing a
//! mutator. Each model's objects carry a drop flag; a mutator that can
//! still reach an object asserts it was not dropped.
//!
//! Run: `RUSTFLAGS="--cfg gort_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release --lib -p gort-gc`.

use crate::{gc, Gc, Trace, Tracer};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};

/// A node whose edges sit behind a loom mutex (traced with `try_lock`).
struct N {
    dropped: Arc<AtomicBool>,
    edges: Mutex<Vec<Gc<N>>>,
}

// SAFETY: visits each owned handle once; a held lock is opaque.
unsafe impl Trace for N {
    fn trace(&self, t: &mut Tracer<'_>) {
        // The collector traces only objects it examined, which are never
        // freed under it.
        assert!(!self.dropped.load(SeqCst), "traced a dropped object");
        match self.edges.try_lock() {
            Ok(g) => {
                for e in g.iter() {
                    t.visit(e);
                }
            }
            Err(_) => t.opaque(),
        }
    }
}

impl Drop for N {
    fn drop(&mut self) {
        assert!(!self.dropped.swap(true, SeqCst), "dropped twice");
    }
}

fn node() -> (Gc<N>, Arc<AtomicBool>) {
    let d = Arc::new(AtomicBool::new(false));
    (
        Gc::new(N {
            dropped: d.clone(),
            edges: Mutex::new(Vec::new()),
        }),
        d,
    )
}

/// Runs a model with at least 4 preemptions: the hidden-move hazard needs
/// the collector preempted between its trace and its claim, and the
/// mutator between its drop and its check (with 2, loom does not reach it;
/// with 4 it finds the use-after-free when the touch check is removed).
/// These models are small: 4 takes well under a second.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(4).max(4));
    b.check(f);
}

/// The hidden move: B (self-loop) holds the only handle to Y; the mutator
/// moves Y's handle onto its stack, then drops its last outside handle to
/// B, while a collection runs. Y must survive; B must eventually be freed.
#[test]
fn hidden_move_vs_collect() {
    model(|| {
        let (b, b_dropped) = node();
        let (y, y_dropped) = node();
        b.edges.lock().unwrap().push(b.clone());
        b.edges.lock().unwrap().push(y);
        let m = loom::thread::spawn(move || {
            let y = b.edges.lock().unwrap().pop().unwrap();
            drop(b);
            loom::thread::yield_now();
            assert!(!y_dropped.load(SeqCst), "reachable object freed");
            drop(y);
        });
        gc();
        m.join().unwrap();
        gc();
        assert!(b_dropped.load(SeqCst), "garbage cycle not collected");
    });
}

/// A weak upgrade racing the collection of a self-cycle: either the
/// upgrade fails, or the object stays alive while the upgraded handle is
/// held (never both freed and upgraded).
#[test]
fn weak_upgrade_vs_collect() {
    model(|| {
        let (a, dropped) = node();
        a.edges.lock().unwrap().push(a.clone());
        let w = Gc::downgrade(&a);
        drop(a);
        let m = loom::thread::spawn(move || {
            if let Some(a) = w.upgrade() {
                assert!(!dropped.load(SeqCst), "upgraded a freed object");
                // Break the cycle so it dies by counting.
                a.edges.lock().unwrap().clear();
            }
        });
        gc();
        m.join().unwrap();
    });
}

/// Clones and drops of a handle to a cycle during a collection keep it
/// alive; once the mutator lets go, the next collection frees it.
#[test]
fn clone_drop_vs_collect() {
    model(|| {
        let (a, dropped) = node();
        let (c, _c_dropped) = node();
        a.edges.lock().unwrap().push(c.clone());
        c.edges.lock().unwrap().push(a.clone());
        drop(c);
        let d2 = dropped.clone();
        let m = loom::thread::spawn(move || {
            let a2 = a.clone();
            drop(a);
            let c = a2.edges.lock().unwrap()[0].clone();
            drop(a2);
            assert!(!d2.load(SeqCst));
            drop(c);
        });
        gc();
        m.join().unwrap();
        gc();
        assert!(dropped.load(SeqCst), "garbage cycle not collected");
    });
}

/// A finalizable object in a garbage cycle, upgraded through a weak
/// pointer while a collection runs: the upgrade either fails (the
/// finalizer was queued first, weak pointers cleared) or keeps the object
/// alive; either way the finalizer runs exactly once, and the value is
/// never dropped while a handle is held.
#[test]
fn finalizer_vs_weak_upgrade() {
    model(|| {
        let (a, dropped) = node();
        a.edges.lock().unwrap().push(a.clone());
        let runs = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        crate::set_finalizer(&a, move |a: Gc<N>| {
            r.fetch_add(1, SeqCst);
            a.edges.lock().unwrap().clear(); // break the cycle
        });
        let w = Gc::downgrade(&a);
        // The only strong path left is the self-loop: cyclic garbage.
        drop(a);
        let d2 = dropped.clone();
        let m = loom::thread::spawn(move || {
            if let Some(a) = w.upgrade() {
                assert!(!d2.load(SeqCst), "upgraded a freed object");
                a.edges.lock().unwrap().clear(); // now dies by counting
            }
        });
        gc();
        m.join().unwrap();
        gc();
        crate::special::run_queued(false);
        assert_eq!(runs.load(SeqCst), 1, "finalizer must run exactly once");
    });
}

/// The last handle of a plain (acyclic) object dropped while a collection
/// registers and examines it: the free either happens at once (the cycle
/// did not examine it) or waits for the cycle's end (it did); either way it
/// happens exactly once, and never while the cycle reads the object (loom
/// tracks the header's atomics: a read of a freed one fails the model).
#[test]
fn last_drop_vs_registration() {
    model(|| {
        let (x, dropped) = node();
        let (y, _) = node();
        x.edges.lock().unwrap().push(y);
        let m = loom::thread::spawn(move || drop(x));
        gc();
        m.join().unwrap();
        assert!(dropped.load(SeqCst), "the last drop's free was lost");
    });
}

/// Objects whose last handles go on another thread than the one that
/// allocated them are handed back on their shard's `pending` stack while
/// the allocating thread allocates (its allocations drain that stack, and
/// under loom each push past the first drains it too if the lock is free):
/// whichever comes first, once the allocating thread has allocated after
/// the pushes, each object is unregistered and released exactly once, and
/// the registry's counts are exact.
#[test]
fn hand_back_vs_the_allocating_threads_drain() {
    model(|| {
        let (a, _) = node();
        let (b, _) = node();
        let weak = [Gc::downgrade(&a), Gc::downgrade(&b)];
        let m = loom::thread::spawn(move || drop((a, b)));
        // Without this yield loom runs the allocation to its end before the
        // other thread starts (one execution in all).
        loom::thread::yield_now();
        let (y, _) = node();
        m.join().unwrap();
        let (z, _) = node();
        // (y or z registers in the other shard if the pusher held theirs.)
        let mut registered = 0;
        for sh in crate::heap::heap().shards.iter() {
            assert!(sh.pending.load(SeqCst).is_null(), "not drained");
            registered += sh.inner.lock().unwrap().objs.len();
        }
        assert_eq!(registered, 2, "y and z only");
        for w in &weak {
            assert_eq!(
                w.header().weak.load(SeqCst),
                1,
                "the strong side's weak count was not released"
            );
        }
        drop((y, z));
        let (mallocs, frees, _, objs) = crate::heap::shard_totals();
        assert_eq!((mallocs - frees, objs), (0, 0), "registry counts");
    });
}
