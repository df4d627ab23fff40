//! Soundness regression tests.
//!
//! Issue 11, item 9 (gort-gc's part): an invalid `GOGC`/`GOMEMLIMIT` was
//! reported once, as a panic in whichever goroutine allocated the first
//! `Gc`, then ignored; an out-of-range `GOMEMLIMIT` was called "malformed".
//! Now the runtime refuses to start on them, as on an invalid `GOMAXPROCS`,
//! and out of range says so. Each case runs in a child process (the
//! variables are read once per process): this binary re-executes itself
//! with `--exact child_probe`, and the parent checks the child's start
//! marker before anything else (a renamed test would run nothing and pass).
//!
//! Issue 11, item 5: the pending-free list and the "inside the collector"
//! flag lived in thread-locals, shared by every goroutine of an M. A
//! goroutine parked inside a `Drop` (of a freed object, or of a cycle its
//! `gc()` collected) held them for the others: their frees were queued on
//! its list until it resumed, and their `gc()` panicked. These tests run
//! goroutines on one P (so on one M) and check each other's effects while
//! one is parked; every wait is bounded, so a regression fails, not hangs.

use gort_gc::{gc, read_mem_stats, Gc, Trace, Tracer};
use gort_sched::{Config, JoinHandle};
use gort_sema::Note;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// The child: starts the runtime with a goroutine, then allocates twice,
/// printing what happened at each step.
#[test]
fn child_probe() {
    if std::env::var_os("GORT_GC_SOUNDNESS_CHILD").is_none() {
        return;
    }
    println!("CHILD STARTED");
    match catch_unwind(|| gort_sched::go(|| 7).join().unwrap()) {
        Ok(v) => println!("START OK {v}"),
        Err(p) => println!("START PANIC: {}", panic_message(p)),
    }
    // Nothing was allocated by starting (or failing to start).
    println!("MALLOCS BEFORE GC {}", read_mem_stats().mallocs);
    for i in 0..2 {
        match catch_unwind(AssertUnwindSafe(|| drop(Gc::new(1u8)))) {
            Ok(()) => println!("GC {i} OK"),
            Err(p) => println!("GC {i} PANIC: {}", panic_message(p)),
        }
    }
}

fn run_child(vars: &[(&str, &str)]) -> String {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_probe", "--nocapture", "--test-threads=1"])
        .env("GORT_GC_SOUNDNESS_CHILD", "1")
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT")
        .env_remove("GOMAXPROCS");
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("CHILD STARTED"),
        "the child did not run child_probe: {text}"
    );
    text
}

#[test]
fn invalid_gogc_fails_at_runtime_start() {
    let out = run_child(&[("GOGC", "abc")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOGC=\"abc\""),
        "the runtime started with GOGC=abc: {out}"
    );
    assert!(out.contains("MALLOCS BEFORE GC 0"), "{out}");
    // Never swallowed: every allocation reports it, not only the first.
    assert!(
        out.contains("GC 0 PANIC: gort: invalid GOGC=\"abc\""),
        "{out}"
    );
    assert!(
        out.contains("GC 1 PANIC: gort: invalid GOGC=\"abc\""),
        "{out}"
    );
}

#[test]
fn invalid_gomemlimit_fails_at_runtime_start() {
    let out = run_child(&[("GOMEMLIMIT", "64MB")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOMEMLIMIT=\"64MB\": malformed"),
        "{out}"
    );
    assert!(
        out.contains("GC 1 PANIC: gort: invalid GOMEMLIMIT"),
        "{out}"
    );
}

#[test]
fn out_of_range_gomemlimit_says_out_of_range() {
    for v in ["99999999999999999999999", "8EiB", "9223372036854775808B"] {
        let out = run_child(&[("GOMEMLIMIT", v)]);
        let want = format!("START PANIC: gort: invalid GOMEMLIMIT=\"{v}\": out of range");
        assert!(out.contains(&want), "{v}: {out}");
        assert!(!out.contains("malformed"), "{v} called malformed: {out}");
    }
    let out = run_child(&[("GOGC", "99999999999")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOGC=\"99999999999\": out of range"),
        "{out}"
    );
}

#[test]
fn valid_values_start_and_allocate() {
    for vars in [
        [("GOGC", "50"), ("GOMEMLIMIT", "64MiB")],
        [("GOGC", "off"), ("GOMEMLIMIT", "7EiB")],
    ] {
        let out = run_child(&vars);
        assert!(out.contains("START OK 7"), "{vars:?}: {out}");
        assert!(out.contains("GC 0 OK"), "{vars:?}: {out}");
        assert!(out.contains("GC 1 OK"), "{vars:?}: {out}");
    }
}

/// Serializes the tests that allocate in this process: a cycle's `Drop`
/// must be run by its own test's `gc()`, not by another test's, and one
/// test counts the live objects.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the runtime with one P, so the goroutines of a test share an M.
fn one_proc() {
    gort_sched::init(Config {
        procs: 1,
        ..Config::default()
    });
    assert_eq!(
        gort_sched::gomaxprocs(0),
        1,
        "the runtime must run on one P"
    );
}

/// Joins a goroutine, failing (instead of hanging) after 30 s; a panic in
/// it fails the test with its message.
fn join_within<T: Send + 'static>(h: JoinHandle<T>, what: &str) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(h.join().map_err(|e| {
            if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                "goexit".to_string()
            }
        }));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => panic!("goroutine {what} panicked: {msg}"),
        Err(_) => panic!("goroutine {what} hung"),
    }
}

/// A pair of notes: the `Drop` that parks wakes `parked`, then sleeps on
/// `resume`.
#[derive(Default)]
struct Park {
    parked: Note,
    resume: Note,
    /// The thread the parking `Drop` ran on.
    tid: Mutex<Option<ThreadId>>,
}

impl Park {
    fn park(&self) {
        *self.tid.lock().unwrap() = Some(std::thread::current().id());
        self.parked.wakeup();
        self.resume.sleep();
    }
}

/// An object without handles whose `Drop` parks until told to go on.
struct Blocker(Arc<Park>);
impl Drop for Blocker {
    fn drop(&mut self) {
        self.0.park();
    }
}
// SAFETY: no handles.
unsafe impl Trace for Blocker {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

/// An object without handles whose `Drop` records that it ran.
struct Recorder(Arc<AtomicBool>);
impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}
// SAFETY: no handles.
unsafe impl Trace for Recorder {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

/// (a) Goroutine A's free parks inside a `Drop`; goroutine B, on the same
/// M, drops the last handle of an unrelated object: its `Drop` runs at
/// once. It used to be queued on A's pending-free list (a thread-local)
/// until A resumed — a deadlock had B waited for it.
#[test]
fn a_free_parked_in_drop_does_not_hold_other_goroutines_frees() {
    let _serial = serial();
    one_proc();
    let park = Arc::new(Park::default());
    let ran = Arc::new(AtomicBool::new(false));
    let blocker = Gc::new(Blocker(park.clone()));
    let recorder = Gc::new(Recorder(ran.clone()));
    let a = gort_sched::go(move || drop(blocker));
    let p = park.clone();
    let b = gort_sched::go(move || {
        p.parked.sleep(); // A is parked inside Blocker::drop
        let tid = std::thread::current().id();
        drop(recorder); // the last handle
        let ran_at_once = ran.load(SeqCst);
        p.resume.wakeup(); // whatever happened, let A finish
        (tid, ran_at_once)
    });
    let (tid_b, ran_at_once) = join_within(b, "B");
    join_within(a, "A");
    assert_eq!(
        *park.tid.lock().unwrap(),
        Some(tid_b),
        "A and B must share one M for this test to mean anything"
    );
    assert!(
        ran_at_once,
        "B's Drop was deferred to A's free (parked on the same thread)"
    );
}

/// A member of a cycle; `park`, if set, makes its `Drop` park.
#[derive(Trace)]
struct CycleNode {
    next: Mutex<Option<Gc<CycleNode>>>,
    #[gc(skip)]
    park: Option<Arc<Park>>,
    #[gc(skip)]
    dropped: Arc<AtomicUsize>,
}

impl Drop for CycleNode {
    fn drop(&mut self) {
        if let Some(p) = &self.park {
            p.park();
        }
        self.dropped.fetch_add(1, SeqCst);
    }
}

/// Makes a garbage two-cycle; the first node's `Drop` parks on `park`.
fn parking_cycle(park: Option<Arc<Park>>, dropped: &Arc<AtomicUsize>) {
    let x = Gc::new(CycleNode {
        next: Mutex::new(None),
        park,
        dropped: dropped.clone(),
    });
    let y = Gc::new(CycleNode {
        next: Mutex::new(Some(x.clone())),
        park: None,
        dropped: dropped.clone(),
    });
    *x.next.lock().unwrap() = Some(y);
}

/// (b) A `Drop` run by goroutine A's `gc()` parks; goroutine B on the same
/// M calls `gc()` meanwhile: it waits for A's cycle instead of panicking
/// "called from a Drop impl run by the collector" (the flag was a
/// thread-local); then A's `Drop` resumes and both collections finish.
#[test]
fn gc_while_a_collector_run_drop_is_parked_waits() {
    let _serial = serial();
    one_proc();
    let park = Arc::new(Park::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let (p, d) = (park.clone(), dropped.clone());
    let a = gort_sched::go(move || {
        parking_cycle(Some(p), &d);
        gc();
    });
    let p = park.clone();
    let b = gort_sched::go(move || {
        p.parked.sleep(); // A's collector is parked inside CycleNode::drop
        let tid = std::thread::current().id();
        // Runs only once B parks (one P): B is then waiting in gc().
        let p2 = p.clone();
        let c = gort_sched::go(move || p2.resume.wakeup());
        // (Were it to panic instead, C would still wake A.)
        let r = catch_unwind(gc).map_err(panic_message);
        c.join().unwrap(); // parks (join_within would block the M)
        (tid, r)
    });
    let (tid_b, r) = join_within(b, "B");
    join_within(a, "A");
    assert_eq!(
        *park.tid.lock().unwrap(),
        Some(tid_b),
        "A and B must share one M for this test to mean anything"
    );
    if let Err(msg) = r {
        panic!("gc() in B panicked while A's collector-run Drop was parked: {msg}");
    }
    assert_eq!(dropped.load(SeqCst), 2, "the cycle was collected");
}

/// A cycle member whose `Drop` calls `gc()`.
#[derive(Trace)]
struct GcInDrop {
    next: Mutex<Option<Gc<GcInDrop>>>,
    #[gc(skip)]
    calls_gc: bool,
}

impl Drop for GcInDrop {
    fn drop(&mut self) {
        if self.calls_gc {
            gc();
        }
    }
}

fn gc_in_drop_cycle() {
    let x = Gc::new(GcInDrop {
        next: Mutex::new(None),
        calls_gc: true,
    });
    let y = Gc::new(GcInDrop {
        next: Mutex::new(Some(x.clone())),
        calls_gc: false,
    });
    *x.next.lock().unwrap() = Some(y);
}

/// Collects a cycle whose `Drop` calls `gc()`; returns the panic message.
fn gc_from_collector_run_drop() -> String {
    gc_in_drop_cycle();
    let e = catch_unwind(gc).expect_err("gc() from a collector-run Drop must panic");
    let msg = panic_message(e);
    // The flag is cleared when the cycle ends, even by a panic.
    gc();
    msg
}

/// (c) `gc()` from a `Drop` that the collector itself runs still panics
/// (it would wait for its own cycle), on a plain thread and on a
/// goroutine.
#[test]
fn gc_from_a_collector_run_drop_panics() {
    let _serial = serial();
    let want = "gort-gc: gc() called from a Drop impl run by the collector";
    assert_eq!(gc_from_collector_run_drop(), want, "on a plain thread");
    one_proc();
    let msg = join_within(gort_sched::go(gc_from_collector_run_drop), "G");
    assert_eq!(msg, want, "on a goroutine");
}

/// A plain thread's pending-free list is thread-local, and stays usable in
/// thread-local destructors that run after others were destroyed: a `Gc`
/// dropped by one is freed. (gort-sched's goroutine-local storage on a
/// plain thread keeps its scopes in a thread-local with a destructor;
/// reading it after that ran panics, which aborts a thread-local
/// destructor — so gort-gc uses it only on goroutines.)
#[test]
fn gc_dropped_by_a_late_thread_local_destructor_is_freed() {
    let _serial = serial();
    // Used on a plain std thread only (the point is its destructor), never
    // across a park.
    thread_local! {
        static HOLD: RefCell<Option<Gc<Recorder>>> = const { RefCell::new(None) };
    }
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    std::thread::spawn(move || {
        // Registered first, so destroyed after any thread-local first
        // touched by the frees below.
        HOLD.with(|h| *h.borrow_mut() = Some(Gc::new(Recorder(r))));
        // Nested frees (a chain of three) on this thread.
        let inner = Gc::new(Recorder(Arc::new(AtomicBool::new(false))));
        let mid = Gc::new(Mutex::new(Some(inner)));
        drop(Gc::new(Mutex::new(Some(mid))));
    })
    .join()
    .unwrap();
    assert!(
        ran.load(SeqCst),
        "the Gc held by the thread-local was freed"
    );
}

/// An object whose `Drop` panics.
struct Panicky;
impl Drop for Panicky {
    fn drop(&mut self) {
        panic!("Panicky::drop");
    }
}
// SAFETY: no handles.
unsafe impl Trace for Panicky {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

/// A panicking `Drop` in the middle of an iterative free does not leak the
/// objects queued behind it (they were dropped from the pending list
/// unfreed): the free goes on, then the panic reaches the dropper.
#[test]
fn a_panicking_drop_does_not_leak_the_queued_frees() {
    let _serial = serial(); // nobody else allocates meanwhile
    let objects = read_mem_stats().heap_objects;
    let ran = Arc::new(AtomicBool::new(false));
    // Dropping `a` queues c, then the Panicky; the queue is a stack, so
    // the Panicky is freed first and c behind it.
    type Pair = (Gc<Recorder>, Gc<Panicky>);
    let c = Gc::new(Recorder(ran.clone()));
    let a: Gc<Mutex<Option<Pair>>> = Gc::new(Mutex::new(Some((c, Gc::new(Panicky)))));
    let r = catch_unwind(AssertUnwindSafe(|| drop(a)));
    assert_eq!(
        r.map_err(panic_message)
            .expect_err("the panic reaches the dropper"),
        "Panicky::drop"
    );
    assert!(
        ran.load(SeqCst),
        "an object queued behind the panicking Drop leaked"
    );
    assert_eq!(
        read_mem_stats().heap_objects,
        objects,
        "the panicking object stayed registered"
    );
}
