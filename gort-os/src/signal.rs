//! Stack-overflow reporting.
//!
//! A SIGSEGV/SIGBUS handler, on the thread's alternate signal stack, compares
//! the fault address with the guard page of the goroutine the thread is
//! running (published by [`crate::context::Context::resume`] in a thread-local
//! before every switch in). A hit prints
//! `fatal error: stack overflow in goroutine <id> "<name>"` and aborts. Any
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
}

// Right across a park: it describes whichever context the thread runs now
// and is rewritten at every switch in (Context::resume), restored after.
thread_local! {
    static CURRENT: Cell<*const OverflowInfo> = const { Cell::new(std::ptr::null()) };
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
            report(info, "stack overflow (hit the guard page)");
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
    )
}

/// Writes the fatal message with async-signal-safe calls only, then aborts.
fn report(info: &OverflowInfo, what: &str) -> ! {
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
    // SAFETY: write(2) and abort(3) are async-signal-safe; buf is valid.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::abort();
    }
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
