//! sysmon, the runtime's watchdog (Go's `sysmon` in proc.go): one OS thread
//! without a P that wakes every 20 µs to 10 ms while goroutines run, and
//! * **retakes Ps from blocking calls**: a P whose M has been inside
//!   [`syscall`](crate::syscall) for a whole sysmon tick is taken (CAS
//!   `P_SYSCALL` → `P_IDLE`) and handed on, so the P's fresh goroutines,
//!   the Ms waiting for a P, timers and the netpoller go on; the M gets a P
//!   back when its call returns, or waits for one (`exitsyscall`);
//! * **asks long runners to yield**: a P whose schedule tick has not moved
//!   for 10 ms runs one goroutine too long; its M's `preempt` flag is set,
//!   which the goroutine honours at its next preemption point
//!   ([`preempt_point`](crate::preempt_point), and every gort call that
//!   can park or spawn), and fresh goroutines queued on that P are offered
//!   to other Ps (`wakep`: an idle M steals them);
//! * **polls the network and runs overdue timers** when no M has for
//!   10 ms (every M is busy running goroutines);
//! * **detects deadlock**: when nothing runs, it proves that nothing can
//!   ever run again (`check_dead`) before it prints Go's
//!   `fatal error: all goroutines are asleep - deadlock!` and exits with
//!   status 2;
//! * **prints schedtrace** (`GODEBUG=schedtrace=MS[,scheddetail=1]`).
//!
//! It costs nothing while the program is idle: when every P is idle (no
//! goroutine runs, none is in a blocking call) and has been for a while
//! (its back-off reached 10 ms: a server idle only between requests keeps
//! it on timed sleeps, so that an M taking a P pays no wake-up of sysmon)
//! sysmon sleeps until a P is taken off the idle list (`took_idle_p` wakes it: a Dekker pair on
//! `sysmon_wait`/`npidle`) or a plain thread parks (the deadlock check);
//! while a timer, a descriptor, a blocking call or an unknown thread could
//! still end without taking a P, it looks again at the next deadline or
//! after a second.
//!
//! # What a long runner still blocks (the soundness rule)
//!
//! Go preempts a long runner asynchronously (a signal, then the goroutine
//! moves on with its P taken). gort cannot: a started goroutine never
//! changes OS thread, so the goroutines bound to the busy M can only run
//! when the long runner reaches a preemption point, and the running
//! goroutine's code may touch its P's state (spawning queues on it) at any
//! instant, so the P cannot be taken from under it without a check on
//! every spawn. What goes on meanwhile: goroutines bound to other Ms, fresh
//! goroutines (other Ps steal them, woken by sysmon), timers and the
//! netpoller (idle Ms or sysmon poll them; what they ready for the busy M
//! waits in its inbox). With `GOMAXPROCS=1` nothing else runs until the
//! long runner yields.
//!
//! # The deadlock rule
//!
//! Quiescence alone proves nothing: a plain OS thread may hold a `Sender`
//! or a `Waiter` and wake a goroutine later, and a blocking call may
//! return. gort declares deadlock only when every thread of the process is
//! accounted for as unable to act:
//! * every M is idle (in `midle`, holding no P, with an empty inbox), no M
//!   waits for a P, every P is idle, every run queue is empty, and every
//!   goroutine is parked (an idle M polling a source may have readied one
//!   of its own into its local queue);
//! * no source has anything pending ([`Source::pending`]: no timer, no
//!   goroutine waiting on a descriptor);
//! * no `blocking` job is running or queued;
//! * the number of OS threads of the process (`/proc/self/stat`) equals
//!   the runtime's own (the Ms, sysmon, idle `blocking` threads) plus the
//!   plain threads parked in an untimed [`park`](crate::park), counted
//!   exactly from their park words (`waiter::parked_untimed`). A thread
//!   that never touched gort, one sleeping in `std`, one in a timed park,
//!   or a thread of another runtime, is running as far as gort knows: no
//!   deadlock.
//!
//! The counts are read one after the other, not atomically, so the check
//! runs twice, `DEAD_CONFIRM_NS` apart, and also requires that no
//! *progress event* happened in between: a P taken off the idle list (the
//! only way a goroutine runs again) or a parked plain thread woken (counted
//! by the waker, when it wins the park). Anything that was active during
//! the first look either was still active at the second (a count differs)
//! or caused a progress event (it woke an M or a thread), or it queued work
//! that is still visible in a queue or inbox.

use super::*;
use std::sync::atomic::AtomicI64 as StdAtomicI64;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

/// A goroutine running this long without a switch is asked to yield (Go's
/// `forcePreemptNS`).
pub(super) const FORCE_PREEMPT_NS: i64 = 10_000_000;

/// If no M polled the network for this long, sysmon polls (Go: 10 ms).
const NETPOLL_STALE_NS: i64 = 10_000_000;

/// A source deadline this overdue is run by sysmon (every M is busy).
const OVERDUE_NS: i64 = 1_000_000;

/// sysmon's longest sleep while anything runs (Go: 10 ms).
const MAX_DELAY_US: u64 = 10_000;

/// Rounds at 20 µs before sysmon's sleep starts doubling (Go: 50, 1 ms).
const BACKOFF_ROUNDS: u32 = 50;

/// A blocking call shorter than this keeps its P when nobody needs it
/// (Go: 10 ms).
const SYSCALL_KEEP_NS: i64 = 10_000_000;

/// Time between the two looks of the deadlock check.
const DEAD_CONFIRM_NS: i64 = 20_000_000;

/// How often sysmon looks again while everything is idle but something it
/// is not told about could still end (a thread that never touched gort, a
/// timer that fires without readying anyone).
const RECHECK_NS: i64 = 1_000_000_000;

/// A filter for [`preempt_point`]: requests made by sysmon and not yet
/// honoured (one shared load, almost always 0, on the fast path). Counted
/// per request, so it drops back to 0 as soon as the asked goroutines
/// yield, not at sysmon's next pass: goroutines that keep being asked
/// (a producer that never parks) do not keep every preemption point on its
/// slow path. Incremented by the swap that sets an M's flag, decremented
/// by the swap that clears it.
static PREEMPT_PENDING: StdAtomicUsize = StdAtomicUsize::new(0);

/// [`PREEMPT_PENDING`], for tests.
pub(crate) fn preempt_requests_pending() -> usize {
    PREEMPT_PENDING.load(StdOrdering::Relaxed)
}

/// Progress events (see the module docs), for the deadlock check.
static PROGRESS: StdAtomicU64 = StdAtomicU64::new(0);

/// Counts one progress event.
#[inline]
pub(crate) fn progress() {
    PROGRESS.fetch_add(1, StdOrdering::SeqCst);
}

/// A P was taken off the idle list (npidle already adjusted by the caller
/// under the idle lock): wake sysmon if it sleeps for want of a busy P.
#[inline]
pub(super) fn took_idle_p(s: &'static Sched) {
    s.npidle.fetch_sub(1, Ordering::SeqCst);
    progress();
    // SeqCst: pairs with sysmon's store of sysmon_wait before it re-reads
    // npidle (see `Sched::sysmon_wait`).
    if s.sysmon_wait.load(Ordering::SeqCst) {
        // sysmon slept through a quiet spell: bring the coarse clock up to
        // date before anything parks again.
        COARSE_NOW.store(nanotime(), StdOrdering::Relaxed);
        wake_sysmon(s);
    }
}

/// A coarse clock for timestamps only a human reads (how long a goroutine
/// has waited, in dumps): `nanotime` as of sysmon's last tick (at most 10 ms
/// old while any P is busy; set afresh when a P leaves a quiet spell in
/// which sysmon slept). A park reads it with one relaxed load, where even
/// the kernel's coarse clock would cost a vDSO call.
pub(crate) static COARSE_NOW: StdAtomicI64 = StdAtomicI64::new(0);

/// See [`COARSE_NOW`].
#[inline]
pub(crate) fn coarse_now() -> i64 {
    COARSE_NOW.load(StdOrdering::Relaxed)
}

pub(super) fn wake_sysmon(s: &'static Sched) {
    s.sysmon_parker.unpark();
}

/// Clears the M's request when a new time slice starts (`schedule`).
#[inline]
pub(super) fn clear_preempt(m: &M) {
    if m.preempt.load(Ordering::Relaxed) && m.preempt.swap(false, Ordering::Relaxed) {
        PREEMPT_PENDING.fetch_sub(1, StdOrdering::Relaxed);
    }
}

/// sysmon asks `m`'s running goroutine to yield.
fn request_preempt(m: &M) {
    if !m.preempt.swap(true, Ordering::Relaxed) {
        PREEMPT_PENDING.fetch_add(1, StdOrdering::Relaxed);
    }
}

// The rest is the normal build's (goroutines switch, threads run).
cfg_not_loom! {
/// A plain thread is about to sleep in an untimed park (it has committed:
/// its park word says PARKED).
pub(crate) fn thread_parked() {
    // SeqCst fence: pairs with sysmon's SeqCst store of sysmon_wait before
    // it counts parked threads again (the park word's CAS is AcqRel).
    std::sync::atomic::fence(StdOrdering::SeqCst);
    if let Some(s) = sched_if_started() {
        if s.sysmon_wait.load(Ordering::SeqCst) {
            wake_sysmon(s); // all Ps idle: maybe the last thread to act
        }
    }
}

/// Honours a pending preemption request of the calling goroutine: yields
/// if sysmon asked its M to. One shared load when no request is pending.
#[inline]
pub(crate) fn preempt_point() {
    if PREEMPT_PENDING.load(StdOrdering::Relaxed) != 0 {
        preempt_slow();
    }
}

#[cold]
#[inline(never)]
fn preempt_slow() {
    let (m, g) = current();
    if m.is_null() || g.is_none() {
        return;
    }
    // SAFETY: Ms are immortal.
    let m = unsafe { &*m };
    // Not while the thread unwinds (a gort call in a `Drop` run by a
    // panic): the other goroutines of this thread would see std's panic
    // state (see "Goroutines share their thread"). The request stands.
    if m.preempt.load(Ordering::Relaxed) && !std::thread::panicking() {
        clear_preempt(m);
        // SAFETY: our own M, on its thread; the borrow ends here.
        unsafe { m.local() }.preempted = true;
        gosched();
    }
}


// ---------------------------------------------------------------------------
// Blocking calls (Go's entersyscall / exitsyscall).

/// Runs `f` as a blocking call of the calling goroutine (see
/// `crate::syscall`). On a plain thread, or inside another `syscall`, it
/// just runs `f`.
pub(crate) fn syscall<R>(f: impl FnOnce() -> R) -> R {
    let (m, g) = current();
    let Some(g) = g else { return f() };
    // SAFETY: a running goroutine's thread is an M; Ms are immortal.
    let m: &'static M = unsafe { &*m };
    entersyscall(m, g);
    /// Leaves the call also when `f` unwinds.
    struct Exit(&'static M, &'static G);
    impl Drop for Exit {
        fn drop(&mut self) {
            exitsyscall(self.0, self.1);
        }
    }
    let exit = Exit(m, g);
    let r = f();
    drop(exit);
    // Returning from a blocking call is a preemption point (Go checks for a
    // pending preemption in exitsyscall): a loop of short calls never
    // switches otherwise.
    preempt_point();
    r
}

fn entersyscall(m: &'static M, g: &'static G) {
    g.status.store(G_SYSCALL, Ordering::Relaxed);
    // SAFETY: our own M, on its thread; no switch in this function.
    let ml = unsafe { m.local() };
    debug_assert!(!ml.p.is_null(), "a running goroutine's M holds a P");
    // SAFETY: the P we hold.
    let p = unsafe { &*ml.p };
    // From here until exitsyscall nothing on this thread may use the P
    // (sysmon may hand it to another M): the M looks P-less, and the
    // goroutine looks like a plain thread (parks block the thread, spawns
    // go to the global queue).
    ml.syscall_p = ml.p;
    ml.p = ptr::null();
    p.syscalltick.store(
        p.syscalltick.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    // Release: our writes to the P's state (run queue, free list, counts)
    // before sysmon's Acquire CAS that takes the P.
    p.status.store(P_SYSCALL, Ordering::Release);
    set_syscall_g(Some(g));
    set_current_g(None);
}

fn exitsyscall(m: &'static M, g: &'static G) {
    g.status.store(G_RUNNING, Ordering::Relaxed);
    set_current_g(Some(g));
    set_syscall_g(None);
    // SAFETY: our own M, on its thread; no switch in this function.
    let ml = unsafe { m.local() };
    let pp = std::mem::replace(&mut ml.syscall_p, ptr::null());
    // SAFETY: Ps are immortal.
    let p: &'static P = unsafe { &*pp };
    // Acquire: sysmon did not take it; what other threads did with it
    // before (nothing: it was ours) is moot, but keep the pair symmetric.
    if p.status
        .compare_exchange(P_SYSCALL, P_RUNNING, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        p.syscalltick.store(
            p.syscalltick.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        // The P may have been retaken, held by another M and put back into
        // a call by it meanwhile (the CAS cannot tell): it is ours now.
        p.m.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
        ml.p = pp;
        return;
    }
    exitsyscall_slow(sched(), m);
}

/// Our P was retaken: take an idle one, or queue for one (first in line
/// for the next freed P, as an M with runnable bound goroutines does) and
/// sleep on this goroutine's stack until handed one. The goroutine cannot
/// move to another M, and no other goroutine of this M could run without a
/// P either.
#[cold]
fn exitsyscall_slow(s: &'static Sched, m: &'static M) {
    loop {
        // Acquire pairs with the SeqCst store of nextp by put_p.
        let p = m.nextp.swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: our own thread; the P was handed to us and is live.
            let (ml, p) = unsafe { (m.local(), &*p) };
            acquirep(m, ml, p);
            if m.start_spinning.swap(false, Ordering::Relaxed) {
                // Counted as spinning by whoever handed it; we are not.
                ml.spinning = true;
                stop_spinning(s, ml);
            }
            return;
        }
        {
            let mut idle = s.lock_idle();
            if !m.nextp.load(Ordering::Acquire).is_null() {
                continue;
            }
            if let Some(p) = idle_p_or_wait(s, &mut idle, m) {
                drop(idle);
                // SAFETY: our own thread.
                acquirep(m, unsafe { m.local() }, p);
                return;
            }
        }
        m.parker.park();
    }
}

// ---------------------------------------------------------------------------
// The sysmon thread.

/// Set by the SIGQUIT handler; sysmon prints the dump and exits.
static SIGQUIT_PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// sysmon's parker, for the SIGQUIT handler to wake it.
static SYSMON_PARKER: std::sync::atomic::AtomicPtr<Parker> =
    std::sync::atomic::AtomicPtr::new(ptr::null_mut());

/// Wakes sysmon from a signal handler (async-signal-safe: an atomic swap
/// and a futex wake; errno is preserved). Before sysmon has started it sees
/// the request at its first tick.
///
/// Off Linux the parker is not a bare futex (not async-signal-safe), so
/// there the request waits for sysmon's next tick.
pub(crate) fn wake_sysmon_from_signal() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: errno is saved and restored around our futex call.
        let errno = unsafe { *libc::__errno_location() };
        let p = SYSMON_PARKER.load(StdOrdering::SeqCst);
        if !p.is_null() {
            // SAFETY: the parker lives in the immortal scheduler; its unpark
            // is an atomic swap and a futex wake.
            unsafe { (*p).unpark() };
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }
}

/// The SIGQUIT handler; sysmon does the rest.
extern "C" fn on_sigquit(_sig: libc::c_int) {
    SIGQUIT_PENDING.store(true, StdOrdering::SeqCst);
    wake_sysmon_from_signal();
}

/// Installs the SIGQUIT handler (Go prints every goroutine and exits 2),
/// only over the default disposition: one ignored when the runtime started
/// (`nohup`) or handled by the program stays so.
/// Installed with the runtime, before any `gort::signal::notify`, which
/// saves it as the disposition to restore.
/// (Called while the scheduler is being built: sysmon publishes its parker
/// when it starts; a SIGQUIT before that is seen at its first tick.)
fn install_sigquit() {
    // SAFETY: a query, then a valid sigaction for a handler that is
    // async-signal-safe.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGQUIT, ptr::null(), &mut old);
        if old.sa_sigaction != libc::SIG_DFL {
            // Ignored (`nohup`), or the program's own handler: keep it.
            return;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigquit as *const () as usize;
        sa.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGQUIT, &sa, ptr::null_mut());
    }
}

/// SIGQUIT arrived: `SIGQUIT: quit`, every goroutine (per GOTRACEBACK),
/// exit status 2 (or abort under `crash`). Bounded by a watchdog.
#[cold]
fn quit_dump() -> ! {
    fatal_report("SIGQUIT: quit\n", String::new)
}

/// Starts sysmon (once, with the runtime).
pub(super) fn start_sysmon() {
        COARSE_NOW.store(nanotime(), StdOrdering::Relaxed);
        install_sigquit();
        // SAFETY: the hook runs only in the overflow handler; it hands the
        // fault to sysmon and waits, bounded by its own clock deadline (see
        // `overflow_report`).
        unsafe { gort_os::signal::set_overflow_hook(overflow_report) };
        gort_os::signal::set_abort_on_fatal(crate::traceback() == crate::config::Traceback::Crash);
        let r = gort_os::thread::spawn_named("gort-sysmon".into(), 0, || {
            let dbg = match crate::config::Debug::from_env() {
                Ok(d) => d,
                Err(e) => {
                    // The implicit runtime refuses to start on it (from_env);
                    // an explicit init reads no other variable, so say it.
                    eprintln!("gort: {e}; GODEBUG settings ignored");
                    crate::config::Debug::default()
                }
            };
            sysmon(sched(), dbg)
        });
        if let Err(e) = r {
            fatal(&format!("runtime: failed to create the sysmon thread: {e}"));
        }
}

/// What sysmon remembers of a P between ticks (Go's `sysmontick`).
#[derive(Clone, Copy, Default)]
struct PTick {
    schedtick: u32,
    schedwhen: i64,
    syscalltick: u32,
    syscallwhen: i64,
}

/// Whether `GODEBUG=schedtrace` is on: then every M publishes its local
/// queue length at each schedule (`M::nbound`), for the trace.
pub(super) static SCHEDTRACE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn sysmon(s: &'static Sched, dbg: crate::config::Debug) -> ! {
    SYSMON_PARKER.store(ptr::from_ref(&s.sysmon_parker).cast_mut(), StdOrdering::SeqCst);
    // The unwinder's tables (a walk of the loaded objects' headers, no
    // parsing), here rather than on a small goroutine stack at the first
    // dump.
    #[cfg(not(gort_loom))]
    gort_os::unwind::warm();
    let mut ticks = vec![PTick::default(); MAX_PROCS];
    let mut idle_rounds = 0u32;
    // Whether the previous look found every P idle too.
    let mut lull = false;
    let mut delay_us = 20u64;
    let trace_ns = dbg.schedtrace_ms as i64 * 1_000_000;
    SCHEDTRACE.store(trace_ns > 0, StdOrdering::Relaxed);
    let start = nanotime();
    let mut next_trace = start + trace_ns;
    loop {
        // Go's back-off: 20 µs while something happens, doubling after
        // 50 quiet rounds, up to 10 ms.
        if idle_rounds == 0 {
            delay_us = 20;
        } else if idle_rounds > BACKOFF_ROUNDS {
            delay_us = (delay_us * 2).min(MAX_DELAY_US);
        }
        let mut sleep_ns = delay_us as i64 * 1000;
        if trace_ns > 0 {
            sleep_ns = sleep_ns.min((next_trace - nanotime()).max(0));
        }
        s.sysmon_parker
            .park_timeout(std::time::Duration::from_nanos(sleep_ns as u64));
        let now = nanotime();
        COARSE_NOW.store(now, StdOrdering::Relaxed);
        if SIGQUIT_PENDING.load(StdOrdering::SeqCst) {
            quit_dump();
        }
        let ov = OVERFLOW_REQ.load(StdOrdering::SeqCst);
        if !ov.is_null() {
            // SAFETY: the request lives in the overflow handler's frame,
            // which waits until we are done with it; the process then ends.
            overflow_dump(unsafe { &*ov });
            loop {
                s.sysmon_parker.park();
            }
        }
        if trace_ns > 0 && now >= next_trace {
            sched_trace(s, now - start, dbg.scheddetail);
            next_trace = now + trace_ns;
        }
        if trace_ns == 0 && all_ps_idle(s) {
            poll_if_overdue(s, now);
            // Nothing runs and nothing is in a blocking call (such a P is
            // not idle): check for deadlock, then sleep until a P is taken.
            // The check (which takes the idle lock and may walk every
            // goroutine) runs at the first look of a quiet spell and before
            // the long wait, not at each round of the back-off between.
            let first = !std::mem::replace(&mut lull, true);
            let parked = crate::waiter::parked_untimed();
            let look = if first || delay_us >= MAX_DELAY_US {
                check_dead(s)
            } else {
                Dead::Pending
            };
            if let Dead::Maybe(seen) = look {
                s.sysmon_parker.park_timeout(std::time::Duration::from_nanos(
                    DEAD_CONFIRM_NS as u64,
                ));
                if check_dead(s) == Dead::Maybe(seen) {
                    report_deadlock(s);
                }
                idle_rounds = 0;
                continue;
            }
            if delay_us < MAX_DELAY_US {
                // Every P went idle only lately (a server between requests,
                // a burst of work just done): keep backing off on timed
                // sleeps, which need no wake-up. Waiting for `took_idle_p`
                // now would put a futex wake on the path of every M that
                // takes a P off the idle list, and send sysmon back to
                // 20 µs rounds each time (wrk on the HTTP example: sysmon
                // took 15-18% of a CPU).
                idle_rounds = idle_rounds.saturating_add(1);
                continue;
            }
            s.sysmon_wait.store(true, Ordering::SeqCst);
            // SeqCst pairs: took_idle_p decrements npidle, thread_parked
            // parks (its word says PARKED), each then reads sysmon_wait.
            if all_ps_idle(s) && crate::waiter::parked_untimed() == parked
            {
                if look == Dead::No {
                    // Something will take a P when it runs, waking us.
                    s.sysmon_parker.park();
                } else {
                    // A timer that fires without readying anyone, a thread
                    // that exits, wake nobody: look again by the next
                    // deadline, or a second from now.
                    let d = s.next_deadline.load(Ordering::Relaxed);
                    let wait = (d.saturating_sub(nanotime()) + 1_000_000)
                        .clamp(1_000_000, RECHECK_NS);
                    s.sysmon_parker
                        .park_timeout(std::time::Duration::from_nanos(wait as u64));
                }
            }
            s.sysmon_wait.store(false, Ordering::SeqCst);
            // Back to work at 20 µs, doubling from the first round: a
            // program busy in short bursts wakes us at each burst, and 50
            // rounds at 20 µs each time (Go's rule after a quiet spell) made
            // sysmon a third of such a program's CPU. A retaken P still
            // resets the back-off.
            idle_rounds = BACKOFF_ROUNDS + 1;
            delay_us = 10;
            continue;
        }
        lull = false;
        // Only a retaken P (or one due at the next tick) resets the
        // back-off (Go: `retake(now) != 0`).
        let acted = retake(s, &mut ticks, now);
        poll_if_starved(s, now);
        if acted {
            idle_rounds = 0;
        } else {
            idle_rounds = idle_rounds.saturating_add(1);
        }
    }
}

/// Whether every P is idle (or dead): nothing runs, nothing is in a
/// blocking call. The Ps above a shrunk gomaxprocs count too: one may still
/// be held by an M (running, or in a call) that has not retired it yet, and
/// only sysmon retakes it from a call. (`npidle` first: the Dekker pair
/// with `took_idle_p`, see `Sched::sysmon_wait`.)
fn all_ps_idle(s: &'static Sched) -> bool {
    if s.npidle.load(Ordering::SeqCst) != s.gomaxprocs() {
        return false;
    }
    (0..MAX_PROCS)
        .map_while(|id| s.p(id)) // slots fill in order
        .all(|p| matches!(p.status.load(Ordering::SeqCst), P_IDLE | P_DEAD))
}

/// Retakes Ps from blocking calls and asks long runners to yield (Go's
/// `retake`). Returns whether it retook a P, or will at the next tick.
fn retake(s: &'static Sched, ticks: &mut [PTick], now: i64) -> bool {
    let mut acted = false;
    let n = s.gomaxprocs();
    // Every P ever made, also those above a shrunk gomaxprocs: one held by
    // an M in a blocking call is retired only when retaken (its queue then
    // moves to the global queue), which nobody else does.
    for (id, t) in ticks.iter_mut().enumerate() {
        let Some(p) = s.p(id) else { break }; // slots fill in order
        if p.oldest_gift().is_some_and(|at| now - at >= FORCE_PREEMPT_NS) {
            // Fresh goroutines given to this P (`place_fresh`), the oldest
            // of which its holder has not come for in 10 ms (it runs one
            // goroutine that never yields, say): any M may start them, and
            // none is given again.
            let gs = p.take_gifts();
            global_put_batch(s, &gs);
            wakep(s);
        }
        let status = p.status.load(Ordering::Acquire);
        if status == P_RUNNING || status == P_SYSCALL {
            // One goroutine has had the P for 10 ms: its schedule tick did
            // not move (a loop of short blocking calls counts too: it never
            // switches either, so the goroutines bound to its M wait; Go's
            // retake preempts in both states as well).
            let tick = p.schedtick.load(Ordering::Relaxed);
            if t.schedtick != tick {
                t.schedtick = tick;
                t.schedwhen = now;
            } else if now - t.schedwhen >= FORCE_PREEMPT_NS {
                let m = p.m.load(Ordering::Relaxed);
                if !m.is_null() {
                    // SAFETY: Ms are immortal.
                    request_preempt(unsafe { &*m });
                }
                if p.has_fresh() {
                    wakep(s); // its fresh goroutines go to other Ps
                }
                // (Not counted as activity, as in Go: a loop that keeps
                // being asked must not keep sysmon at 20 µs.)
            }
        }
        if status == P_SYSCALL {
            // Nobody needs the P (no queued work, someone spins or a
            // P is idle, no M waits for one): leave it for a while,
            // so a short call returns to its own P (Go's rule).
            // Someone waits for a P: an M with runnable goroutines, or
            // queued fresh ones.
            let awaited = id >= n
                || p.has_fresh()
                || s.global_len.load(Ordering::Relaxed) > 0
                || s.nmwaitp.load(Ordering::Relaxed) > 0;
            let wanted = awaited
                || s.nmspinning.load(Ordering::Relaxed) + s.npidle.load(Ordering::Relaxed)
                    == 0;
            let tick = p.syscalltick.load(Ordering::Relaxed);
            if t.syscalltick != tick {
                // A new call: give it a whole tick first. If someone waits
                // for the P, that tick must be short (counted as activity):
                // at a backed-off 10 ms tick a loop of 1 ms calls shows a
                // new call at every look and is never retaken, and the Ms
                // waiting for its P wait for a preemption request instead
                // (syscall_handoff: batches of round trips stalled 0.7 s).
                // Not merely `wanted` (every P busy): a loop of short calls
                // at GOMAXPROCS=1 would keep sysmon at 20 µs for good.
                t.syscalltick = tick;
                t.syscallwhen = now;
                acted |= awaited;
                continue;
            }
            if !wanted && now - t.syscallwhen < SYSCALL_KEEP_NS {
                continue;
            }
            if retake_p(s, p) {
                acted = true;
            }
        }
    }
    acted
}

/// Takes `p` from the M blocked in a call and hands it on (Go's
/// `handoffp`): to an M waiting for one, else to the idle list; wakes an M
/// if the P or the global queue has work. The status change happens under
/// the idle lock, as every idle <-> owned change of a P does (so that
/// `set_gomaxprocs` never sees a P idle that is not on the idle list).
/// Returns false if the M came back first.
fn retake_p(s: &'static Sched, p: &'static P) -> bool {
    let moved = {
        let mut idle = s.lock_idle();
        // AcqRel: Acquire pairs with entersyscall's Release store; the M's
        // exitsyscall CAS races with this one.
        if p.status
            .compare_exchange(P_SYSCALL, P_IDLE, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        put_p(s, &mut idle, p)
    };
    if moved || p.has_fresh() || s.global_len.load(Ordering::SeqCst) > 0 {
        wakep(s);
    }
    true
}

/// Polls the network if no M has for 10 ms, and runs source deadlines
/// overdue by a millisecond: every M is busy.
fn poll_if_starved(s: &'static Sched, now: i64) {
    if let Some(src) = s.eager.get() {
        let last = s.last_poll.load(Ordering::Relaxed);
        if last != 0 && now - last > NETPOLL_STALE_NS {
            s.last_poll.store(now, Ordering::Relaxed);
            src.poll(now);
        }
    }
    poll_if_overdue(s, now);
}

/// Runs source deadlines overdue by a millisecond. With every M busy, no
/// one else would; with every P idle, the timekeeper should have (this is
/// the backstop should a wake-up of it ever be lost again: such a loss
/// once let timers wait 30 s for the next far deadline).
fn poll_if_overdue(s: &'static Sched, now: i64) {
    let d = s.next_deadline.load(Ordering::Relaxed);
    if d != i64::MAX && now - d > OVERDUE_NS {
        poll_sources(s);
    }
}

/// What one look of the deadlock check saw.
#[derive(Debug, PartialEq, Eq)]
enum Dead {
    /// Something can run, and it takes a P when it does (waking sysmon).
    No,
    /// Nothing runs, but something may still end without taking a P: a
    /// timer or descriptor pending, a blocking call, a thread gort does
    /// not know of (it may send, or exit).
    Pending,
    /// Everything quiescent; the progress count seen.
    Maybe(u64),
}

/// One look of the deadlock check (module docs).
fn check_dead(s: &'static Sched) -> Dead {
    let seen = PROGRESS.load(StdOrdering::SeqCst);
    match quiescent(s) {
        Dead::Maybe(_) => Dead::Maybe(seen),
        d => d,
    }
}

/// One look at everything (module docs), cheapest first.
fn quiescent(s: &'static Sched) -> Dead {
    // Queues first: work queued by something active is visible here until
    // an M takes a P to run it (a progress event).
    if s.global_len.load(Ordering::SeqCst) > 0 {
        return Dead::No;
    }
    let n = s.gomaxprocs();
    if (0..n).any(|id| s.p(id).is_some_and(|p| p.has_fresh())) {
        return Dead::No;
    }
    let ms: Vec<&'static M> = s.allm.lock().clone();
    if ms
        .iter()
        .any(|m| m.has_inbox() || !m.nextp.load(Ordering::SeqCst).is_null())
    {
        return Dead::No;
    }
    {
        let idle = s.lock_idle();
        if idle.pidle.len() != n
            || !idle.mwaitp.is_empty()
            || idle.midle.len() + idle.mown.len() != ms.len()
        {
            return Dead::No;
        }
    }
    if s.sources.read().iter().any(|src| src.pending()) {
        return Dead::Pending;
    }
    let (pool_threads, pool_busy) = crate::blocking::pool_state();
    if pool_busy > 0 {
        return Dead::Pending;
    }
    // Every goroutine parked (Go's checkdead too): an idle M is not
    // necessarily asleep — one polling sources may have readied its own
    // goroutine into its local queue, which is not visible from here.
    if all_gs(s)
        .iter()
        .any(|g| g.goid() != 0 && !g.park.is_parked())
    {
        return Dead::No;
    }
    let parked = crate::waiter::parked_untimed();
    let Some(os) = gort_os::thread::count() else {
        return Dead::Pending;
    };
    // The Ms, sysmon, the idle blocking threads, the parked plain threads.
    if os == ms.len() + 1 + pool_threads + parked {
        Dead::Maybe(0)
    } else {
        Dead::Pending
    }
}

#[cold]
fn report_deadlock(_s: &'static Sched) -> ! {
    // Every goroutine is parked (two quiescent looks): the dump pins each
    // in turn, and nobody wakes them meanwhile.
    fatal_report("fatal error: all goroutines are asleep - deadlock!\n", || {
        match crate::waiter::parked_untimed() {
            0 => String::new(),
            n => format!("\n{n} plain thread(s) parked in a gort wait\n"),
        }
    })
}

/// `GODEBUG=schedtrace` output (Go's `schedtrace`): one line per period,
/// and with `scheddetail=1` one line per P, per M and per goroutine.
fn sched_trace(s: &'static Sched, since_start: i64, detail: bool) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let n = s.gomaxprocs();
    let ms: Vec<&'static M> = s.allm.lock().clone();
    let (idle_ms, waitp) = {
        let idle = s.lock_idle();
        (idle.midle.len() + idle.mown.len(), idle.mwaitp.len())
    };
    let mut line = format!(
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} \
         waitpthreads={} runqueue={} [",
        since_start / 1_000_000,
        n,
        s.npidle.load(Ordering::Relaxed),
        ms.len() + 1,
        s.nmspinning.load(Ordering::Relaxed),
        idle_ms,
        waitp,
        s.global_len.load(Ordering::Relaxed),
    );
    for id in 0..n {
        let len = s.p(id).map_or(0, |p| p.runq.len());
        let _ = write!(line, "{}{}", if id > 0 { " " } else { "" }, len);
    }
    // gort's own: per M, the bound goroutines runnable on it (its local
    // queue as of its last schedule, plus 1 if its inbox is not empty).
    line.push_str("] mrunq=[");
    for (i, m) in ms.iter().enumerate() {
        let _ = write!(
            line,
            "{}{}",
            if i > 0 { " " } else { "" },
            m.nbound.load(Ordering::Relaxed) + u32::from(m.has_inbox())
        );
    }
    line.push_str("]\n");
    if detail {
        for id in 0..n {
            let Some(p) = s.p(id) else { continue };
            let status = match p.status.load(Ordering::Relaxed) {
                P_IDLE => "idle",
                P_RUNNING => "running",
                P_SYSCALL => "syscall",
                _ => "dead",
            };
            let _ = writeln!(
                line,
                "  P{id}: status={status} schedtick={} syscalltick={} runqsize={}",
                p.schedtick.load(Ordering::Relaxed),
                p.syscalltick.load(Ordering::Relaxed),
                p.runq.len()
            );
        }
        for (i, m) in ms.iter().enumerate() {
            let _ = writeln!(
                line,
                "  M{}: inbox={} preempt={} in_source={}",
                i + 1,
                u8::from(m.has_inbox()),
                m.preempt.load(Ordering::Relaxed),
                m.in_source.load(Ordering::Relaxed),
            );
        }
    }
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Every goroutine descriptor ever allocated.
fn all_gs(s: &'static Sched) -> Vec<&'static G> {
    s.allgs.lock().iter().flat_map(|c| c.iter()).collect()
}

/// The runtime, if it has started (never starts it).
pub(crate) fn sched_if_started() -> Option<&'static Sched> {
    if started() {
        Some(sched())
    } else {
        None
    }
}

}
