//! Stack-overflow reporting.
//!
//! A SIGSEGV/SIGBUS handler, on the thread's alternate signal stack, compares
//! the fault address with the guard page of the goroutine the thread is
//! running (published by [`crate::context::Context::resume`] in a thread-local
//! before every switch in). A hit prints
//! `fatal error: stack overflow in goroutine <id> "<name>"`, runs the report
//! hook gort-sched sets (goroutine stacks, per `GOTRACEBACK`), and exits with
//! status 2 (or aborts under `GOTRACEBACK=crash`). Any
//! other fault goes to the handler that was installed before ours (Rust's own
//! thread-stack overflow handler, or the default action), so gort never hides
//! a real crash.
//!
//! Slab stacks have no guard page; their canary is checked at every switch
//! (`report_canary`).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::Once;

/// What the handler needs to know about the running goroutine's stack.
#[derive(Debug)]
pub(crate) struct OverflowInfo {
    pub(crate) guard: (usize, usize),
    pub(crate) stack: (usize, usize),
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    /// The CPU profiler's tag for samples taken while this context runs
    /// (gort-sched: its goroutine's label set). Written by the context's
    /// owner ([`crate::context::Context::set_tag`]) or by the code running
    /// on it ([`crate::cpuprof::set_current_tag`]); read by the SIGPROF
    /// handler on the same thread. Atomic so a signal never sees a torn
    /// word; Relaxed, as it orders nothing.
    pub(crate) tag: std::sync::atomic::AtomicUsize,
}

// Right across a park: it describes whichever context the thread runs now
// and is rewritten at every switch in (Context::resume), restored after.
thread_local! {
    static CURRENT: Cell<*const OverflowInfo> = const { Cell::new(std::ptr::null()) };
}

/// `[lowest, highest)` of the stack of the context this thread runs, if it
/// runs one.
pub(crate) fn current_stack() -> Option<(usize, usize)> {
    let cur = CURRENT.try_with(|c| c.get()).ok()?;
    // SAFETY: as in the handler: the info of the context this thread runs,
    // alive until the resume that published it returns.
    (!cur.is_null()).then(|| unsafe { (*cur).stack })
}

/// The info of the context this thread runs, or null. Async-signal-safe
/// (a const-initialised thread-local without a destructor is a plain TLS
/// load in an executable): the SIGPROF handler reads it.
#[inline]
pub(crate) fn current_ptr() -> *const OverflowInfo {
    CURRENT.try_with(|c| c.get()).unwrap_or(std::ptr::null())
}

/// Publishes the running context's info; returns the previous pointer.
#[inline]
pub(crate) fn set_current(p: *const OverflowInfo) -> *const OverflowInfo {
    CURRENT.with(|c| c.replace(p))
}

static INSTALL: Once = Once::new();
static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
static mut PREV_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Installs the overflow handler once per process (idempotent).
pub fn install_overflow_handler() {
    INSTALL.call_once(|| {
        ensure_altstack();
        // SAFETY: we build a valid sigaction and save the previous ones before
        // any of our handlers can run (the Once orders this before any
        // context runs on a goroutine stack).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &sa,
                (&raw mut PREV_SEGV).cast::<libc::sigaction>(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &sa,
                (&raw mut PREV_BUS).cast::<libc::sigaction>(),
            );
        }
    });
}

/// Gives this thread an alternate signal stack if it has none, so the
/// overflow handler can run when the current stack is exhausted.
pub fn ensure_altstack() {
    // SAFETY: sigaltstack with a null new stack only reads the current one;
    // the new stack we install is a fresh mapping leaked for the thread's life.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return;
        }
        let size = (64 * 1024usize).max(libc::SIGSTKSZ);
        let p = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t {
            ss_sp: p,
            ss_flags: 0,
            ss_size: size,
        };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

/// The machine state of a stack overflow, for the report hook.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// The goroutine's id (its context's label).
    pub id: u64,
    /// `[lowest, highest)` usable addresses of its stack.
    pub stack: (usize, usize),
    /// Program counter, stack pointer, frame pointer and link register at
    /// the faulting access; all zero when the overflow was found later (an
    /// unguarded stack's canary, checked at a switch).
    pub regs: [usize; 4],
}

impl Fault {
    /// Walks the overflowed stack from the fault's registers (return
    /// addresses, innermost first; see [`crate::unwind`]), reading only
    /// inside the stack's bounds. Empty if the registers are unknown.
    ///
    /// # Safety
    /// Only from the overflow report hook, on the faulting thread (the
    /// stack's goroutine is stopped in the handler, so its stack is stable).
    pub unsafe fn backtrace(&self, out: &mut Vec<usize>, max: usize) {
        let (lo, hi) = self.stack;
        // SAFETY: the stopped goroutine's mapped stack (the caller's promise).
        let read = |a: usize| unsafe { crate::unwind::read_stack_word(lo, hi, a) };
        let [pc, sp, fp, lr] = self.regs;
        crate::unwind::unwind(crate::unwind::SavedRegs { sp, pc, fp, lr }, read, out, max);
    }
}

/// What runs after the one-line overflow message (gort-sched's goroutine
/// dump under `GOTRACEBACK`), if set.
static OVERFLOW_HOOK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// `GOTRACEBACK=crash`: abort (a core dump) instead of exiting with status 2.
static ABORT_ON_FATAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets what runs after a stack overflow's one-line message and before the
/// process ends: a best-effort report (gort-sched prints goroutine stacks).
///
/// # Safety
/// `hook` runs inside the SIGSEGV handler, on the faulting thread's 64 KiB
/// alternate signal stack, with the overflowed goroutine stopped: it must
/// not return into that goroutine (it returns, and the process then ends),
/// must not rely on locks the faulting code may hold, and must bound its own
/// run time.
pub unsafe fn set_overflow_hook(hook: fn(&Fault)) {
    OVERFLOW_HOOK.store(hook as usize, std::sync::atomic::Ordering::SeqCst);
}

/// With `yes` (`GOTRACEBACK=crash`), a stack overflow ends the process with
/// `abort()` (SIGABRT, a core dump where enabled); otherwise with exit
/// status 2, as Go's fatal errors.
pub fn set_abort_on_fatal(yes: bool) {
    ABORT_ON_FATAL.store(yes, std::sync::atomic::Ordering::SeqCst);
}

/// The registers of a signal's interrupted context: program counter, stack
/// pointer, frame pointer, link register (zero where the target has none or
/// is not supported).
///
/// # Safety
/// `ctx` is the `ucontext_t` the kernel passed to an SA_SIGINFO handler.
pub(crate) unsafe fn fault_regs(ctx: *mut libc::c_void) -> [usize; 4] {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    // SAFETY: forwarded.
    unsafe {
        let g = &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
        [
            g[libc::REG_RIP as usize] as usize,
            g[libc::REG_RSP as usize] as usize,
            g[libc::REG_RBP as usize] as usize,
            0,
        ]
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    // SAFETY: forwarded.
    unsafe {
        let m = &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext;
        [
            m.pc as usize,
            m.sp as usize,
            m.regs[29] as usize,
            m.regs[30] as usize,
        ]
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = ctx;
        [0; 4]
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let cur = CURRENT.try_with(|c| c.get()).unwrap_or(std::ptr::null());
    if !cur.is_null() {
        // SAFETY: `cur` points at the OverflowInfo of the context this thread
        // is running; it lives until the resume that published it returns.
        let info = unsafe { &*cur };
        let (glo, ghi) = info.guard;
        if addr >= glo && addr < ghi {
            // SAFETY: the kernel's context for this SA_SIGINFO handler.
            let regs = unsafe { fault_regs(ctx) };
            report(info, "stack overflow (hit the guard page)", regs);
        }
    }
    // Not ours: hand the fault to whoever handled it before us.
    // SAFETY: PREV_* were initialised before our handler was installed.
    unsafe {
        let prev: *const libc::sigaction = if sig == libc::SIGBUS {
            (&raw const PREV_BUS).cast()
        } else {
            (&raw const PREV_SEGV).cast()
        };
        let prev = &*prev;
        let h = prev.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            // Restore and return: the faulting instruction re-runs and gets
            // the default action (a core dump), as if we were never here.
            libc::sigaction(sig, prev, std::ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}

/// Called after a switch found a slab stack's canary overwritten.
#[cold]
pub(crate) fn report_canary(info: &OverflowInfo) -> ! {
    report(
        info,
        "stack overflow (unguarded stack: canary overwritten, detected at switch)",
        [0; 4],
    )
}

/// Writes the fatal message with async-signal-safe calls only, runs the
/// report hook (best effort), then ends the process: exit status 2, or
/// `abort()` under `GOTRACEBACK=crash`.
fn report(info: &OverflowInfo, what: &str, regs: [usize; 4]) -> ! {
    let mut buf = [0u8; 512];
    let mut w = Writer {
        buf: &mut buf,
        len: 0,
    };
    w.put(b"fatal error: ");
    w.put(what.as_bytes());
    w.put(b" in goroutine ");
    w.num(info.id);
    if let Some(n) = &info.name {
        w.put(b" \"");
        w.put(n.as_bytes());
        w.put(b"\"");
    }
    w.put(b" (");
    w.num((info.stack.1 - info.stack.0) as u64);
    w.put(b"-byte stack; raise it with Builder::stack_size)\n");
    let len = w.len;
    // SAFETY: write(2) is async-signal-safe; buf is valid.
    unsafe { libc::write(2, buf.as_ptr().cast(), len) };
    let hook = OVERFLOW_HOOK.load(std::sync::atomic::Ordering::SeqCst);
    if hook != 0 {
        // The hook is best effort and bounds its own run time (its contract;
        // a bound through SIGALRM would depend on a disposition the program
        // may have changed).
        // SAFETY: only ever stored from a `fn(&Fault)`.
        let hook: fn(&Fault) = unsafe { std::mem::transmute::<usize, fn(&Fault)>(hook) };
        hook(&Fault {
            id: info.id,
            stack: info.stack,
            regs,
        });
    }
    if ABORT_ON_FATAL.load(std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: abort(3) is async-signal-safe.
        unsafe { libc::abort() };
    }
    // SAFETY: _exit(2) is async-signal-safe and runs no destructors or
    // atexit handlers (none may run on a broken stack).
    unsafe { libc::_exit(2) }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn num(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&tmp[i..]);
    }
}
