//! CPU profiling: SIGPROF sampling of whatever the process's threads run,
//! goroutines included (the OS half of Go's `runtime/pprof`
//! `StartCPUProfile`; gort-sched/gort-std build the profile from it).
//!
//! # The problem
//!
//! A CPU profile needs the call stack of the code that was on the CPU when
//! each tick of process CPU time ran out. The tick arrives as a signal on
//! the thread that was running, and a signal handler may do almost nothing:
//! no locks, no allocation. The stack walker ([`crate::unwind`], framehop
//! over the loaded objects' `.eh_frame`) takes a mutex and may allocate.
//!
//! # The design
//!
//! The handler does not walk the stack. It copies the interrupted thread's
//! registers and the top [`Options::window`] bytes of its stack (from the
//! stack pointer up, bounded by the stack's own top) into a free slot of a
//! preallocated ring, and [`drain`] later walks the *copy*, with a read
//! function that fails outside the copied bytes — the way
//! `perf record --call-graph dwarf` works. The first frame is the
//! interrupted program counter itself (a leaf, whose unwind rule is exact
//! because Rust's unwind tables are asynchronous on the targets we
//! support).
//!
//! Which stack: if the thread runs a goroutine (a [`crate::context::Context`]
//! is resumed on it), its published [`crate::signal`] info gives the
//! goroutine's stack bounds, id and profiler tag — trusted only when the
//! stack pointer lies inside those bounds, because the signal can land in
//! the middle of a switch. Otherwise the bounds of the OS thread's own stack,
//! cached by [`register_thread_stack`] (gort-sched calls it when an M
//! starts); a thread that never registered contributes its program counter
//! only (computing the bounds needs `pthread_getattr_np`, which allocates).
//!
//! The ring has a fixed number of slots, each `FREE → WRITING → READY →
//! FREE`: a handler claims a free slot with a compare-and-swap, fills it and
//! publishes it with a Release store; [`drain`] (one at a time) reads ready
//! slots and frees them. A full ring drops the sample and counts it lost
//! (Go reports those as `runtime._LostExternalCode` samples;
//! [`Drained::lost`] gives the count).
//!
//! The timer is `setitimer(ITIMER_PROF)`: process CPU time, one process-wide
//! timer, signals delivered to the thread that was running when it expired,
//! and every thread sampled with no per-thread set-up — threads created
//! before [`start`] included. Go on Linux moved to per-thread
//! `timer_create(CLOCK_THREAD_CPUTIME_ID)` timers (Go 1.18, issue 35057)
//! because the process timer is checked at the kernel tick and fires at
//! most once per tick however many CPUs burn time, so it under-samples a
//! process that keeps more than a few CPUs busy (at 100 Hz and a 250 Hz
//! tick: beyond ~2.5 busy CPUs). That needs every thread to arm its own
//! timer and the handler to tell the two kinds of signal apart (Go's
//! `validSIGPROF`); it is left for later (see `# Limits`).
//!
//! # Ownership of SIGPROF
//!
//! While a profile runs, gort owns SIGPROF and `ITIMER_PROF`: [`start`]
//! installs its handler (saving the previous action) and arms the timer;
//! [`stop`] disarms the timer and puts the previous action back — except
//! that a previous *default* action becomes *ignore*, as in Go, because a
//! tick already in flight would otherwise kill the process. A program that
//! uses SIGPROF or `ITIMER_PROF` itself must not profile at the same time.
//!
//! # Limits
//!
//! * The process timer under-samples past a few busy CPUs (above).
//! * Frames deeper than the copied window are cut off (the walk ends where
//!   the copy does); [`MAX_FRAMES`] bounds the rest.
//! * The handler reads two thread-locals; in an executable (or a library
//!   loaded at start-up) that is a plain TLS load. In a library loaded with
//!   `dlopen` the first access on a thread may allocate, which a signal
//!   handler must not do: profile only from executables.
//! * Copying the stack races, in the abstract, with another thread writing
//!   a local the interrupted code lent it (a scoped thread): the copy is of
//!   opaque bytes that only feed the unwinder, which checks every address it
//!   derives, so a torn value can end or misdirect the walk, nothing else.
//!
//! # Invariants
//!
//! * `RING` is non-null exactly while a profile runs, and then points at the
//!   ring `CTL` holds (so it is alive).
//! * A ring is freed only after `stop` set `RING` to null and saw `ACTIVE`
//!   at zero: no handler can touch it again.
//! * Only a handler holding a slot in `WRITING` writes the slot; only the
//!   drainer (one at a time, under `DRAIN`) reads a `READY` slot and frees it.

use std::cell::UnsafeCell;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Go's default sampling rate (`runtime/pprof`'s `hz`).
pub const DEFAULT_HZ: u32 = 100;
/// The highest rate [`start`] accepts. The kernel checks the timer at its
/// tick (`CONFIG_HZ`, often 250 or 1000), so higher rates would not be met.
pub const MAX_HZ: u32 = 1000;
/// The largest ring [`start_with`] accepts, in bytes of stack windows (an
/// allocation that fails would abort the process).
const MAX_RING_BYTES: usize = 256 << 20;
/// The most frames a sample keeps (Go's `maxCPUProfStack`).
pub const MAX_FRAMES: usize = 64;

/// How a profile samples; [`Options::default`] is what [`start`] uses
/// beside its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Samples per second of process CPU time, `1..=MAX_HZ`.
    pub hz: u32,
    /// Ring slots: how many samples can wait for [`drain`] before new ones
    /// are lost. `1..=65536`.
    pub slots: usize,
    /// Bytes of stack copied per sample, from the stack pointer up (less if
    /// the stack's top is nearer): deeper frames are not seen. A multiple of
    /// 16, `0..=1 MiB`.
    pub window: usize,
}

impl Default for Options {
    /// 100 Hz; 256 slots of 16 KiB (4 MiB of address space, touched only
    /// as samples fill it): 2.5 s of one busy CPU, or ~0.6 s of four,
    /// between drains. Go's profile reader drains every 100 ms.
    fn default() -> Options {
        Options {
            hz: DEFAULT_HZ,
            slots: 256,
            window: 16 * 1024,
        }
    }
}

/// One sample, as [`drain`] hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The call stack, innermost first, as *return addresses* (Go's
    /// `runtime.Callers` convention): `pcs[0]` is the interrupted program
    /// counter plus one, the rest are return addresses, so every entry is
    /// looked up at `pc - 1` ([`crate::unwind::symbolize`] does that).
    /// Empty if not even the program counter was known.
    pub pcs: &'a [usize],
    /// The goroutine's id (its context's label), 0 if the thread ran no
    /// goroutine.
    pub goid: u64,
    /// The goroutine's tag ([`crate::context::Context::set_tag`]), 0 if none.
    pub tag: usize,
    /// Whether the stack walked was the OS thread's own (registered with
    /// [`register_thread_stack`]); false for a goroutine's or when only the
    /// program counter was recorded.
    pub thread_stack: bool,
}

/// What one [`drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Samples handed to the callback.
    pub samples: usize,
    /// Samples dropped because the ring was full, since the last drain.
    pub lost: u64,
}

/// Slot states.
const FREE: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;

/// What a handler records beside the stack bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    /// pc, sp, fp, lr of the interrupted code.
    regs: [usize; 4],
    /// Stack bytes copied, from `regs[1]` up.
    len: usize,
    goid: u64,
    tag: usize,
    thread_stack: bool,
}

struct Slot {
    /// FREE, WRITING or READY (module docs). CAS FREE→WRITING (Acquire) by
    /// a handler pairs with the drainer's Release store of FREE; the
    /// handler's Release store of READY pairs with the drainer's Acquire
    /// load.
    state: AtomicU32,
    /// Written by the handler that holds the slot WRITING; read by the
    /// drainer once it is READY. Protected by `state`.
    hdr: UnsafeCell<Header>,
}

/// The preallocated sample buffer.
struct Ring {
    slots: Box<[Slot]>,
    /// `slots.len() * window` bytes; slot `i` owns `[i * window, (i + 1) *
    /// window)`, under the same protocol as its header. Owned (freed in
    /// Drop); only ever accessed through raw pointers.
    data: NonNull<u8>,
    data_len: usize,
    window: usize,
    /// Where the next handler starts looking for a free slot (a hint: any
    /// free slot will do). Relaxed: orders nothing.
    next: AtomicUsize,
    /// Samples dropped for want of a free slot; handlers add, drain swaps.
    /// Relaxed: a count.
    lost: AtomicU64,
}

// SAFETY: the slots' contents are handed between threads only by the slot
// state protocol (Acquire/Release on `state`); the rest is atomics or
// immutable after construction.
unsafe impl Sync for Ring {}
// SAFETY: as above; `data` is an owned allocation.
unsafe impl Send for Ring {}

impl Ring {
    fn new(slots: usize, window: usize) -> Ring {
        let data_len = slots * window;
        // Zeroed: calloc maps large blocks lazily, so untouched slots cost
        // no memory.
        let data: Box<[u8]> = vec![0u8; data_len.max(1)].into_boxed_slice();
        // SAFETY: Box::into_raw never returns null.
        let data = unsafe { NonNull::new_unchecked(Box::into_raw(data).cast::<u8>()) };
        Ring {
            slots: (0..slots)
                .map(|_| Slot {
                    state: AtomicU32::new(FREE),
                    hdr: UnsafeCell::new(Header::default()),
                })
                .collect(),
            data,
            data_len,
            window,
            next: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let p = std::ptr::slice_from_raw_parts_mut(self.data.as_ptr(), self.data_len.max(1));
        // SAFETY: the allocation made in Ring::new, of that length, freed
        // once; no handler uses the ring any more (module invariants).
        drop(unsafe { Box::from_raw(p) });
    }
}

/// The running profile's ring, for the handler (module invariants).
static RING: AtomicPtr<Ring> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers between their check of `RING` and their last access to the
/// ring. The handler's SeqCst increment and `stop`'s SeqCst store of a null
/// `RING` then load of this pair up (Dekker): either the handler sees null,
/// or `stop` sees it counted; its Release decrement pairs with `stop`'s
/// load, so its accesses happen before the ring is freed.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The control state: written by `start`/`stop`/`drain`, under the mutex.
struct Ctl {
    running: bool,
    /// The running profile's ring, or a stopped one not yet fully drained.
    ring: Option<Arc<Ring>>,
    /// SIGPROF's action before `start`, put back by `stop`.
    prev: Option<libc::sigaction>,
    /// `ITIMER_PROF` before `start` (a program's own), put back by `stop`.
    prev_timer: Option<libc::itimerval>,
}

// SAFETY: libc::sigaction is plain data (a handler address, flags, a mask).
unsafe impl Send for Ctl {}

static CTL: Mutex<Ctl> = Mutex::new(Ctl {
    running: false,
    ring: None,
    prev: None,
    prev_timer: None,
});
/// Serialises drains (slot READY → FREE has one owner at a time). Separate
/// from `CTL`, so a drain callback may call `start` or `stop`.
static DRAIN: Mutex<()> = Mutex::new(());
/// Who holds `DRAIN` (`drainer_key`), 0 if nobody: a callback that drains
/// again is told so instead of waiting for itself.
static DRAINER: AtomicUsize = AtomicUsize::new(0);

/// The caller's identity for `DRAINER`: the running context (a goroutine,
/// so two goroutines of one thread differ), else the thread.
fn drainer_key() -> usize {
    let cur = crate::signal::current_ptr();
    if !cur.is_null() {
        return cur as usize;
    }
    // Right across a park: only its address is used, as the thread's id.
    thread_local! {
        static ME: u8 = const { 0 };
    }
    ME.with(|m| std::ptr::from_ref(m) as usize)
}

fn ctl() -> MutexGuard<'static, Ctl> {
    // Every critical section leaves `Ctl` consistent before anything that
    // can panic; a poisoned lock is still right.
    CTL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a CPU profile at `hz` samples per second of process CPU time,
/// with the default ring ([`Options::default`]).
///
/// # Errors
/// `hz` outside `1..=MAX_HZ` (`InvalidInput`); a profile already running
/// ("cpu profiling already in use", as Go's); a failed `sigaction` or
/// `setitimer`.
pub fn start(hz: u32) -> io::Result<()> {
    start_with(Options {
        hz,
        ..Options::default()
    })
}

/// Starts a CPU profile with explicit [`Options`]. Samples of a previous,
/// stopped profile that were never drained are discarded.
///
/// # Errors
/// As [`start`], and `InvalidInput` for options out of range.
pub fn start_with(opts: Options) -> io::Result<()> {
    if opts.hz == 0 || opts.hz > MAX_HZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu profile rate {} Hz not in 1..={MAX_HZ}", opts.hz),
        ));
    }
    if opts.slots == 0
        || opts.slots > 65536
        || opts.window > (1 << 20)
        || opts.window % 16 != 0
        || opts.slots * opts.window > MAX_RING_BYTES
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu profile ring: 1..=65536 slots of a multiple of 16 bytes up to 1 MiB, \
             256 MiB in all",
        ));
    }
    let mut ctl = ctl();
    if ctl.running {
        return Err(io::Error::other("cpu profiling already in use"));
    }
    // Load the unwind tables now rather than in the first drain.
    crate::unwind::warm();
    ctl.ring = None; // a stopped profile's leftovers: no handler uses them
    let ring = Arc::new(Ring::new(opts.slots, opts.window));
    // Published before the handler is installed and the timer armed.
    RING.store(Arc::as_ptr(&ring).cast_mut(), Ordering::SeqCst);
    ctl.ring = Some(ring);
    // From here on, failures undo through stop_locked.
    ctl.running = true;
    // SAFETY: a valid action whose handler is async-signal-safe (see
    // `on_sigprof`); the previous action is saved to restore.
    let prev = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigprof as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut prev: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(libc::SIGPROF, &sa, &mut prev) == 0).then_some(prev)
    };
    let Some(prev) = prev else {
        let e = io::Error::last_os_error();
        stop_locked(&mut ctl);
        ctl.ring = None;
        return Err(e);
    };
    ctl.prev = Some(prev);
    match set_timer(opts.hz) {
        Ok(old) => ctl.prev_timer = Some(old),
        Err(e) => {
            stop_locked(&mut ctl);
            ctl.ring = None;
            return Err(e);
        }
    }
    Ok(())
}

/// Arms (`hz > 0`) or disarms (`hz == 0`) the process CPU-time timer;
/// returns the setting it replaced.
fn set_timer(hz: u32) -> io::Result<libc::itimerval> {
    let usec = if hz == 0 {
        0
    } else {
        1_000_000 / u64::from(hz)
    };
    let tv = libc::timeval {
        tv_sec: (usec / 1_000_000) as libc::time_t,
        tv_usec: (usec % 1_000_000) as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    put_timer(&it)
}

/// Sets the process CPU-time timer to `it`; returns the setting it replaced.
fn put_timer(it: &libc::itimerval) -> io::Result<libc::itimerval> {
    // SAFETY: zeroed is a valid itimerval.
    let mut old: libc::itimerval = unsafe { std::mem::zeroed() };
    // SAFETY: a valid itimerval, and room for the old one.
    if unsafe { libc::setitimer(libc::ITIMER_PROF, it, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Stops the running profile (a no-op if none runs): disarms the timer,
/// restores SIGPROF's previous action (a default one becomes ignore) and
/// waits until no handler is recording. Samples taken so far stay for
/// [`drain`]; a tick that arrives after this is ignored.
pub fn stop() {
    stop_locked(&mut ctl());
}

fn stop_locked(ctl: &mut Ctl) {
    if !ctl.running {
        return;
    }
    // Back to what it was (disarmed, or a timer the program had armed).
    match ctl.prev_timer.take() {
        Some(old) => {
            let _ = put_timer(&old); // only fails for invalid arguments
        }
        None => {
            let _ = set_timer(0);
        }
    }
    if let Some(mut prev) = ctl.prev.take() {
        if prev.sa_sigaction == libc::SIG_DFL {
            prev.sa_sigaction = libc::SIG_IGN;
        }
        // SAFETY: the action sigaction gave us in `start_with` (or ignore).
        unsafe { libc::sigaction(libc::SIGPROF, &prev, std::ptr::null_mut()) };
    }
    // Pairs with the handler's increment of ACTIVE (see ACTIVE).
    RING.store(std::ptr::null_mut(), Ordering::SeqCst);
    // Pairs with the handlers' increment (SeqCst) and Release decrement.
    while ACTIVE.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    ctl.running = false;
}

/// Whether a profile is running.
pub fn is_running() -> bool {
    ctl().running
}

/// Hands every recorded sample to `f` (in no particular order), unwinding
/// each from its copied stack, and frees its slot. Works while the profile
/// runs and after [`stop`]; the first drain after a stop takes the rest and
/// frees the ring. Drains are serialised: `f` may call [`start`] and
/// [`stop`].
///
/// # Panics
/// If `f` calls `drain` (it would wait for itself).
pub fn drain(mut f: impl FnMut(&Sample<'_>)) -> Drained {
    let me = drainer_key();
    assert!(
        DRAINER.load(Ordering::Relaxed) != me,
        "gort_os::cpuprof::drain called from its own callback"
    );
    let _one = DRAIN.lock().unwrap_or_else(PoisonError::into_inner);
    DRAINER.store(me, Ordering::Relaxed);
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            DRAINER.store(0, Ordering::Relaxed);
        }
    }
    let _done = Done;
    let (ring, stopped) = {
        let ctl = ctl();
        match &ctl.ring {
            Some(r) => (r.clone(), !ctl.running),
            None => return Drained::default(),
        }
    };
    let mut pcs = Vec::with_capacity(MAX_FRAMES);
    let mut samples = 0;
    for (i, slot) in ring.slots.iter().enumerate() {
        // Pairs with the handler's Release store of READY.
        if slot.state.load(Ordering::Acquire) != READY {
            continue;
        }
        // Frees the slot even if `f` panics. Release pairs with the next
        // claiming handler's Acquire CAS: our reads happen before its writes.
        struct Free<'a>(&'a AtomicU32);
        impl Drop for Free<'_> {
            fn drop(&mut self) {
                self.0.store(FREE, Ordering::Release);
            }
        }
        let _free = Free(&slot.state);
        // SAFETY: the slot is READY and we are the one drainer: no handler
        // writes it until we store FREE, and the handler's writes happen
        // before our Acquire load above.
        let h = unsafe { *slot.hdr.get() };
        let len = h.len.min(ring.window);
        // SAFETY: slot i's own bytes (in bounds of the allocation), under
        // the same protocol as its header.
        let bytes =
            unsafe { std::slice::from_raw_parts(ring.data.as_ptr().add(i * ring.window), len) };
        // Copied stack bytes may be ones memcheck thinks undefined (padding,
        // dead locals); the walk checks what it derives from them.
        crate::valgrind::make_mem_defined(bytes.as_ptr() as usize, len);
        walk(&h, bytes, &mut pcs);
        f(&Sample {
            pcs: &pcs,
            goid: h.goid,
            tag: h.tag,
            thread_stack: h.thread_stack,
        });
        samples += 1;
    }
    let lost = ring.lost.swap(0, Ordering::Relaxed);
    let mut ctl = ctl();
    if stopped && ctl.ring.as_ref().is_some_and(|r| Arc::ptr_eq(r, &ring)) {
        // Stopped before this drain began: no handler could add to it
        // since, so it is empty now.
        ctl.ring = None;
    }
    Drained { samples, lost }
}

/// Unwinds a sample from its copied stack into `pcs` (module docs).
fn walk(h: &Header, bytes: &[u8], pcs: &mut Vec<usize>) {
    pcs.clear();
    let [pc, sp, fp, lr] = h.regs;
    if pc == 0 {
        return;
    }
    const W: usize = std::mem::size_of::<usize>();
    let read = |a: usize| -> Option<usize> {
        let off = a.checked_sub(sp)?;
        let b = bytes.get(off..off.checked_add(W)?)?;
        Some(usize::from_ne_bytes(b.try_into().ok()?))
    };
    let regs = crate::unwind::SavedRegs { sp, pc, fp, lr };
    if !crate::unwind::unwind(regs, read, pcs, MAX_FRAMES) || pcs.first() != Some(&pc) {
        pcs.clear();
        pcs.push(pc);
    }
    // The leaf as a "return address" too (Go's tracebackPCs adds one).
    pcs[0] = pc.wrapping_add(1);
}

/// The registered bounds of this OS thread's stack, `[lo, hi)`; `hi == 0`
/// if not registered. Written by `register_thread_stack` on this thread,
/// read by the SIGPROF handler on this thread: atomics (no torn reads) with
/// a signal fence between the two stores. Right across a park: it describes
/// the OS thread, whichever goroutine runs on it.
#[derive(Debug)]
struct ThreadStack {
    lo: AtomicUsize,
    hi: AtomicUsize,
}

// Right across a park: the bounds of the OS thread's own stack, which
// every goroutine of the thread shares (their own stacks are the context's,
// found through the current context instead).
thread_local! {
    static THREAD_STACK: ThreadStack = const {
        ThreadStack {
            lo: AtomicUsize::new(0),
            hi: AtomicUsize::new(0),
        }
    };
}

/// Records the calling OS thread's stack bounds, so that CPU profile
/// samples taken while it runs its own stack (not a goroutine's) are
/// unwound; samples of a thread that never called this carry only the
/// program counter. gort-sched calls it when an M starts; any thread may.
/// Cheap to call again. Linux only (a no-op elsewhere).
pub fn register_thread_stack() {
    let Some((lo, hi)) = own_stack_bounds() else {
        return;
    };
    let _ = THREAD_STACK.try_with(|t| {
        // hi = 0 first: a handler between the stores sees "unregistered".
        t.hi.store(0, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        t.lo.store(lo, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        t.hi.store(hi, Ordering::Relaxed);
    });
}

fn own_stack_bounds() -> Option<(usize, usize)> {
    #[cfg(target_os = "linux")]
    // SAFETY: attr is initialised by pthread_getattr_np before use and
    // destroyed once; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (r == 0 && !addr.is_null() && size != 0).then(|| (addr as usize, addr as usize + size))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Sets the tag of the goroutine (context) the caller runs on — what its
/// CPU profile samples carry from now on (Go's `SetGoroutineLabels` keeps
/// the label set there). Returns false, changing nothing, if the caller
/// runs on no context. If the tag is a pointer, the profile's consumer must
/// keep what it points at alive until every sample that can carry it has
/// been drained: samples outlive the goroutine.
pub fn set_current_tag(tag: usize) -> bool {
    let cur = crate::signal::current_ptr();
    if cur.is_null() {
        return false;
    }
    // SAFETY: the info of the context this thread runs, alive until the
    // resume that published it returns (which is after we do).
    unsafe { (*cur).tag.store(tag, Ordering::Relaxed) };
    true
}

/// The tag of the goroutine (context) the caller runs on, if it runs on one.
pub fn current_tag() -> Option<usize> {
    let cur = crate::signal::current_ptr();
    // SAFETY: as in set_current_tag.
    (!cur.is_null()).then(|| unsafe { (*cur).tag.load(Ordering::Relaxed) })
}

/// The SIGPROF handler. Async-signal-safe: atomics, two thread-local loads
/// and a memcpy; no lock, no allocation, no system call (so errno is
/// untouched).
extern "C" fn on_sigprof(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // See ACTIVE for the pairing.
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let ring = RING.load(Ordering::SeqCst);
    if !ring.is_null() {
        // SAFETY: non-null RING points at the running profile's ring, which
        // is not freed while we are counted in ACTIVE; ctx is the kernel's
        // ucontext for this SA_SIGINFO handler.
        unsafe { record(&*ring, ctx) };
    }
    // Pairs with stop's load: our ring accesses happen before its free.
    ACTIVE.fetch_sub(1, Ordering::Release);
}

/// Records one sample of the interrupted code into a free slot.
///
/// # Safety
/// In the SIGPROF handler, with `ctx` the kernel's ucontext and `ring` kept
/// alive for the call.
unsafe fn record(ring: &Ring, ctx: *mut libc::c_void) {
    // SAFETY: forwarded.
    let regs = unsafe { crate::signal::fault_regs(ctx) };
    let sp = regs[1];
    let mut h = Header {
        regs,
        ..Header::default()
    };
    let mut bounds = None;
    let cur = crate::signal::current_ptr();
    if !cur.is_null() {
        // SAFETY: the info of the context this thread runs, alive until the
        // resume that published it returns — which cannot happen while we
        // interrupt this thread.
        let info = unsafe { &*cur };
        let (lo, hi) = info.stack;
        // Mid-switch the pointer may already (or still) name a context
        // whose stack we are not on: only trust it if sp lies inside.
        if lo <= sp && sp < hi {
            bounds = Some((lo, hi));
            h.goid = info.id;
            h.tag = info.tag.load(Ordering::Relaxed);
        }
    }
    if bounds.is_none() {
        let (lo, hi) = THREAD_STACK
            .try_with(|t| {
                let hi = t.hi.load(Ordering::Relaxed);
                compiler_fence(Ordering::SeqCst);
                (t.lo.load(Ordering::Relaxed), hi)
            })
            .unwrap_or((0, 0));
        if hi != 0 && lo <= sp && sp < hi {
            bounds = Some((lo, hi));
            h.thread_stack = true;
        }
    }
    if let Some((_, hi)) = bounds {
        h.len = (hi - sp).min(ring.window);
    }
    let n = ring.slots.len();
    let start = ring.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..n {
        let i = (start.wrapping_add(k)) % n;
        let slot = &ring.slots[i];
        if slot.state.load(Ordering::Relaxed) != FREE {
            continue;
        }
        // Acquire pairs with the drainer's Release store of FREE.
        if slot
            .state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // SAFETY: we hold the slot (WRITING): nobody else touches its bytes
        // or header. [sp, sp + len) lies in the mapped stack the thread runs
        // on (inside its bounds, above its stack pointer), stopped while we
        // run; the destination is slot i's bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sp as *const u8,
                ring.data.as_ptr().add(i * ring.window),
                h.len,
            );
            *slot.hdr.get() = h;
        }
        // Pairs with the drainer's Acquire load.
        slot.state.store(READY, Ordering::Release);
        return;
    }
    ring.lost.fetch_add(1, Ordering::Relaxed);
}
