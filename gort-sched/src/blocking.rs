//! `blocking`: a blocking call runs on a pool thread while the goroutine
//! parks, so its M keeps running the goroutines bound to it.
//!
//! # The problem
//!
//! A goroutine that makes a blocking system call — `read(2)` on a file,
//! `getaddrinfo`, `fsync`, a C library that waits — holds its OS thread for
//! as long as the call takes. In Go that costs little: `entersyscall` lets
//! sysmon hand the P to another M, and the other goroutines move with it.
//! In gort a started goroutine never changes thread (crate docs, "The one
//! departure from Go"), so the goroutines *bound* to that M cannot move:
//! handing off the P lets fresh goroutines run elsewhere, but the bound ones
//! wait until the call returns. The only way to keep them running is to
//! make the call somewhere else.
//!
//! # The design
//!
//! [`blocking(f)`](blocking) sends `f` to a pool of OS threads and parks the
//! calling goroutine ([`park`] with a [`Waiter`], the one blocking
//! primitive); the pool thread runs `f`, stores its result (or its panic)
//! and readies the goroutine, which returns the result (or resumes the
//! panic). Meanwhile its M runs its other goroutines.
//!
//! The pool is tokio's `spawn_blocking` pool: threads named
//! `gort-blocking` are started on demand, up to 512; a job that finds none
//! idle at the cap waits in a FIFO queue for the next thread to finish; an
//! idle thread waits on a condition variable (no polling) and exits after
//! 10 s without work. Idle threads are counted, and a submitter that finds
//! one idle *designates* it (`idle -= 1; notify += 1`), so a burst of jobs
//! wakes or starts one thread per job instead of many notifications landing
//! on one waiter.
//!
//! ## Borrowing, as `std::thread::scope` allows
//!
//! `f` need not be `'static`: it may borrow the caller's locals, mutably
//! too, as a scoped thread may. This is sound for the same reason
//! `std::thread::scope` is: the caller cannot return, or unwind, before `f`
//! has run to completion and been dropped on the pool thread. Concretely:
//!
//! * `blocking` returns only after the job's `done` flag is set, and the
//!   pool thread sets it only after `f` (and everything it captured) is
//!   consumed and its result stored. The caller loops on the flag, so even
//!   a spurious return of `park` could not let it leave early.
//! * Nothing between handing over the job and seeing `done` can unwind:
//!   the wait uses poison-free locking and `park`, which does not unwind (a
//!   parked goroutine is never dropped: descriptors are immortal and the
//!   scheduler never drops a suspended context). Should that ever change,
//!   a guard turns an unwind out of the wait into a fatal error rather
//!   than a dangling borrow.
//! * The goroutine's stack stays mapped, in place and writable while it is
//!   parked (DESIGN.md §3), so the borrowed locals stay valid. Stack
//!   compaction (the `unsafe` opt-in
//!   [`Builder::compact_when_parked`](crate::Builder::compact_when_parked))
//!   skips a goroutine parked here (its wait reason is
//!   [`WaitReason::Blocking`](crate::WaitReason::Blocking)).
//!
//! `F: Send` and `R: Send` are what a scoped thread asks: `f` and its
//! result cross threads; shared borrows inside `f` need `Sync` targets.
//!
//! ## Plain threads, pool threads, unwinding
//!
//! From a thread that is not a goroutine (`main`, a pool thread itself, a
//! thread of another library), `f` runs inline: blocking that thread is
//! what the caller would get without gort, and it makes nested `blocking`
//! calls (from inside `f`) run at once instead of queueing behind
//! themselves at the cap. While the thread unwinds (a `Drop` running
//! during a panic calls `blocking`, e.g. through `gort::fs` to delete a
//! temporary file) `f` also runs inline: parking then would show the other
//! goroutines of the thread `std::thread::panicking() == true` (crate docs,
//! "Goroutines share their thread").
//!
//! ## Cost
//!
//! A round trip — hand the job to a pool thread, wake it, run an empty `f`,
//! ready the goroutine, resume it — is a cross-thread hand-off each way.
//! Measured on the 2-core development VM with
//! `cargo run --release -p gort-bench --bin gort -- blocking_roundtrip`
//! (one goroutine, 100,000 sequential `blocking(|| ())`, 2026-11): 7-16 µs
//! a call over several runs; tokio's `spawn_blocking(|| ()).await` in the
//! same runs (`--bin tokio`): 11-41 µs. Most of it is waking the idle pool
//! thread (a futex wake-up, slow on a VM); the caller's M usually still
//! watches its inbox when the pool thread readies the goroutine. A
//! `std::fs` call that hits the page cache costs a few microseconds:
//! `blocking` pays for calls that can take long (disk, network file
//! systems, name resolution), not for every short system call.
//!
//! ## Rejected alternatives
//!
//! * *A `'static` closure and a join handle* (tokio's `spawn_blocking`):
//!   a goroutine waits for the call anyway — that is the point of
//!   blocking-style code — so the scoped form costs nothing more and saves
//!   the copies into owned buffers (`File::read` into the caller's slice).
//! * *A thread per call*: a thread start costs tens of microseconds and
//!   unbounded bursts could exhaust the process's thread limit.
//! * *A fixed-size pool*: blocking calls that wait for each other (a pipe
//!   read in one, the write in another) deadlock once they fill it; a
//!   large cap with on-demand threads avoids that in practice.
//! * *Moving the caller's M's other goroutines to another M* (Go's P
//!   hand-off): they are bound to their thread, for soundness.
//!
//! # Invariants
//!
//! * `pending` counts jobs submitted and not yet finished (queued or
//!   running); it drops only after the job readied its caller. So when it
//!   reads 0, no pool thread runs user code or can wake a goroutine: every
//!   live pool thread is idle or about to wait for work.
//! * `idle + notify` equals the threads inside the idle wait; a job pushed
//!   while `idle > 0` designates one of them. A thread goes idle only with
//!   an empty queue and exits only from the idle wait, so whenever the
//!   queue is non-empty some thread is running, starting, designated, or a
//!   submitter whose thread failed to start is about to run the queue
//!   itself.
//! * A job's slot (the closure, then its result) is touched by the pool
//!   side only until `done` is set, and by the caller only before the job
//!   is queued and after it sees `done`.

use crate::loom::{AtomicU64, AtomicUsize, Ordering};
use crate::{park, WaitReason, Waiter};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
// std's, not `crate::loom`'s: a `Condvar` needs std's guard, and this module
// is not built under loom (it starts real threads).
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most pool threads alive at once (tokio's `spawn_blocking` default).
const MAX_THREADS: usize = 512;

/// How long an idle pool thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What a goroutine waiting in [`blocking`] is parked for.
pub(crate) const WAIT_REASON: WaitReason = WaitReason::Blocking;

/// Runs `f` on a pool thread while the calling goroutine parks, and returns
/// its result: the goroutine's M runs its other goroutines meanwhile. Use it
/// for calls that can block the thread for long: file I/O (`gort::fs` wraps
/// `std::fs` with it), name resolution, `fsync`, a C library that waits.
///
/// `f` may borrow from the caller, as with `std::thread::scope`: `blocking`
/// returns only after `f` has finished on the pool thread. A panic in `f`
/// is resumed in the caller with its payload.
///
/// From a thread that is not a goroutine, or while the thread unwinds from
/// a panic, `f` simply runs on the calling thread (see the module docs for
/// why). Calling `blocking` from inside `f` therefore runs the inner call
/// at once on the pool thread.
///
/// A round trip costs a cross-thread hand-off each way (7-16 µs on a 2-core
/// VM): worth it for calls that may take long, not for every short system
/// call. The pool grows to at most 512 threads; further calls queue until a
/// thread is free, so calls that wait for each other can deadlock past that
/// many. An idle pool thread exits after 10 s.
///
/// `f` runs on a plain thread: it sees that thread's thread-locals, not
/// the caller's goroutine-locals ([`goroutine_local!`](crate::goroutine_local)).
///
/// From a goroutine locked to its thread ([`lock_os_thread`](crate::lock_os_thread)),
/// `f` runs on that thread instead, as a [`syscall`](crate::syscall): the
/// thread's state (working directory, namespaces, a thread-affine library)
/// is what the locked goroutine relies on, and nothing else starts on the
/// thread meanwhile. Then `f` runs on the goroutine's own stack (mind its
/// size for deep calls) and sees the goroutine's goroutine-locals; the
/// goroutines still bound to a shared locked thread wait for it.
///
/// ```
/// let mut lines = 0;
/// gort_sched::run(move || {
///     let n = gort_sched::blocking(|| {
///         lines += 1; // borrows the caller's local mutably
///         std::thread::sleep(std::time::Duration::from_millis(1));
///         lines
///     });
///     assert_eq!(n, 1);
/// });
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    if crate::rt::current_g().is_none() || std::thread::panicking() {
        return f();
    }
    if crate::rt::os_thread_locks() > 0 {
        // A locked goroutine's calls stay on its thread (its per-thread
        // state: a private working directory, a namespace, a C library's
        // thread): the call blocks the thread, as a `syscall`, which hands
        // the P on if it lasts.
        return crate::rt::syscall(f);
    }
    call_on_pool(f)
}

/// The pool's state for the scheduler's deadlock detector: (pool threads
/// alive, jobs queued or running). When the second is 0, every alive pool
/// thread is idle, waiting for work: none can wake a goroutine. SeqCst
/// loads, pairing with the SeqCst updates in `submit` (before the caller
/// parks) and `Job::run` (after it readied the caller): a reader that sees
/// 0 also sees every goroutine those jobs readied.
pub(crate) fn pool_state() -> (usize, usize) {
    (
        POOL.alive.load(Ordering::SeqCst),
        POOL.pending.load(Ordering::SeqCst),
    )
}

/// [`pool_state`] for tests: (pool threads alive, jobs queued or running).
#[doc(hidden)]
pub fn blocking_pool_state() -> (usize, usize) {
    pool_state()
}

/// For tests: sets how long an idle pool thread waits for work before it
/// exits (default 10 s). Threads already idle use the new value from their
/// next wait on.
#[doc(hidden)]
pub fn set_blocking_keep_alive(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    POOL.keep_alive_ns.store(ns, Ordering::Relaxed);
}

/// The closure and then its result; on the heap, owned by the caller, lent
/// to the pool thread between `submit` and `done`.
struct Slot<F, R> {
    f: Option<F>,
    out: Option<std::thread::Result<R>>,
}

/// A caller's park, and whether its job is done.
#[derive(Default)]
struct Signal {
    /// Written by the caller (`waiter`) and the pool thread (`done`, takes
    /// `waiter`), both under the lock, whose release/acquire also orders
    /// the slot's result before the caller reads it.
    state: Mutex<SignalState>,
}

#[derive(Default)]
struct SignalState {
    done: bool,
    waiter: Option<Waiter>,
}

impl Signal {
    /// Caller: parks until the job is done.
    fn wait(&self) {
        let mut st = lock(&self.state);
        while !st.done {
            st.waiter = Some(Waiter::current());
            park(WAIT_REASON, move || {
                drop(st);
                true
            });
            st = lock(&self.state);
        }
    }

    /// Pool side: the job is done (its slot is no longer touched); wake
    /// the caller if it parked.
    fn finish(&self) {
        let w = {
            let mut st = lock(&self.state);
            st.done = true;
            st.waiter.take()
        };
        if let Some(w) = w {
            w.ready();
        }
    }
}

/// One call, type-erased for the queue.
struct Job {
    /// The calling goroutine's id (see [`lender`]).
    lender: u64,
    /// A `Slot<F, R>` made by `call_on_pool::<F, R>`.
    slot: *mut (),
    /// `run_slot::<F, R>`, for that slot.
    run: unsafe fn(*mut ()),
    signal: Arc<Signal>,
}

// SAFETY: the slot's closure is `Send` and so is its result (the bounds of
// `blocking`); the pointer is used by one thread at a time (the pool thread
// that dequeued the job, between `submit` and `done`).
unsafe impl Send for Job {}

impl Job {
    /// Runs the call, wakes its caller, and only then stops counting it.
    fn run(self) {
        LENDER.with(|l| l.set(self.lender));
        // SAFETY: the slot was made for this `run` function, and its caller
        // waits (cannot free it or return) until `finish` below.
        unsafe { (self.run)(self.slot) };
        LENDER.with(|l| l.set(0));
        self.signal.finish();
        // SeqCst: pairs with `pool_state`'s load (see there).
        POOL.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the closure of a `Slot<F, R>` and stores its result or panic.
///
/// # Safety
/// `p` points to a live `Slot<F, R>` holding a closure, which nothing else
/// touches until this returns.
unsafe fn run_slot<F, R>(p: *mut ())
where
    F: FnOnce() -> R,
{
    let slot = p.cast::<Slot<F, R>>();
    // SAFETY: the caller's contract; the borrow ends before `f` runs.
    let f = unsafe { (*slot).f.take() }.expect("blocking: job run twice");
    // `f` and its captures are consumed here, on this thread: nothing of
    // the caller's borrowed state is touched after this line.
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    // SAFETY: as above.
    unsafe { (*slot).out = Some(out) };
}

#[cold]
fn call_on_pool<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let slot: *mut Slot<F, R> = Box::into_raw(Box::new(Slot {
        f: Some(f),
        out: None,
    }));
    let signal = Arc::new(Signal::default());
    let job = Job {
        lender: crate::rt::current_g().map_or(0, |g| g.goid()),
        slot: slot.cast(),
        run: run_slot::<F, R>,
        signal: signal.clone(),
    };
    // From here until `wait` returns the job may borrow this frame's
    // callers' data through `f`: leaving early, even by unwinding, would
    // leave the pool thread with dangling borrows.
    let bomb = FatalOnUnwind(
        "gort_sched::blocking: the caller unwound while its call ran on a pool thread",
    );
    POOL.submit(job);
    signal.wait();
    std::mem::forget(bomb);
    // SAFETY: `done` is set: the pool side has stored the result and will
    // not touch the slot again (the Signal lock ordered its writes before
    // our read of `done`); the slot came from Box::into_raw above.
    let slot = unsafe { Box::from_raw(slot) };
    match slot.out.expect("blocking: job done without a result") {
        Ok(r) => r,
        Err(payload) => panic::resume_unwind(payload),
    }
}

// A pool thread is a plain OS thread (never an M: no goroutine runs or
// parks on it), so a thread-local is exactly "the call running here". (A
// call that made its pool thread an M, through `run_on_this_thread`, would
// run goroutines there: `caller_goid` asks the running goroutine first.)
thread_local! {
    /// On a pool thread, the id of the goroutine whose call it runs (0:
    /// none).
    static LENDER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// On a pool thread running a [`blocking`] call, the id of the goroutine
/// that made it (parked until the call returns).
pub(crate) fn lender() -> Option<u64> {
    LENDER.try_with(|l| l.get()).ok().filter(|&id| id != 0)
}

/// Forgotten on the normal path; dropped only by an unwind that must not
/// happen (see its uses): ends the process with its message.
struct FatalOnUnwind(&'static str);

impl Drop for FatalOnUnwind {
    fn drop(&mut self) {
        gort_os::fatal(self.0);
    }
}

/// The blocking pool (see the module docs).
struct Pool {
    shared: Mutex<Shared>,
    /// Idle threads wait here; a submitter that designated one notifies.
    cv: Condvar,
    /// Threads alive or starting (`Shared::threads`, mirrored for
    /// `pool_state`; written under the lock).
    alive: AtomicUsize,
    /// Jobs submitted and not finished (see the module invariants).
    pending: AtomicUsize,
    /// Idle threads' keep-alive (a test hook can shorten it).
    keep_alive_ns: AtomicU64,
}

/// Protected by `Pool::shared`.
struct Shared {
    queue: VecDeque<Job>,
    /// Threads alive or starting.
    threads: usize,
    /// Threads in the idle wait that no submitter designated yet.
    idle: usize,
    /// Designations not yet taken by a thread in the idle wait.
    notify: usize,
}

static POOL: Pool = Pool {
    shared: Mutex::new(Shared {
        queue: VecDeque::new(),
        threads: 0,
        idle: 0,
        notify: 0,
    }),
    cv: Condvar::new(),
    alive: AtomicUsize::new(0),
    pending: AtomicUsize::new(0),
    keep_alive_ns: AtomicU64::new(KEEP_ALIVE.as_nanos() as u64),
};

/// Locks a std mutex, ignoring poison: nothing panics under these locks
/// (user code runs outside them), so their data is always consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn keep_alive(&self) -> Duration {
        Duration::from_nanos(self.keep_alive_ns.load(Ordering::Relaxed))
    }

    /// Queues `job` and makes sure a thread will run it: designates an idle
    /// one, starts a new one, or (at the cap) leaves it for the next thread
    /// that finishes.
    fn submit(&'static self, job: Job) {
        // SeqCst: pairs with `pool_state`'s load; before the caller parks.
        self.pending.fetch_add(1, Ordering::SeqCst);
        let mut sh = lock(&self.shared);
        sh.queue.push_back(job);
        if sh.idle > 0 {
            sh.idle -= 1;
            sh.notify += 1;
            drop(sh);
            // After unlocking: the woken thread need not wait for the lock.
            // Any thread in the idle wait may take the designation; the
            // counts stay right whichever does.
            self.cv.notify_one();
            return;
        }
        if sh.threads >= MAX_THREADS {
            return; // FIFO: a busy thread takes it when it finishes
        }
        sh.threads += 1;
        self.alive.store(sh.threads, Ordering::SeqCst);
        drop(sh);
        let started =
            gort_os::thread::spawn_named("gort-blocking".to_string(), 0, move || self.worker());
        if started.is_err() {
            self.spawn_failed();
        }
    }

    /// A pool thread could not be started (the process or system is out of
    /// threads or memory). If another thread lives, it will drain the queue
    /// before it goes idle; if none does, the queued jobs (this caller's
    /// among them) run here, on the calling goroutine's thread: slow, but
    /// every caller gets its answer.
    #[cold]
    fn spawn_failed(&'static self) {
        let mut sh = lock(&self.shared);
        sh.threads -= 1;
        self.alive.store(sh.threads, Ordering::SeqCst);
        if sh.threads > 0 {
            return;
        }
        let jobs: Vec<Job> = sh.queue.drain(..).collect();
        drop(sh);
        for job in jobs {
            job.run();
        }
    }

    /// A pool thread: runs queued jobs; idle, waits for a designation up to
    /// the keep-alive, then exits.
    fn worker(&'static self) {
        // User code runs under catch_unwind, so only a bug here could
        // unwind; a dead thread still counted (idle, or owning a job) would
        // hang its callers, so that is fatal instead.
        let bomb = FatalOnUnwind("gort_sched::blocking: a pool thread panicked");
        let mut sh = lock(&self.shared);
        loop {
            if let Some(job) = sh.queue.pop_front() {
                drop(sh);
                job.run();
                sh = lock(&self.shared);
                continue;
            }
            sh.idle += 1;
            // None: a keep-alive too long to represent, i.e. forever.
            let deadline = Instant::now().checked_add(self.keep_alive());
            loop {
                let now = Instant::now();
                match deadline {
                    Some(d) if now >= d => {}
                    Some(d) => {
                        sh = self
                            .cv
                            .wait_timeout(sh, d - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    None => sh = self.cv.wait(sh).unwrap_or_else(PoisonError::into_inner),
                }
                if sh.notify > 0 {
                    sh.notify -= 1; // designated (or took another's: same count)
                    break;
                }
                if !sh.queue.is_empty() {
                    // Not expected (see the invariants), but never leave
                    // work behind: stop being idle and take it.
                    sh.idle -= 1;
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    sh.idle -= 1;
                    sh.threads -= 1;
                    self.alive.store(sh.threads, Ordering::SeqCst);
                    std::mem::forget(bomb);
                    return;
                }
                // Spurious wake-up: wait out the rest of the keep-alive.
            }
        }
    }
}
