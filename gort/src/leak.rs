//! Goroutine leak checks for tests, after Uber's goleak: at the end of a
//! test, every goroutine still alive that the test did not expect is a
//! leak, reported with its state, where it was created and its frames.
//!
//! ```
//! use gort::leak::{self, Options};
//!
//! gort::run(|| {
//!     let (tx, rx) = gort::chan::<u32>(0);
//!     let worker = gort::go(move || rx.iter().sum::<u32>());
//!     (1..=3).for_each(|i| tx.send(i).unwrap());
//!     drop(tx); // the worker's loop ends: it is torn down properly
//!     assert_eq!(worker.join().unwrap(), 6);
//!     leak::verify_none(&Options::new()); // passes: nothing left running
//!
//!     // A goroutine parked for good is reported once the retries run out.
//!     let (_tx, rx) = gort::chan::<u32>(0);
//!     gort::go(move || rx.recv());
//!     let fast = Options::new().max_retries(3);
//!     let report = leak::find(&fast).unwrap_err().to_string();
//!     assert!(report.starts_with("found unexpected goroutines:\n"));
//!     assert!(report.contains("[chan receive]"), "{report}");
//! });
//! ```
//!
//! # What it checks
//!
//! [`find`] lists every goroutine alive (from
//! [`gort_sched::prof::goroutine_profile`]: parked ones with their stacks,
//! walked while each is held in its park, nothing stopped) and drops
//!
//! * the calling goroutine, when it is one (a check inside [`gort::run`]
//!   runs on the main goroutine, which is not a leak);
//! * the runtime's own goroutines ([`Builder::system`]: the finalizer and
//!   timer helpers, signal delivery), as Go's checks never see
//!   `runtime.*` goroutines;
//! * whatever the [`Options`]' ignore rules match.
//!
//! If any are left it retries with exponential backoff (1 µs, doubling,
//! at most [`Options::max_sleep`] between looks, 100 ms by default; at most
//! [`Options::max_retries`] retries, 20 by default: about 0.45 s in all),
//! because a goroutine that was just told to stop is often still on its
//! way out. What is still there after the last retry is reported:
//!
//! ```text
//! found unexpected goroutines:
//! goroutine 7 [chan receive]:
//! my_crate::tests::worker(...)
//!     src/lib.rs:42
//! created by src/lib.rs:57:9 in goroutine 3
//! ```
//!
//! Called from a plain thread — a `#[test]` function after [`gort::run`]
//! returned — every goroutine alive is a candidate: those the test spawned
//! and left running are leaks. A goroutine that has returned (joined, or
//! the main goroutine of a `run` that returned) but is still being torn
//! down is not. Between retries the check sleeps on
//! [`gort::time::sleep`] from a goroutine (other goroutines of the thread
//! keep running) and `std::thread::sleep` from a thread.
//!
//! # How it differs from goleak
//!
//! * Names are Rust paths as the symboliser gives them, without the hash:
//!   `my_crate::worker`, `my_crate::spawn_all::{{closure}}`,
//!   `<my_crate::Pump as Drop>::drop`. A rule's name matches a frame's
//!   function if it is equal or a prefix ending at a path boundary
//!   (`my_crate::worker` matches `my_crate::worker::{{closure}}`, not
//!   `my_crate::worker_pool`).
//! * The "top function" is the goroutine's innermost frame that is not
//!   runtime machinery ([`gort_sched::prof::is_runtime_frame`]): for a
//!   goroutine blocked on a channel it is the function that called `recv`,
//!   as in Go, where `runtime.chanrecv` is hidden.
//! * `created by` is a source location (`go` and `Builder::spawn` are
//!   `#[track_caller]`), not a function: [`Options::ignore_created_by`]
//!   matches a file, `file:line` or `file:line:column` suffix.
//! * There is no `testing.T`: [`verify_none`] panics with the report, which
//!   fails a `#[test]`; [`find`] returns it as an error; a [`LeakGuard`]
//!   checks when it is dropped (not while its thread is already panicking,
//!   so a failed test reports its own panic, not a second one).
//! * Frames are what the optimiser left: an inlined function has no frame
//!   of its own unless the debug info lists it (the symboliser expands
//!   inlined calls it knows of), a tail call leaves none, and functions
//!   with identical machine code may be merged under one name. Mark a
//!   worker an ignore rule names `#[inline(never)]` if in doubt.
//! * A goroutine running on another thread, or runnable and not started,
//!   has no frames (gort does not stop running goroutines; see
//!   [`gort_sched::stack`]): only [`Options::ignore_created_by`] and
//!   [`Options::ignore_current`] can match it. Its name is known only
//!   while it is parked.
//!
//! Like goleak's `VerifyNone`, a check sees every goroutine of the process:
//! tests that run in parallel (libtest's default) see each other's. Run
//! leak-checked tests one at a time (`--test-threads=1`, or a lock the
//! tests share), or check once, at the end, from a `harness = false` test's
//! `main`, as goleak's `VerifyTestMain` does.
//!
//! [`Builder::system`]: gort_sched::Builder::system
//! [`gort::run`]: crate::run
//! [`gort::time::sleep`]: crate::time::sleep

use gort_os::unwind::{symbolize, Frame};
use gort_sched::prof::{goroutine_profile, is_runtime_frame, GoroutineRecord};
use std::collections::HashSet;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// goleak's defaults: 20 retries, at most 100 ms apart.
const DEFAULT_RETRIES: u32 = 20;
const DEFAULT_MAX_SLEEP: Duration = Duration::from_millis(100);

/// Frames symbolised per leaked goroutine at most.
const MAX_FRAMES: usize = 64;

/// What a check ignores and how long it waits: a builder.
///
/// ```
/// use gort::leak::Options;
/// use std::time::Duration;
///
/// let opts = Options::new()
///     .ignore_top_function("my_crate::metrics::flusher")
///     .ignore_any_function("my_crate::pool::idle_worker")
///     .ignore_created_by("src/server.rs:120")
///     .max_retries(10)
///     .max_sleep(Duration::from_millis(50));
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    rules: Vec<Rule>,
    max_retries: u32,
    max_sleep: Duration,
}

#[derive(Clone, Debug)]
enum Rule {
    /// The goroutine's top (innermost non-runtime) function.
    TopFunction(String),
    /// Any of its non-runtime frames.
    AnyFunction(String),
    /// Its creation site.
    CreatedBy(String),
    /// Goroutines alive when the rule was made.
    Ids(Arc<HashSet<u64>>),
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

impl Options {
    /// No ignore rules, goleak's retry defaults (20 retries, at most
    /// 100 ms apart).
    pub fn new() -> Options {
        Options {
            rules: Vec::new(),
            max_retries: DEFAULT_RETRIES,
            max_sleep: DEFAULT_MAX_SLEEP,
        }
    }

    /// Ignores goroutines whose top function (innermost frame that is not
    /// runtime machinery) is `function` or inside it (see the module docs
    /// for how names match). goleak's `IgnoreTopFunction`.
    pub fn ignore_top_function(mut self, function: impl Into<String>) -> Options {
        self.rules.push(Rule::TopFunction(function.into()));
        self
    }

    /// Ignores goroutines with `function` anywhere in their frames.
    /// goleak's `IgnoreAnyFunction`.
    pub fn ignore_any_function(mut self, function: impl Into<String>) -> Options {
        self.rules.push(Rule::AnyFunction(function.into()));
        self
    }

    /// Ignores goroutines spawned at `site`: a source file
    /// (`src/server.rs`), `file:line` or `file:line:column`, matched as a
    /// suffix of the spawn's location at a path boundary (the location's
    /// file is as `std::panic::Location` gives it, relative to the
    /// workspace for workspace crates, absolute for dependencies). A suffix
    /// must name a directory too (`src/server.rs`, not `server.rs`), or it
    /// must be the whole path: a bare `lib.rs` would excuse every crate's.
    pub fn ignore_created_by(mut self, site: impl Into<String>) -> Options {
        self.rules.push(Rule::CreatedBy(site.into()));
        self
    }

    /// Ignores every goroutine alive now (by id; ids are never reused), so
    /// a later check reports only goroutines started after this call.
    /// goleak's `IgnoreCurrent`.
    pub fn ignore_current(mut self) -> Options {
        let ids = goroutine_profile().into_iter().map(|g| g.goid).collect();
        self.rules.push(Rule::Ids(Arc::new(ids)));
        self
    }

    /// Retries at most `n` times before reporting (0: report the first
    /// look). goleak's `MaxRetryAttempts`.
    pub fn max_retries(mut self, n: u32) -> Options {
        self.max_retries = n;
        self
    }

    /// The longest sleep between two looks (the sleeps double from 1 µs up
    /// to it). goleak's `MaxSleepInterval`.
    ///
    /// # Panics
    /// If `d` is zero (goleak rejects it too).
    pub fn max_sleep(mut self, d: Duration) -> Options {
        assert!(!d.is_zero(), "gort::leak: max_sleep must be more than 0");
        self.max_sleep = d;
        self
    }

    /// [`find`] with these options.
    pub fn find(&self) -> Result<(), Leaks> {
        find(self)
    }

    /// [`verify_none`] with these options.
    #[track_caller]
    pub fn verify_none(&self) {
        verify_none(self)
    }

    /// A guard that runs [`verify_none`] with these options when dropped.
    pub fn guard(self) -> LeakGuard {
        LeakGuard { opts: Some(self) }
    }

    /// The sleep before retry `attempt` (from 0): 1 µs doubled per
    /// attempt, at most `max_sleep`.
    fn backoff(&self, attempt: u32) -> Duration {
        let us = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        Duration::from_micros(us).min(self.max_sleep)
    }
}

/// Looks for unexpected goroutines (see the module docs), retrying while
/// some are left and retries remain; returns them if any are still there.
/// goleak's `Find`.
pub fn find(opts: &Options) -> Result<(), Leaks> {
    // The caller in the wide sense: inside `syscall` and inside a
    // `blocking` call too (the goroutine that made it).
    let me = gort_sched::caller_goid();
    let on_goroutine = gort_sched::goid().is_some();
    let mut attempt = 0;
    loop {
        let left = look(opts, me);
        if left.is_empty() {
            return Ok(());
        }
        if attempt >= opts.max_retries {
            return Err(Leaks { goroutines: left });
        }
        let d = opts.backoff(attempt);
        if on_goroutine {
            crate::time::sleep(d);
        } else {
            std::thread::sleep(d);
        }
        attempt += 1;
    }
}

/// [`find`], panicking with the report if it finds leaks: at the end of a
/// `#[test]`, that fails the test. goleak's `VerifyNone`.
///
/// # Panics
/// With the [`Leaks`] report if unexpected goroutines are still alive.
#[track_caller]
pub fn verify_none(opts: &Options) {
    if let Err(leaks) = find(opts) {
        panic!("{leaks}");
    }
}

/// A guard that checks for leaks ([`verify_none`] with default options)
/// when it is dropped, at the end of the scope it lives in:
///
/// ```
/// // In a #[test] function:
/// let _leaks = gort::leak::guard();
/// let v = gort::run(|| gort::go(|| 42).join().unwrap());
/// assert_eq!(v, 42);
/// // checked here, when `_leaks` is dropped
/// ```
pub fn guard() -> LeakGuard {
    Options::new().guard()
}

/// Runs [`verify_none`] when dropped, unless the thread is already
/// panicking (a failing test reports its own panic; a second one would
/// abort). Made by [`guard`] or [`Options::guard`].
///
/// From a goroutine, "already panicking" is std's per-thread flag, which
/// the goroutines sharing a thread share (see the `gort_sched` docs): a
/// goroutine parked while it unwinds makes the others' guards skip their
/// check.
#[must_use = "the check runs when the guard is dropped"]
#[derive(Debug)]
pub struct LeakGuard {
    opts: Option<Options>,
}

impl LeakGuard {
    /// Drops the guard without checking.
    pub fn disarm(mut self) {
        self.opts = None;
    }
}

impl Drop for LeakGuard {
    fn drop(&mut self) {
        if let Some(opts) = self.opts.take() {
            if !std::thread::panicking() {
                verify_none(&opts);
            } else if gort_sched::goid().is_some() {
                // Maybe another goroutine of this thread is unwinding, not
                // this one: say that the check did not run.
                eprintln!(
                    "gort::leak: leak check skipped: this thread is unwinding a panic (this goroutine's or another's on the same thread)"
                );
            }
        }
    }
}

/// The goroutines a check found: its [`Display`](fmt::Display) is the
/// report (`found unexpected goroutines:` and each goroutine as a dump
/// shows it).
#[derive(Clone, Debug)]
pub struct Leaks {
    goroutines: Vec<Leaked>,
}

impl Leaks {
    /// The leaked goroutines, by id.
    pub fn goroutines(&self) -> &[Leaked] {
        &self.goroutines
    }
}

impl std::error::Error for Leaks {}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "found unexpected goroutines:")?;
        for (i, g) in self.goroutines.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

/// One leaked goroutine.
#[derive(Clone, Debug)]
pub struct Leaked {
    id: u64,
    state: String,
    name: Option<Arc<str>>,
    creator: u64,
    created_at: Option<&'static Location<'static>>,
    frames: Vec<Frame>,
}

impl Leaked {
    /// Its goroutine id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Why it waits, in Go's words (`chan receive`, `select`,
    /// `sync.Mutex.Lock`, ...), or `running` / `runnable` / `syscall`.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Its [`Builder::name`](gort_sched::Builder::name), if it has one
    /// (known while it is parked).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The goroutine that spawned it (0: a plain thread).
    pub fn creator(&self) -> u64 {
        self.creator
    }

    /// Where it was spawned.
    pub fn created_at(&self) -> Option<&'static Location<'static>> {
        self.created_at
    }

    /// Its own frames, innermost first, runtime machinery left out (empty
    /// if its stack could not be walked: see the module docs).
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The innermost of [`Leaked::frames`]'s functions.
    pub fn top_function(&self) -> Option<&str> {
        self.frames.first().map(|f| f.function.as_str())
    }
}

impl fmt::Display for Leaked {
    /// As a goroutine dump shows it (Go's traceback format).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "goroutine {}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " \"{n}\"")?;
        }
        writeln!(f, " [{}]:", self.state)?;
        if self.frames.is_empty() {
            writeln!(f, "\t(no frames: {})", why_no_frames(&self.state))?;
        }
        for fr in &self.frames {
            writeln!(f, "{}(...)", fr.function)?;
            match (&fr.file, fr.line) {
                (Some(file), Some(line)) => writeln!(f, "\t{file}:{line}")?,
                (Some(file), None) => writeln!(f, "\t{file}")?,
                _ => writeln!(f, "\t?")?,
            }
        }
        if let Some(at) = self.created_at {
            write!(f, "created by {}:{}:{}", at.file(), at.line(), at.column())?;
            if self.creator != 0 {
                write!(f, " in goroutine {}", self.creator)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn why_no_frames(state: &str) -> &'static str {
    match state {
        "running" | "syscall" => "running on another thread",
        "runnable" => "runnable, not yet started or resumed",
        _ => "stack unavailable",
    }
}

/// One look: the goroutines alive that no rule excuses, `me` (the caller)
/// left out.
fn look(opts: &Options, me: Option<u64>) -> Vec<Leaked> {
    let records = goroutine_profile();
    // Cheap rules first; symbolise (on a large stack: the first use parses
    // debug info) only what is left.
    let left: Vec<GoroutineRecord> = records
        .into_iter()
        // A goroutine that returned is only being torn down: no leak.
        .filter(|g| {
            Some(g.goid) != me && !g.finished && !opts.rules.iter().any(|r| r.excuses_early(g))
        })
        .collect();
    if left.is_empty() {
        return Vec::new();
    }
    let mut out = crate::pprof::on_big_stack(|| {
        left.into_iter()
            .map(|g| Leaked {
                frames: own_frames(&g.stack),
                id: g.goid,
                state: g.state,
                name: g.name,
                creator: g.creator,
                created_at: g.created_at,
            })
            .filter(|l| !opts.rules.iter().any(|r| r.excuses(l)))
            .collect::<Vec<_>>()
    });
    out.sort_by_key(|l| l.id);
    out
}

/// The goroutine's own frames from its return addresses: runtime frames
/// left out, up to the stack's base (the context switch's entry, below
/// which are the M's frames).
fn own_frames(pcs: &[usize]) -> Vec<Frame> {
    let mut out = Vec::new();
    for &pc in pcs.iter().filter(|&&pc| pc != 0) {
        // A return address points past its call: look up the call itself.
        for fr in symbolize(pc - 1).iter() {
            if fr.function.starts_with("corosensei::") {
                return out;
            }
            if !is_runtime_frame(&fr.function) && out.len() < MAX_FRAMES {
                out.push(fr.clone());
            }
        }
    }
    out
}

impl Rule {
    /// Rules that need no symbols.
    fn excuses_early(&self, g: &GoroutineRecord) -> bool {
        match self {
            Rule::Ids(ids) => ids.contains(&g.goid),
            Rule::CreatedBy(site) => g.created_at.is_some_and(|at| site_matches(at, site)),
            Rule::TopFunction(_) | Rule::AnyFunction(_) => false,
        }
    }

    /// Rules on frames.
    fn excuses(&self, l: &Leaked) -> bool {
        match self {
            Rule::TopFunction(name) => l.top_function().is_some_and(|f| function_matches(f, name)),
            Rule::AnyFunction(name) => l.frames.iter().any(|f| function_matches(&f.function, name)),
            Rule::Ids(_) | Rule::CreatedBy(_) => false,
        }
    }
}

/// Whether the frame's `function` is `name` or inside it: equal, or `name`
/// followed by a path or generics boundary (`::`, `<`, ` as `), after an
/// impl block's leading `<`.
fn function_matches(function: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    [function, function.trim_start_matches('<')]
        .iter()
        .any(|f| {
            f.strip_prefix(name).is_some_and(|rest| {
                rest.is_empty()
                    || rest.starts_with("::")
                    || rest.starts_with('<')
                    || rest.starts_with(' ')
                    || rest.starts_with('>')
            })
        })
}

/// Whether the spawn location `at` is `site`: its file, `file:line` or
/// `file:line:column`, equal or a suffix starting at a path separator.
fn site_matches(at: &Location<'_>, site: &str) -> bool {
    let site = site.trim();
    if site.is_empty() {
        return false;
    }
    let file = at.file();
    let with_line = format!("{file}:{}", at.line());
    let full = format!("{with_line}:{}", at.column());
    // A suffix match needs a directory in the rule; else only equality.
    let has_dir = site.contains('/') || site.contains('\\');
    [file, &with_line, &full].iter().any(|c| {
        c.strip_suffix(site).is_some_and(|head| {
            head.is_empty() || (has_dir && (head.ends_with('/') || head.ends_with('\\')))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_match_at_path_boundaries() {
        assert!(function_matches("my_crate::worker", "my_crate::worker"));
        assert!(function_matches(
            "my_crate::worker::{{closure}}",
            "my_crate::worker"
        ));
        assert!(function_matches(
            "<my_crate::Pump as core::ops::drop::Drop>::drop",
            "my_crate::Pump"
        ));
        assert!(function_matches("my_crate::Pool<T>::get", "my_crate::Pool"));
        assert!(!function_matches(
            "my_crate::worker_pool",
            "my_crate::worker"
        ));
        assert!(!function_matches(
            "other::my_crate::worker",
            "my_crate::worker"
        ));
        assert!(!function_matches("my_crate::worker", ""));
    }

    #[test]
    fn sites_match_as_path_suffixes() {
        let at = Location::caller();
        let (file, line, col) = (at.file(), at.line(), at.column());
        assert!(site_matches(at, file));
        assert!(site_matches(at, &format!("{file}:{line}")));
        assert!(site_matches(at, &format!("{file}:{line}:{col}")));
        // A bare file name would excuse every crate's file of that name.
        assert!(!site_matches(at, "leak.rs"));
        assert!(site_matches(at, &format!("src/leak.rs:{line}")));
        assert!(!site_matches(at, "eak.rs"));
        assert!(!site_matches(at, &format!("leak.rs:{}", line + 1)));
        assert!(!site_matches(at, ""));
    }

    #[test]
    fn backoff_doubles_up_to_max_sleep() {
        let o = Options::new().max_sleep(Duration::from_millis(1));
        assert_eq!(o.backoff(0), Duration::from_micros(1));
        assert_eq!(o.backoff(3), Duration::from_micros(8));
        assert_eq!(o.backoff(10), Duration::from_millis(1));
        assert_eq!(o.backoff(200), Duration::from_millis(1));
    }
}
