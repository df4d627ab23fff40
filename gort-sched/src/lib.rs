//! # gort-sched: Go's G/M/P scheduler for Rust
//!
//! Goroutines (G) are stackful coroutines from gort-os. Machines (M) are OS
//! threads that run them. Processors (P), `GOMAXPROCS` of them, are the right
//! to run goroutines: an M must hold a P to run anything. This is Go's
//! runtime/proc.go design, and the names follow it: `runq_put`, `runnext`,
//! `find_runnable`, `wakep`, `startm`, `stopm`, `gopark`/`goready` (here
//! [`park`] / [`Waiter::ready`]).
//!
//! ## Run queues
//!
//! Each P has a 256-slot lock-free ring plus a `runnext` slot (`runq.rs`):
//! the owner pushes at the tail; the owner and thieves pop at the head by
//! CAS; a thief takes half in one CAS. A full ring spills half to the global
//! queue, a mutex-protected ring of G references that every M checks every
//! 61st schedule for fairness. A new goroutine goes to its spawner's `runnext`.
//!
//! ## The one departure from Go: a started goroutine keeps its thread
//!
//! A goroutine's stack can hold what Rust's type system cannot see across a
//! switch: thread-local references, TLS addresses the compiler cached in a
//! register, `!Send` values (`Rc`, a `MutexGuard`, `ThreadRng`, an epoch
//! `Guard`). Moving that stack to another OS thread is undefined behaviour
//! (the `may` crate had to make spawning `unsafe` for this). So in gort:
//!
//! * a fresh goroutine sits in a P's run queue and may be stolen by any P;
//! * from its first instruction on it is *bound* to the M that started it,
//!   so where it starts decides the balance for good: an M about to start
//!   one gives it instead to another M's P if that M has at least two less
//!   load (its goroutines running, runnable or parked on another goroutine;
//!   network and timer waits are no load), which starts it from there
//!   (`place_fresh`; an M with nothing to do takes back a gift that waited
//!   1 ms for a busy holder, sysmon one that waited 10 ms);
//! * when readied it goes back to that M: onto its local `runnext` if the
//!   waker runs on the same M, else into the M's *inbox* (a lock-free stack
//!   the M drains), waking the M if it sleeps.
//!
//! Only two `unsafe` calls move a started goroutine: [`Builder::migratable`]
//! (at every park) and [`lock_os_thread_alone`] (once, onto a thread of its
//! own).
//!
//! An M therefore has two sources of work: its bound goroutines (M-local
//! queue and inbox) and its P's fresh ones. It alternates between the two
//! queues. A goroutine readied into `runnext` jumps the line and inherits
//! the current time slice (Go's `inheritTime`), until sysmon sees the slice
//! has lasted 10 ms; then it goes behind the rest, so ping-ponging pairs
//! cannot starve the others.
//!
//! A goroutine that yields to a preemption request lets the waiting fresh
//! goroutines go first only when no other M is free to take them: starting
//! one here would bind it to this M for good, and one that never yields (a
//! spinner waiting for the yielder) would strand the yielder behind it
//! while other Ps idle. With a P idle or an M spinning, the fresh ones are
//! left to those (an M is woken for them) and the M goes on with its own.
//!
//! An M with runnable bound goroutines but no P (possible after
//! `gomaxprocs` shrinks) queues for a P; Ms that hold one hand it over after
//! a quantum of 64 schedules. Goroutines that promise to hold nothing
//! thread-affine across blocking calls may opt in to Go's free migration
//! ([`Builder::migratable`], `unsafe`): they are readied onto the waker's P.
//!
//! ## Goroutines share their thread (the contract)
//!
//! Staying on one thread is necessary, not sufficient: the goroutines bound
//! to an M interleave on its OS thread, one running between another's park
//! and resume. Everything kept per thread is therefore shared by them, and
//! code that assumes calls on a thread nest (LIFO) across a call that may
//! park breaks: `scoped-tls` and similar set/restore disciplines (a third
//! goroutine reads a dead pointer), a `thread_local!` `RefCell` borrowed
//! across a park, std's per-thread panic state (while a goroutine unwinds and
//! parks in a `Drop`, the others see `std::thread::panicking() == true` and
//! their std Mutexes get poisoned; a panic hook that parks makes a second
//! panic on the thread abort), std guards and `std::thread::scope`'s join held
//! across a park (they block the M, deadlocking any goroutine of it that the
//! holder waits for). What gort guarantees:
//!
//! * runtime state that can live across a park belongs to the G, never to
//!   the thread; every remaining `thread_local!` says beside it why it is
//!   right across a park;
//! * user code never runs on an M's scheduler stack or under a runtime lock
//!   (a detached goroutine's result is dropped on its own stack);
//! * gort's own `Drop`s never park or yield while the thread unwinds, and a
//!   goroutine that parks while unwinding is reported (once) on stderr;
//! * a stale [`Waiter`] cannot wake a later park: making a waiter starts a
//!   new park epoch, so the runtime's own waits are immune to leftovers;
//! * [`goroutine_local!`] gives per-goroutine scoped values, the sound
//!   replacement for thread-local LIFO state (tokio's `task_local!`).
//!
//! What code running on goroutines must keep: no thread-local scope, borrow
//! or std guard held across a call that may park or yield — and every
//! preemption point may yield ([`go`] and [`Builder::spawn`], the return of
//! [`syscall`], [`preempt_point`], every gort-std operation that may
//! block).
//!
//! ## Idle Ms
//!
//! An M without work first spins — steals from other Ps (if fewer than half
//! of the busy Ps already have a spinning M, as in Go), then briefly watches
//! its inbox — then gives up its P and sleeps on a futex. Whoever makes work
//! calls `wakep`: if a P is idle and no M is spinning, an idle M (or a new
//! one) is started spinning. The last spinning M to find work wakes another.
//! Idle Ms use no CPU.
//!
//! ## Locked threads (Go's `LockOSThread`)
//!
//! An M with a goroutine locked to it ([`lock_os_thread`],
//! [`Builder::lock_os_thread`]) runs *only its own* goroutines: it never
//! takes a fresh one from a P or the global queue, nor steals. When nothing
//! of its own is runnable it gives its P away at once (Go's `handoffp`) —
//! to an M waiting for a P, or with fresh goroutines queued straight to an
//! idle or new M — unless nobody wants the P, when it watches its inbox for
//! up to 50 µs first. It then sleeps on its own idle list, where no `startm`
//! finds it: only a readied goroutine of its own wakes it, and it takes a P
//! like any M with bound work (an idle one, or its turn on `mwaitp`). A
//! locked goroutine that used up its time slice hands the P on when fresh
//! goroutines wait and no other M is free for them. A goroutine that ends
//! locked makes its M leave the scheduler once nothing is bound to it; the
//! thread exits. [`run_on_this_thread`] makes the calling thread such an M
//! for the main goroutine alone, and gives the thread back when it is done.
//!
//! ## Park and ready
//!
//! [`park`] and [`Waiter`] are the single blocking primitive for every layer
//! above, from goroutines and plain threads alike (`park_state.rs` has the
//! protocol and its loom model). A goroutine's park switches to the M's own
//! stack first and only then publishes itself as parked, so a waker can never
//! resume a goroutine whose stack is still in use.
//!
//! ## Spawning costs no allocation
//!
//! Goroutine descriptors are never freed (as Go's `allgs`), are allocated
//! 32 at a time and recycled through per-P free lists. The closure and
//! later the result live inline in the descriptor's 128-byte payload
//! (`task.rs`; larger closures are boxed), and the `JoinHandle` holds one of
//! the descriptor's two references, so `go` + `join` is a free-list pop, a
//! run-queue push and one atomic handshake. The goroutine count is kept per
//! P without atomic read-modify-writes and summed on demand.
//!
//! ## Stack compaction, opt-in
//!
//! A parked goroutine pins at least one 4 KiB page of stack. Goroutines
//! spawned with the `unsafe` [`Builder::compact_when_parked`] promise that
//! nothing else touches their stack while they are parked; for them, every
//! 10 ms (while it has any) their M compacts those parked for a whole
//! interval: the live bytes go to the heap, the pages back to the kernel in
//! batched `madvise` calls, and the bytes are copied back to the same
//! addresses before the goroutine resumes (`gort_os::context`). A parked
//! goroutine then costs about 1 KiB. It cannot be the default: safe Rust
//! can lend a goroutine's locals to a scoped thread, which would read the
//! released (zeroed) pages.
//!
//! ## sysmon and blocking calls
//!
//! One thread without a P (`rt/sysmon.rs`, Go's `sysmon`) wakes every 20 µs
//! to 10 ms while goroutines run and sleeps while every P is idle. It
//! retakes the P of a goroutine blocked in [`syscall`] for longer than a tick
//! (when someone could use it, or after 10 ms) and hands it to another M;
//! asks a goroutine that has run 10 ms to yield at its next
//! [`preempt_point`]; polls the netpoller and runs overdue timers when every
//! M is busy; proves deadlock before printing Go's
//! `all goroutines are asleep - deadlock!` (exit status 2); and prints
//! `GODEBUG=schedtrace=MS[,scheddetail=1]`. Its header states what a long
//! runner still blocks (the goroutines bound to its M: the soundness rule)
//! and the deadlock rule (every thread of the process accounted for).
//!
//! Which blocking call to use when:
//! * [`syscall`] (Go's `entersyscall`/`exitsyscall`): the goroutine keeps its
//!   thread and makes the call there; about 7 ns on top of the call when it
//!   is short (10M `syscall(|| x)` on a 2-core VM). Its P is handed on if
//!   the call lasts, but the other goroutines
//!   bound to its M wait for the call. For short or usually-short calls.
//! * [`blocking`]: the call runs on a pool thread while the goroutine parks,
//!   so its M runs its other goroutines meanwhile; it may borrow the
//!   caller's locals. A round trip costs 7–16 µs on a 2-core VM
//!   (`cargo run --release -p gort-bench --bin gort -- blocking_roundtrip`;
//!   tokio's `spawn_blocking` 11–41 µs there). For calls that may block
//!   long: files (`gort::fs`), host-name resolution, foreign libraries.
//!
//! ## Sources
//!
//! Timers and the network poller plug in as [`Source`]s: the idle path asks
//! them for ready goroutines and the next deadline; one idle M may block in a
//! source's wait (epoll) with that deadline as timeout, one sleeps until it.
//!
//! ## Rejected alternatives
//!
//! * Free migration by default (Go, `may`): unsound for safe Rust, above.
//! * One run queue per M instead of per P: loses Go's `GOMAXPROCS` model and
//!   the hand-off of fresh work when an M blocks.
//! * A mutex-protected inbox: costs a lock on every cross-thread wake; the
//!   Treiber stack is one CAS and the M takes it whole.
//! * An intrusive linked list for the global queue: taking a batch chased
//!   links through cold descriptors (a fifth of `spawn_join`'s time); it is
//!   a ring of pointers now.
//! * Sleeping an idle M at once: two goroutines bound to different Ms that
//!   ping-pong would pay a futex wake-up (tens of microseconds on a VM) per
//!   message. An M with parked goroutines of its own watches its inbox for
//!   up to 50 us first.
//!
//! # Invariants
//!
//! * A G is in at most one queue (P ring/runnext, global, M runnext/runq/
//!   inbox, free list) and is touched only by whoever dequeued it.
//! * A started, non-migratable G only ever runs on `g.m`.
//! * An M runs goroutines only while it holds a P; a P is held by at most one
//!   M, or is idle (in `pidle`), or dead (id >= GOMAXPROCS).
//! * `nmspinning` counts Ms in the spinning state; `npidle` equals
//!   `pidle.len()` outside the idle lock.

// Under loom only the modelled internals are built (and used by the models).
#![cfg_attr(gort_loom, allow(dead_code))]

#[macro_use]
mod loom;
mod park_state;
mod prof_types;
mod rt;
mod runq;
mod source;
mod wait_reason;

// Built under loom too (the upper layers' models may use them).
pub use crate::rt::MAX_PROCS;
pub use crate::source::{note_deadline, register_source, Source};
pub use crate::wait_reason::WaitReason;

// Under loom, the upper layers' models park on loom threads with the same
// contract as the real `park` (see `park_model`).
cfg_loom! {
    mod park_model;
    pub use crate::park_model::{park, Waiter};
}

cfg_not_loom! {
    mod blocking;
    mod config;
    mod local;
    pub mod prof;
    mod spawn;
    mod task;
    mod waiter;

    pub use api::*;
}

#[cfg(all(test, gort_loom))]
mod tests;

#[cfg(not(gort_loom))]
mod api {
    pub use crate::blocking::{blocking, blocking_pool_state, set_blocking_keep_alive};
    pub use crate::config::{parse_procs, parse_stack_size, Config, ConfigError, Traceback};
    pub use crate::local::{AccessError, LocalKey};
    pub use crate::spawn::{
        go, goexit, run, run_on_this_thread, Builder, Goexit, JoinError, JoinHandle,
    };
    pub use crate::waiter::{park, park_thread_timeout, Waiter};

    /// Locks the calling goroutine to its OS thread (Go's
    /// `runtime.LockOSThread`): until it calls [`unlock_os_thread`] as
    /// many times as it called this, no goroutine *starts* on its thread.
    /// Nested calls count.
    ///
    /// Every gort goroutine already stays on its thread (see "The one
    /// departure from Go"), so Go's other half of the promise, that the
    /// thread runs nothing else, is what this adds -- and how much depends
    /// on the thread:
    ///
    /// * **Alone on it** ([`os_thread_siblings`] is 0: the goroutine was
    ///   spawned with [`Builder::lock_os_thread`], or runs under
    ///   [`run_on_this_thread`], or every goroutine that started on its
    ///   thread has ended): Go's full guarantee. The thread runs no other
    ///   goroutine until the unlock; if the goroutine ends locked, the
    ///   thread exits with it, so state it left in the thread is never
    ///   seen by another goroutine (under `run_on_this_thread` the thread
    ///   goes back to the caller instead).
    /// * **Sharing it**: goroutines that started on the thread earlier
    ///   cannot move (a started goroutine never changes thread) and are not
    ///   stranded: they go on running on it whenever the locked goroutine
    ///   is parked, until they end, and they can see per-thread state the
    ///   locked goroutine set (thread locals, `setns`, signal masks, ...).
    ///   If it ends locked, the thread exits once they have ended too. For
    ///   state no other goroutine may see, spawn the work with
    ///   [`Builder::lock_os_thread`], or move the caller first with the
    ///   `unsafe` [`lock_os_thread_alone`].
    ///
    /// While its goroutine is parked, a locked thread's M gives its P to
    /// whoever needs one (Go's hand-off; if nobody does, it keeps it up to
    /// 50 µs first, so that a quick wake-up costs no hand-off), and may
    /// still do the runtime's own idle duties (poll the timers and the
    /// network poller, which readies goroutines of other threads); it runs
    /// no goroutine but those described above. A locked goroutine's
    /// [`blocking`](crate::blocking) calls run on its own thread.
    ///
    /// On a plain thread (not a goroutine) it does nothing: a plain thread
    /// is its own already. Inside [`syscall`] it locks the goroutine.
    ///
    /// # Panics
    /// If the count would overflow (`u32::MAX` nested locks).
    pub fn lock_os_thread() {
        crate::rt::lock_os_thread()
    }

    /// [`lock_os_thread`] with Go's full guarantee from any goroutine: if
    /// other goroutines are bound to the caller's thread, the caller first
    /// moves to a new OS thread of its own (as [`Builder::lock_os_thread`]
    /// would have given it), then locks it. When it returns, the caller
    /// is alone on its thread, which runs no other goroutine until the
    /// unlock and exits with the goroutine if it ends locked (under
    /// [`run_on_this_thread`], whose goroutine is alone already and does
    /// not move, the thread goes back to the caller instead).
    ///
    /// # Safety
    /// The call may move the calling goroutine to another OS thread, which
    /// a started goroutine otherwise never does (see "The one departure
    /// from Go"). Across this call the goroutine must hold nothing tied to
    /// its current thread: no reference to or address of a thread-local,
    /// no `!Send` value (`Rc`, a std `MutexGuard`, a `RefCell` borrow of a
    /// thread-local, `ThreadRng`, a crossbeam-epoch `Guard`, ...), and no
    /// per-thread state it relies on afterwards -- and, since a compiler
    /// may keep a thread-local's address in a register across the call,
    /// the calling function should not use a thread-local both before and
    /// after it (put the rest of the work in a function called after it).
    /// This is
    /// [`Builder::migratable`]'s contract, for this one call. Violating it
    /// is undefined behaviour.
    ///
    /// Not while the thread unwinds (from a `Drop` run by a panic or
    /// `goexit`): std's panic state is per thread and would be left behind;
    /// that is a fatal error.
    ///
    /// # Panics
    /// Inside [`syscall`] (a goroutine in a blocking call cannot switch
    /// threads), or if the count would overflow (before anything moves). On
    /// a plain thread it does nothing.
    pub unsafe fn lock_os_thread_alone() {
        // SAFETY: forwarded to the caller.
        unsafe { crate::rt::lock_os_thread_alone() }
    }

    /// Undoes one [`lock_os_thread`] (Go's `runtime.UnlockOSThread`); at
    /// zero the goroutine is unlocked and its thread may start other
    /// goroutines again (the goroutine itself stays on it, as every gort
    /// goroutine does). Without a matching lock, and on a plain thread, it
    /// does nothing.
    pub fn unlock_os_thread() {
        crate::rt::unlock_os_thread()
    }

    /// How many times the calling goroutine is locked to its thread
    /// ([`lock_os_thread`] calls not yet undone, counting the one of
    /// [`Builder::lock_os_thread`]); 0 on a plain thread.
    pub fn os_thread_lock_count() -> u32 {
        crate::rt::os_thread_locks()
    }

    /// How many goroutines other than the caller are bound to the caller's
    /// OS thread (started on it and not finished): 0 means the thread is
    /// the caller's alone, and a [`lock_os_thread`] now gives Go's full
    /// guarantee. 0 on a plain thread.
    pub fn os_thread_siblings() -> usize {
        crate::rt::os_thread_siblings()
    }

    /// A snapshot of the scheduler's counters, for metrics (each read
    /// on its own, racily: the values need not add up exactly). Starts the
    /// runtime if needed.
    pub fn sched_stats() -> SchedStats {
        crate::rt::stats()
    }

    /// Live goroutines by state (Go's `/sched/goroutines/*` split): one
    /// pass over every goroutine descriptor ever allocated, so it costs
    /// O(peak goroutines); each goroutine's state is a racy snapshot.
    pub fn goroutine_states() -> GoroutineStates {
        crate::rt::goroutine_states()
    }

    /// What [`goroutine_states`] returns.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct GoroutineStates {
        /// Running on an M.
        pub running: usize,
        /// Ready to run: queued, or not started yet.
        pub runnable: usize,
        /// Of `runnable`, those that have run before and are not
        /// migratable: bound to their M (a started goroutine never changes
        /// thread), so only it can run them.
        pub runnable_bound: usize,
        /// Parked (a channel, a lock, a sleep, I/O, `join`, ...).
        pub waiting: usize,
        /// Inside [`syscall`] (Go's "not in Go").
        pub syscall: usize,
    }

    /// What [`sched_stats`] returns.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct SchedStats {
        /// Live goroutines, as [`num_goroutine`] counts them.
        pub goroutines: usize,
        /// Goroutines created since the runtime started (system ones too).
        pub goroutines_created: u64,
        /// GOMAXPROCS.
        pub gomaxprocs: usize,
        /// Ps with nothing to run.
        pub idle_procs: usize,
        /// OS threads the runtime owns: its Ms, sysmon and the blocking
        /// pool's threads.
        pub threads: usize,
        /// Ms asleep without a P.
        pub idle_threads: usize,
        /// Ms looking for work with a P.
        pub spinning_threads: usize,
        /// Ms with runnable goroutines bound to them, waiting for a P.
        pub threads_waiting_for_p: usize,
        /// Threads of the blocking pool (`blocking`).
        pub blocking_pool_threads: usize,
        /// `blocking` calls queued or running.
        pub blocking_calls: usize,
        /// Goroutines in the global run queue.
        pub global_runq: usize,
        /// Goroutine descriptors allocated (never freed; exited ones are
        /// reused).
        pub descriptors: usize,
        /// The size of one goroutine descriptor, bytes.
        pub descriptor_size: usize,
    }

    /// For tests: preemption requests sysmon made that no goroutine has
    /// honoured yet (0 when every preemption point is on its fast path).
    #[doc(hidden)]
    pub fn preempt_requests_pending() -> usize {
        crate::rt::preempt_requests_pending()
    }

    /// Lets other goroutines run; the caller continues later on the same
    /// thread (Go's `runtime.Gosched`). On a plain thread, yields the thread.
    pub fn gosched() {
        crate::rt::gosched()
    }

    /// Runs `f`, a call that may block its OS thread (a system call, a
    /// blocking library call), as Go runs a system call
    /// (`entersyscall`/`exitsyscall`), and returns its result.
    ///
    /// The goroutine keeps its thread. If the call lasts longer than a
    /// sysmon tick (20 µs to 10 ms) while something else could use the
    /// P, sysmon hands the P to another M, so fresh goroutines, goroutines
    /// bound to other Ms, timers and the netpoller go on; when `f`
    /// returns, the goroutine takes its P back, or another idle one, or
    /// waits for one. Goroutines bound to the calling M wait for the call:
    /// use [`blocking`](crate::blocking) when they must not.
    ///
    /// Inside `f` the goroutine acts as a plain thread: gort calls that
    /// park block the thread, `go` queues on the global run queue, and
    /// [`gosched`] yields the thread; goroutine-locals stay the
    /// goroutine's. On a plain thread, or nested, it just calls `f`. A
    /// panic in `f` leaves the call (the P is reacquired) and unwinds on.
    ///
    /// Cost: about 7 ns on top of the call when it is short and keeps its
    /// P (measured on a 2-core VM); a retaken P costs the caller a P
    /// acquisition (or a wait for one).
    ///
    /// ```
    /// let n = gort_sched::go(|| {
    ///     gort_sched::syscall(|| std::fs::read("/proc/self/stat").map(|b| b.len()))
    /// })
    /// .join()
    /// .unwrap()
    /// .unwrap();
    /// assert!(n > 0);
    /// ```
    pub fn syscall<R>(f: impl FnOnce() -> R) -> R {
        crate::rt::syscall(f)
    }

    /// A preemption point: yields if sysmon asked this goroutine to (it has
    /// run 10 ms without parking). One load of a shared, almost always
    /// false flag when not asked: cheap enough for the body of a hot loop.
    ///
    /// gort cannot preempt a goroutine asynchronously (a started goroutine
    /// never changes thread, and its M runs nothing else until it yields),
    /// so a loop that runs long without calling anything that parks
    /// should call this. Spawning and every gort-std operation that may
    /// park are preemption points too. On a plain thread, it does nothing.
    #[inline]
    pub fn preempt_point() {
        crate::rt::preempt_point()
    }

    /// A goroutine dump in Go's format (`runtime.Stack`): the calling
    /// goroutine, and with `all` every other goroutine, each as
    ///
    /// ```text
    /// goroutine 7 "worker" [chan receive, 2 minutes]:
    /// my_crate::consumer::consume(...)
    ///     src/consumer.rs:42
    /// ...
    /// created by src/main.rs:18:5 in goroutine 1
    /// ```
    ///
    /// The state is Go's wait reason (`chan receive`, `sync.Mutex.Lock`,
    /// `sleep`, `IO wait`, ...), or `running`, `runnable`, `syscall`; the
    /// wait is in whole minutes from one minute on; the name is the
    /// [`Builder::name`], if any; `created by` is where the goroutine was
    /// spawned (`go` and [`Builder::spawn`] are `#[track_caller]`) and by
    /// which goroutine (none: a plain thread). Runtime frames and runtime
    /// goroutines ([`Builder::system`]) are left out unless
    /// `GOTRACEBACK=system`.
    ///
    /// Nothing is stopped: a parked goroutine is held in its park while its
    /// stack is walked (a wake meanwhile is delayed, never lost); one running
    /// on another thread prints as `goroutine running on other thread; stack
    /// unavailable` (gort cannot stop a running goroutine soundly); a
    /// runnable one prints without frames. Plain threads are not goroutines
    /// and are not listed; from one, `stack(false)` is empty.
    ///
    /// Symbolisation runs on a helper thread (the first dump of a process
    /// parses the binary's debug info); the calling goroutine is in
    /// [`syscall`] meanwhile.
    pub fn stack(all: bool) -> String {
        crate::rt::dump(crate::rt::DumpOpts {
            all,
            system: traceback() >= Traceback::System,
        })
    }

    /// [`stack`], written to `w`.
    pub fn write_stack(all: bool, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(stack(all).as_bytes())
    }

    /// The process's `GOTRACEBACK` setting (read once; an unusable value
    /// stops the runtime at start, as every other variable does).
    pub fn traceback() -> Traceback {
        static T: std::sync::OnceLock<Traceback> = std::sync::OnceLock::new();
        *T.get_or_init(|| Traceback::from_env().unwrap_or_default())
    }

    /// Goroutines that exist now: spawned and not yet finished, not counting
    /// system goroutines ([`Builder::system`]: the finalizer goroutine,
    /// runtime helpers), as Go's `runtime.NumGoroutine`. 0 if the runtime
    /// has not started.
    pub fn num_goroutine() -> usize {
        if crate::rt::started() {
            crate::rt::sched().num_goroutine()
        } else {
            0
        }
    }

    /// Sets GOMAXPROCS to `n` and returns the previous value; `n == 0` only
    /// queries (Go's `runtime.GOMAXPROCS`). Takes effect without stopping
    /// the world: Ps above `n` are retired by their Ms at their next schedule,
    /// their queued goroutines moving to the global queue.
    ///
    /// # Panics
    /// If `n` > [`MAX_PROCS`](crate::MAX_PROCS).
    pub fn gomaxprocs(n: usize) -> usize {
        if n == 0 {
            return crate::rt::sched().gomaxprocs();
        }
        crate::rt::set_gomaxprocs(n)
    }

    /// Logical CPUs usable by this process (Go's `runtime.NumCPU`).
    pub fn num_cpu() -> usize {
        gort_os::cpu::num_cpu()
    }

    /// Starts the runtime with an explicit configuration instead of the
    /// environment. Returns false (and changes nothing) if it already runs.
    ///
    /// # Panics
    /// If `cfg.procs` is not from 1 to [`MAX_PROCS`](crate::MAX_PROCS), or `cfg.stack_size`
    /// is not from [`gort_os::stack::MIN_STACK_SIZE`] to
    /// [`gort_os::stack::MAX_STACK_SIZE`] (the same ranges `GOMAXPROCS` and
    /// `GORT_STACK_SIZE` accept).
    pub fn init(cfg: Config) -> bool {
        if let Err(e) = crate::rt::check_config(&cfg) {
            panic!("gort::init: {e}");
        }
        crate::rt::init(cfg)
    }

    /// For sync primitives (Go's `sync_runtime_canSpin`): whether to spin
    /// once more (`iter` = spins so far) before parking. True only for the
    /// first few tries, on a multicore machine, with another P running and
    /// nothing else waiting to run on this M.
    pub fn can_spin(iter: u32) -> bool {
        crate::rt::can_spin(iter)
    }

    /// For a goroutine that waits for one on another P to make progress
    /// (gort-std: a sender facing a full channel, waiting for room):
    /// whether spinning once more beats parking. [`can_spin`]'s conditions
    /// except its iteration limit (the caller bounds its spin itself), on
    /// a goroutine (false on a plain thread and inside [`syscall`]), and
    /// nothing pressing for the scheduler: no M waiting for a P, nothing on
    /// the global queue, no source deadline (timers, I/O deadlines among
    /// them) at or before `now` ([`gort_os::clock::nanotime`]) as last
    /// published; it may say false when nothing is due. It does not look
    /// at other Ps' queues or at network readiness (sysmon's polls cover
    /// those).
    pub fn can_wait_spin(now: i64) -> bool {
        crate::rt::can_wait_spin(now)
    }

    /// One round of active spinning (Go's `sync_runtime_doSpin`: 30 pause
    /// instructions).
    #[inline]
    pub fn do_spin() {
        for _ in 0..30 {
            std::hint::spin_loop();
        }
    }

    /// Go's procPin, cooperative edition: the id of the P the calling
    /// goroutine runs on, or `None` on a plain thread (and inside
    /// [`syscall`]). It cannot change until the goroutine parks, yields (a
    /// preemption point may yield) or enters `syscall` (its P may be
    /// retaken), so per-P data indexed by it (sync.Pool's shards) needs no
    /// lock against other goroutines of the same P within such a stretch.
    pub fn proc_pin() -> Option<usize> {
        crate::rt::current_p()
    }

    /// The number of the M (the OS thread, named `gort-m<n>`) running the
    /// calling goroutine, or `None` on a plain thread. A started goroutine
    /// keeps its M, so this changes only across
    /// [`lock_os_thread_alone`], which moves it to a thread of its own. An
    /// M that left the scheduler may come back, number and all, on a new
    /// thread.
    pub fn m_id() -> Option<u64> {
        crate::rt::current_m_id()
    }

    /// The running goroutine's id, or `None` on a plain thread.
    pub fn goid() -> Option<u64> {
        crate::rt::current_g().map(|g| g.goid())
    }

    /// The id of the goroutine whose code is running here, in the wider
    /// sense: also inside [`syscall`] (still the goroutine, on its own
    /// stack) and inside a [`blocking`] call on a pool thread (the
    /// goroutine parked until it returns). For checks that must not count
    /// their own caller, such as `gort::leak`.
    #[doc(hidden)]
    pub fn caller_goid() -> Option<u64> {
        crate::rt::current_g_any()
            .map(|g| g.goid())
            .or_else(crate::blocking::lender)
    }
}
