//! gort-gc: Go's garbage collector API — `Gc<T>`, finalizers, cleanups,
//! weak pointers, `gc()`, GOGC/GOMEMLIMIT pacing and MemStats — for Rust
//! values shared between goroutines and threads.
//!
//! ```
//! use gort_gc::{gc, set_finalizer, Gc, Trace};
//! use std::sync::Mutex;
//!
//! #[derive(Trace)]
//! struct Node {
//!     name: String,
//!     next: Mutex<Option<Gc<Node>>>,
//! }
//!
//! let a = Gc::new(Node { name: "a".into(), next: Mutex::new(None) });
//! let b = Gc::new(Node { name: "b".into(), next: Mutex::new(Some(a.clone())) });
//! *a.next.lock().unwrap() = Some(b.clone()); // a cycle
//! let w = Gc::downgrade(&a);
//! drop((a, b));
//! gc(); // finds and frees the unreachable cycle
//! assert!(w.upgrade().is_none());
//!
//! let c = Gc::new(Node { name: "c".into(), next: Mutex::new(None) });
//! set_finalizer(&c, |c| println!("finalizing {}", c.name));
//! drop(c); // queued at once; runs on the finalizer goroutine after a gc()
//! ```
//!
//! # The problem
//!
//! Go programs share pointers freely, build cyclic structures, and rely on
//! the runtime to reclaim them, to run finalizers (`runtime.SetFinalizer`)
//! and cleanups (`runtime.AddCleanup`), to clear weak pointers, and to pace
//! collections with `GOGC` and `GOMEMLIMIT`. Rust has `Arc`, which leaks
//! cycles and has none of the rest. A Rust collector cannot scan stacks or
//! registers (it does not know where the `Gc`s are), cannot stop the world
//! at safepoints (arbitrary Rust code has none), and must stay sound while
//! other threads mutate the graph during a collection.
//!
//! # The design
//!
//! **Counting for the common case.** Every object is a `GcBox`: a header
//! (strong count, weak count, vtable, finalizer/cleanup "specials",
//! registry position) and the value. Cloning a [`Gc`] increments, dropping
//! decrements; at zero the object is freed at once on the dropping thread
//! (iteratively, so a million-long list does not overflow a goroutine
//! stack) — or, if it has a finalizer, resurrected and queued to the
//! finalizer goroutine. Acyclic garbage never waits for a collection.
//!
//! **Trial deletion for cycles.** Every object is in a sharded registry.
//! A cycle ([`gc`], or the background thread when the pacer triggers) is
//! Bacon and Rajan's synchronous cycle collection made concurrent:
//!
//! 1. *Start*: store the cycle's epoch into `ACTIVE`. From then on every
//!    mutator clone, drop, dereference and weak upgrade *touches* the
//!    object: it writes the epoch into the object's count word (in the same
//!    RMW as a count change).
//! 2. *Register*: under each shard's lock (taken for 4096 objects at a
//!    time), write the epoch into each registered object's `seen` field,
//!    fence, then read the counts: every object whose count is positive is
//!    examined (a node of the cycle). A mutator that takes an examined
//!    object's count to zero sees `seen` (it reads it after its decrement:
//!    the Dekker pair of the fence) and leaves the free to the end of the
//!    cycle, so nothing the collector looks at is freed under it; a freed
//!    object's memory is released only after it has been unregistered
//!    under its shard's lock. (The collector used to pin each examined
//!    object with a count of its own: two locked instructions per live
//!    object, a third of a cycle.)
//! 3. *Trace* each examined object once, through [`Trace`]; record its
//!    edges (the snapshot) and count, per object, the handles found inside
//!    examined objects (`internal`). Locks are taken with `try_lock`; a held lock
//!    makes the object a root ([`Tracer::opaque`]). Each handle's tag is
//!    set to the epoch; a handle met a second time (it was moved between
//!    two traced objects) makes its second container a root.
//! 4. *Decide*: read each count word once, right after the object's own
//!    trace (its header is in cache then; the decision waits for every
//!    trace's handle counts). An object is a root if it was
//!    touched this cycle, if it has more handles than were found inside
//!    examined objects (the rest are on stacks, in statics, in `Arc`s, in
//!    objects allocated after the registration, in finalizer closures), if
//!    it has none left (its free waits for the end of the cycle and drops
//!    its handles then), or if it was not fully traced. Mark from the roots over the *snapshot* edges.
//!    Unmarked objects with a finalizer keep what they reach (as Go marks
//!    the referents of finalizable objects).
//! 5. *Claim* every unmarked object with a CAS from the exact word read in
//!    step 4. If any CAS fails, something touched the set: nothing is freed
//!    this cycle. Claimed objects become dead (weak upgrades fail), or, with
//!    a finalizer, resurrected (weak pointers cleared, a count added for the
//!    finalizer's handle).
//! 6. *Free*: mark the handles between dead objects severed (dropping one
//!    does nothing, dereferencing or cloning one panics, so a `Drop` impl
//!    cannot use or smuggle out a handle to a freed sibling), drop the
//!    values, queue cleanups, unregister and deallocate (or leave the header
//!    to its weak pointers). Then clear `ACTIVE` and free the objects whose
//!    last handle went during the cycle.
//!
//! Mutators do not wait for the collector's locks (an allocation that
//! outruns a whole cycle waits for its end: see "Pacing"). An allocating thread that finds
//! its shard locked registers in the next free shard; a freeing thread
//! that finds the object's shard locked, or that frees an object of
//! another thread's shard, pushes it on the shard's lock-free `pending`
//! stack, and whoever takes the lock next (above all the allocating
//! thread's next allocation; each cycle drains every stack) unregisters and
//! deallocates it — so memory goes back to the allocator cache of the
//! thread that allocated it; past about 32 KiB a stack's pusher drains it
//! itself (`heap::unregister_and_release`); a free deferred to
//! the end of a cycle is a push on the shard's `deferred` list, whose lock
//! the collector holds only to swap the list out. The one exception
//! is a weak upgrade of an object in the middle of being claimed: it
//! yields until the claim pass (no tracing, one CAS per object) resolves.
//! The collector's buffers are kept between cycles, so a cycle does not
//! map and unmap tens of megabytes (munmap holds the mmap lock every
//! mutator page fault needs). `GORT_GCTRACE=1` prints each cycle's phase
//! times (Go's `GODEBUG=gctrace=1`).
//!
//! **Per-goroutine state.** The runtime state that lives while user code
//! runs — the pending-free list of the outermost free, on which nested
//! frees are queued, and the "inside the collector" mark that makes `gc()`
//! from a collector-run `Drop` panic — belongs to the goroutine
//! (gort-sched's goroutine-local storage; on a plain thread, a
//! thread-local), not to the thread: a `Drop` may park, and the other
//! goroutines of its M must neither find their frees queued behind it nor
//! be taken for the collector (gort-sched's crate docs, "Goroutines share
//! their thread").
//!
//! ## Why no live object is freed
//!
//! Suppose the collector frees X, yet a mutator can still reach X. Every
//! way to reach X's interior goes through a handle to X. Take the handles
//! to X at the decision read; since X was not a root, there were exactly
//! `internal(X)` of them (counted once each, by tag), each seen inside an
//! examined object at that object's trace; and X was untouched, so the count
//! did not change from the start of the cycle through the claim (a change
//! would have failed the claim CAS: count changes and touches are RMWs on
//! the same word, in one total order with the claim). A clone or drop
//! that read `ACTIVE` as 0 just before the cycle began changes the count
//! without touching, at most once per thread; its handle is on a stack or
//! in a locked field no trace counted, so the count it leaves exceeds
//! `internal(X)` and X is a root.
//!
//! The mutator reaches X through some chain of handles starting outside
//! managed objects (a stack, a static, an `Arc`). Each handle on the chain
//! is either in the field where the collector saw it, or it was moved
//! there. A move writes the field of some object P after, or before, the
//! collector read that field. *Before*: the trace saw the new content.
//! *After*: the collector's read happens-before the mutator's write
//! (through the lock guarding the field — a field without a lock cannot be
//! written while shared), and the collector stored `ACTIVE` before that
//! read, so the mutator's later count operations see `ACTIVE` and touch —
//! and reaching P's field to write it required dereferencing a handle to P
//! after that point (a touch: P is a root if the touch came before P's
//! decision read, or before the re-read of the unmarked words that
//! follows the marking; if it came after both, it came before P's claim
//! CAS or after it, and P, if unmarked, fails that CAS, which releases
//! the whole claim; when marked, P's snapshot edges, taken before the
//! move, mark what P held) or holding a borrow of P from before
//! the cycle (the borrow pins the chain of handles it came through: they
//! cannot move while borrowed, so that chain is in the snapshot from a
//! handle outside managed objects, whose target is a root, down to P).
//! Either way the objects the chain passes through are marked, the
//! snapshot edges from them are marked, and X is marked — contradiction.
//! The loom models in `src/tests/` check the counting, touching, claiming
//! and weak-upgrade races on the real code.
//!
//! A weak upgrade is a count change on the same word: it either precedes
//! the claim (which then fails) or sees `CLAIMING` and waits for the claim
//! pass to resolve to dead (upgrade fails) or released (it succeeds).
//!
//! # Finalizers, cleanups, weak pointers
//!
//! [`set_finalizer`] follows Go: one-shot, run on a single finalizer
//! goroutine (started on first use with `gort_sched::go`, parked on the
//! queue with `WaitReason::FinalizerWait`), the object resurrected for it
//! and freed later if still unreachable, referents kept until it has run,
//! a closure capturing its own object keeps it alive forever, nothing runs
//! at process exit. As in Go, queued finalizers and cleanups run after a
//! collection: the goroutine is woken at the end of each cycle, or once 256
//! jobs are pending (a loop dropping finalizable objects then costs one
//! wake-up per batch). [`add_cleanup`] follows Go 1.24's `AddCleanup`: several
//! per object, run after the object is freed, never resurrect, do not keep
//! cycles alive; returns a [`Cleanup`] with `stop`. [`Weak`] is Go's
//! `weak.Pointer`.
//!
//! # Pacing
//!
//! A background collection starts when the managed heap reaches the goal:
//! `live_after_last_cycle × (1 + GOGC/100)` (at least 4 MiB × GOGC/100), or
//! the soft limit ([`set_memory_limit`], `GOMEMLIMIT` with Go's unit
//! syntax) if lower. `GOGC=off` leaves only the limit. Allocation only
//! adds to a per-shard counter; the trigger wakes the `gort-gc` thread.
//! The heap is counted as the memory it costs: each object's allocation
//! as malloc rounds it, plus its registry slot and the collector's
//! per-object work (about 64 bytes), as Go's limit counts the runtime's
//! metadata; `MemStats::heap_alloc` still reports the objects' bytes.
//!
//! An allocator that finds the heap 1/16 past its goal waits for the cycle
//! in progress to end (Go's GC assists, reduced to their effect): a thread
//! allocating garbage cycles faster than one collector thread frees them
//! is slowed to the collector's pace instead of growing the heap without
//! bound. The wait blocks the thread and never parks the goroutine
//! (`Gc::new` is not a park point: its caller may hold a `std` lock that
//! another goroutine of the same M would block the thread on), and it is
//! bounded (a cycle whose `Drop` impl needs a lock the waiting allocator
//! holds must not deadlock): see `pacer::assist`.
//!
//! `GOGC` and `GOMEMLIMIT` are checked when the runtime starts, as
//! `GOMAXPROCS` is: gort-sched's `Config::from_env` rejects an unusable
//! value, so the first `gort::go`/`run` panics with `gort: invalid
//! GOGC="abc": ...` before any `Gc` exists (issue 11, item 9). Before, the
//! check ran at the first allocation: the error was a panic in whichever
//! goroutine allocated first, and later allocations ignored it. The parser
//! lives in gort-sched (one parser; the pacer reads its initial values
//! through it at the first allocation, which still panics — every time —
//! on a value that slipped past the start, e.g. a `Gc` made before the
//! runtime started). An out-of-range `GOMEMLIMIT` (above 8 EiB - 1, or
//! negative) is reported as out of range, not as malformed. The values are
//! not fields of gort-sched's `Config`: it could not pass them up without
//! a hook, and `init(Config)` reads no environment; gort-gc reads them.
//!
//! # Rejected alternatives
//!
//! * *Tracing from registered roots* (`gc-arena`, `rust-gc`'s `Root`):
//!   makes users register roots, which the issue rules out.
//! * *Re-tracing in the mark phase* (mark from roots by tracing again):
//!   a `Gc` moved from a traced field to the stack changes no count and is
//!   then seen by neither pass; marking uses the counting pass's snapshot.
//! * *Stop-the-world with a global lock around every clone/drop*: simple,
//!   but every mutator waits for the whole trace (tens of ms for a million
//!   objects); the touch is one load of `ACTIVE` when no cycle runs.
//! * *Possible-roots buffers* (objects decremented to non-zero, as in the
//!   `dumpster` crate): cheaper cycles when little changed, but every drop
//!   pays for buffering; a registry keeps drops to one RMW and makes
//!   `HeapObjects` exact.
//! * *Deref writes on every access* (dumpster stores a generation on every
//!   dereference): gort only writes while a cycle is active.
//!
//! # Invariants
//!
//! * An examined object's value and header stay valid until the cycle has
//!   cleared `ACTIVE` and drained the `deferred` lists (it reads no object
//!   after clearing `ACTIVE`): it had a positive count after its `seen` was written
//!   and fenced, so the decrement that takes it to zero sees `seen` and
//!   defers the free to the cycle's end (`heap::zero_or_defer`). The
//!   collector writes `seen` only under the shard lock, and a registered
//!   object's memory is valid under it (a freed object is unregistered —
//!   directly, or from the shard's `pending` stack — under that lock
//!   before its memory is released).
//! * An object is examined at most once per cycle (its `scan` word names
//!   its node, checked against the node's header, so a stale word from
//!   65535 cycles ago or a `pending` link is never taken for a node).
//! * An object is freed once: by the thread whose decrement reached zero,
//!   or by the cycle whose `seen` that decrement found (a deferred free:
//!   also for an object the cycle did not examine after all, whose count
//!   was zero at the registration read; an object with no count left is a
//!   root, never claimed), or by the collector after a successful claim of
//!   its whole garbage set.
//! * `DEAD` or `WEAK_DEAD` is set before the value is dropped or the
//!   object resurrected for a finalizer; a weak upgrade never succeeds
//!   after either.
//! * The allocation is freed when the weak count (weak handles + one for
//!   the strong side, released after unregistering) reaches zero.
//! * Only one collection runs at a time; handle tags are written by it
//!   alone, and `scan` too while the object lives (a freed object's
//!   `scan` links its shard's `pending` stack).
//!
//! # Testing under miri
//!
//! The unsafe core is exercised by the unit tests in
//! `src/tests/unsafe_core.rs`: the header's layout and counts, the
//! registry (registration, unregistration, the deferred `pending` stack),
//! the zero path, weak handles outliving their value, specials, and a
//! collection's registration, snapshot, touch, claim, sever, free and
//! deferred-free steps — each driven to a known point without timing (a
//! mutator action "during a cycle" is run by the collector itself from a
//! `Trace` impl, between the registration and the decision). They run in the normal `cargo test -p
//! gort-gc --lib` and under miri:
//!
//! ```text
//! MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-permissive-provenance" \
//!     cargo +nightly miri test -p gort-gc --lib
//! ```
//!
//! Isolation is off because a cycle reads the wall clock (`MemStats::
//! last_gc`); permissive provenance because the `pending` stack links
//! headers through an integer field (exposed provenance). The two tests
//! that need the finalizer goroutine are ignored under miri (it runs on
//! gort-sched's stacks, which miri cannot switch). That run passes (19
//! tests, 2 ignored); its first run found a Stacked Borrows violation in
//! `add_cleanup` (an `Arc` count raised through a pointer made from a
//! `&Specials`), fixed since. Miri is not part of CI. The API tests in
//! `tests/` shrink their sizes under `cfg(miri)` but are not run under
//! miri (most of them start goroutines).

mod collect;
mod gc;
mod heap;
mod loom;
mod memprof;
mod pacer;
mod special;
#[cfg(test)]
mod tests;
mod trace;

#[cfg(not(gort_loom))]
pub use collect::gc_pauses;
pub use collect::{add_gc_hook, gc, Tracer};
pub use gc::{Gc, Weak};
pub use gort_gc_derive::Trace;
pub use memprof::{
    mem_profile, mem_profile_rate, set_mem_profile_rate, MemRecord, DEFAULT_MEM_PROFILE_RATE,
};
#[cfg(not(gort_loom))]
pub use pacer::{config_from_env, parse_gogc, parse_gomemlimit, ConfigError};
pub use pacer::{set_gc_percent, set_memory_limit};
pub use special::{add_cleanup, clear_finalizer, set_finalizer, Cleanup};
pub use trace::Trace;

use crate::loom::Ordering::Relaxed;

/// Keeps `x` alive up to this call (Go's `runtime.KeepAlive`). With
/// reference counting a handle is alive until it is dropped; this marks the
/// point explicitly and stops the optimizer from moving the drop earlier.
#[inline]
pub fn keep_alive<T: ?Sized>(x: &T) {
    std::hint::black_box(x);
}

/// Statistics of the managed heap (the fields of Go's `runtime.MemStats`
/// that apply here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes of live managed objects (headers included).
    pub heap_alloc: u64,
    /// Live managed objects.
    pub heap_objects: u64,
    /// Objects allocated, ever.
    pub mallocs: u64,
    /// Objects freed, ever (by counting or by the cycle collector).
    pub frees: u64,
    /// Completed collection cycles.
    pub num_gc: u32,
    /// Cycles started by [`gc`].
    pub num_forced_gc: u32,
    /// Sum of [`MemStats::last_pause_ns`] over all cycles. gort-gc never
    /// stops the world: a "pause" is the longest time one registry shard
    /// was locked for registration, the longest any allocating or freeing
    /// mutator could have waited on the collector.
    pub pause_total_ns: u64,
    /// The pause of the last cycle (see `pause_total_ns`).
    pub last_pause_ns: u64,
    /// When the last cycle finished, ns since the Unix epoch.
    pub last_gc: u64,
    /// The heap size at which the next automatic cycle starts, counted as
    /// the pacer counts: each object's allocation as malloc rounds it plus
    /// the runtime's per-object costs (so more than `heap_alloc` for the
    /// same objects; see the crate docs, "Pacing").
    pub next_gc: u64,
    /// Objects freed by the cycle collector (members of garbage cycles).
    pub cycle_frees: u64,
    /// Finalizers queued, ever.
    pub finalizers_queued: u64,
    /// Finalizers that have run.
    pub finalizers_run: u64,
    /// Cleanups queued, ever.
    pub cleanups_queued: u64,
    /// Cleanups that have run.
    pub cleanups_run: u64,
    /// GOGC (-1: off).
    pub gc_percent: i64,
    /// The soft memory limit in bytes (`i64::MAX`: none).
    pub memory_limit: i64,
}

/// Reads the heap statistics (Go's `runtime.ReadMemStats`). Not a snapshot
/// of one instant: counters are read one after the other, without stopping
/// anyone.
pub fn read_mem_stats() -> MemStats {
    let hp = heap::heap();
    let (mallocs, frees, bytes, objects) = heap::shard_totals();
    let s = &hp.stats;
    MemStats {
        heap_alloc: bytes,
        heap_objects: objects,
        mallocs,
        frees,
        num_gc: s.num_gc.load(Relaxed) as u32,
        num_forced_gc: s.num_forced_gc.load(Relaxed) as u32,
        pause_total_ns: s.pause_total_ns.load(Relaxed),
        last_pause_ns: s.last_pause_ns.load(Relaxed),
        last_gc: s.last_gc_ns.load(Relaxed),
        next_gc: hp.next_gc.load(Relaxed).max(0) as u64,
        cycle_frees: s.cycles_freed.load(Relaxed),
        finalizers_queued: s.fin_queued.load(Relaxed),
        finalizers_run: s.fin_run.load(Relaxed),
        cleanups_queued: s.cleanups_queued.load(Relaxed),
        cleanups_run: s.cleanups_run.load(Relaxed),
        gc_percent: hp.gc_percent.load(Relaxed),
        memory_limit: hp.mem_limit.load(Relaxed),
    }
}
