//! Finalizers and cleanups (Go's "specials"), the queue they run from, and
//! the finalizer goroutine.

use crate::gc::{Gc, Header};
use crate::heap::heap;
use crate::loom::{lock, park, Ordering::*, WaitReason, Waiter};
use crate::trace::Trace;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Mutex};

type Finalizer = Box<dyn FnOnce(NonNull<Header>) + Send>;
type CleanupFn = Box<dyn FnOnce() + Send>;

/// An object's finalizer and cleanups. Shared (`Arc`) with [`Cleanup`]
/// handles so `stop` works after the object is gone.
pub(crate) struct Specials {
    /// Written by `set_finalizer`/`add_cleanup`/`Cleanup::stop` (any
    /// thread), taken by the zero path or the collector; the mutex protects
    /// it.
    inner: Mutex<SpecialsInner>,
}

#[derive(Default)]
struct SpecialsInner {
    finalizer: Option<Finalizer>,
    /// The first cleanup inline (most objects have at most one), the rest
    /// in `more`.
    first: Option<(u64, CleanupFn)>,
    more: Vec<(u64, CleanupFn)>,
    /// Sampled by the heap profile: its record's index and the object's
    /// size (memprof.rs).
    sampled: Option<(usize, usize)>,
}

/// Gets or creates the object's specials.
fn specials(h: &Header) -> &Specials {
    // SAFETY: set once, freed only with the header, which `h` keeps.
    unsafe { &*specials_ptr(h) }
}

/// Gets or creates the object's specials, as the pointer `Arc::into_raw`
/// returned: it keeps the provenance of the whole `Arc` allocation (counts
/// included), which a pointer made from a `&Specials` does not have —
/// `Arc::increment_strong_count` through one of those is undefined
/// behaviour (found by miri, issue 13).
fn specials_ptr(h: &Header) -> *const Specials {
    let p = h.specials.load(Acquire); // pairs with the AcqRel CAS below
    if !p.is_null() {
        return p;
    }
    let fresh = Arc::into_raw(Arc::new(Specials {
        inner: Mutex::new(SpecialsInner::default()),
    })) as *mut Specials;
    match h
        .specials
        .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
    {
        // We just published it; it lives as long as the header.
        Ok(_) => fresh,
        Err(other) => {
            // SAFETY: `fresh` was never published; `other` is the winner's.
            drop(unsafe { Arc::from_raw(fresh) });
            other
        }
    }
}

fn inner(s: &Specials) -> std::sync::MutexGuard<'_, SpecialsInner> {
    s.inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the object has a finalizer (collector, for an examined object).
pub(crate) fn has_finalizer(h: &Header) -> bool {
    let p = h.specials.load(Acquire);
    // SAFETY: as in `specials`.
    !p.is_null() && inner(unsafe { &*p }).finalizer.is_some()
}

/// Removes and returns the finalizer.
pub(crate) fn take_finalizer(h: &Header) -> Option<Finalizer> {
    let p = h.specials.load(Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `specials`.
    inner(unsafe { &*p }).finalizer.take()
}

/// Marks a fresh object as sampled by the heap profile.
pub(crate) fn mark_sampled(h: &Header, idx: usize, size: usize) {
    inner(specials(h)).sampled = Some((idx, size));
}

/// The object was freed: queue its cleanups, count a sampled object's free.
pub(crate) fn on_free(h: &Header) {
    let p = h.specials.load(Acquire);
    if p.is_null() {
        return;
    }
    let (first, more, sampled) = {
        // SAFETY: as in `specials`.
        let mut g = inner(unsafe { &*p });
        (
            g.first.take(),
            std::mem::take(&mut g.more),
            g.sampled.take(),
        )
    };
    if let Some((idx, size)) = sampled {
        crate::memprof::on_free(idx, size);
    }
    let n = first.is_some() as u64 + more.len() as u64;
    if n > 0 {
        heap().stats.cleanups_queued.fetch_add(n, Relaxed);
        enqueue(first.into_iter().chain(more).map(|(_, f)| Job::Cleanup(f)));
    }
}

/// Releases the header's reference to its specials (when the header is
/// freed).
///
/// # Safety
/// Called once, when the header is being deallocated.
pub(crate) unsafe fn free_specials(h: &Header) {
    let p = h.specials.load(Acquire);
    if !p.is_null() {
        // SAFETY: the header's reference, released once.
        drop(unsafe { Arc::from_raw(p) });
    }
}

/// Queues a finalizer call for a resurrected object (its strong count
/// already includes the handle the finalizer will receive).
pub(crate) fn queue_finalizer(h: NonNull<Header>, f: Finalizer) {
    heap().stats.fin_queued.fetch_add(1, Relaxed);
    enqueue(std::iter::once(Job::Finalize(SendHeader(h), f)));
}

/// Sets a finalizer on the object (Go's `runtime.SetFinalizer`).
///
/// When the object becomes unreachable — its last handle is dropped, or the
/// cycle collector finds it in unreachable garbage — it is not freed:
/// its weak pointers are cleared, it is resurrected, and `f` runs with a
/// handle to it on the single finalizer goroutine. The finalizer is
/// one-shot; once it has run (and unless it stored the handle somewhere or
/// set a new finalizer), the object is freed when that handle is dropped.
///
/// Objects reachable from an object with a finalizer stay alive until the
/// finalizer has run. So an object with a finalizer that its own referents
/// reach back to (any cycle through it) is kept by them: it is never
/// finalized nor collected (Go: "If a cyclic structure includes a block
/// with a finalizer, that cycle is not guaranteed to be garbage
/// collected"); nor is a cycle of objects that all have finalizers.
///
/// A finalizer closure that captures a handle to its own object keeps the
/// object alive forever, and the finalizer never runs (as in Go): pass the
/// object in through the argument instead. As in Go, finalizers run after
/// a collection: one queued by a last drop runs after the next [`gc`](fn@crate::gc)
/// (or paced cycle), or sooner once 256 are pending. Finalizers do not
/// run when the process exits. A finalizer that panics aborts the process (Go crashes
/// too).
///
/// # Panics
/// If the object already has a finalizer (Go: "finalizer already set").
pub fn set_finalizer<T, F>(obj: &Gc<T>, f: F)
where
    T: Trace + Send + Sync + 'static,
    F: FnOnce(Gc<T>) + Send + 'static,
{
    let s = specials(obj.header());
    let mut g = inner(s);
    if g.finalizer.is_some() {
        drop(g);
        panic!("runtime.SetFinalizer: finalizer already set");
    }
    g.finalizer = Some(Box::new(move |h| {
        // SAFETY: queued with one strong count for this handle.
        f(unsafe { Gc::from_header(h) })
    }));
}

/// Removes the object's finalizer, if any (Go's `SetFinalizer(obj, nil)`).
pub fn clear_finalizer<T: Trace + Send + Sync + 'static>(obj: &Gc<T>) {
    drop(take_finalizer(obj.header()));
}

static CLEANUP_ID: StdAtomicU64 = StdAtomicU64::new(1);

/// A handle to a cleanup registered with [`add_cleanup`].
pub struct Cleanup {
    specials: Arc<Specials>,
    id: u64,
}

impl Cleanup {
    /// Cancels the cleanup (Go's `Cleanup.Stop`). If the object has already
    /// been freed and the cleanup queued or run, this does nothing.
    pub fn stop(&self) {
        // The closure is dropped after the lock is released: it may hold
        // the last handle to the object (in `arg`), whose release takes
        // this same lock (review finding: self-deadlock).
        let removed = {
            let mut g = inner(&self.specials);
            if g.first.as_ref().is_some_and(|(id, _)| *id == self.id) {
                g.first.take()
            } else {
                let i = g.more.iter().position(|(id, _)| *id == self.id);
                i.map(|i| g.more.remove(i))
            }
        };
        drop(removed);
    }
}

impl std::fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cleanup({})", self.id)
    }
}

/// Attaches a cleanup to the object (Go 1.24's `runtime.AddCleanup`): once
/// the object has been freed, `f(arg)` runs on the finalizer goroutine.
///
/// Like finalizers, cleanups run after a collection (or once 256 are
/// pending). Unlike a finalizer, a cleanup never sees its object and never
/// resurrects it; an object may have several; objects with cleanups in an
/// unreachable cycle are collected normally. `arg` must not be the object
/// itself (then the cleanup could never run): if `arg` holds a handle to
/// the object itself (a `Gc<T>` to the same object), this panics, as Go's
/// does for `ptr == arg`. If `f` or `arg` reach the object some other way,
/// it is never freed, as in Go.
///
/// # Panics
/// With Go's message if `arg` is a handle to the object.
pub fn add_cleanup<T, A, F>(obj: &Gc<T>, f: F, arg: A) -> Cleanup
where
    T: Trace + Send + Sync + 'static,
    A: Send + 'static,
    F: FnOnce(A) + Send + 'static,
{
    let same = (&arg as &dyn std::any::Any)
        .downcast_ref::<Gc<T>>()
        .is_some_and(|a| Gc::ptr_eq(a, obj));
    if same {
        panic!("runtime.AddCleanup: ptr is equal to arg, cleanup will never run");
    }
    let sp = specials_ptr(obj.header());
    // SAFETY: set once, freed only with the header, which `obj` keeps.
    let s = unsafe { &*sp };
    let id = CLEANUP_ID.fetch_add(1, Relaxed);
    {
        let c: (u64, CleanupFn) = (id, Box::new(move || f(arg)));
        let mut g = inner(s);
        if g.first.is_none() {
            g.first = Some(c);
        } else {
            g.more.push(c);
        }
    }
    // SAFETY: `sp` is the pointer Arc::into_raw returned (with its
    // provenance), alive while the header lives; we add a reference for the
    // handle.
    let arc = unsafe {
        Arc::increment_strong_count(sp);
        Arc::from_raw(sp)
    };
    Cleanup { specials: arc, id }
}

pub(crate) struct SendHeader(pub(crate) NonNull<Header>);
// SAFETY: a header pointer handed to the finalizer goroutine with a strong
// count; the object is Send + Sync.
unsafe impl Send for SendHeader {}

pub(crate) enum Job {
    Finalize(SendHeader, Finalizer),
    Cleanup(CleanupFn),
}

/// The finalizer queue (Go's `finq`): jobs, and the finalizer goroutine's
/// waiter while it is parked.
pub(crate) struct FinQueue {
    pub(crate) jobs: VecDeque<Job>,
    pub(crate) waiter: Option<Waiter>,
    pub(crate) started: bool,
}

impl FinQueue {
    pub(crate) const fn new() -> FinQueue {
        FinQueue {
            jobs: VecDeque::new(),
            waiter: None,
            started: false,
        }
    }
}

/// Jobs queued before the finalizer goroutine is woken without a
/// collection (see [`enqueue`]).
const WAKE_BATCH: usize = 256;

/// Queues jobs for the finalizer goroutine. As in Go, they run after a
/// collection: the goroutine is woken at the end of each cycle
/// ([`flush`]), or here once `WAKE_BATCH` jobs are pending, so a loop
/// dropping finalizable objects costs one wake-up per batch, not one per
/// object.
pub(crate) fn enqueue(jobs: impl Iterator<Item = Job>) {
    let mut q = lock(&heap().fin);
    q.jobs.extend(jobs);
    let start = !q.started;
    q.started = true;
    let w = if q.jobs.len() >= WAKE_BATCH {
        q.waiter.take()
    } else {
        None
    };
    drop(q);
    if start {
        start_finalizer_goroutine();
    }
    if let Some(w) = w {
        w.ready();
    }
}

/// Wakes the finalizer goroutine if jobs are pending (end of a cycle).
pub(crate) fn flush() {
    let mut q = lock(&heap().fin);
    let w = if q.jobs.is_empty() {
        None
    } else {
        q.waiter.take()
    };
    drop(q);
    if let Some(w) = w {
        w.ready();
    }
}

#[cfg(not(gort_loom))]
fn start_finalizer_goroutine() {
    // A system goroutine, as Go's: num_goroutine does not count it.
    drop(
        gort_sched::Builder::new()
            .name("finalizer")
            .system(true)
            .spawn(finalizer_loop),
    );
}

#[cfg(gort_loom)]
fn start_finalizer_goroutine() {}

/// The finalizer goroutine's id (0 before it starts). Written once by the
/// goroutine itself; read by `gc()` to tell a finalizer's own call apart.
#[cfg_attr(gort_loom, allow(dead_code))]
static FIN_GOID: StdAtomicU64 = StdAtomicU64::new(0);

/// How long `gc()` lets queued finalizers run before it returns anyway (a
/// finalizer that blocks must not make every `gc()` hang).
#[cfg(not(gort_loom))]
const FIN_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// After a forced collection: lets the finalizer goroutine run every
/// finalizer and cleanup queued so far, waiting (yielding) up to
/// [`FIN_WAIT`]. Go's `runtime.GC` parks its caller while the collection
/// runs, so the finalizers of earlier cycles get to run meanwhile and the
/// idiom "`runtime.GC()`, then a non-blocking receive from what a finalizer
/// sends" works; gort's collection does not park its caller, so `gc()`
/// yields here instead. A finalizer calling `gc()` does not wait for
/// itself.
#[cfg(not(gort_loom))]
pub(crate) fn let_finalizers_run() {
    let st = &heap().stats;
    let done = || st.fin_run.load(Acquire) + st.cleanups_run.load(Acquire);
    let target = st.fin_queued.load(Acquire) + st.cleanups_queued.load(Acquire);
    if done() >= target || gort_sched::goid() == Some(FIN_GOID.load(Relaxed)) {
        return;
    }
    let deadline = std::time::Instant::now() + FIN_WAIT;
    while done() < target && std::time::Instant::now() < deadline {
        // On one P this runs the finalizer goroutine (readied on this M, or
        // by another M that holds no P); elsewhere it returns at once while
        // another M runs it.
        gort_sched::gosched();
    }
}

/// The finalizer goroutine's body (Go's `runfinq`).
#[cfg_attr(gort_loom, allow(dead_code))]
fn finalizer_loop() {
    #[cfg(not(gort_loom))]
    if let Some(id) = gort_sched::goid() {
        FIN_GOID.store(id, Relaxed);
    }
    loop {
        run_queued(true);
    }
}

/// Runs queued jobs; with `wait`, parks first when there are none. Returns
/// the number run.
pub(crate) fn run_queued(wait: bool) -> usize {
    let mut q = lock(&heap().fin);
    if q.jobs.is_empty() {
        if !wait {
            return 0;
        }
        q.waiter = Some(Waiter::current());
        park(WaitReason::FinalizerWait, move || {
            drop(q);
            true
        });
        return 0;
    }
    let batch = std::mem::take(&mut q.jobs);
    drop(q);
    let n = batch.len();
    let st = &heap().stats;
    for job in batch {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
            Job::Finalize(h, f) => {
                f(h.0);
                st.fin_run.fetch_add(1, Relaxed);
            }
            Job::Cleanup(f) => {
                f();
                st.cleanups_run.fetch_add(1, Relaxed);
            }
        }));
        if r.is_err() {
            gort_os::fatal("panic in a gort-gc finalizer or cleanup");
        }
    }
    n
}
