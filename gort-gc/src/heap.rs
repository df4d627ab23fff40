//! The managed heap: the sharded registry of live objects, the zero path
//! (finalize or free), statistics and the pacer's trigger.

use crate::collect::CollectorState;
use crate::gc::{reg_seen, reg_shard, reg_slot, Header, DEAD, SEEN_SHIFT, STRONG, WEAK_DEAD};
use crate::loom::{
    gc_flow_local, gc_thread_local, lock, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize,
    Condvar, Mutex, MutexGuard, Ordering::*, SHARDS,
};
use crate::special::{self, FinQueue};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::TryLockError;

/// Bytes a shard accumulates before it publishes them to `Heap::live`.
const FLUSH: i64 = 64 << 10;

/// What an object of `size` bytes costs in memory, as the pacer counts it:
/// its allocation as glibc's malloc rounds it (8 bytes of chunk header, 16-
/// byte granules, 32 at least), plus what the runtime spends per object —
/// its registry slot (8 bytes, up to twice that with the vector's growth)
/// and the collector's per-object work (a 32-byte node, edge and dead-list
/// entries), kept between cycles. Go's memory limit counts the runtime's
/// own metadata too; counting object bytes alone let the process's RSS
/// reach three times `GOMEMLIMIT` (issue 20). `MemStats::heap_alloc` still
/// reports the object bytes.
pub(crate) fn footprint(size: usize) -> i64 {
    const PER_OBJECT: i64 = 64;
    let chunk = ((size as i64 + 8 + 15) & !15).max(32);
    chunk + PER_OBJECT
}

/// One registry shard: the objects allocated by the threads mapped to it.
#[repr(align(128))]
pub(crate) struct Shard {
    /// Protected by the mutex: registration (allocating thread),
    /// unregistration (freeing thread), the collector's registration pass.
    pub(crate) inner: Mutex<ShardInner>,
    /// Freed objects handed back for their unregistration and
    /// deallocation (by a thread of another shard, or one that found the
    /// lock busy: see `unregister_and_release`): a Treiber stack linked
    /// through `Header::scan` (the next header's address, its provenance
    /// exposed). Pushed by freeing mutators and the collector's frees
    /// (Release CAS), drained by every lock holder (Acquire swap) but the
    /// registration pass, which drains them all first (`drain_all`).
    pub(crate) pending: AtomicPtr<Header>,
    /// The footprints (`footprint`) on `pending`, roughly: added after a
    /// push, subtracted after a drain (Relaxed; it only bounds what a
    /// shard holds back, see `unregister_and_release`).
    pub(crate) pending_bytes: AtomicI64,
    /// Objects of this shard whose count reached zero while the running
    /// cycle could still read them (`zero_or_defer`); the cycle frees them
    /// at its end. Per shard so that mutators freeing during a cycle
    /// rarely meet here; held for a push or a swap, never over user code.
    pub(crate) deferred: Mutex<Vec<Deferred>>,
}

pub(crate) struct ShardInner {
    pub(crate) objs: Vec<NonNull<Header>>,
    pub(crate) mallocs: u64,
    pub(crate) frees: u64,
    pub(crate) bytes: u64,
    /// Footprints (`footprint`) allocated minus freed, not yet added to
    /// `Heap::live`.
    pub(crate) unflushed: i64,
}

// SAFETY: the headers are only dereferenced under the shard lock (which
// keeps them registered, hence allocated) or with a strong count.
unsafe impl Send for ShardInner {}

/// Monotonic counters for `MemStats` (Relaxed: statistics only).
pub(crate) struct Stats {
    pub(crate) num_gc: AtomicU64,
    pub(crate) num_forced_gc: AtomicU64,
    pub(crate) pause_total_ns: AtomicU64,
    pub(crate) last_pause_ns: AtomicU64,
    pub(crate) last_gc_ns: AtomicU64,
    pub(crate) fin_queued: AtomicU64,
    pub(crate) fin_run: AtomicU64,
    pub(crate) cleanups_queued: AtomicU64,
    pub(crate) cleanups_run: AtomicU64,
    pub(crate) cycles_freed: AtomicU64,
}

/// All global state of the collector.
pub(crate) struct Heap {
    /// The epoch of the collection in progress, or 0. Written by the
    /// collector (SeqCst store at the start and end of a cycle); read by
    /// every deref/clone/drop/upgrade (SeqCst load): the total order of
    /// SeqCst operations places each mutator access either before the
    /// cycle (then the cycle's trace sees its effects, through the lock
    /// that protects the field) or after the store (then it touches).
    pub(crate) active: AtomicU64,
    /// The registry (see `Shard`).
    pub(crate) shards: [Shard; SHARDS],
    /// Approximate live managed memory (the objects' `footprint`s, which
    /// include the runtime's per-object costs): shards add their deltas in 64 KiB
    /// steps (Relaxed RMW: a pacing hint, no ordering needed); read by the
    /// pacer and at the end of each cycle.
    pub(crate) live: AtomicI64,
    /// Heap goal: a cycle is triggered when `live` reaches it. Written by
    /// the end of a cycle and by the setters, read by allocators; Relaxed
    /// (a stale goal only moves a trigger by one flush).
    pub(crate) next_gc: AtomicI64,
    /// Live bytes at which allocators wait for the collector (the pacer's
    /// `assist`); recomputed with `next_gc`, Relaxed as it.
    pub(crate) assist_at: AtomicI64,
    /// The allocators' waits for the end of a cycle (the pacer's `assist`),
    /// and where they wait.
    pub(crate) assists: Mutex<crate::pacer::Assists>,
    pub(crate) assist_cv: Condvar,
    /// GOGC (negative: off). Written by `set_gc_percent`/the environment,
    /// read when the goal is recomputed; Relaxed.
    pub(crate) gc_percent: AtomicI64,
    /// GOMEMLIMIT in bytes (i64::MAX: none). As `gc_percent`.
    pub(crate) mem_limit: AtomicI64,
    /// A background cycle has been requested and not yet run. Set by the
    /// allocator that crossed the goal (AcqRel swap: one wake-up per
    /// trigger), cleared by the background thread after its cycle
    /// (Release, pairs with its Acquire load before parking).
    pub(crate) triggered: AtomicBool,
    /// GOGC/GOMEMLIMIT read from the environment (set once, AcqRel swap;
    /// the Acquire fast-path load pairs with it).
    pub(crate) env_loaded: AtomicBool,
    /// Counters for `MemStats`.
    pub(crate) stats: Stats,
    /// One collection at a time; `gc()` callers wait here.
    pub(crate) collector: Mutex<CollectorState>,
    /// Functions run at the start of each cycle (gort-std's pool cleanup).
    pub(crate) hooks: Mutex<Vec<fn()>>,
    /// The finalizer queue.
    pub(crate) fin: Mutex<FinQueue>,
    /// The background collector thread's waiter while it is parked
    /// (published under the lock, taken by the trigger).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) bg: Mutex<Option<crate::loom::Waiter>>,
    /// Whether the background thread was spawned (AcqRel swap: once).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) bg_started: AtomicBool,
    /// Round-robin shard assignment for new threads (Relaxed counter).
    pub(crate) next_shard: AtomicUsize,
}

#[cfg(not(gort_loom))]
macro_rules! new_shards {
    () => {
        [const {
            Shard {
                inner: Mutex::new(ShardInner::new()),
                pending: AtomicPtr::new(std::ptr::null_mut()),
                pending_bytes: AtomicI64::new(0),
                deferred: Mutex::new(Vec::new()),
            }
        }; SHARDS]
    };
}

#[cfg(gort_loom)]
macro_rules! new_shards {
    () => {
        std::array::from_fn(|_| Shard {
            inner: Mutex::new(ShardInner::new()),
            pending: AtomicPtr::new(std::ptr::null_mut()),
            pending_bytes: AtomicI64::new(0),
            deferred: Mutex::new(Vec::new()),
        })
    };
}

impl ShardInner {
    const fn new() -> ShardInner {
        ShardInner {
            objs: Vec::new(),
            mallocs: 0,
            frees: 0,
            bytes: 0,
            unflushed: 0,
        }
    }
}

macro_rules! new_heap {
    () => {
        Heap {
            active: AtomicU64::new(0),
            shards: new_shards!(),
            live: AtomicI64::new(0),
            next_gc: AtomicI64::new(crate::pacer::HEAP_MINIMUM),
            assist_at: AtomicI64::new(crate::pacer::HEAP_MINIMUM + crate::pacer::HEAP_MINIMUM / 16),
            assists: Mutex::new(crate::pacer::Assists::new()),
            assist_cv: Condvar::new(),
            gc_percent: AtomicI64::new(100),
            mem_limit: AtomicI64::new(i64::MAX),
            triggered: AtomicBool::new(false),
            env_loaded: AtomicBool::new(false),
            stats: Stats {
                num_gc: AtomicU64::new(0),
                num_forced_gc: AtomicU64::new(0),
                pause_total_ns: AtomicU64::new(0),
                last_pause_ns: AtomicU64::new(0),
                last_gc_ns: AtomicU64::new(0),
                fin_queued: AtomicU64::new(0),
                fin_run: AtomicU64::new(0),
                cleanups_queued: AtomicU64::new(0),
                cleanups_run: AtomicU64::new(0),
                cycles_freed: AtomicU64::new(0),
            },
            collector: Mutex::new(CollectorState::new()),
            hooks: Mutex::new(Vec::new()),
            fin: Mutex::new(FinQueue::new()),
            bg: Mutex::new(None),
            bg_started: AtomicBool::new(false),
            next_shard: AtomicUsize::new(0),
        }
    };
}

/// The global heap.
#[cfg(not(gort_loom))]
#[inline]
pub(crate) fn heap() -> &'static Heap {
    static HEAP: Heap = new_heap!();
    &HEAP
}

/// The global heap (per loom execution).
#[cfg(gort_loom)]
pub(crate) fn heap() -> &'static Heap {
    loom::lazy_static! {
        static ref HEAP: Heap = new_heap!();
    }
    &HEAP
}

gc_thread_local! {
    /// The registry shard this thread allocates into first. Right across a
    /// park: it is only a hint for spreading allocations over the shards —
    /// any shard is correct (`register` falls back to any free one, and an
    /// object records its own shard) — so a goroutine that reads the value
    /// another goroutine of its M set, before or after a park, is fine;
    /// goroutines of one M run one at a time, so sharing the thread's shard
    /// costs them no contention. Nothing is borrowed across user code.
    static MY_SHARD: Cell<usize> = Cell::new(usize::MAX);
}

gc_flow_local! {
    /// The list of objects whose values wait to be dropped by the
    /// outermost free of this goroutine (or plain thread) — freeing is
    /// iterative, so a long list does not overflow a goroutine's stack. The
    /// list lives in that free's frame; this points at it while the free
    /// runs. Per goroutine, not per thread: a `Drop` run by the free may
    /// park, and another goroutine of the same M that frees meanwhile must
    /// run its own drops at once, not queue them here (where they would
    /// wait for this goroutine to resume, or leak if its drop panicked).
    static FREEING: *const RefCell<Vec<NonNull<Header>>>;
}

/// Maps this thread to shard `s` (tests that need two threads on
/// different shards).
#[cfg(all(test, not(gort_loom)))]
pub(crate) fn set_my_shard(s: usize) {
    MY_SHARD.with(|c| c.set(s));
}

fn my_shard() -> usize {
    // During thread-local destruction the slot is gone: use shard 0.
    MY_SHARD
        .try_with(|c| {
            let s = c.get();
            if s != usize::MAX {
                return s;
            }
            let s = heap().next_shard.fetch_add(1, Relaxed) % SHARDS;
            c.set(s);
            s
        })
        .unwrap_or(0)
}

/// Locks a shard for a mutator without waiting if the collector (or
/// anyone) holds it: `None` if busy.
fn try_lock_shard(s: usize) -> Option<MutexGuard<'static, ShardInner>> {
    match heap().shards[s].inner.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Locks a shard, then unregisters the objects whose frees were deferred
/// to it. Returns the guard and the drained list (release their weak
/// counts with [`release_drained`] after unlocking).
pub(crate) fn lock_shard(s: usize) -> (MutexGuard<'static, ShardInner>, *mut Header) {
    let g = lock(&heap().shards[s].inner);
    drain_locked(s, g)
}

pub(crate) fn drain_locked(
    s: usize,
    mut g: MutexGuard<'static, ShardInner>,
) -> (MutexGuard<'static, ShardInner>, *mut Header) {
    let sh = &heap().shards[s];
    // Acquire: pairs with the Release push in `unregister_and_release`.
    let list = if sh.pending.load(Relaxed).is_null() {
        std::ptr::null_mut()
    } else {
        sh.pending.swap(std::ptr::null_mut(), Acquire)
    };
    let mut p = list;
    let mut bytes = 0;
    while let Some(h) = NonNull::new(p) {
        // SAFETY: pending objects stay allocated until `release_drained`.
        let hr = unsafe { h.as_ref() };
        p = std::ptr::with_exposed_provenance_mut(hr.scan.load(Relaxed) as usize);
        bytes += footprint(hr.vtable.size);
        unregister_locked(s, &mut g, hr);
    }
    if bytes != 0 {
        sh.pending_bytes.fetch_sub(bytes, Relaxed);
    }
    (g, list)
}

/// Releases the strong side's weak count of drained objects.
pub(crate) fn release_drained(mut p: *mut Header) {
    while let Some(h) = NonNull::new(p) {
        // SAFETY: as in `drain_locked`; read the link before releasing.
        p = std::ptr::with_exposed_provenance_mut(unsafe { h.as_ref() }.scan.load(Relaxed) as usize);
        // SAFETY: the strong side's weak count, released once.
        unsafe { release_weak(h) };
    }
}

/// Adds a new object to the registry: to this thread's shard, or, if
/// that one is locked (the collector registering it), to any free one — an
/// allocating mutator never waits for the collector's locks (only, past
/// the heap goal, for a cycle's end: the pacer's `assist`).
pub(crate) fn register(h: NonNull<Header>, size: usize) {
    let hp = heap();
    crate::pacer::load_env_once();
    let mine = my_shard();
    let mut found = None;
    for k in 0..SHARDS {
        let s = (mine + k) % SHARDS;
        if let Some(g) = try_lock_shard(s) {
            found = Some((s, g));
            break;
        }
    }
    let (s, g) = match found {
        Some(x) => x,
        None => (mine, lock(&hp.shards[mine].inner)),
    };
    let (mut g, drained) = drain_locked(s, g);
    // SAFETY: `h` is a fresh allocation we own.
    unsafe { h.as_ref() }
        .reg
        .store(((s as u64) << 32) | g.objs.len() as u64, Relaxed);
    g.objs.push(h);
    g.mallocs += 1;
    g.bytes += size as u64;
    g.unflushed += footprint(size);
    let flush = if g.unflushed >= FLUSH {
        std::mem::take(&mut g.unflushed)
    } else {
        0
    };
    drop(g);
    release_drained(drained);
    if flush != 0 {
        let live = hp.live.fetch_add(flush, Relaxed) + flush;
        crate::pacer::maybe_trigger(live);
        crate::pacer::assist(live);
    }
}

fn unregister_locked(s: usize, g: &mut ShardInner, h: &Header) {
    let size = h.vtable.size;
    let slot = reg_slot(h.reg.load(Relaxed));
    let last = g.objs.pop().expect("registered object");
    if slot < g.objs.len() {
        g.objs[slot] = last;
        // SAFETY: registered objects are allocated (we hold the lock).
        let lr = &unsafe { last.as_ref() }.reg;
        // The moved object keeps its `seen` epoch (only lock holders write
        // `reg`, so this load and store are not racing another writer).
        let seen = reg_seen(lr.load(Relaxed)) << SEEN_SHIFT;
        lr.store(seen | ((s as u64) << 32) | slot as u64, Relaxed);
    }
    g.frees += 1;
    g.bytes -= size as u64;
    g.unflushed -= footprint(size);
    if g.unflushed <= -FLUSH {
        let d = std::mem::take(&mut g.unflushed);
        heap().live.fetch_add(d, Relaxed);
    }
}

/// What a shard's `pending` stack may hold back before a freeing thread
/// drains it itself: 32 KiB of footprints (about 2 MiB over the 64
/// shards), a few hundred small objects. Under loom, one object: the
/// models reach the pusher's own drain.
#[cfg(not(gort_loom))]
pub(crate) const PENDING_MAX: i64 = 32 << 10;
#[cfg(gort_loom)]
pub(crate) const PENDING_MAX: i64 = 1;

/// Removes a freed object from the registry and releases the strong side's
/// weak count (deallocating the object unless weak handles remain).
///
/// An object of this thread's shard is unregistered and released here
/// (under the shard's lock, taken without waiting). One of another
/// thread's shard, or of a shard that is locked, goes on the shard's
/// lock-free `pending` stack, and whoever takes that lock next — above all
/// the thread that allocates there, at its next allocation — unregisters
/// and releases it: one CAS here instead of a lock and an unlock on a
/// line the allocating thread keeps writing, and the memory goes back to
/// the allocator on the thread that allocated it, whose free list
/// (glibc's per-thread cache) hands it out again at once. Freeing on the
/// other thread instead refilled that cache from the arena's shared bins at
/// each allocation: a finalizer goroutine freeing what a loop allocates
/// spent 0.7x the time per object with this (gort-bench `finalizers`).
/// A free never waits for the collector's registry locks either way. What
/// a stack holds back is bounded, softly: past `PENDING_MAX` bytes the
/// pusher drains it itself if the lock is free (pushes made while the lock
/// stays busy wait for its next holder), and each collection drains every
/// stack (`drain_all`).
///
/// # Safety
/// The object's value has been dropped; the caller owns the strong side's
/// weak count.
unsafe fn unregister_and_release(hp: NonNull<Header>) {
    // SAFETY: the strong side's weak count keeps the header.
    let h = unsafe { hp.as_ref() };
    let s = reg_shard(h.reg.load(Relaxed));
    if s == my_shard() {
        if let Some(g) = try_lock_shard(s) {
            let (mut g, drained) = drain_locked(s, g);
            unregister_locked(s, &mut g, h);
            drop(g);
            release_drained(drained);
            // SAFETY: the strong side's weak count, released once.
            unsafe { release_weak(hp) };
            return;
        }
    }
    let sh = &heap().shards[s];
    let bytes = footprint(h.vtable.size);
    // The next pusher links to us through our address: expose our
    // provenance (the address may be a reused one whose earlier owner's
    // was exposed instead).
    let _ = hp.as_ptr().expose_provenance();
    let mut head = sh.pending.load(Relaxed);
    loop {
        h.scan.store(head.expose_provenance() as u64, Relaxed);
        // Release: the link and the dropped value are visible to the
        // drainer (pairs with its Acquire swap).
        match sh
            .pending
            .compare_exchange_weak(head, hp.as_ptr(), Release, Relaxed)
        {
            Ok(_) => break,
            Err(x) => head = x,
        }
    }
    // `h` may be freed by a drainer from here on: only `bytes` is used.
    if sh.pending_bytes.fetch_add(bytes, Relaxed) + bytes >= PENDING_MAX {
        if let Some(g) = try_lock_shard(s) {
            let (g, drained) = drain_locked(s, g);
            drop(g);
            release_drained(drained);
        }
    }
}

/// The strong count of a live object reached zero: finalize or free it —
/// unless the running cycle examined it (its registration pass recorded
/// the object, and may still read its header and value until it ends):
/// then it joins its shard's `deferred` list, and the cycle finalizes or frees it
/// once it no longer reads any object (the cycle does not pin the objects
/// it examines with a count of its own, which cost two locked instructions
/// per live object and cycle).
///
/// Why the cycle never reads a freed object: its registration pass stores
/// the epoch into `seen`, then fences (SeqCst), then reads the count, and
/// examines the object only if the count was positive; this reads the
/// epoch after the decrement (a SeqCst RMW). Either the pass read the
/// count after the decrement (and saw zero: not examined), or this read
/// comes after the pass's store (and defers).
///
/// # Safety
/// As [`zero`].
pub(crate) unsafe fn zero_or_defer(hp: NonNull<Header>) {
    // SAFETY: the caller took the count to zero; the header is alive.
    let h = unsafe { hp.as_ref() };
    let hpp = heap();
    // Loom treats SeqCst loads as Acquire (its documented limitation), so
    // it would let these loads pass the decrement; the model adds the fence
    // that C++20's rules on SeqCst operations against SeqCst fences give
    // the real code: were the cycle's count read (after its fence) to miss
    // our decrement, its fence precedes our decrement in the total order,
    // which precedes our loads, so they see its `seen` and `active`.
    #[cfg(gort_loom)]
    crate::loom::fence(SeqCst);
    let a = hpp.active.load(SeqCst);
    let reg = h.reg.load(SeqCst);
    if a != 0 && reg_seen(reg) == a {
        let mut d = lock(&hpp.shards[reg_shard(reg)].deferred);
        // Under the lock: the cycle stores `active` = 0 before it takes the
        // lock to drain the list, so an entry pushed here is drained; if
        // the cycle has ended (or another began, which cannot have
        // examined an object whose count was already zero), free now.
        if hpp.active.load(SeqCst) == a {
            d.push(Deferred(hp));
            return;
        }
    }
    // SAFETY: as the caller promises.
    unsafe { zero(hp) };
}

/// A header whose free waits for the running cycle (`Shard::deferred`).
pub(crate) struct Deferred(pub(crate) NonNull<Header>);

// SAFETY: the object's count is zero: nobody else uses the header until
// the cycle frees it, on whatever thread.
unsafe impl Send for Deferred {}

/// The strong count of a live object reached zero: finalize or free it.
///
/// # Safety
/// The caller took the count to zero; no handle remains.
pub(crate) unsafe fn zero(hp: NonNull<Header>) {
    // SAFETY: the header stays allocated until the strong side's weak count
    // is released below.
    let h = unsafe { hp.as_ref() };
    if let Some(f) = special::take_finalizer(h) {
        // Resurrect for the finalizer: weak pointers are cleared first, in
        // the same RMW (an upgrade sees either count 0 or WEAK_DEAD).
        let _ =
            h.rc.fetch_update(SeqCst, SeqCst, |w| Some((w | WEAK_DEAD) + 1));
        special::queue_finalizer(hp, f);
        return;
    }
    h.rc.fetch_or(DEAD | WEAK_DEAD, SeqCst);
    // SAFETY: dead, unreachable, not yet dropped.
    unsafe { free_iterative(hp) };
}

/// Drops the value, queues cleanups, unregisters and releases the strong
/// side's weak count — iteratively across the nested frees of this
/// goroutine (or plain thread). A panicking `Drop` does not stop the
/// others; the first panic resumes once the queue is empty.
///
/// # Safety
/// `hp` is DEAD and unreachable; its value has not been dropped.
unsafe fn free_iterative(hp: NonNull<Header>) {
    if let Some(list) = FREEING.try_with(|l| *l) {
        // A free nested in one of this flow's drops: queue it for the
        // outermost free.
        // SAFETY: the pointer is set only by the scope below, which is
        // still running on this flow, to a list in its frame.
        unsafe { &*list }.borrow_mut().push(hp);
        return;
    }
    // The borrows of `list` are never held across user code (a `Drop`
    // may free, park, or re-enter).
    let list = RefCell::new(Vec::new());
    let panicked = FREEING.scope(&list, || {
        let mut panicked = None;
        let mut next = Some(hp);
        while let Some(hp) = next {
            // A panicking Drop must not leak the objects queued behind it,
            // nor its own registration: keep freeing, then resume the first
            // panic (as drop glue goes on dropping the other fields of a
            // value one of whose fields panicked).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: each queued object is dead and unreachable
                // (caller); dropped once.
                unsafe { (hp.as_ref().vtable.drop_value)(hp) };
            }));
            // SAFETY: dropped (a drop that unwound has dropped the fields).
            unsafe { after_drop(hp) };
            if let Err(p) = r {
                panicked.get_or_insert(p);
            }
            next = list.borrow_mut().pop();
        }
        panicked
    });
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
}

/// Cleanups, unregistration, and the strong side's weak count.
///
/// # Safety
/// The value of `hp` has been dropped.
pub(crate) unsafe fn after_drop(hp: NonNull<Header>) {
    // SAFETY: the strong side's weak count keeps the header.
    let h = unsafe { hp.as_ref() };
    special::on_free(h);
    // SAFETY: dropped; we own the strong side's weak count.
    unsafe { unregister_and_release(hp) };
}

/// Drops one weak count; frees the allocation at zero.
///
/// # Safety
/// The caller owns one weak count of a header.
pub(crate) unsafe fn release_weak(hp: NonNull<Header>) {
    // SAFETY: our weak count keeps the header allocated.
    let h = unsafe { hp.as_ref() };
    // AcqRel: every earlier user's release pairs with the final acquire.
    if h.weak.fetch_sub(1, AcqRel) == 1 {
        debug_assert!(h.rc.load(Relaxed) & STRONG == 0 || h.rc.load(Relaxed) & DEAD != 0);
        // SAFETY: last reference of any kind; header freed exactly once.
        unsafe {
            special::free_specials(h);
            (h.vtable.dealloc)(hp);
        }
    }
}

/// Unregisters and deallocates what every shard's `pending` stack holds
/// (the collector, before it reads the registry and before it reads the
/// live heap for the next goal: the garbage it freed went there).
pub(crate) fn drain_all() {
    for s in 0..SHARDS {
        if !heap().shards[s].pending.load(Relaxed).is_null() {
            let (g, drained) = lock_shard(s);
            drop(g);
            release_drained(drained);
        }
    }
}

/// Sums of the shard counters: (mallocs, frees, bytes, objects).
pub(crate) fn shard_totals() -> (u64, u64, u64, u64) {
    let (mut m, mut f, mut b, mut o) = (0, 0, 0, 0);
    for s in 0..SHARDS {
        let (g, drained) = lock_shard(s);
        m += g.mallocs;
        f += g.frees;
        b += g.bytes;
        o += g.objs.len() as u64;
        drop(g);
        release_drained(drained);
    }
    (m, f, b, o)
}
