//! Goroutine stacks: guarded mappings while the kernel's mapping budget
//! allows, unguarded slab stacks with a zero canary after that, both pooled
//! per M with a global overflow list.
//!
//! # Two kinds of stack
//!
//! * **Guarded.** One `mmap` of `size + PAGE`, the lowest page `PROT_NONE`.
//!   Overflow faults on the guard page; the SIGSEGV handler ([`crate::signal`])
//!   sees the address is the running goroutine's guard and aborts with a
//!   message naming it. Costs two kernel mappings (VMAs).
//! * **Slab.** Linux caps mappings at `vm.max_map_count` (65530 by default), so
//!   guarded stacks alone stop near 32k goroutines. Past a budget of a quarter
//!   of that cap, stacks are carved from 16 MiB slabs: adjacent stacks with equal
//!   protection merge into one mapping, so a million stacks need a few thousand
//!   mappings. There is no guard page. Instead the lowest [`CANARY_LEN`] bytes of
//!   each stack are a *zero canary*: fresh anonymous memory reads as zero, and
//!   reading it maps the shared zero page, so the canary costs no RSS. Every
//!   switch out of a goroutine ([`crate::context::Context::resume`]) checks it;
//!   a clobbered canary aborts with the goroutine's name. Detection is at the
//!   next switch, not at the faulting write: by then the overflow may have
//!   written into the neighbouring stack, so the process aborts and never runs
//!   on. Programs that need exact overflow detection for every goroutine keep
//!   their goroutine count under the guarded budget
//!   ([`set_guarded_stack_limit`]).
//!
//! # Pooling
//!
//! A fresh mapping costs microseconds, a pooled stack tens of nanoseconds. Each
//! thread (each M) keeps up to [`LOCAL_MAX`] free stacks, warm. When it has
//! more, it hands [`BATCH`] of them to the global *dirty* list (memory still
//! resident, reused first: no page faults). Beyond [`DIRTY_MAX`] dirty
//! stacks, a background scavenger thread (Go's bgscavenge) returns the
//! memory of the oldest with `madvise(MADV_DONTNEED)`, sorted by address so
//! that runs of adjacent stacks take one call each. Each call makes every
//! CPU running the process flush its TLB (an inter-processor interrupt, slow
//! in VMs): measured, releasing 32 stacks at a time on the goroutines' own
//! threads made 100,000 sleeping goroutines cost ~0.8 s of IPIs when they
//! exited. Virtual address space is kept (it is what makes the next
//! allocation cheap); resident memory beyond the dirty budget is not.
//!
//! # Invariants
//! * A `RawStack` is in exactly one place: owned by a [`Stack`], in one
//!   thread's cache, or in the global list.
//! * The canary bytes of a slab stack are zero whenever no goroutine has
//!   overflowed it.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// saved stack pointer); keeps corosensei's base 16-byte aligned.
const SP_SLOT_RESERVE: usize = 16;

/// Guarded stacks alive now (written on map/unmap; read for the budget).
static GUARDED_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Slab stacks handed out (they are never unmapped; they return to the pool).
static SLAB_CARVED: AtomicUsize = AtomicUsize::new(0);
/// usize::MAX means "not set; derive from vm.max_map_count".
static GUARDED_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

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

/// Caps how many guarded stacks may exist at once; stacks beyond it come from
/// slabs. The default is a quarter of `vm.max_map_count`.
pub fn set_guarded_stack_limit(n: usize) {
    GUARDED_LIMIT.store(n, Ordering::Relaxed);
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

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackStats {
    /// Guarded stacks mapped now.
    pub guarded: usize,
    /// Slab stacks carved so far (in use or pooled).
    pub slab: usize,
}

/// Current stack counters.
pub fn stack_stats() -> StackStats {
    StackStats {
        guarded: GUARDED_LIVE.load(Ordering::Relaxed),
        slab: SLAB_CARVED.load(Ordering::Relaxed),
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
        // SAFETY: anonymous private mapping at a kernel-chosen address; no
        // existing memory is affected.
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
        // SAFETY: the first page lies inside the mapping we just made.
        if unsafe { libc::mprotect(p, ps, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping exactly what we mapped; nobody else knows it.
            unsafe { libc::munmap(p, len) };
            return Err(e);
        }
        GUARDED_LIVE.fetch_add(1, Ordering::Relaxed);
        let map = p as usize;
        Ok(RawStack {
            map,
            bottom: map + ps,
            top: map + len,
            guarded: true,
        })
    }

    /// Returns whether the zero canary of a slab stack is intact.
    pub(crate) fn canary_ok(&self) -> bool {
        if self.guarded {
            return true;
        }
        let p = self.bottom as *const u64;
        (0..CANARY_LEN / 8).all(|i| {
            // SAFETY: the canary lies inside this stack's mapping, which stays
            // mapped for the life of the process.
            unsafe { std::ptr::read_volatile(p.add(i)) == 0 }
        })
    }
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

    /// The word at the very top of the stack that gort reserves for the
    /// stack pointer saved at each suspend (see `context.rs`). corosensei's
    /// frames start below it.
    pub(crate) fn sp_slot(&self) -> *mut usize {
        (self.raw.top - SP_SLOT_RESERVE) as *mut usize
    }

    /// `[lo, hi)` of the whole mapping region of this stack (guard included).
    pub(crate) fn region(&self) -> (usize, usize) {
        (self.raw.map, self.raw.top)
    }

    /// `[lo, hi)` of the guard page, if any.
    pub fn guard(&self) -> Option<(usize, usize)> {
        self.raw.guarded.then_some((self.raw.map, self.raw.bottom))
    }

    pub(crate) fn raw(&self) -> RawStack {
        self.raw
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

thread_local! {
    static LOCAL: RefCell<LocalCache> = const { RefCell::new(LocalCache { free: Vec::new() }) };
}

struct Global {
    /// Free stacks whose memory was returned (they read as zero).
    free: Vec<RawStack>,
    /// Free stacks whose memory is still resident (reused first).
    dirty: Vec<RawStack>,
    /// Per stack size: the next uncarved address of the current slab and how
    /// many stacks remain in it.
    slabs: Vec<(usize, usize, usize)>,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    free: Vec::new(),
    dirty: Vec::new(),
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
        // Resident stacks first (no page faults), then released ones.
        for list in [&mut g.dirty, &mut g.free] {
            let mut i = list.len();
            while i > 0 && got.len() < BATCH {
                i -= 1;
                if list[i].size() == size {
                    got.push(list.swap_remove(i));
                }
            }
        }
    }
    if let Some(raw) = got.pop() {
        LOCAL.with(|l| l.borrow_mut().free.extend(got));
        return Ok(Stack { raw });
    }
    if GUARDED_LIVE.load(Ordering::Relaxed) < guarded_limit() {
        return RawStack::map_guarded(size).map(|raw| Stack { raw });
    }
    carve_slab(size).map(|raw| Stack { raw })
}

fn carve_slab(size: usize) -> io::Result<RawStack> {
    let mut g = global();
    let idx = match g.slabs.iter().position(|s| s.0 == size) {
        Some(i) => i,
        None => {
            g.slabs.push((size, 0, 0));
            g.slabs.len() - 1
        }
    };
    if g.slabs[idx].2 == 0 {
        let n = (SLAB_BYTES / size).max(1);
        // SAFETY: anonymous private mapping at a kernel-chosen address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                n * size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        g.slabs[idx].1 = p as usize;
        g.slabs[idx].2 = n;
    }
    let s = &mut g.slabs[idx];
    let bottom = s.1;
    s.1 += size;
    s.2 -= 1;
    SLAB_CARVED.fetch_add(1, Ordering::Relaxed);
    Ok(RawStack {
        map: bottom,
        bottom,
        top: bottom + size,
        guarded: false,
    })
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
                        if g.dirty.len() <= DIRTY_MAX {
                            break;
                        }
                        // The oldest (least recently freed) stacks go.
                        let n = g.dirty.len() - DIRTY_MAX / 2;
                        g.dirty.drain(..n).collect::<Vec<_>>()
                    };
                    release_memory(sweep.iter().map(|s| (s.map, s.top)).collect());
                    global().free.extend(sweep);
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
/// The ranges must be regions of stacks nobody runs on whose live bytes, if
/// any, are saved elsewhere (a compacted [`crate::context::Context`]):
/// their contents are lost. Passing any other memory discards it.
pub fn release_memory(mut ranges: Vec<(usize, usize)>) {
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

        let raw = carve_slab(32 * 1024).unwrap();
        assert!(!raw.guarded && raw.canary_ok());
        // SAFETY: corrupting the canary of a slab stack nobody runs on.
        unsafe { (raw.bottom as *mut u8).write(1) };
        assert!(!raw.canary_ok());
        dontneed(raw.map, raw.top);
        assert!(raw.canary_ok(), "MADV_DONTNEED re-arms the canary");
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
