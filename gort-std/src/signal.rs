//! Go's os/signal: incoming Unix signals delivered on channels.
//!
//! ```no_run
//! use gort_std::signal::{self, SIGINT, SIGTERM};
//!
//! let (tx, rx) = gort_std::chan(1);
//! signal::notify(&tx, &[SIGINT, SIGTERM]);
//! let sig = rx.recv().unwrap(); // waits for ^C or `kill`
//! println!("got {sig}, shutting down"); // "got interrupt, shutting down"
//! ```
//!
//! [`notify`] relays the listed signals to a channel, [`stop`] undoes it,
//! [`ignore`] and [`reset`] set a signal's disposition to "ignored" or back
//! to what it was, [`ignored`] reports it: Go's `signal.Notify`, `Stop`,
//! `Ignore`, `Reset` and `Ignored`, with their semantics. A signal channel
//! is an ordinary channel, so [`select!`](crate::select!) waits on it beside
//! others:
//!
//! ```
//! use gort_std::signal::{self, SIGUSR1};
//! use std::time::Duration;
//!
//! gort_sched::run(|| {
//!     let (sig_tx, sigs) = gort_std::chan(1);
//!     signal::notify(&sig_tx, &[SIGUSR1]);
//!     let timeout = gort_std::after(Duration::from_secs(10));
//!     // SAFETY: kill(2) of our own process with a signal we now catch.
//!     unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
//!     gort_std::select! {
//!         recv(sigs) -> s => assert_eq!(s, Ok(SIGUSR1)),
//!         recv(timeout) -> _t => panic!("no signal within 10 s"),
//!     }
//!     signal::stop(&sig_tx); // SIGUSR1 ends the process again
//! });
//! ```
//!
//! # The design
//!
//! A signal handler may run on any thread, between any two instructions of
//! whatever that thread was doing — inside the allocator, under a channel
//! lock, in the middle of a context switch. It may therefore only do what
//! is *async-signal-safe*: lock-free atomics and a short list of system
//! calls. It must not allocate, take a lock, or touch the scheduler.
//! Delivery is split in two, as in Go (runtime/sigqueue.go):
//!
//! 1. **The handler** (installed with `SA_SIGINFO | SA_ONSTACK | SA_RESTART`
//!    and every signal blocked while it runs) saves `errno`, sets the
//!    signal's bit in the process-wide pending mask (`PENDING`, one
//!    `fetch_or`), and sends one byte on the write end of a socket pair
//!    with `MSG_DONTWAIT | MSG_NOSIGNAL`; a full socket buffer (`EAGAIN`)
//!    is ignored, since the unread bytes already guarantee a wake-up. It
//!    then restores `errno`. That is all: atomics, `send(2)`, `errno`.
//! 2. **The dispatcher**, a system goroutine started by the first call
//!    that changes a disposition, reads the other end of the socket pair
//!    through gort-netpoll (it parks on the netpoller like any socket
//!    reader, holding no thread), swaps the pending mask to zero, and for
//!    each signal in it `try_send`s the signal to every channel registered
//!    for it: **a full channel drops the signal; delivery never blocks**
//!    (Go: "Package signal will not block sending to c"). It does so under
//!    the registry's lock, which is what makes [`stop`] exact.
//!
//! The same signal arriving again before the dispatcher ran is coalesced
//! into one delivery (a bit, not a count), as in Go: signals are
//! notifications, not a queue. Give a channel a buffer of 1 for one
//! signal; an unbuffered channel only gets a signal if a receiver is
//! already waiting on it when the dispatcher tries (Go's `go vet` warns
//! about `Notify` with an unbuffered channel; gort documents it and does
//! not refuse it).
//!
//! ## Dispositions: saved at first touch, restored exactly
//!
//! The first time gort changes a signal's disposition (a [`notify`] or an
//! [`ignore`]) it saves the complete previous `sigaction` — handler, flags
//! and mask — and [`reset`], or the last [`stop`] of the signal's
//! listeners, puts exactly that back. So a handler installed by someone
//! else before the first touch (a runtime SIGQUIT dump handler, a crate's
//! SIGCHLD reaper, Rust's own `SIG_IGN` for SIGPIPE) comes back untouched;
//! once restored, the signal is "untouched" again and the next change
//! saves whatever is installed then. The runtime is started (by starting
//! the dispatcher) *before* the first disposition is saved, so handlers
//! the runtime installs at start-up are what gets saved, not overwritten
//! afterwards. A signal nobody asked about keeps its meaning: SIGINT and
//! SIGTERM still end the process until someone calls [`notify`] for them.
//!
//! ## Coexisting with gort-os's fault handlers
//!
//! gort-os installs SIGSEGV and SIGBUS handlers (on each thread's
//! alternate signal stack) that turn a goroutine's guard-page hit into
//! `fatal error: stack overflow in goroutine N`. Those signals, and the
//! other synchronous fault signals (SIGFPE, SIGILL, SIGTRAP, SIGSYS), are
//! not [`Signal`]s at all: [`Signal::new`] refuses them, so nothing here
//! can replace gort-os's handlers or swallow a real crash. A fault is
//! raised by the faulting instruction itself; a handler that only records
//! it and returns would re-run the instruction forever. SIGKILL and SIGSTOP
//! cannot be caught or ignored, and the numbers the C library reserves for
//! itself (32 up to `SIGRTMIN`, NPTL's cancellation and set-id signals) are
//! refused too. Our handler runs on the alternate signal stack when the
//! thread has one (`SA_ONSTACK`), like gort-os's; it needs a few hundred
//! bytes, so a goroutine stack near its end is also fine.
//!
//! ## Differences from Go
//!
//! * A channel is identified by its [`Sender`]: [`stop`] takes any `Sender`
//!   of the same channel (see [`Sender::same_channel`]). The registry keeps
//!   a clone of it, so the channel does not close while it is notified.
//! * When every [`Receiver`](crate::Receiver) of a notified channel is
//!   gone, or the channel was closed, the dispatcher drops the registration
//!   as if [`stop`] had been called (restoring dispositions nobody else
//!   wants). Go would panic in its signal goroutine (`send on closed
//!   channel`, ending the program); gort's dispatcher must keep serving
//!   the other channels. [`notify`] with a channel that is already closed
//!   panics.
//! * [`ignore`] of SIGCHLD installs `SIG_DFL` (whose action is to discard
//!   it) rather than `SIG_IGN`: on Linux `SIG_IGN` for SIGCHLD also reaps
//!   children automatically, so `std::process::Child::wait` would fail with
//!   `ECHILD`. Go keeps its own handler there for the same reason.
//!   [`ignored`] reports SIGCHLD as ignored after it.
//! * [`ignored`] reads the kernel's disposition for signals gort never
//!   touched, so a signal inherited as ignored (`nohup` makes SIGHUP
//!   `SIG_IGN`; Rust makes SIGPIPE `SIG_IGN`) reports `true`.
//! * The fault signals, SIGKILL and SIGSTOP are refused by [`Signal::new`]
//!   with an error; Go accepts them in `Notify` and never delivers them.
//! * Delivery order: per signal in increasing number, per signal to the
//!   channels in registration order (Go's order is a map's). No code may
//!   rely on it.
//! * Go's `NotifyContext` is not provided (gort has no `context`).
//!
//! A signal is delivered only once the dispatcher goroutine runs: like any
//! goroutine it shares its M with others, and a goroutine of that M that
//! runs without reaching a preemption point delays it.
//!
//! # Invariants
//!
//! * `refs[n] > 0` exactly when signal `n`'s disposition is `Caught` (our
//!   handler is installed): a notify that takes it from 0 installs the
//!   handler, a stop or cancel that takes it to 0 restores the saved
//!   disposition; [`ignore`] and [`reset`] take it to 0 themselves.
//! * `refs[n]` equals the number of registered channels whose mask has
//!   signal `n` (channels being stopped do not count).
//! * No registered or stopping channel has an empty mask.
//! * A disposition other than `Untouched` holds the `sigaction` that was
//!   installed before gort first changed it.
//! * The signal handler is installed only after `WAKE_FD` holds the write
//!   end of the wake-up socket pair and the dispatcher exists.
//! * After [`stop`] returns, the dispatcher never sends to that channel:
//!   deliveries happen under the registry lock, and `stop` removes the
//!   channel under it and waits for a full pass of the dispatcher that
//!   began after every handler that could still set a bit for it ended.

use crate::loom::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use crate::{Cond, Mutex, MutexGuard, Sender, TrySendError};
use std::fmt;
use std::io::Read as _;
use std::os::fd::IntoRawFd as _;
use std::sync::OnceLock;

/// A Unix signal that can be notified, ignored or reset: a signal number
/// known to be in range and catchable (see [`Signal::new`]).
///
/// [`Display`](fmt::Display) prints Go's name (`interrupt`, `terminated`,
/// `hangup`, `user defined signal 1`, `signal 40` for the real-time ones);
/// [`Debug`](fmt::Debug) prints the C name (`SIGINT`, `SIGRTMIN+6`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

/// Hangup (`hangup`): the controlling terminal closed; daemons reload.
pub const SIGHUP: Signal = Signal(libc::SIGHUP);
/// Interrupt (`interrupt`): ^C; Go's `os.Interrupt`.
pub const SIGINT: Signal = Signal(libc::SIGINT);
/// Quit (`quit`): ^\; Go's runtime dumps every goroutine on it.
pub const SIGQUIT: Signal = Signal(libc::SIGQUIT);
/// Abort (`aborted`): raised by `abort(3)`, which ends the process even if
/// the signal is caught.
pub const SIGABRT: Signal = Signal(libc::SIGABRT);
/// User-defined signal 1 (`user defined signal 1`).
pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
/// User-defined signal 2 (`user defined signal 2`).
pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);
/// Broken pipe (`broken pipe`): ignored by Rust programs from start-up.
pub const SIGPIPE: Signal = Signal(libc::SIGPIPE);
/// Alarm clock (`alarm clock`): `alarm(2)` expired.
pub const SIGALRM: Signal = Signal(libc::SIGALRM);
/// Termination (`terminated`): the polite request to exit (`kill`'s
/// default).
pub const SIGTERM: Signal = Signal(libc::SIGTERM);
/// Child status changed (`child exited`).
pub const SIGCHLD: Signal = Signal(libc::SIGCHLD);
/// Continue (`continued`): the process was resumed after a stop.
pub const SIGCONT: Signal = Signal(libc::SIGCONT);
/// Terminal stop (`stopped`): ^Z.
pub const SIGTSTP: Signal = Signal(libc::SIGTSTP);
/// Background read from the terminal (`stopped (tty input)`).
pub const SIGTTIN: Signal = Signal(libc::SIGTTIN);
/// Background write to the terminal (`stopped (tty output)`).
pub const SIGTTOU: Signal = Signal(libc::SIGTTOU);
/// Urgent socket data (`urgent I/O condition`).
pub const SIGURG: Signal = Signal(libc::SIGURG);
/// CPU time limit exceeded (`CPU time limit exceeded`).
pub const SIGXCPU: Signal = Signal(libc::SIGXCPU);
/// File size limit exceeded (`file size limit exceeded`).
pub const SIGXFSZ: Signal = Signal(libc::SIGXFSZ);
/// Virtual timer expired (`virtual timer expired`).
pub const SIGVTALRM: Signal = Signal(libc::SIGVTALRM);
/// Profiling timer expired (`profiling timer expired`).
pub const SIGPROF: Signal = Signal(libc::SIGPROF);
/// Window size changed (`window changed`).
pub const SIGWINCH: Signal = Signal(libc::SIGWINCH);
/// I/O possible (`I/O possible`).
pub const SIGIO: Signal = Signal(libc::SIGIO);
/// Power failure (`power failure`).
pub const SIGPWR: Signal = Signal(libc::SIGPWR);

/// The highest signal number the pending mask (64 bits) can hold.
const MAX_SIG: i32 = 64;

/// Signals that are raised by the faulting instruction itself.
const FAULTS: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Why a number is not a [`Signal`] (from [`Signal::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalError {
    /// Not a signal number of this system: 0, negative, or above
    /// `SIGRTMAX`.
    OutOfRange(i32),
    /// SIGKILL or SIGSTOP: the kernel lets nobody catch or ignore them.
    Uncatchable(i32),
    /// A synchronous fault signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
    /// SIGTRAP, SIGSYS): raised by the faulting instruction, so it cannot
    /// be turned into a channel message; gort-os handles SIGSEGV and SIGBUS
    /// to report goroutine stack overflows.
    Synchronous(i32),
    /// Reserved by the C library for its own use (32 up to `SIGRTMIN`:
    /// NPTL's thread-cancellation and set-id signals).
    Reserved(i32),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SignalError::OutOfRange(n) => write!(
                f,
                "gort::signal: {n} is not a signal number (valid: 1 to {})",
                sigrtmax()
            ),
            SignalError::Uncatchable(n) => write!(
                f,
                "gort::signal: {} ({n}) cannot be caught or ignored",
                c_name(n)
            ),
            SignalError::Synchronous(n) => write!(
                f,
                "gort::signal: {} ({n}) is a synchronous fault signal, raised by the \
                 faulting instruction; it cannot be notified, ignored or reset \
                 (gort-os handles SIGSEGV and SIGBUS to report stack overflows)",
                c_name(n)
            ),
            SignalError::Reserved(n) => write!(
                f,
                "gort::signal: signal {n} is reserved by the C library (real-time \
                 signals start at SIGRTMIN = {})",
                sigrtmin()
            ),
        }
    }
}

impl std::error::Error for SignalError {}

fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

fn sigrtmax() -> i32 {
    libc::SIGRTMAX().min(MAX_SIG)
}

impl Signal {
    /// The signal numbered `n`, if it is one that can be notified, ignored
    /// and reset.
    ///
    /// ```
    /// use gort_std::signal::{Signal, SignalError, SIGTERM};
    ///
    /// assert_eq!(Signal::new(libc::SIGTERM), Ok(SIGTERM));
    /// assert_eq!(Signal::new(0), Err(SignalError::OutOfRange(0)));
    /// assert_eq!(Signal::new(libc::SIGKILL), Err(SignalError::Uncatchable(9)));
    /// assert_eq!(Signal::new(libc::SIGSEGV), Err(SignalError::Synchronous(11)));
    /// ```
    ///
    /// # Errors
    /// [`SignalError::OutOfRange`] for 0, negative numbers and numbers above
    /// `SIGRTMAX`; [`SignalError::Uncatchable`] for SIGKILL and SIGSTOP;
    /// [`SignalError::Synchronous`] for the fault signals SIGSEGV, SIGBUS,
    /// SIGFPE, SIGILL, SIGTRAP and SIGSYS (see the module docs);
    /// [`SignalError::Reserved`] for the numbers the C library keeps
    /// below `SIGRTMIN`.
    pub fn new(n: i32) -> Result<Signal, SignalError> {
        if n <= 0 || n > sigrtmax() {
            Err(SignalError::OutOfRange(n))
        } else if n == libc::SIGKILL || n == libc::SIGSTOP {
            Err(SignalError::Uncatchable(n))
        } else if FAULTS.contains(&n) {
            Err(SignalError::Synchronous(n))
        } else if n >= 32 && n < sigrtmin() {
            Err(SignalError::Reserved(n))
        } else {
            Ok(Signal(n))
        }
    }

    /// The signal's number (`libc::SIGINT` for [`SIGINT`]).
    pub const fn number(self) -> i32 {
        self.0
    }

    /// The signal's bit in a mask (bit `n - 1`).
    #[inline]
    fn bit(self) -> u64 {
        1 << (self.0 - 1)
    }
}

impl TryFrom<i32> for Signal {
    type Error = SignalError;

    fn try_from(n: i32) -> Result<Signal, SignalError> {
        Signal::new(n)
    }
}

impl From<Signal> for i32 {
    fn from(s: Signal) -> i32 {
        s.0
    }
}

/// Go's description of signal `n` (syscall's `signals` table on Linux).
fn go_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        16 => "stack fault",
        17 => "child exited",
        18 => "continued",
        19 => "stopped (signal)",
        20 => "stopped",
        21 => "stopped (tty input)",
        22 => "stopped (tty output)",
        23 => "urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "file size limit exceeded",
        26 => "virtual timer expired",
        27 => "profiling timer expired",
        28 => "window changed",
        29 => "I/O possible",
        30 => "power failure",
        31 => "bad system call",
        _ => return None,
    })
}

/// The C name of signal `n` below 32 (Linux numbering).
fn c_name(n: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "signal 0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("signal")
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match go_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 32 {
            f.write_str(c_name(self.0))
        } else if self.0 == sigrtmin() {
            f.write_str("SIGRTMIN")
        } else {
            write!(f, "SIGRTMIN+{}", self.0 - sigrtmin())
        }
    }
}

/// Every signal that "all signals" (an empty list) means: every number
/// [`Signal::new`] accepts.
fn all_signals() -> impl Iterator<Item = Signal> {
    (1..=sigrtmax()).filter_map(|n| Signal::new(n).ok())
}

/// The signals of `mask`, in increasing number.
fn signals_in(mut mask: u64) -> impl Iterator<Item = Signal> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros();
        mask &= mask - 1;
        Some(Signal(i as i32 + 1))
    })
}

/// `sigs`, or every signal if it is empty (Go's "no signals means all").
fn or_all(sigs: &[Signal]) -> Vec<Signal> {
    if sigs.is_empty() {
        all_signals().collect()
    } else {
        sigs.to_vec()
    }
}

// ---------------------------------------------------------------------------
// The signal handler and what it touches.

/// Signals caught and not yet taken by the dispatcher, bit `n - 1` for
/// signal `n`. Written by the handler (`fetch_or`, SeqCst) on any thread;
/// taken by the dispatcher (`swap(0)`, SeqCst: pairs with the handler's
/// `fetch_or`, so the dispatcher sees every bit set before the wake-up
/// byte it read was sent). No lock: the handler may not take one.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// The write end of the wake-up socket pair, or -1 before the dispatcher
/// exists. Written once, by `start_dispatcher` under the registry lock
/// (Release), before any handler is installed; read by the handler and by
/// `wake` (Acquire, pairing with that store).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Handlers running right now (Go's `sig.delivering`): incremented on
/// entry, decremented on exit by the handler (SeqCst); read by [`stop`]
/// (SeqCst), which waits for 0 after restoring dispositions so that no
/// handler entered before the restore can still set a bit it would miss.
static DELIVERING: AtomicUsize = AtomicUsize::new(0);

/// Sends the wake-up byte. Async-signal-safe: one `send(2)`, never blocks
/// (`MSG_DONTWAIT`), never raises SIGPIPE (`MSG_NOSIGNAL`); a full buffer
/// is fine, the unread bytes will wake the dispatcher.
#[inline]
fn wake() {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        let b = 0u8;
        // SAFETY: `fd` is the write end of our socket pair, open for the
        // rest of the process (never closed); `b` is a valid 1-byte buffer.
        unsafe {
            libc::send(
                fd,
                (&raw const b).cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
}

/// The handler for every notified signal. Async-signal-safe: atomics,
/// `send(2)` and the thread's `errno` only, no allocation, no lock.
extern "C" fn on_signal(sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's life; reading and writing it is async-signal-safe.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    DELIVERING.fetch_add(1, Ordering::SeqCst);
    if (1..=MAX_SIG).contains(&sig) {
        PENDING.fetch_or(1 << (sig - 1), Ordering::SeqCst);
        wake();
    }
    DELIVERING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above; the interrupted code must see its own errno.
    unsafe { *errno = saved };
}

/// The disposition now installed for `sig`.
fn query(sig: Signal) -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid out-buffer; a null `act` only
    // reads the disposition.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig.0, std::ptr::null(), &mut old) != 0 {
            sigaction_failed(sig);
        }
        old
    }
}

/// Installs `act` for `sig`; returns the disposition it replaced.
fn install(sig: Signal, act: &libc::sigaction) -> libc::sigaction {
    // SAFETY: `act` is a fully initialised sigaction (ours, built by
    // `handler_action`/`simple_action`, or one the kernel gave us);
    // `Signal` guarantees a catchable signal number.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig.0, act, &mut old) != 0 {
            sigaction_failed(sig);
        }
        old
    }
}

#[cold]
fn sigaction_failed(sig: Signal) -> ! {
    panic!(
        "gort::signal: sigaction({sig:?}) failed: {}",
        std::io::Error::last_os_error()
    )
}

/// Our handler, with every signal blocked while it runs.
fn handler_action() -> libc::sigaction {
    // SAFETY: zeroed is a valid sigaction; sigfillset fills its mask.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t owned by `sa`.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    sa
}

/// `SIG_DFL` or `SIG_IGN`.
fn simple_action(h: libc::sighandler_t) -> libc::sigaction {
    // SAFETY: zeroed is a valid sigaction (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = h;
    sa
}

// ---------------------------------------------------------------------------
// The registry and the dispatcher.

/// What gort has done to a signal's disposition. `Caught` and `Ignored`
/// hold the `sigaction` installed before gort first touched the signal.
#[derive(Clone, Copy)]
enum Disp {
    /// gort has not changed it (or restored it).
    Untouched,
    /// Our handler is installed.
    Caught(libc::sigaction),
    /// [`ignore`] made it ignored.
    Ignored(libc::sigaction),
}

impl Disp {
    fn saved(&self) -> Option<libc::sigaction> {
        match *self {
            Disp::Untouched => None,
            Disp::Caught(sa) | Disp::Ignored(sa) => Some(sa),
        }
    }
}

/// A notified channel and the signals it wants.
struct Entry {
    tx: Sender<Signal>,
    mask: u64,
}

/// Who gets which signal. All of it is protected by `State::reg`; it is
/// read and written by [`notify`], [`stop`], [`ignore`], [`reset`],
/// [`ignored`] and the dispatcher, never by the handler.
struct Registry {
    /// Notified channels in registration order (Go's `handlers.m`).
    entries: Vec<Entry>,
    /// Channels inside [`stop`], still served signals that were pending
    /// when they were removed (Go's `handlers.stopping`).
    stopping: Vec<Entry>,
    /// `refs[n]`: entries wanting signal `n` (Go's `handlers.ref`).
    refs: [u32; MAX_SIG as usize + 1],
    /// Each signal's disposition, with the one saved at first touch
    /// (`MAX_SIG + 1` of them; on the heap: 10 KiB would crowd a
    /// goroutine's stack while the registry is built).
    disp: Vec<Disp>,
    /// Whether the dispatcher goroutine exists (and `WAKE_FD` is set).
    started: bool,
    /// Tickets of [`stop`]s waiting for a dispatcher pass: bumped by
    /// `stop`, copied into `sync_done` by the pass that took it.
    sync_req: u64,
    /// The `sync_req` seen by the last completed dispatcher pass.
    sync_done: u64,
}

/// The package's state, created on first use and never freed.
struct State {
    /// The registry; a gort `Mutex`, so a goroutine waiting for it parks
    /// instead of holding its M. Held for short, non-blocking work only
    /// (`try_send`s, `sigaction`s) and, once, across the dispatcher's spawn.
    reg: Mutex<Registry>,
    /// Broadcast by the dispatcher after every pass (after it released
    /// `reg`); waited on by [`stop`], under `reg`, for its ticket.
    pass_done: Cond,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    // No goroutine is spawned and nothing parks inside this initialiser
    // (OnceLock blocks other callers on a futex, which would stall their
    // M): the dispatcher is started later, under `reg`, which parks.
    STATE.get_or_init(|| State {
        reg: Mutex::new(Registry {
            entries: Vec::new(),
            stopping: Vec::new(),
            refs: [0; MAX_SIG as usize + 1],
            disp: vec![Disp::Untouched; MAX_SIG as usize + 1],
            started: false,
            sync_req: 0,
            sync_done: 0,
        }),
        pass_done: Cond::new(),
    })
}

impl Registry {
    fn idx(sig: Signal) -> usize {
        sig.0 as usize
    }

    /// Starts the dispatcher if it is not running: creates the wake-up
    /// socket pair, spawns the goroutine (which starts the runtime, so the
    /// runtime's own handlers are in place before we save any), publishes
    /// `WAKE_FD`. Called before any disposition changes.
    fn start_dispatcher(&mut self) {
        if self.started {
            return;
        }
        let (rd, wr) = std::os::unix::net::UnixStream::pair()
            .unwrap_or_else(|e| panic!("gort::signal: cannot create the wake-up socket pair: {e}"));
        let rd = gort_netpoll::UnixStream::from_std(rd).unwrap_or_else(|e| {
            panic!("gort::signal: cannot register the wake-up socket with the netpoller: {e}")
        });
        // The write end lives for the rest of the process: the handler may
        // run at any moment from now on.
        let wfd = wr.into_raw_fd();
        // Release: pairs with the Acquire load in `wake`.
        WAKE_FD.store(wfd, Ordering::Release);
        gort_sched::Builder::new()
            .name("gort::signal dispatcher")
            .system(true)
            .spawn(move || dispatcher(rd));
        self.started = true;
    }

    /// Signal `sig` gained its first listener: install our handler.
    fn enable(&mut self, sig: Signal) {
        let i = Self::idx(sig);
        match self.disp[i] {
            Disp::Caught(_) => {}
            Disp::Ignored(saved) => {
                install(sig, &handler_action());
                self.disp[i] = Disp::Caught(saved);
            }
            Disp::Untouched => {
                let saved = install(sig, &handler_action());
                self.disp[i] = Disp::Caught(saved);
            }
        }
    }

    /// Puts back what was installed before gort first touched `sig`.
    fn restore(&mut self, sig: Signal) {
        let i = Self::idx(sig);
        if let Some(saved) = self.disp[i].saved() {
            install(sig, &saved);
            self.disp[i] = Disp::Untouched;
        }
    }

    /// Makes `sig` ignored (its listeners already removed).
    fn make_ignored(&mut self, sig: Signal) {
        let i = Self::idx(sig);
        // SIG_IGN for SIGCHLD would also reap children (waitpid: ECHILD);
        // SIG_DFL discards SIGCHLD without that.
        let h = if sig == SIGCHLD {
            libc::SIG_DFL
        } else {
            libc::SIG_IGN
        };
        let prev = install(sig, &simple_action(h));
        let saved = self.disp[i].saved().unwrap_or(prev);
        self.disp[i] = Disp::Ignored(saved);
    }

    /// Drops one listener of each signal of `mask`; a signal left with
    /// none gets its saved disposition back.
    fn release(&mut self, mask: u64) {
        for sig in signals_in(mask) {
            let i = Self::idx(sig);
            self.refs[i] -= 1;
            if self.refs[i] == 0 {
                self.restore(sig);
            }
        }
    }

    /// Removes `sig` from every registered channel (Go's `cancel`'s
    /// `remove`); the caller sets the new disposition.
    fn cancel(&mut self, sig: Signal) {
        let b = sig.bit();
        for e in &mut self.entries {
            e.mask &= !b;
        }
        self.entries.retain(|e| e.mask != 0);
        self.refs[Self::idx(sig)] = 0;
    }

    /// One dispatcher pass over the signals of `bits` (under the lock).
    fn deliver(&mut self, bits: u64) {
        let mut dead = Vec::new();
        for sig in signals_in(bits) {
            let b = sig.bit();
            for (i, e) in self.entries.iter().enumerate() {
                if e.mask & b != 0 && !try_deliver(&e.tx, sig) && !dead.contains(&i) {
                    dead.push(i);
                }
            }
            for e in &self.stopping {
                if e.mask & b != 0 {
                    try_deliver(&e.tx, sig);
                }
            }
        }
        // Channels nobody can receive from, or closed: unregister them as
        // `stop` would (highest index first, so the others stay put).
        dead.sort_unstable();
        for i in dead.into_iter().rev() {
            let e = self.entries.remove(i);
            self.release(e.mask);
        }
    }
}

/// Sends `sig` without blocking; a full channel drops it. False if the
/// channel can never deliver again (no receiver left, or closed).
fn try_deliver(tx: &Sender<Signal>, sig: Signal) -> bool {
    if tx.is_closed() {
        return false;
    }
    // A close between the check and the send makes try_send panic (`send
    // on closed channel`, after the channel's lock is released): the
    // dispatcher must survive it.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.try_send(sig))) {
        Ok(Ok(())) | Ok(Err(TrySendError::Full(_))) => true,
        Ok(Err(TrySendError::Disconnected(_))) | Err(_) => false,
    }
}

/// The dispatcher goroutine (Go's `signal.loop` + `signal_recv`): waits on
/// the wake-up socket through the netpoller, takes the pending signals and
/// delivers them.
fn dispatcher(rd: gort_netpoll::UnixStream) {
    let st = state();
    let mut buf = [0u8; 128];
    loop {
        // Bytes are only wake-ups; one read takes as many as are there.
        match (&rd).read(&mut buf) {
            Ok(0) => gort_os::fatal("gort::signal: the wake-up socket was closed"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => gort_os::fatal(&format!("gort::signal: reading the wake-up socket: {e}")),
        }
        let mut reg = st.reg.lock();
        let ticket = reg.sync_req;
        // SeqCst: pairs with the handler's fetch_or (see PENDING).
        let bits = PENDING.swap(0, Ordering::SeqCst);
        if bits != 0 {
            reg.deliver(bits);
        }
        reg.sync_done = ticket;
        drop(reg);
        st.pass_done.broadcast();
    }
}

/// Locks the registry with the dispatcher running.
fn lock_started() -> MutexGuard<'static, Registry> {
    let mut reg = state().reg.lock();
    reg.start_dispatcher();
    reg
}

// ---------------------------------------------------------------------------
// The public API.

/// Relays the signals `sigs` to `tx` from now on (Go's `signal.Notify`);
/// an empty `sigs` means every signal ([`Signal::new`]'s accepted set).
///
/// Delivery never blocks: a signal that finds the channel full is dropped
/// for that channel, and repeated arrivals of one signal before the
/// dispatcher runs count once. A buffer of 1 is enough for one signal. An
/// unbuffered channel gets a signal only if a receiver is waiting on it at
/// that moment (Go's vet warns about it; it is allowed).
///
/// Calling `notify` again with the same channel adds signals to its set
/// (only [`stop`] removes them); several channels notified of the same
/// signal each get a copy. The first listener of a signal installs gort's
/// handler, saving the disposition it replaces (see the module docs); an
/// ignored signal ([`ignore`]) stops being ignored.
///
/// # Panics
/// If the channel is closed (the signal could never be sent; Go panics at
/// delivery), or if the runtime cannot create its wake-up socket (file
/// descriptors exhausted).
pub fn notify(tx: &Sender<Signal>, sigs: &[Signal]) {
    assert!(
        !tx.is_closed(),
        "gort::signal::notify: the channel is closed"
    );
    let sigs = or_all(sigs);
    let mut reg = lock_started();
    let i = match reg.entries.iter().position(|e| e.tx.same_channel(tx)) {
        Some(i) => i,
        None => {
            reg.entries.push(Entry {
                tx: tx.clone(),
                mask: 0,
            });
            reg.entries.len() - 1
        }
    };
    for sig in sigs {
        if reg.entries[i].mask & sig.bit() != 0 {
            continue;
        }
        reg.entries[i].mask |= sig.bit();
        let n = Registry::idx(sig);
        if reg.refs[n] == 0 {
            reg.enable(sig);
        }
        reg.refs[n] += 1;
    }
}

/// Stops relaying signals to `tx`'s channel (Go's `signal.Stop`): undoes
/// every [`notify`] with it. A signal left with no listener gets back the
/// disposition it had before gort first touched it. Any `Sender` of the
/// channel will do; a channel that is not notified is left alone.
///
/// When `stop` returns, the channel receives no more signals: signals
/// caught before the call (and not yet delivered) are still sent to it,
/// so one is either delivered or, once the disposition is restored, has
/// its default effect. For that `stop` waits for one pass of the
/// dispatcher goroutine, so it parks the caller briefly.
pub fn stop(tx: &Sender<Signal>) {
    let Some(st) = STATE.get() else { return };
    let mut reg = st.reg.lock();
    let Some(i) = reg.entries.iter().position(|e| e.tx.same_channel(tx)) else {
        return;
    };
    let e = reg.entries.remove(i);
    reg.release(e.mask);
    reg.stopping.push(e);
    drop(reg);

    // A handler that entered before the restores above may not have set
    // its bit yet (Go's `signalWaitUntilIdle`). SeqCst: pairs with the
    // handler's increment/decrement.
    while DELIVERING.load(Ordering::SeqCst) != 0 {
        gort_sched::gosched();
    }

    // Wait for a whole dispatcher pass that starts after this point: it
    // takes every bit set so far and serves it to the stopping channel.
    let mut reg = st.reg.lock();
    reg.sync_req += 1;
    let ticket = reg.sync_req;
    wake();
    while reg.sync_done < ticket {
        reg = st.pass_done.wait(reg);
    }
    if let Some(i) = reg.stopping.iter().position(|e| e.tx.same_channel(tx)) {
        reg.stopping.remove(i);
    }
}

/// Makes the signals `sigs` ignored (Go's `signal.Ignore`): if they
/// arrive, nothing happens. Undoes every [`notify`] for them (no channel
/// gets them any more). An empty `sigs` ignores every signal. [`reset`]
/// brings back the disposition from before.
///
/// SIGCHLD is "ignored" by installing `SIG_DFL`, which discards it, not
/// `SIG_IGN`, which would also make the kernel reap children behind
/// `std::process::Child::wait`'s back.
pub fn ignore(sigs: &[Signal]) {
    let sigs = or_all(sigs);
    let mut reg = lock_started();
    for sig in sigs {
        reg.cancel(sig);
        reg.make_ignored(sig);
    }
}

/// Whether `sig` is ignored now (Go's `signal.Ignored`): by [`ignore`],
/// or, for a signal gort has not touched, by its disposition (`SIG_IGN`
/// inherited from the parent, as `nohup` does for SIGHUP, or set by Rust
/// for SIGPIPE).
pub fn ignored(sig: Signal) -> bool {
    if let Some(st) = STATE.get() {
        let reg = st.reg.lock();
        match reg.disp[Registry::idx(sig)] {
            Disp::Ignored(_) => return true,
            Disp::Caught(_) => return false,
            Disp::Untouched => {}
        }
    }
    query(sig).sa_sigaction == libc::SIG_IGN
}

/// Undoes every [`notify`] and [`ignore`] for the signals `sigs` (Go's
/// `signal.Reset`): no channel gets them any more, and each gets back the
/// disposition it had before gort first touched it (the default action,
/// or whatever handler was installed, exactly). An empty `sigs` resets
/// every signal.
pub fn reset(sigs: &[Signal]) {
    let sigs = or_all(sigs);
    let Some(st) = STATE.get() else { return };
    let mut reg = st.reg.lock();
    for sig in sigs {
        reg.cancel(sig);
        reg.restore(sig);
    }
}
