//! Goroutine dumps (Go's `runtime.Stack`, `tracebackothers`): a snapshot of
//! every goroutine — its state, how long it has waited, its frames and who
//! created it — without stopping the world.
//!
//! A *parked* goroutine is pinned in its park (`park_state.rs`, "Pinning")
//! while its stack is walked from the registers its last switch saved
//! (`gort_os::unwind`): it cannot be resumed meanwhile, and a wake that
//! comes is handed to us and finished at unpin. Pinning costs the park and
//! ready paths nothing. A goroutine *running* (or inside `syscall`) on
//! another M cannot be stopped soundly — gort has no asynchronous
//! preemption — so it prints as Go prints one it cannot stop: `goroutine
//! running on other thread; stack unavailable`. A *runnable* one (queued,
//! or fresh) may start any moment and prints without frames. The caller's
//! own goroutine is walked on its own stack.
//!
//! Symbolisation is the expensive part (the binary's DWARF is parsed on the
//! first use, then every distinct address is resolved once and cached); it
//! runs on a scoped helper thread, inside `syscall` when called from a
//! goroutine (so the caller's P keeps running others and the caller's small
//! stack is not used for it).

//!
//! # Fatal reports: what is async-signal-safe, what is best effort
//!
//! * SIGQUIT: the handler only sets a flag and wakes sysmon (an atomic store,
//!   an atomic swap and a futex wake; errno preserved). sysmon, an ordinary
//!   thread, prints `SIGQUIT: quit` and the dump and exits with status 2
//!   (`abort()` under `GOTRACEBACK=crash`).
//! * Deadlock: sysmon proved it (two quiescent looks) and prints the same way.
//! * Stack overflow: the SIGSEGV handler (gort-os) writes its one-line
//!   message with `write(2)` only and hands the fault's registers to
//!   sysmon, waiting with `nanosleep` (a second overflow waits for the
//!   first's report); sysmon walks the stopped stack (bounded reads) and
//!   prints. Reports are written with `write(2)`, never through std's
//!   stderr lock (a goroutine that will never run again may hold it).
//!
//! Everything sysmon does after that is best effort: it allocates, starts
//! a thread and takes the symboliser's locks, any of which a thread that
//! will never run again may hold (an overflow inside the allocator, say).
//! Each report is therefore bounded: SIGQUIT and deadlock reports by a
//! watchdog thread that ends the process after ten seconds, an overflow by
//! the handler's own ten-second deadline (`clock_gettime`, whatever the
//! program did to SIGALRM). The unwinder's lock is taken with a bounded
//! wait. The caller of a dump walks its own stack with that unwinder, so no
//! goroutine holds the symboliser's lock on its small stack.

use super::*;
use gort_os::unwind::{symbolize, Frame};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::Location;

/// Frames walked per goroutine at most (Go prints 100, then "...additional
/// frames elided...").
const MAX_FRAMES: usize = 100;

/// How much of the runtime a dump shows (`GOTRACEBACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DumpOpts {
    /// Every goroutine, or only the caller's.
    pub(crate) all: bool,
    /// Runtime frames and system goroutines too (`GOTRACEBACK=system`).
    pub(crate) system: bool,
}

/// One goroutine's snapshot.
struct GDump {
    goid: u64,
    state: String,
    /// Minutes parked (printed from one minute on).
    wait_min: i64,
    name: Option<Arc<str>>,
    pcs: Vec<usize>,
    note: Option<&'static str>,
    creator: u64,
    site: Option<&'static Location<'static>>,
    /// Locked to its thread (`lock_os_thread`): Go prints "locked to thread".
    locked: bool,
    /// Profiler labels (goroutine profiles carry them).
    labels: Option<crate::prof::Labels>,
    /// Its result is published (only the runtime's teardown is left).
    finished: bool,
}

const UNAVAILABLE: &str = "goroutine running on other thread; stack unavailable";

fn site_of(g: &G) -> Option<&'static Location<'static>> {
    let p = g.site.load(Ordering::Relaxed);
    // SAFETY: only ever stored from a `&'static Location<'static>`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The caller's own goroutine (or None on a plain thread), its frames still
/// to walk (see [`dump`]).
fn snapshot_self() -> Option<GDump> {
    let g = current_g_any()?;
    // SAFETY: our own goroutine: nobody else writes its name while it runs.
    let name = unsafe { (*g.inner.get()).name.clone() };
    Some(GDump {
        goid: g.goid(),
        state: "running".into(),
        wait_min: 0,
        name,
        pcs: Vec::new(),
        note: None,
        creator: g.creator.load(Ordering::Relaxed),
        site: site_of(g),
        locked: g.locks.load(Ordering::Relaxed) > 0,
        labels: labels_for_dump(g),
        finished: false,
    })
}

/// Every other goroutine. Runs on any thread.
fn snapshot_others(me: u64, system: bool) -> Vec<GDump> {
    let s = sched();
    let chunks: Vec<&'static [G]> = s.allgs.lock().clone();
    let now = nanotime();
    let mut out = Vec::new();
    for g in chunks.iter().flat_map(|c| c.iter()) {
        // Acquire: pairs with newproc's Release store of the id (what a
        // goroutine's spawn wrote before it is seen with it).
        let goid = g.goid.load(Ordering::Acquire);
        if goid == 0 || goid == me {
            continue;
        }
        // Pinned by another dump (or its M's compaction) for a moment:
        // wait for it rather than report a parked goroutine as runnable.
        // (A pin lasts one stack walk, unless its holder's thread is
        // descheduled: bounded by time, not by tries.) Parked again by the
        // time we look is a retry too: the other pin ended between our
        // failed pin and the look (concurrent_dumps_all_see_every_parked_
        // goroutine saw such a goroutine reported runnable, ~1 run in 40).
        let mut waited = 0u32;
        let parked = loop {
            let p = snapshot_parked(g, now, system);
            if p.is_some() || !(g.park.is_pinned() || g.park.is_parked()) || waited > 20_000 {
                break p;
            }
            waited += 1;
            if waited < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        };
        if let Some(d) = parked {
            out.extend(d);
            continue;
        }
        if g.sys.load(Ordering::Relaxed) && !system {
            continue;
        }
        let (state, note) = match g.status.load(Ordering::Relaxed) {
            G_RUNNING => ("running", Some(UNAVAILABLE)),
            G_SYSCALL => ("syscall", Some(UNAVAILABLE)),
            _ => ("runnable", None),
        };
        // The descriptor may have been recycled meanwhile: report only what
        // belongs to the goroutine we started with.
        let (creator, site) = (g.creator.load(Ordering::Relaxed), site_of(g));
        let labels = labels_for_dump(g);
        // Its result published: only the runtime's teardown is left.
        let finished = crate::task::join_done(g);
        // Orders the reads above before the id's second read (a seqlock's
        // check): had a new spawn's writes been read, the new id is seen.
        std::sync::atomic::fence(Ordering::Acquire);
        if g.goid() != goid {
            continue;
        }
        out.push(GDump {
            goid,
            state: state.into(),
            wait_min: 0,
            name: None,
            pcs: Vec::new(),
            note,
            creator,
            site,
            locked: g.locks.load(Ordering::Relaxed) > 0,
            labels,
            finished,
        });
    }
    out.sort_by_key(|d| d.goid);
    out
}

/// A parked goroutine, pinned while it is read. None if it is not parked
/// (or was woken before we pinned it); Some(None) if it is to be hidden.
fn snapshot_parked(g: &'static G, now: i64, system: bool) -> Option<Option<GDump>> {
    if !g.park.pin() {
        return None;
    }
    // SAFETY: pinned in its park: the goroutine cannot run, exit or be
    // compacted until unpin, and its M touches its inner state only in
    // those; so nothing writes it while we read (shared borrow).
    let gi = unsafe { &*g.inner.get() };
    let d = (system || !g.sys.load(Ordering::Relaxed)).then(|| {
        let mut pcs = Vec::new();
        let lent = gi.wait_reason == WaitReason::Blocking;
        // SAFETY: as for `gi` (the context is the holder's or a pinner's).
        let ctx = unsafe { &*g.ctx.get() };
        if let (Some(ctx), false) = (ctx.as_ref(), lent) {
            // SAFETY: suspended and pinned (see above): nothing resumes,
            // compacts or drops the context during the walk, and nobody
            // else writes its stack (a `Blocking` park's stack may be lent
            // to a pool thread, which may write it: not walked).
            unsafe { ctx.backtrace(&mut pcs, MAX_FRAMES) };
        }
        GDump {
            goid: g.goid(),
            state: match gi.wait_reason {
                WaitReason::Unspecified => "waiting".into(),
                r => r.to_string(),
            },
            wait_min: wait_minutes(now, gi.wait_since),
            name: gi.name.clone(),
            pcs,
            note: lent.then_some("stack lent to a blocking-pool call; frames unavailable"),
            creator: g.creator.load(Ordering::Relaxed),
            site: site_of(g),
            locked: g.locks.load(Ordering::Relaxed) > 0,
            labels: labels_for_dump(g),
            finished: false,
        }
    });
    if g.park.unpin() == crate::park_state::Notify::Resume {
        // A waker came while we held the pin: finish its wake.
        ready_g(g);
    }
    Some(d)
}

/// Whole minutes parked (Go prints the wait from one minute on).
fn wait_minutes(now: i64, since: i64) -> i64 {
    (now - since).max(0) / 60_000_000_000
}

/// Whether a function belongs to the runtime (hidden unless
/// `GOTRACEBACK=system`, as Go hides `runtime.*`): the scheduler layers,
/// and what Go's runtime package itself implements — channels, select,
/// timers, the netpoller's parking. (gort-std's sync types stay, as Go's
/// `sync.(*Mutex).Lock` frames do.)
pub(crate) fn runtime_frame(f: &str) -> bool {
    const RT: &[&str] = &[
        "gort_os::",
        "gort_sched::",
        "gort_sema::",
        "gort_timer::",
        "gort_std::chan::",
        "gort_std::select",
        "gort_netpoll::pd::",
        "gort_netpoll::poller::",
        "corosensei::",
        "backtrace::",
        "core::ops::function::",
        "core::panic::unwind_safe::",
        "std::panicking::",
        "std::panic::catch_unwind",
        "__rust_try",
        "stack_init_trampoline",
    ];
    let f = f.trim_start_matches('<');
    RT.iter().any(|p| f.starts_with(p))
}

fn print_frame(f: &Frame, out: &mut String) {
    let _ = writeln!(out, "{}(...)", f.function);
    match (&f.file, f.line) {
        (Some(file), Some(line)) => {
            let _ = writeln!(out, "\t{file}:{line}");
        }
        (Some(file), None) => {
            let _ = writeln!(out, "\t{file}");
        }
        _ => {
            let _ = writeln!(out, "\t?");
        }
    }
}

/// The printed frames of one return address (inlined calls give several),
/// and whether it is the goroutine's entry: below it are the M's own frames
/// (corosensei's switch is transparent to unwinders) or nothing.
fn frames_text(pc: usize, system: bool) -> (String, bool) {
    let mut text = String::new();
    for f in symbolize(pc).iter() {
        let base = f.function.starts_with("corosensei::");
        if system || !(base || runtime_frame(&f.function)) {
            print_frame(f, &mut text);
        }
        if base {
            return (text, true);
        }
    }
    (text, false)
}

/// Prints the snapshots in Go's format.
fn format(dumps: &[GDump], system: bool, out: &mut String) {
    // Per return address: its printed frames, and whether it is the
    // goroutine's entry (the walk stops there). A dump of many goroutines
    // in a few call chains formats each address once.
    let mut cache: HashMap<usize, (String, bool)> = HashMap::new();
    for (i, d) in dumps.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "goroutine {}", d.goid);
        if let Some(n) = &d.name {
            let _ = write!(out, " \"{n}\"");
        }
        out.push_str(" [");
        out.push_str(&d.state);
        if d.wait_min > 0 {
            let unit = if d.wait_min == 1 { "minute" } else { "minutes" };
            let _ = write!(out, ", {} {unit}", d.wait_min);
        }
        if d.locked {
            out.push_str(", locked to thread");
        }
        out.push_str("]:\n");
        if let Some(n) = d.note {
            let _ = writeln!(out, "\t{n}");
        }
        for &pc in &d.pcs {
            let (text, base) = cache.entry(pc).or_insert_with(|| frames_text(pc, system));
            out.push_str(text);
            if *base {
                break;
            }
        }
        if d.pcs.len() >= MAX_FRAMES {
            out.push_str("...additional frames elided...\n");
        }
        if let Some(site) = d.site {
            if d.creator != 0 {
                let _ = writeln!(
                    out,
                    "created by {}:{}:{} in goroutine {}",
                    site.file(),
                    site.line(),
                    site.column(),
                    d.creator
                );
            } else if d.name.as_deref() != Some("main") {
                let _ = writeln!(
                    out,
                    "created by {}:{}:{}",
                    site.file(),
                    site.line(),
                    site.column()
                );
            }
        }
    }
}

/// The dump (see the module docs), as text in Go's format.
///
/// The caller's stack is walked by the helper thread too, from registers
/// captured in this frame, which stays live (and the goroutine blocked in
/// it) until the helper is done: a small goroutine stack never runs the
/// unwinder.
#[inline(never)]
pub(crate) fn dump(opts: DumpOpts) -> String {
    if !started() {
        return String::new(); // no goroutine exists (and none is started)
    }
    text_or_why(gather(opts, move |dumps| text(&dumps, opts)))
}

/// The dumps in Go's format.
fn text(dumps: &[GDump], opts: DumpOpts) -> String {
    let mut out = String::new();
    format(dumps, opts.system, &mut out);
    out
}

/// The text, or why there is none.
fn text_or_why(r: std::io::Result<String>) -> String {
    r.unwrap_or_else(|e| format!("(goroutine dump unavailable: cannot start a thread: {e})\n"))
}

/// The caller's snapshot (if any) first, then, with `opts.all`, every
/// other goroutine's.
fn with_others(me: Option<GDump>, opts: DumpOpts) -> Vec<GDump> {
    let my_id = me.as_ref().map_or(0, |d| d.goid);
    let mut dumps: Vec<GDump> = me.into_iter().collect();
    if opts.all {
        dumps.extend(snapshot_others(my_id, opts.system));
    }
    dumps
}

/// Every user goroutine's stack and labels, the caller's first
/// (`prof::goroutine_profile`), gathered as a dump is.
#[inline(never)]
pub(crate) fn goroutine_profile() -> Vec<crate::prof::GoroutineRecord> {
    if !started() {
        return Vec::new();
    }
    let opts = DumpOpts {
        all: true,
        system: false,
    };
    let to_record = |d: GDump| crate::prof::GoroutineRecord {
        goid: d.goid,
        stack: d.pcs,
        labels: d.labels,
        state: d.state,
        name: d.name,
        creator: d.creator,
        created_at: d.site,
        finished: d.finished,
    };
    gather(opts, move |dumps| dumps.into_iter().map(to_record).collect()).unwrap_or_default()
}

/// Snapshots the caller (its frames walked from a register capture in this
/// frame) and, with `opts.all`, every other goroutine, then hands them to
/// `finish`: all on a fresh thread with a large stack (symbolisation parses
/// debug info), inside `syscall` when called from a goroutine, which stays
/// blocked in this frame until the thread is done.
#[inline(always)]
fn gather<T: Send>(
    opts: DumpOpts,
    finish: impl FnOnce(Vec<GDump>) -> T + Send,
) -> std::io::Result<T> {
    let me = snapshot_self();
    let here = if me.is_some() {
        gort_os::unwind::Here::capture()
    } else {
        None
    };
    let walk_me = move || {
        me.map(|mut d| {
            if let Some(h) = here {
                // SAFETY: the frame `gather` is inlined into, where `here`
                // was captured, is live until this returns, its goroutine
                // blocked in the join below (inside `syscall`) meanwhile.
                unsafe { h.backtrace(&mut d.pcs, MAX_FRAMES) };
            }
            d
        })
    };
    let work = move || finish(with_others(walk_me(), opts));
    if current_g_any().is_some() {
        syscall(move || on_dump_thread(work))
    } else {
        on_dump_thread(work)
    }
}

/// Snapshots the others (with `opts.all`) and formats everything on a
/// fresh thread with a large stack.
fn render(me: Option<GDump>, opts: DumpOpts) -> String {
    text_or_why(on_dump_thread(move || text(&with_others(me, opts), opts)))
}

/// Runs `work` on a fresh thread with an 8 MiB stack and waits for it.
fn on_dump_thread<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|sc| {
        let h = std::thread::Builder::new()
            .name("gort-dump".into())
            .stack_size(8 << 20)
            .spawn_scoped(sc, work)?;
        Ok(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// For fatal reports (SIGQUIT, deadlock): every goroutine per `level`,
/// from a thread that is not a goroutine. Empty for `GOTRACEBACK=none`.
pub(crate) fn fatal_dump(level: crate::config::Traceback) -> String {
    use crate::config::Traceback;
    if level == Traceback::None {
        return String::new();
    }
    render(
        None,
        DumpOpts {
            all: true,
            system: level >= Traceback::System,
        },
    )
}

/// Writes a fatal report to fd 2 with `write(2)` itself: std's stderr lock
/// may be held by a goroutine that will never run again (parked, or stopped
/// in the overflow handler, while printing).
pub(crate) fn write_stderr(mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: write(2) from our own buffer.
        let n = unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        b = &b[n as usize..];
    }
}

/// A fatal report from sysmon (SIGQUIT, deadlock): `head`, every goroutine
/// per `GOTRACEBACK`, `tail()`, written to fd 2; then the process ends. Bounded
/// by the watchdog.
pub(crate) fn fatal_report(head: &str, tail: impl FnOnce() -> String) -> ! {
    fatal_watchdog();
    let level = crate::traceback();
    let mut out = String::from(head);
    let dump = fatal_dump(level);
    if !dump.is_empty() {
        out.push('\n');
        out.push_str(&dump);
    }
    out.push_str(&tail());
    write_stderr(out.as_bytes());
    fatal_exit(level)
}

/// Ends the process after a fatal report, as Go does: exit status 2 with no
/// exit handlers (other threads still run user code), or `abort()`
/// (SIGABRT, a core dump) under `GOTRACEBACK=crash`.
pub(crate) fn fatal_exit(level: crate::config::Traceback) -> ! {
    if level == crate::config::Traceback::Crash {
        std::process::abort();
    }
    // SAFETY: _exit(2) ends the process at once.
    unsafe { libc::_exit(2) }
}

/// Bounds a fatal report: if it has not ended the process within ten
/// seconds (a lock held by a thread that will never release it, say), this
/// ends it with status 2. A report must never hang.
pub(crate) fn fatal_watchdog() {
    let _ = std::thread::Builder::new()
        .name("gort-fatal-watchdog".into())
        .spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(10));
            write_stderr(b"\ngort: fatal report did not finish in 10 s; exiting\n");
            fatal_exit(crate::traceback());
        });
}

/// A stack overflow's report, handed from the SIGSEGV handler to sysmon.
pub(crate) struct OverflowReq {
    fault: gort_os::signal::Fault,
    /// The overflowed goroutine (null if unknown).
    g: *const G,
    done: std::sync::atomic::AtomicBool,
}

/// The overflow being reported (null: none). Points into the handler's
/// frame, which waits for `done` before the process ends.
pub(crate) static OVERFLOW_REQ: std::sync::atomic::AtomicPtr<OverflowReq> =
    std::sync::atomic::AtomicPtr::new(ptr::null_mut());

/// gort-os's stack-overflow report hook, inside the SIGSEGV handler on the
/// faulting thread's small alternate stack: it only hands the fault to
/// sysmon (an atomic store and a futex wake, async-signal-safe) and waits
/// for sysmon to print the report, at most ten seconds (its own
/// `clock_gettime` deadline).
pub(crate) fn overflow_report(f: &gort_os::signal::Fault) {
    use crate::config::Traceback;
    // Initialised at start (sysmon's start reads it), so no allocation.
    if crate::traceback() == Traceback::None {
        return;
    }
    // nanotime is clock_gettime(2): async-signal-safe.
    let deadline = nanotime() + FATAL_BOUND_NS;
    let req = OverflowReq {
        fault: *f,
        g: current_g_any().map_or(ptr::null(), ptr::from_ref),
        done: std::sync::atomic::AtomicBool::new(false),
    };
    let r = ptr::from_ref(&req).cast_mut();
    let first = OVERFLOW_REQ
        .compare_exchange(ptr::null_mut(), r, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first {
        wake_sysmon_from_signal();
    }
    // The first overflow's report ends the process; a later one waits for
    // it (returning would end the process in the middle of it). Either
    // gives up at the deadline.
    while !(first && req.done.load(Ordering::SeqCst)) {
        if nanotime() > deadline {
            write_stderr(b"gort: stack overflow report did not finish in 10 s\n");
            return;
        }
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        // SAFETY: nanosleep(2) is async-signal-safe.
        unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
    }
}

/// How long a fatal report may take before the process ends without it.
const FATAL_BOUND_NS: i64 = 10_000_000_000;

/// sysmon's half of an overflow report: the overflowed goroutine's stack
/// (`GOTRACEBACK=single` and up) and every other goroutine (`all` and up),
/// written to stderr; then it tells the handler, which ends the process.
pub(crate) fn overflow_dump(req: &OverflowReq) {
    use crate::config::Traceback;
    let level = crate::traceback();
    // SAFETY: the handler's goroutine, stopped in the handler until `done`.
    let g: Option<&G> = unsafe { req.g.as_ref() };
    let mut me = GDump {
        goid: req.fault.id,
        state: "running".into(),
        wait_min: 0,
        // SAFETY: as above: nothing writes its name meanwhile.
        name: g.and_then(|g| unsafe { (*g.inner.get()).name.clone() }),
        pcs: Vec::new(),
        note: None,
        creator: g.map_or(0, |g| g.creator.load(Ordering::Relaxed)),
        site: g.and_then(site_of),
        locked: g.is_some_and(|g| g.locks.load(Ordering::Relaxed) > 0),
        labels: None, // (a lock a stopped thread may hold)
        finished: false,
    };
    // SAFETY: the overflowed goroutine's thread is stopped in the overflow
    // handler until we set `done`.
    unsafe { req.fault.backtrace(&mut me.pcs, MAX_FRAMES) };
    let text = render(
        Some(me),
        DumpOpts {
            all: level >= Traceback::All,
            system: level >= Traceback::System,
        },
    );
    write_stderr(format!("\n{text}").as_bytes());
    req.done.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(goid: u64, state: &str, wait_min: i64, name: Option<&str>) -> GDump {
        GDump {
            goid,
            state: state.into(),
            wait_min,
            name: name.map(Arc::from),
            pcs: Vec::new(),
            note: None,
            creator: 0,
            site: None,
            locked: false,
            labels: None,
            finished: false,
        }
    }

    #[test]
    fn waits_print_in_whole_minutes_from_one_minute_on() {
        let min = 60_000_000_000;
        assert_eq!(wait_minutes(min - 1, 0), 0);
        assert_eq!(wait_minutes(min, 0), 1);
        assert_eq!(wait_minutes(3 * min - 1, 0), 2);
        assert_eq!(wait_minutes(0, 5), 0, "a clock step back is no wait");
        let mut out = String::new();
        format(
            &[
                parked(7, "chan receive", 0, None),
                parked(8, "sleep", 1, Some("ticker")),
                parked(9, "select", 42, None),
            ],
            false,
            &mut out,
        );
        assert_eq!(
            out,
            "goroutine 7 [chan receive]:\n\n\
             goroutine 8 \"ticker\" [sleep, 1 minute]:\n\n\
             goroutine 9 [select, 42 minutes]:\n"
        );
    }

    #[test]
    fn runtime_frames_are_recognised() {
        assert!(runtime_frame("gort_sched::rt::switch::park_g"));
        assert!(runtime_frame("<gort_std::chan::Chan<T> as Drop>::drop"));
        assert!(runtime_frame("core::ops::function::FnOnce::call_once"));
        assert!(!runtime_frame("gort_std::mutex::Mutex<T>::lock"));
        assert!(!runtime_frame("my_crate::consume"));
    }
}
