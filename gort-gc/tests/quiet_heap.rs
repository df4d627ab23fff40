//! Tests whose claims hold only when no other collection runs: the last
//! drop frees at once on the dropping thread, a weak handle to garbage not
//! yet collected upgrades, a hook runs once per collection, exact
//! MemStats. A collection in progress defers the free of an object it
//! examines whose last handle goes meanwhile, so in `tests/gc.rs` (where
//! other tests call `gc()` at any moment) a last drop may be finished by
//! that collection's end instead, and a garbage cycle may be collected
//! between two lines of a test.
//!
//! Here automatic collection is off (GOGC=off), the tests run one at a
//! time (`quiet`), and each checks at its end that the only collections
//! were its own (`num_gc`) — so a test that passes proves its claim, and a
//! stray collection is reported as such, not as a false failure of the
//! claim. Its own test binary: no other test shares the heap.

use gort_gc::{add_gc_hook, gc, read_mem_stats, set_gc_percent, Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

/// Holds the heap for one test; `done` checks that only the test's own
/// collections ran.
struct Quiet {
    _guard: MutexGuard<'static, ()>,
    num_gc: u32,
}

fn quiet() -> Quiet {
    static SERIAL: Mutex<()> = Mutex::new(());
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    set_gc_percent(-1);
    assert_eq!(read_mem_stats().gc_percent, -1);
    Quiet {
        _guard: g,
        num_gc: read_mem_stats().num_gc,
    }
}

impl Quiet {
    /// Exactly `own` collections ran since `quiet()`: the test's `gc()`s.
    fn done(self, own: u32) {
        assert_eq!(
            read_mem_stats().num_gc,
            self.num_gc + own,
            "a collection ran that the test did not start: its checks prove nothing"
        );
    }
}

/// Records each drop: how many, and on which thread.
struct Drops {
    count: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl Drop for Drops {
    fn drop(&mut self) {
        self.count.fetch_add(1, SeqCst);
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
    }
}

// SAFETY: no handles.
unsafe impl Trace for Drops {
    fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
}

#[derive(Trace)]
struct Node {
    d: Drops,
    next: Mutex<Option<Gc<Node>>>,
}

#[derive(Clone, Default)]
struct Log {
    count: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<ThreadId>>>,
}

impl Log {
    fn node(&self) -> Gc<Node> {
        Gc::new(Node {
            d: Drops {
                count: self.count.clone(),
                threads: self.threads.clone(),
            },
            next: Mutex::new(None),
        })
    }

    fn drops(&self) -> usize {
        self.count.load(SeqCst)
    }
}

/// Reference counting frees an acyclic object at its last drop, at once
/// and on the dropping thread — no collection involved.
#[test]
fn acyclic_freed_at_last_drop() {
    let q = quiet();
    let log = Log::default();
    let a = log.node();
    let b = a.clone();
    let w = Gc::downgrade(&a);
    drop(a);
    assert_eq!(log.drops(), 0, "freed while a handle remained");
    let frees = read_mem_stats().frees;
    let dropper = std::thread::spawn(move || {
        drop(b);
        std::thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(log.drops(), 1, "not freed at the last drop");
    assert_eq!(
        *log.threads.lock().unwrap(),
        [dropper],
        "freed on another thread than the dropping one"
    );
    assert_eq!(read_mem_stats().frees, frees + 1, "not unregistered");
    assert!(w.upgrade().is_none());
    q.done(0);
}

/// Dropping the head of a 200 000-node list on a 64 KiB stack frees every
/// node there and then (iteratively: no stack overflow).
#[test]
fn long_list_drop_does_not_overflow() {
    let q = quiet();
    let log = Log::default();
    let n = if cfg!(miri) { 100 } else { 200_000 };
    let head = log.node();
    let mut cur = head.clone();
    for _ in 0..n {
        let x = log.node();
        *cur.next.lock().unwrap() = Some(x.clone());
        cur = x;
    }
    drop(cur);
    let l = log.clone();
    let freed_in_thread = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            drop(head);
            l.drops()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(freed_in_thread, n + 1, "not all freed by the last drop");
    q.done(0);
}

/// Objects made and dropped in a thread-local destructor (where the
/// collector's own thread-locals may be gone) are managed and freed at
/// their last drop.
#[test]
fn thread_local_destructors() {
    let q = quiet();
    static LOG: OnceLock<Log> = OnceLock::new();
    let log = LOG.get_or_init(Log::default).clone();
    let objects = read_mem_stats().heap_objects;
    struct Late;
    impl Drop for Late {
        fn drop(&mut self) {
            let log = LOG.get().unwrap();
            let head = log.node();
            let mut cur = head.clone();
            for _ in 0..1000 {
                let x = log.node();
                *cur.next.lock().unwrap() = Some(x.clone());
                cur = x;
            }
            drop(cur);
            drop(head);
        }
    }
    // Used on a plain std thread only (the point is its destructor), never
    // across a park.
    thread_local! {
        static LATE: Late = const { Late };
    }
    std::thread::spawn(|| LATE.with(|_| {})).join().unwrap();
    assert_eq!(log.drops(), 1001, "not freed at the last drop");
    assert_eq!(read_mem_stats().heap_objects, objects, "left registered");
    q.done(0);
}

/// Go's weak.Pointer.Value returns the object until the collector has
/// found it unreachable: a weak handle to a garbage cycle that no
/// collection has examined yet upgrades, and the upgraded handle is a root
/// (the cycle survives a collection); once it is dropped, the next
/// collection frees the cycle.
#[test]
fn weak_upgrade_keeps_cycle_alive() {
    let q = quiet();
    let log = Log::default();
    let a = log.node();
    *a.next.lock().unwrap() = Some(a.clone());
    let w = Gc::downgrade(&a);
    drop(a);
    let back = w
        .upgrade()
        .expect("a weak upgrade of uncollected garbage failed, with no collection run");
    gc();
    assert_eq!(log.drops(), 0, "collected while an upgraded handle lived");
    assert!(back.next.lock().unwrap().is_some(), "the cycle was cut");
    drop(back);
    assert_eq!(log.drops(), 0, "still a cycle: only a collection frees it");
    gc();
    assert_eq!(log.drops(), 1, "the cycle was not collected");
    assert!(w.upgrade().is_none());
    q.done(2);
}

static HOOK_RUNS: AtomicUsize = AtomicUsize::new(0);
fn hook() {
    HOOK_RUNS.fetch_add(1, SeqCst);
}

/// `add_gc_hook`: registering the same function twice registers it once,
/// so it runs exactly once per collection.
#[test]
fn hooks_run_each_cycle() {
    let q = quiet();
    add_gc_hook(hook);
    add_gc_hook(hook);
    let n = HOOK_RUNS.load(SeqCst);
    gc();
    assert_eq!(HOOK_RUNS.load(SeqCst), n + 1, "runs once per collection");
    gc();
    assert_eq!(HOOK_RUNS.load(SeqCst), n + 2, "runs once per collection");
    q.done(2);
}

static HELD: Mutex<Option<Gc<Node>>> = Mutex::new(None);
fn release_held() {
    HELD.lock().unwrap().take();
}

/// Hooks run at the start of a collection, before it examines the heap
/// (as Go's poolCleanup runs before marking): garbage a hook makes is
/// freed by the collection that ran the hook.
#[test]
fn hooks_run_before_the_collection_examines_the_heap() {
    let q = quiet();
    let log = Log::default();
    let a = log.node();
    *a.next.lock().unwrap() = Some(a.clone()); // a cycle, held by HELD only
    *HELD.lock().unwrap() = Some(a);
    add_gc_hook(release_held);
    gc();
    assert_eq!(
        log.drops(),
        1,
        "the cycle the hook released was not freed by that collection"
    );
    q.done(1);
}

/// MemStats counts exactly: allocations, frees at the last drop (without a
/// collection), live objects and bytes, forced collections.
#[test]
fn stats_count_objects() {
    let q = quiet();
    let before = read_mem_stats();
    let v: Vec<Gc<u64>> = (0..1000).map(Gc::new).collect();
    let mid = read_mem_stats();
    assert_eq!(mid.mallocs, before.mallocs + 1000);
    assert_eq!(mid.heap_objects, before.heap_objects + 1000);
    let bytes = mid.heap_alloc - before.heap_alloc;
    assert_eq!(bytes % 1000, 0, "objects of one type differ in size");
    assert!(
        bytes / 1000 > std::mem::size_of::<u64>() as u64,
        "no header"
    );
    drop(v);
    let freed = read_mem_stats();
    assert_eq!(freed.frees, before.frees + 1000, "freed at the last drop");
    assert_eq!(freed.heap_objects, before.heap_objects);
    assert_eq!(freed.heap_alloc, before.heap_alloc);
    assert_eq!(freed.num_gc, before.num_gc);
    gc();
    let after = read_mem_stats();
    assert_eq!(after.num_gc, before.num_gc + 1);
    assert_eq!(after.num_forced_gc, before.num_forced_gc + 1);
    assert!(after.last_gc > 0);
    assert!(after.next_gc > 0);
    q.done(1);
}
