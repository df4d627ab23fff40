//! Goroutine stacks: every stack has a guard page, at any goroutine count,
//! on default sysctls; all are pooled per M with a global overflow list.
//!
//! # A guard page for every stack
//!
//! A running goroutine that overflows its stack must be stopped at the
//! faulting access, before it writes a byte of anybody else's memory. Only a
//! hardware guard does that; a canary checked at the next switch detects the
//! damage after a neighbour's stack was already trampled. Three ways to get
//! a stack, in order of preference:
//!
//! * **Guarded slab** (Linux 6.13+, `madvise(MADV_GUARD_INSTALL)`). Stacks
//!   are carved from 16 MiB slabs, each slot a guard page followed by the
//!   stack; the guard is installed *inside* the slab's one mapping, so a
//!   million stacks need a few thousand mappings, not two million. The guard
//!   costs about a microsecond, once per slot (slots are pooled, never
//!   unmapped, and the guard survives `MADV_DONTNEED`). Probed once at
//!   first use; `GORT_STACK_GUARD=mappings` or [`disable_guard_install`]
//!   pretend it is missing.
//! * **Guarded mapping** (older kernels). One `mmap` of `size + PAGE`, the
//!   lowest page `PROT_NONE`: two kernel mappings (VMAs) per stack, and
//!   Linux caps a process at `vm.max_map_count` (65530 by default). gort
//!   keeps to a budget of a quarter of that cap ([`set_guarded_stack_limit`]
//!   changes it); past it, a new stack is an error naming the sysctl, which
//!   the runtime reports as a fatal error when it starts the goroutine.
//! * **Unguarded canary slab**, only after the `unsafe`
//!   [`allow_unguarded_stacks`] (older kernels, past the budget). Adjacent
//!   stacks with no guard; the lowest [`CANARY_LEN`] bytes of each are a
//!   zero canary checked at every switch out of a goroutine. A clobbered
//!   canary aborts naming the goroutine — after the fact, which is why this
//!   is an opt-in whose contract is that no goroutine overflows.
//!
//! In all guarded cases the SIGSEGV handler ([`crate::signal`]) sees that
//! the fault address is the running goroutine's guard and aborts with a
//! message naming it.
//!
//! # Pooling
//!
//! A fresh mapping costs microseconds, a pooled stack tens of nanoseconds. Each
//! thread (each M) keeps up to [`LOCAL_MAX`] free stacks, warm. When it has
//! more, it hands [`BATCH`] of them to the global *dirty* list (memory still
//! resident, reused first: no page faults). Beyond [`DIRTY_MAX`] dirty
//! stacks, a background scavenger thread (Go's bgscavenge) returns the
//! memory of the oldest with `madvise(MADV_DONTNEED)`, sorted by address so
//! that runs of adjacent stacks take one call each, in sweeps of at most
//! 1,024 paced to about a tenth of a CPU. Each call makes every
//! CPU running the process flush its TLB (an inter-processor interrupt, slow
//! in VMs): measured, releasing 32 stacks at a time on the goroutines' own
//! threads made 100,000 sleeping goroutines cost ~0.8 s of IPIs when they
//! exited. Virtual address space is kept (it is what makes the next
//! allocation cheap); resident memory beyond the dirty budget is not.
//!
//! New slots are carved in batches once a program has made a few (up to
//! 64 at a time, a sixteenth of those made so far): one `process_madvise`
//! installs the batch's guards and another faults in each slot's top page,
//! the first one a goroutine touches (Linux 6.14's `PIDFD_SELF`; older
//! kernels and Valgrind get one `madvise` per guard and the fault at first
//! touch; `GORT_STACK_BATCH=0` turns batching off). The rest of a batch
//! goes to the carving thread's cache, as far as it has room (at its cold
//! end), else to the global list.
//!
//! # Invariants
//! * A `RawStack` is in exactly one place: owned by a [`Stack`], in one
//!   thread's cache, or in the global list.
//! * A guarded stack's guard page faults on every access for the life of
//!   the process (guards are never removed; slots are never unmapped).
//! * Unguarded stacks exist only after [`allow_unguarded_stacks`]; their
//!   canary bytes are zero whenever no goroutine has overflowed them.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Default goroutine stack size (virtual; pages are committed when touched).
/// Symbolised backtraces need 20–24 KiB, so 64 KiB leaves room for real work.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;
/// Smallest stack we hand out.
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Largest stack we hand out (Go's default `debug.SetMaxStack` on 64-bit).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// Bytes at the bottom of a slab stack that must stay zero.
pub const CANARY_LEN: usize = 64;
/// Free stacks one thread keeps warm.
pub const LOCAL_MAX: usize = 64;
/// Stacks moved between a thread's cache and the global list at once.
pub const BATCH: usize = 32;
/// Free stacks kept resident on the global list before their memory is
/// returned in one sorted sweep (at most a few pages each).
pub const DIRTY_MAX: usize = 4096;
const SLAB_BYTES: usize = 16 << 20;
/// Bytes reserved at the top of every stack for gort's own bookkeeping (the
/// registers saved at each suspend: stack pointer, program counter, frame
/// pointer, link register; see `context.rs`); keeps corosensei's base
/// 16-byte aligned.
const SP_SLOT_RESERVE: usize = 32;

/// Guarded mappings alive now (written when one is mapped; read for the
/// budget). Relaxed: a budget, not a synchronisation.
static GUARDED_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Slab stacks carved with an installed guard page (never unmapped).
static GUARD_SLAB_CARVED: AtomicUsize = AtomicUsize::new(0);
/// Unguarded canary slab stacks carved (never unmapped).
static CANARY_CARVED: AtomicUsize = AtomicUsize::new(0);
/// Usable bytes of every stack made so far (address space; pages are
/// committed as they are touched).
static STACK_BYTES: AtomicUsize = AtomicUsize::new(0);
/// usize::MAX means "not set; derive from vm.max_map_count".
static GUARDED_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Set by [`disable_guard_install`]: later stacks use guard mappings.
static NO_GUARD_INSTALL: AtomicBool = AtomicBool::new(false);
/// Set by [`allow_unguarded_stacks`].
static UNGUARDED_OK: AtomicBool = AtomicBool::new(false);
/// `madvise` advice that installs guard pages inside a mapping (Linux 6.13).
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// `madvise` advice that faults pages in, writable (Linux 5.14).
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// The page size.
pub fn page_size() -> usize {
    static PS: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PS.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// Rounds a requested stack size to what we map: a page multiple, at least
/// [`MIN_STACK_SIZE`] and at most [`MAX_STACK_SIZE`] (larger requests are
/// clamped here; [`Stack::new`] rejects them).
pub fn round_stack_size(size: usize) -> usize {
    let ps = page_size();
    size.clamp(MIN_STACK_SIZE, MAX_STACK_SIZE).div_ceil(ps) * ps
}

/// On kernels without `MADV_GUARD_INSTALL`: caps how many guarded stack
/// mappings may exist at once (each costs two of the process's
/// `vm.max_map_count` mappings). The default is a quarter of that cap. A
/// stack beyond it is an error, unless [`allow_unguarded_stacks`] was called.
/// Has no effect where guards are installed inside slabs.
pub fn set_guarded_stack_limit(n: usize) {
    GUARDED_LIMIT.store(n, Ordering::Relaxed);
}

/// Makes stacks mapped from now on use guard *mappings* (two VMAs each,
/// within the [`set_guarded_stack_limit`] budget), as on kernels older than
/// Linux 6.13 that lack `MADV_GUARD_INSTALL`. For tests and comparisons;
/// the environment variable `GORT_STACK_GUARD=mappings` does the same from
/// the start. Every stack stays guarded either way.
pub fn disable_guard_install() {
    NO_GUARD_INSTALL.store(true, Ordering::Relaxed);
}

/// Lets stacks beyond the guarded-mapping budget come from unguarded slabs
/// (only on kernels without `MADV_GUARD_INSTALL`, or after
/// [`disable_guard_install`]). Their overflow is detected by a canary at the
/// goroutine's next switch, after it may already have written into a
/// neighbouring stack; the process then aborts.
///
/// # Safety
/// No goroutine may overflow its stack: an overflow on an unguarded stack
/// corrupts another goroutine's stack (undefined behaviour) before it is
/// detected. Size stacks for the deepest recursion (up to
/// [`MAX_STACK_SIZE`] of virtual space, committed lazily).
pub unsafe fn allow_unguarded_stacks() {
    UNGUARDED_OK.store(true, Ordering::Relaxed);
}

/// Whether new stacks get their guard page inside a slab
/// (`MADV_GUARD_INSTALL`, probed once), else a guard mapping each.
pub fn guard_install_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    if NO_GUARD_INSTALL.load(Ordering::Relaxed) {
        return false;
    }
    *PROBE.get_or_init(|| {
        if std::env::var_os("GORT_STACK_GUARD").is_some_and(|v| v == "mappings") {
            return false;
        }
        let ps = page_size();
        let ok = with_scratch_pages(2, |p| {
            // SAFETY: the first page of our scratch mapping.
            unsafe { libc::madvise(p as *mut libc::c_void, ps, MADV_GUARD_INSTALL) == 0 }
        });
        if ok == Some(true) {
            // Probe batching now, at the first stack (see BatchAdvice).
            BATCH_GUARD.enabled();
            BATCH_POPULATE.enabled();
        }
        ok == Some(true)
    })
}

/// Runs `f` on a fresh anonymous mapping of `n` pages (its address), ours
/// alone, unmapped afterwards; `None` if it could not be mapped.
fn with_scratch_pages<R>(n: usize, f: impl FnOnce(usize) -> R) -> Option<R> {
    let len = n * page_size();
    let p = map_anon(len).ok()?;
    let r = f(p);
    // SAFETY: the mapping made above, which `f` only borrowed.
    unsafe { libc::munmap(p as *mut libc::c_void, len) };
    Some(r)
}

/// A fresh private anonymous read-write mapping of `len` bytes (committed
/// lazily: `MAP_NORESERVE`), at an address the kernel picks.
fn map_anon(len: usize) -> io::Result<usize> {
    // SAFETY: a new mapping at a kernel-chosen address; no existing memory
    // is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as usize)
}

fn guarded_limit() -> usize {
    let l = GUARDED_LIMIT.load(Ordering::Relaxed);
    if l != usize::MAX {
        return l;
    }
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65530);
        max / 4
    })
}

/// Counters for tests and benchmarks. Stacks are never unmapped, so each
/// counts stacks made so far, in use or pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackStats {
    /// Slab stacks with a guard page installed inside the slab.
    pub guarded_slab: usize,
    /// Stacks with a guard mapping of their own (two VMAs each).
    pub guarded_mapped: usize,
    /// Unguarded canary stacks (only after [`allow_unguarded_stacks`]).
    pub unguarded: usize,
    /// Usable bytes of all of them (address space reserved for stacks;
    /// a page is committed when first touched).
    pub bytes: usize,
}

/// Current stack counters.
pub fn stack_stats() -> StackStats {
    StackStats {
        guarded_slab: GUARD_SLAB_CARVED.load(Ordering::Relaxed),
        guarded_mapped: GUARDED_LIVE.load(Ordering::Relaxed),
        unguarded: CANARY_CARVED.load(Ordering::Relaxed),
        bytes: STACK_BYTES.load(Ordering::Relaxed),
    }
}

/// A stack's geometry. Plain data; ownership is tracked by [`Stack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStack {
    /// Lowest address of the region (the guard page, if any).
    map: usize,
    /// Lowest usable address (above the guard; the canary for slab stacks).
    bottom: usize,
    /// Highest address (the stack grows down from here).
    top: usize,
    guarded: bool,
}

impl RawStack {
    fn size(&self) -> usize {
        self.top - self.bottom
    }

    fn map_guarded(size: usize) -> io::Result<RawStack> {
        let ps = page_size();
        let len = size + ps;
        let p = map_anon(len)? as *mut libc::c_void;
        // SAFETY: the first page lies inside the mapping we just made.
        if unsafe { libc::mprotect(p, ps, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping exactly what we mapped; nobody else knows it.
            unsafe { libc::munmap(p, len) };
            return Err(e);
        }
        GUARDED_LIVE.fetch_add(1, Ordering::Relaxed);
        STACK_BYTES.fetch_add(size, Ordering::Relaxed);
        let map = p as usize;
        crate::valgrind::stack_register(map + ps, map + len);
        Ok(RawStack {
            map,
            bottom: map + ps,
            top: map + len,
            guarded: true,
        })
    }

    /// Returns whether the zero canary of a slab stack is intact.
    #[cfg(test)]
    fn canary_ok(&self) -> bool {
        self.guarded || canary_ok_at(self.bottom)
    }
}

/// Whether the zero canary of the unguarded stack whose lowest usable
/// address is `bottom` is intact (a slab stack's bottom: its mapping
/// stays for the life of the process, so any such address can be read).
pub(crate) fn canary_ok_at(bottom: usize) -> bool {
    let p = bottom as *const u64;
    (0..CANARY_LEN / 8).all(|i| {
        // SAFETY: the canary lies inside a slab stack's mapping, which
        // stays mapped for the life of the process.
        unsafe { std::ptr::read_volatile(p.add(i)) == 0 }
    })
}

/// The reserved words at the very top of the stack whose highest usable
/// address is `top` (see [`Stack::sp_slot`]).
pub(crate) fn sp_slot_of(top: usize) -> *mut usize {
    (top - SP_SLOT_RESERVE) as *mut usize
}

/// An owned goroutine stack. Dropping it returns it to this thread's pool.
#[derive(Debug)]
pub struct Stack {
    raw: RawStack,
}

impl Stack {
    /// Takes a stack of at least `size` bytes (rounded by
    /// [`round_stack_size`]) from the pool, mapping a new one if needed.
    ///
    /// # Errors
    /// `InvalidInput` if `size` exceeds [`MAX_STACK_SIZE`]; the OS error if
    /// no memory could be mapped.
    pub fn new(size: usize) -> io::Result<Stack> {
        if size > MAX_STACK_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {size}-byte stack exceeds the maximum of {MAX_STACK_SIZE} bytes"),
            ));
        }
        let size = round_stack_size(size);
        if let Some(raw) = LOCAL.with(|l| l.borrow_mut().take(size)) {
            return Ok(Stack { raw });
        }
        alloc_slow(size)
    }

    /// Usable bytes.
    pub fn size(&self) -> usize {
        self.raw.size()
    }

    /// Whether this stack has a guard page (else it is a canary slab stack).
    pub fn is_guarded(&self) -> bool {
        self.raw.guarded
    }

    /// `[lowest, highest)` usable addresses.
    pub fn bounds(&self) -> (usize, usize) {
        (self.raw.bottom, self.raw.top)
    }

    /// The words at the very top of the stack that gort reserves for the
    /// registers saved at each suspend (see `context.rs`), the stack pointer
    /// first. corosensei's frames start below them.
    pub(crate) fn sp_slot(&self) -> *mut usize {
        sp_slot_of(self.raw.top)
    }

    /// `[lo, hi)` of the whole mapping region of this stack (guard included).
    pub(crate) fn region(&self) -> (usize, usize) {
        (self.raw.map, self.raw.top)
    }

    /// `[lo, hi)` of the guard page, if any.
    pub fn guard(&self) -> Option<(usize, usize)> {
        self.raw.guarded.then_some((self.raw.map, self.raw.bottom))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let raw = self.raw;
        // During thread teardown the cache may be gone: go straight to global.
        if LOCAL.try_with(|l| l.borrow_mut().put(raw)).is_err() {
            release_batch(vec![raw]);
        }
    }
}

// SAFETY: the stack's memory belongs to whoever owns the `Stack`; corosensei
// only needs the bounds. base/limit are page aligned, so 16-byte aligned.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.raw.top - SP_SLOT_RESERVE)
            .expect("stack top is non-null")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.raw.map).expect("stack limit is non-null")
    }
}

/// One thread's warm free stacks.
struct LocalCache {
    free: Vec<RawStack>,
}

impl LocalCache {
    fn take(&mut self, size: usize) -> Option<RawStack> {
        let i = self.free.iter().rposition(|s| s.size() == size)?;
        Some(self.free.swap_remove(i))
    }

    fn put(&mut self, raw: RawStack) {
        self.free.push(raw);
        if self.free.len() > LOCAL_MAX {
            // Keep the most recently used (warmest) stacks; give away the rest.
            let batch: Vec<RawStack> = self.free.drain(..BATCH).collect();
            release_batch(batch);
        }
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        release_batch(std::mem::take(&mut self.free));
    }
}

// Right across a park: a pool of free stacks, borrowed only inside
// `Stack::new`/`Drop`, which never park; any goroutine of the M may use it.
thread_local! {
    static LOCAL: RefCell<LocalCache> = const { RefCell::new(LocalCache { free: Vec::new() }) };
}

struct Global {
    /// Free stacks whose memory was returned (they read as zero).
    free: Vec<RawStack>,
    /// Free stacks whose memory is still resident (reused first).
    /// Oldest first (the scavenger takes from the front, allocation from
    /// the back: the warmest).
    dirty: std::collections::VecDeque<RawStack>,
    /// Per stack size: the next uncarved address of the current slab and how
    /// many stacks remain in it.
    slabs: Vec<(usize, usize, usize)>,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    free: Vec::new(),
    dirty: std::collections::VecDeque::new(),
    slabs: Vec::new(),
});

fn global() -> std::sync::MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cold]
fn alloc_slow(size: usize) -> io::Result<Stack> {
    // Refill from the global list: one lock for up to BATCH stacks.
    let mut got: Vec<RawStack> = Vec::new();
    {
        let mut guard = global();
        let g = &mut *guard;
        // Resident stacks first (no page faults), the most recently freed
        // first; then released ones.
        let mut i = g.dirty.len();
        while i > 0 && got.len() < BATCH {
            i -= 1;
            if g.dirty[i].size() == size {
                got.extend(g.dirty.swap_remove_back(i));
            }
        }
        let mut i = g.free.len();
        while i > 0 && got.len() < BATCH {
            i -= 1;
            if g.free[i].size() == size {
                got.push(g.free.swap_remove(i));
            }
        }
    }
    if let Some(raw) = got.pop() {
        LOCAL.with(|l| l.borrow_mut().free.extend(got));
        return Ok(Stack { raw });
    }
    if guard_install_available() {
        return carved(carve_slab(size, true, carve_count())?);
    }
    let limit = guarded_limit();
    if GUARDED_LIVE.load(Ordering::Relaxed) < limit {
        return RawStack::map_guarded(size).map(|raw| Stack { raw });
    }
    if UNGUARDED_OK.load(Ordering::Relaxed) {
        return carved(carve_slab(size, false, carve_count())?);
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "the guarded-stack budget of {limit} goroutine stacks is used up: without \
             MADV_GUARD_INSTALL (Linux 6.13+; or GORT_STACK_GUARD=mappings), each guarded \
             stack costs 2 of the process's vm.max_map_count mappings; raise that sysctl \
             (sysctl -w vm.max_map_count=N) and gort_os::stack::set_guarded_stack_limit, \
             or opt in to unguarded stacks with the unsafe \
             gort_os::stack::allow_unguarded_stacks"
        ),
    ))
}

/// Most slots carved at once (the first ones are carved one at a time).
const CARVE_MAX: usize = 64;

/// How many slots to carve now: one at a time for a program that made few
/// stacks, more as it makes many (a sixteenth of those made so far, up to
/// [`CARVE_MAX`]), so that a handful of goroutines costs no idle reserve.
fn carve_count() -> usize {
    let made = GUARD_SLAB_CARVED.load(Ordering::Relaxed) + CANARY_CARVED.load(Ordering::Relaxed);
    (made / 16).clamp(1, CARVE_MAX)
}

/// Whether batches may use `process_madvise` on the calling process
/// (`PIDFD_SELF`, Linux 6.14) with this advice: probed once, at the first
/// stack (so that a seccomp policy that kills on unknown system calls
/// does so at start-up, not at the 32nd goroutine), and cleared when the
/// kernel refuses it; `GORT_STACK_BATCH=0` turns batching off.
struct BatchAdvice {
    advice: libc::c_int,
    ok: AtomicBool,
    probed: std::sync::Once,
}

static BATCH_GUARD: BatchAdvice = BatchAdvice::new(MADV_GUARD_INSTALL);
static BATCH_POPULATE: BatchAdvice = BatchAdvice::new(MADV_POPULATE_WRITE);

impl BatchAdvice {
    const fn new(advice: libc::c_int) -> BatchAdvice {
        BatchAdvice {
            advice,
            ok: AtomicBool::new(false),
            probed: std::sync::Once::new(),
        }
    }

    /// Whether batching this advice is on (probing it first if need be).
    fn enabled(&self) -> bool {
        self.probed.call_once(|| {
            let on = cfg!(all(target_os = "linux", not(gort_valgrind)))
                && std::env::var_os("GORT_STACK_BATCH").is_none_or(|v| v != "0")
                && probe_batch(self.advice);
            self.ok.store(on, Ordering::Relaxed);
        });
        self.ok.load(Ordering::Relaxed)
    }

    /// Applies the advice to the page at each of `addrs` in one system
    /// call if it can. Returns how many of them, from the first, were
    /// advised (the caller advises the rest one by one): the kernel walks
    /// the ranges in order and stops at the first failure.
    fn apply(&self, addrs: &[usize]) -> usize {
        if addrs.len() < 2 || !self.enabled() {
            return 0;
        }
        match process_madvise_self(addrs, self.advice) {
            Ok(n) => n,
            Err(e) => {
                // The kernel refuses this advice through process_madvise
                // (or has no PIDFD_SELF): not asked again. Anything else
                // (ENOMEM under a cgroup limit, EINTR) fails this batch only.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADF | libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL)
                ) {
                    self.ok.store(false, Ordering::Relaxed);
                }
                0
            }
        }
    }
}

/// Whether `process_madvise(PIDFD_SELF, .., advice)` works here, tried on a
/// page of a scratch mapping.
fn probe_batch(advice: libc::c_int) -> bool {
    let ps = page_size();
    with_scratch_pages(2, |p| {
        process_madvise_self(&[p, p + ps], advice).is_ok_and(|n| n == 2)
    }) == Some(true)
}

/// One `process_madvise` of this process's pages at `addrs` (one page
/// each, at most 1024). Returns how many, from the first, were advised.
fn process_madvise_self(addrs: &[usize], advice: libc::c_int) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        /// `PIDFD_SELF_THREAD`: the calling thread, whose memory is the
        /// whole process's (and which, unlike the thread-group pidfd,
        /// resolves even after the main thread exited).
        const PIDFD_SELF: libc::c_int = -10000;
        let ps = page_size();
        let iov: Vec<libc::iovec> = addrs
            .iter()
            .map(|&a| libc::iovec {
                iov_base: a as *mut libc::c_void,
                iov_len: ps,
            })
            .collect();
        // SAFETY: each range is one page of a mapping the caller owns and
        // hands to nobody meanwhile (a slab slot not yet handed out, or a
        // scratch page); `iov` outlives the call; the kernel only reads it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                libc::c_long::from(PIDFD_SELF),
                iov.as_ptr(),
                iov.len(),
                libc::c_long::from(advice),
                0 as libc::c_long,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // The count covers whole leading ranges (one page each).
        Ok((r as usize / ps).min(addrs.len()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addrs, advice);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Hands out the first of freshly carved stacks; the rest go to this
/// thread's cache (`carve_slab` never returns an empty batch).
fn carved(mut batch: Vec<RawStack>) -> io::Result<Stack> {
    let raw = batch.pop().expect("a carved batch is never empty");
    if !batch.is_empty() {
        // As many as the cache has room for, at its cold end (the warm,
        // just-used stacks stay where `take` looks first); the rest to the
        // global list, for any thread.
        let rest = LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                let room = LOCAL_MAX.saturating_sub(l.free.len()).min(batch.len());
                let rest = batch.split_off(room);
                l.free.splice(0..0, batch.drain(..));
                rest
            })
            .unwrap_or(batch);
        if !rest.is_empty() {
            release_batch(rest);
        }
    }
    Ok(Stack { raw })
}

/// Carves up to `want` (at least one) stacks from the current slab of their size
/// and kind: with a guard page installed below each (`guarded`), or
/// unguarded canary stacks. A batch's guards take one system call where
/// the kernel allows, and so does faulting in the top page of each (the
/// first page a goroutine touches): a fresh goroutine then starts on a
/// resident page, as Go's start on already-faulted heap memory (measured
/// here: ~1.8 µs per slot one by one, ~1.3 µs in batches of 64).
fn carve_slab(size: usize, guarded: bool, want: usize) -> io::Result<Vec<RawStack>> {
    let ps = page_size();
    let slot = if guarded { size + ps } else { size };
    let mut g = global();
    let idx = match g.slabs.iter().position(|s| s.0 == slot) {
        Some(i) => i,
        None => {
            g.slabs.push((slot, 0, 0));
            g.slabs.len() - 1
        }
    };
    if g.slabs[idx].2 == 0 {
        let n = (SLAB_BYTES / slot).max(1);
        g.slabs[idx].1 = map_anon(n * slot)?;
        g.slabs[idx].2 = n;
    }
    let s = &mut g.slabs[idx];
    let n = want.clamp(1, CARVE_MAX).min(s.2);
    let first = s.1;
    s.1 += n * slot;
    s.2 -= n;
    drop(g);
    let mut maps: Vec<usize> = (0..n).map(|i| first + i * slot).collect();
    if guarded {
        let mut err = None;
        let done = BATCH_GUARD.apply(&maps);
        let mut k = 0;
        maps.retain(|&map| {
            k += 1;
            if k <= done {
                return true; // guarded by the batch
            }
            if err.is_some() {
                return false; // after a failure, do not try the others
            }
            // SAFETY: the slot's first page lies inside a slab mapping we
            // own and that nothing uses yet; the guard makes any access to
            // it fault.
            let ok =
                unsafe { libc::madvise(map as *mut libc::c_void, ps, MADV_GUARD_INSTALL) } == 0;
            if !ok {
                // The slot is lost (never handed out): address space only,
                // as are the ones after it.
                err = Some(io::Error::last_os_error());
            }
            ok
        });
        if maps.is_empty() {
            return Err(err.unwrap_or_else(|| io::Error::other("no stack slot carved")));
        }
        GUARD_SLAB_CARVED.fetch_add(maps.len(), Ordering::Relaxed);
    } else {
        CANARY_CARVED.fetch_add(n, Ordering::Relaxed);
    }
    let stacks: Vec<RawStack> = maps
        .iter()
        .map(|&map| {
            let bottom = if guarded { map + ps } else { map };
            RawStack {
                map,
                bottom,
                top: bottom + size,
                guarded,
            }
        })
        .collect();
    // Fault in each top page now, in one call (best effort: a refusal
    // leaves the first touch to fault, as it would anyway).
    let tops: Vec<usize> = stacks.iter().map(|s| s.top - ps).collect();
    let _ = BATCH_POPULATE.apply(&tops);
    STACK_BYTES.fetch_add(size * stacks.len(), Ordering::Relaxed);
    for st in &stacks {
        crate::valgrind::stack_register(st.bottom, st.top);
    }
    Ok(stacks)
}

/// Puts `batch` on the global dirty list; beyond [`DIRTY_MAX`], wakes the
/// scavenger thread to return the memory of the oldest dirty stacks.
fn release_batch(batch: Vec<RawStack>) {
    if batch.is_empty() {
        return;
    }
    let over = {
        let mut g = global();
        g.dirty.extend(batch);
        g.dirty.len() > DIRTY_MAX
    };
    if over {
        scavenger().unpark();
    }
}

/// Stacks the scavenger releases per sweep (sorted together, so adjacent
/// ones share a call).
const SWEEP_MAX: usize = 1024;
/// The least pause between two sweeps.
const SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);

/// The background scavenger (Go's bgscavenge): returns the memory of dirty
/// stacks beyond [`DIRTY_MAX`] in sorted sweeps, off the goroutines' threads
/// (each `madvise` waits for every CPU to flush its TLB).
fn scavenger() -> &'static std::thread::Thread {
    static T: OnceLock<std::thread::Thread> = OnceLock::new();
    T.get_or_init(|| {
        std::thread::Builder::new()
            .name("gort-scavenge".into())
            .spawn(|| loop {
                std::thread::park();
                loop {
                    let sweep = {
                        let mut g = global();
                        // Down to half the budget once woken.
                        if g.dirty.len() <= DIRTY_MAX / 2 {
                            break;
                        }
                        // The oldest (least recently freed) stacks go: from
                        // the deque's front, O(n) for n stacks.
                        let n = (g.dirty.len() - DIRTY_MAX / 2).min(SWEEP_MAX);
                        g.dirty.drain(..n).collect::<Vec<_>>()
                    };
                    let t0 = std::time::Instant::now();
                    // SAFETY: these stacks are on no one's list but ours
                    // (taken from the dirty list under its lock); their
                    // contents are dead.
                    unsafe { release_memory(sweep.iter().map(|s| (s.map, s.top)).collect()) };
                    global().free.extend(sweep);
                    // Paced, as Go's scavenger is (it keeps to ~1% of a
                    // CPU): each madvise interrupts every CPU running the
                    // process, so a burst of exits released at full speed
                    // stole a core and the goroutines' CPUs from the
                    // program (sleep_many). About a tenth of the time.
                    std::thread::sleep((t0.elapsed() * 9).max(SWEEP_PAUSE));
                }
            })
            .expect("spawn the stack scavenger thread")
            .thread()
            .clone()
    })
}

/// Gives the pages of every `[lo, hi)` range back to the kernel
/// (`MADV_DONTNEED`: they read as zero afterwards), with one call per run of
/// adjacent ranges.
///
/// # Safety
/// Every range must be the region of a goroutine stack (as returned by
/// [`crate::context::Context::compact`]) that nobody runs on and whose live
/// bytes, if any, are saved elsewhere: the contents are discarded. Any
/// other memory — a live `Vec`, a running stack — would silently read as
/// zeros afterwards.
///
/// ```compile_fail,E0133
/// // Safe code cannot discard memory it does not own: this needs `unsafe`.
/// let v = vec![7u8; 8192];
/// let lo = v.as_ptr() as usize;
/// gort_os::stack::release_memory(vec![(lo, lo + 8192)]);
/// ```
pub unsafe fn release_memory(mut ranges: Vec<(usize, usize)>) {
    ranges.sort_unstable_by_key(|r| r.0);
    let mut run: Option<(usize, usize)> = None;
    for &(lo, hi) in &ranges {
        // Guard pages are included: madvise does not care about protection.
        match run {
            Some((rlo, rhi)) if rhi == lo => run = Some((rlo, hi)),
            _ => {
                if let Some((rlo, rhi)) = run {
                    dontneed(rlo, rhi);
                }
                run = Some((lo, hi));
            }
        }
    }
    if let Some((rlo, rhi)) = run {
        dontneed(rlo, rhi);
    }
}

fn dontneed(lo: usize, hi: usize) {
    // SAFETY: [lo, hi) is a run of whole stacks we own and that no goroutine
    // runs on; dropping their pages makes them read as zero again, which also
    // re-arms the slab canaries.
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round_stack_size(1), MIN_STACK_SIZE);
        assert_eq!(round_stack_size(DEFAULT_STACK_SIZE), DEFAULT_STACK_SIZE);
        assert_eq!(round_stack_size(MIN_STACK_SIZE + 1) % page_size(), 0);
    }

    #[test]
    fn guarded_and_slab_stacks_are_usable_and_pooled() {
        let s = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        let (lo, hi) = s.bounds();
        assert_eq!(hi - lo, DEFAULT_STACK_SIZE);
        // SAFETY: writing inside the usable range of a stack we own.
        unsafe { ((hi - 8) as *mut u64).write(7) };
        drop(s);
        // The warm stack comes back from this thread's cache.
        let s2 = Stack::new(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(s2.bounds(), (lo, hi));

        let raw = carve_slab(round_stack_size(32 * 1024), false, 1).unwrap()[0];
        assert!(!raw.guarded && raw.canary_ok());
        // SAFETY: corrupting the canary of a slab stack nobody runs on.
        unsafe { (raw.bottom as *mut u8).write(1) };
        assert!(!raw.canary_ok());
        dontneed(raw.map, raw.top);
        assert!(raw.canary_ok(), "MADV_DONTNEED re-arms the canary");
    }

    #[test]
    fn guard_install_keeps_one_mapping_per_slab() {
        if !guard_install_available() {
            eprintln!("MADV_GUARD_INSTALL unavailable here; the fallback is tested elsewhere");
            return;
        }
        let maps = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .count()
        };
        let before = maps();
        let mut stacks: Vec<RawStack> = Vec::new();
        while stacks.len() < 2000 {
            stacks.extend(carve_slab(round_stack_size(40 * 1024), true, CARVE_MAX).unwrap());
        }
        assert!(stacks
            .iter()
            .all(|s| s.guarded && s.bottom == s.map + page_size()));
        let grown = maps().saturating_sub(before);
        assert!(grown < 50, "2000 guarded stacks took {grown} more mappings");
        // Releasing a run of stacks (guards included) keeps the guards.
        dontneed(stacks[0].map, stacks[3].top);
        release_batch(stacks);
    }

    /// Whether the kernel can read the byte at `addr` on our behalf (a
    /// `write(2)` from it into a pipe): false for a guard page (EFAULT),
    /// without a signal.
    fn kernel_can_read(addr: usize) -> bool {
        let mut fds = [0; 2];
        // SAFETY: a fresh pipe, closed below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the kernel checks the address; a fault is an error return.
        let r = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
        let efault = r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
        // SAFETY: our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(r == 1 || efault, "write from {addr:#x}: {r}");
        r == 1
    }

    /// Whether the page at `addr` is resident.
    fn resident(addr: usize) -> bool {
        let ps = page_size();
        let mut v = 0u8;
        // SAFETY: one page-aligned page of a mapping we own; one byte out.
        let r = unsafe { libc::mincore((addr & !(ps - 1)) as *mut libc::c_void, ps, &mut v) };
        assert_eq!(r, 0);
        v & 1 == 1
    }

    #[test]
    fn a_carved_batch_has_every_guard_and_resident_tops() {
        if !guard_install_available() {
            eprintln!("MADV_GUARD_INSTALL unavailable here; the fallback is tested elsewhere");
            return;
        }
        let ps = page_size();
        eprintln!(
            "batched guards: {}, batched first pages: {}",
            BATCH_GUARD.enabled(),
            BATCH_POPULATE.enabled()
        );
        let size = round_stack_size(56 * 1024);
        for want in [1, 2, CARVE_MAX] {
            let stacks = carve_slab(size, true, want).unwrap();
            assert!(!stacks.is_empty() && stacks.len() <= want);
            for st in &stacks {
                assert!(st.guarded && st.bottom == st.map + ps);
                assert!(!kernel_can_read(st.map), "no guard below {:#x}", st.bottom);
                assert!(
                    !kernel_can_read(st.bottom - 1),
                    "no guard below {:#x}",
                    st.bottom
                );
                assert!(kernel_can_read(st.bottom));
                if stacks.len() > 1 && BATCH_POPULATE.enabled() {
                    assert!(resident(st.top - 1), "top page of a batch not faulted in");
                }
            }
            release_batch(stacks);
        }
    }

    /// A batch the kernel stops part way (a range it cannot advise) reports
    /// the leading ranges it did; the carver guards the rest one by one.
    #[test]
    fn a_partial_batch_counts_its_leading_ranges() {
        if !guard_install_available() || !BATCH_GUARD.enabled() {
            eprintln!("no batched guard install here");
            return;
        }
        let ps = page_size();
        // Five pages of our own; the third is unmapped to make the batch
        // fail there.
        let p = map_anon(5 * ps).unwrap();
        // SAFETY: the third page of our mapping.
        let hole = unsafe { libc::munmap((p + 2 * ps) as *mut libc::c_void, ps) };
        assert_eq!(hole, 0);
        let pages: Vec<usize> = (0..5).map(|i| p + i * ps).collect();
        assert_eq!(BATCH_GUARD.apply(&pages), 2);
        assert!(
            BATCH_GUARD.enabled(),
            "a failed range is no refusal of the advice"
        );
        assert!(!kernel_can_read(pages[0]) && !kernel_can_read(pages[1]));
        assert!(
            kernel_can_read(pages[3]),
            "the kernel went past the failed range"
        );
        // SAFETY: the rest of our mapping.
        unsafe {
            libc::munmap(p as *mut libc::c_void, 2 * ps);
            libc::munmap((p + 3 * ps) as *mut libc::c_void, 2 * ps);
        }
    }

    #[test]
    fn overflowing_the_cache_goes_global() {
        let v: Vec<Stack> = (0..LOCAL_MAX + BATCH)
            .map(|_| Stack::new(48 * 1024).unwrap())
            .collect();
        drop(v);
        let g = global();
        let n = g
            .free
            .iter()
            .chain(&g.dirty)
            .filter(|s| s.size() == 48 * 1024)
            .count();
        assert!(n >= BATCH, "expected a batch on the global list, found {n}");
    }
}
