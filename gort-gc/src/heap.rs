//! The managed heap: the sharded registry of live objects, the zero path
//! (finalize or free), statistics and the pacer's trigger.

use crate::collect::CollectorState;
use crate::gc::{Header, DEAD, STRONG, WEAK_DEAD};
use crate::loom::{
    gc_thread_local, lock, AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Mutex, Ordering::*, SHARDS,
};
use crate::special::{self, FinQueue};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

/// Bytes a shard accumulates before it publishes them to `Heap::live`.
const FLUSH: i64 = 64 << 10;

/// One registry shard: the objects allocated by the threads mapped to it.
#[repr(align(128))]
pub(crate) struct Shard {
    /// Protected by the mutex: registration (allocating thread),
    /// unregistration (freeing thread), the collector's pin pass.
    pub(crate) inner: Mutex<ShardInner>,
}

pub(crate) struct ShardInner {
    pub(crate) objs: Vec<NonNull<Header>>,
    pub(crate) mallocs: u64,
    pub(crate) frees: u64,
    pub(crate) bytes: u64,
    /// Bytes allocated minus freed not yet added to `Heap::live`.
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
    pub(crate) shards: [Shard; SHARDS],
    /// Approximate live managed bytes (shards flush in 64 KiB steps).
    pub(crate) live: AtomicI64,
    /// Heap goal: a cycle is triggered when `live` reaches it.
    pub(crate) next_gc: AtomicI64,
    /// GOGC (negative: off).
    pub(crate) gc_percent: AtomicI64,
    /// GOMEMLIMIT in bytes (i64::MAX: none).
    pub(crate) mem_limit: AtomicI64,
    /// A background cycle has been requested and not yet started.
    pub(crate) triggered: AtomicBool,
    /// GOGC/GOMEMLIMIT read from the environment.
    pub(crate) env_loaded: AtomicBool,
    pub(crate) stats: Stats,
    /// One collection at a time; `gc()` callers wait here.
    pub(crate) collector: Mutex<CollectorState>,
    /// Functions run at the start of each cycle (gort-std's pool cleanup).
    pub(crate) hooks: Mutex<Vec<fn()>>,
    /// The finalizer queue.
    pub(crate) fin: Mutex<FinQueue>,
    /// The background collector thread's wake-up.
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) bg: Mutex<Option<crate::loom::Waiter>>,
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) bg_started: AtomicBool,
    /// Round-robin shard assignment for new threads.
    pub(crate) next_shard: AtomicUsize,
}

#[cfg(not(gort_loom))]
macro_rules! new_shards {
    () => {
        [const {
            Shard {
                inner: Mutex::new(ShardInner::new()),
            }
        }; SHARDS]
    };
}

#[cfg(gort_loom)]
macro_rules! new_shards {
    () => {
        std::array::from_fn(|_| Shard {
            inner: Mutex::new(ShardInner::new()),
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
    static MY_SHARD: Cell<usize> = Cell::new(usize::MAX);
    /// Objects whose values are waiting to be dropped by the outermost
    /// free on this thread (iterative, so freeing a long list does not
    /// overflow a goroutine's stack). `None` when no free is running.
    static FREEING: RefCell<Option<Vec<NonNull<Header>>>> = RefCell::new(None);
}

fn my_shard() -> usize {
    MY_SHARD.with(|c| {
        let s = c.get();
        if s != usize::MAX {
            return s;
        }
        let s = heap().next_shard.fetch_add(1, Relaxed) % SHARDS;
        c.set(s);
        s
    })
}

/// Adds a new object to the registry.
pub(crate) fn register(h: NonNull<Header>, size: usize) {
    let hp = heap();
    crate::pacer::load_env_once();
    let s = my_shard();
    let mut g = lock(&hp.shards[s].inner);
    // SAFETY: `h` is a fresh allocation we own.
    unsafe { h.as_ref() }
        .reg
        .store(((s as u64) << 32) | g.objs.len() as u64, Relaxed);
    g.objs.push(h);
    g.mallocs += 1;
    g.bytes += size as u64;
    g.unflushed += size as i64;
    if g.unflushed >= FLUSH {
        let d = std::mem::take(&mut g.unflushed);
        drop(g);
        let live = hp.live.fetch_add(d, Relaxed) + d;
        crate::pacer::maybe_trigger(live);
    }
}

/// Removes a freed object from the registry.
fn unregister(h: &Header) {
    let hp = heap();
    let size = h.vtable.size;
    let r = h.reg.load(Relaxed);
    let s = (r >> 32) as usize;
    let mut g = lock(&hp.shards[s].inner);
    let slot = h.reg.load(Relaxed) as u32 as usize;
    let last = g.objs.pop().expect("registered object");
    if slot < g.objs.len() {
        g.objs[slot] = last;
        // SAFETY: registered objects are allocated (we hold the lock).
        unsafe { last.as_ref() }
            .reg
            .store(((s as u64) << 32) | slot as u64, Relaxed);
    }
    g.frees += 1;
    g.bytes -= size as u64;
    g.unflushed -= size as i64;
    if g.unflushed <= -FLUSH {
        let d = std::mem::take(&mut g.unflushed);
        drop(g);
        hp.live.fetch_add(d, Relaxed);
    }
}

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
/// side's weak count — iteratively across nested frees on this thread.
///
/// # Safety
/// `hp` is DEAD and unreachable; its value has not been dropped.
unsafe fn free_iterative(hp: NonNull<Header>) {
    let nested = FREEING.with(|f| {
        let mut f = f.borrow_mut();
        match f.as_mut() {
            Some(v) => {
                v.push(hp);
                true
            }
            None => {
                *f = Some(Vec::new());
                false
            }
        }
    });
    if nested {
        return;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FREEING.with(|f| *f.borrow_mut() = None);
        }
    }
    let _reset = Reset;
    let mut next = Some(hp);
    while let Some(hp) = next {
        // SAFETY: each queued object is dead and unreachable (caller).
        unsafe { finish_free(hp) };
        next = FREEING.with(|f| f.borrow_mut().as_mut().and_then(Vec::pop));
    }
}

/// # Safety
/// As for `free_iterative`.
pub(crate) unsafe fn finish_free(hp: NonNull<Header>) {
    // SAFETY: the caller's contract.
    let h = unsafe { hp.as_ref() };
    // SAFETY: unreachable and not yet dropped.
    unsafe { (h.vtable.drop_value)(hp) };
    // SAFETY: dropped; now only bookkeeping.
    unsafe { after_drop(hp) };
}

/// Cleanups, unregistration, and the strong side's weak count.
///
/// # Safety
/// The value of `hp` has been dropped.
pub(crate) unsafe fn after_drop(hp: NonNull<Header>) {
    // SAFETY: the strong side's weak count keeps the header.
    let h = unsafe { hp.as_ref() };
    special::on_free(h);
    unregister(h);
    // SAFETY: the strong side's weak count, released once.
    unsafe { release_weak(hp) };
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

/// Sums of the shard counters: (mallocs, frees, bytes, objects).
pub(crate) fn shard_totals() -> (u64, u64, u64, u64) {
    let (mut m, mut f, mut b, mut o) = (0, 0, 0, 0);
    for s in heap().shards.iter() {
        let g = lock(&s.inner);
        m += g.mallocs;
        f += g.frees;
        b += g.bytes;
        o += g.objs.len() as u64;
    }
    (m, f, b, o)
}
