//! The concurrent cycle collector: register, trace (one snapshot of edges
//! per object), decide, claim, free. See the crate docs for the protocol and
//! why it never frees a live object.

use crate::gc::{
    reg_seen, Gc, Header, CLAIMING, DEAD, EPOCH_SHIFT, FLAGS, SEEN_SHIFT, SEVERED, STRONG,
    WEAK_DEAD,
};
use crate::heap::{self, heap};
use crate::loom::{fence, gc_flow_local, lock, park, MutexGuard, Ordering::*, WaitReason, Waiter};
use crate::special;
use crate::trace::Trace;
use std::ptr::NonNull;
use std::time::Instant;

/// Who is collecting, and who waits for it.
pub(crate) struct CollectorState {
    running: bool,
    waiters: Vec<Waiter>,
    /// The last epoch used (1..=65535, cycling).
    epoch: u64,
    /// Managed bytes live after the last cycle (the pacer's base).
    pub(crate) live_after_last: i64,
    /// The cycle's work vectors, kept between cycles so a cycle does not
    /// map and unmap tens of MB (munmap holds the process's mmap lock, which
    /// stalls every mutator page fault). Taken by the running cycle.
    bufs: Option<Box<Bufs>>,
}

#[derive(Default)]
struct Bufs {
    nodes: Vec<Node>,
    edges: Vec<u32>,
    stack: Vec<u32>,
    garbage: Vec<u32>,
    dead: Vec<NonNull<Header>>,
}

// SAFETY: the headers in the buffers are only used by the cycle that owns
// the buffers; between cycles the vectors are empty.
unsafe impl Send for Bufs {}

impl CollectorState {
    pub(crate) const fn new() -> CollectorState {
        CollectorState {
            running: false,
            waiters: Vec::new(),
            epoch: 0,
            live_after_last: 0,
            bufs: None,
        }
    }
}

/// One examined object in the current cycle.
struct Node {
    h: NonNull<Header>,
    /// The `rc` word at the decision read.
    word: u64,
    /// Handles to this object found inside other examined objects.
    internal: u32,
    /// Edges `edges[start..end]` (node indices) from the snapshot.
    start: u32,
    end: u32,
    /// Must be kept: externally referenced, touched, or not fully traced.
    root: bool,
    mark: bool,
    /// Kept only because a finalizable garbage object reaches it.
    fin_mark: bool,
    has_fin: bool,
}

enum Mode<'a> {
    Scan {
        epoch: u64,
        nodes: &'a mut Vec<Node>,
        edges: &'a mut Vec<u32>,
        cur: usize,
    },
    Sever,
}

/// What [`Trace::trace`] reports to: the collector's view of one object.
pub struct Tracer<'a> {
    mode: Mode<'a>,
}

impl Tracer<'_> {
    /// Reports a `Gc` handle owned by the traced value.
    pub fn visit<T: Trace + Send + Sync + 'static>(&mut self, gc: &Gc<T>) {
        match &mut self.mode {
            Mode::Scan {
                epoch,
                nodes,
                edges,
                cur,
            } => {
                let prev = gc.tag.load(Relaxed);
                if prev == SEVERED {
                    return;
                }
                // Only the collector writes tags (one collector at a time).
                gc.tag.store(*epoch, Relaxed);
                let seen_before = prev == *epoch;
                if seen_before {
                    // Moved during this cycle from an object traced earlier:
                    // its count was taken there; keep this object and what it
                    // reaches.
                    nodes[*cur].root = true;
                }
                let s = gc.header().scan.load(Relaxed);
                // The node check guards against a stale `scan` from 65535
                // cycles ago.
                if s >> 32 == *epoch
                    && nodes
                        .get(s as u32 as usize)
                        .is_some_and(|n| n.h == gc.header_ptr())
                {
                    let i = s as u32;
                    edges.push(i);
                    if !seen_before {
                        nodes[i as usize].internal += 1;
                    }
                }
            }
            Mode::Sever => {
                // A handle severed earlier (smuggled out of a previous dead
                // cycle into this object) points at freed memory: skip it
                // before reading its header.
                if gc.tag.load(Relaxed) == SEVERED {
                    return;
                }
                if gc.header().rc.load(SeqCst) & DEAD != 0 {
                    gc.tag.store(SEVERED, Relaxed);
                }
            }
        }
    }

    /// Reports that some of the value's handles could not be read (a lock
    /// was held): the object is kept this cycle.
    pub fn opaque(&mut self) {
        if let Mode::Scan { nodes, cur, .. } = &mut self.mode {
            nodes[*cur].root = true;
        }
    }
}

gc_flow_local! {
    /// Set while this goroutine (or plain thread) runs a collection, whose
    /// user code (`Drop` impls of dead cycles, hooks) may call `gc()`: that
    /// would wait for its own cycle forever, so it panics instead. Per
    /// goroutine, not per thread: a collector-run `Drop` may park, and
    /// another goroutine of the same M may then call `gc()` and wait for the
    /// cycle like any other caller.
    static COLLECTING: ();
}

/// Runs a full collection and returns when it is done (Go's
/// `runtime.GC`). If a collection is already running, waits for it and then
/// runs a fresh one, so everything unreachable when `gc` was called is
/// found.
///
/// Finalizers and cleanups found by the cycle are queued, and `gc` then
/// lets the finalizer goroutine run them, waiting up to 10 ms (Go's
/// `runtime.GC` parks its caller, which gives queued finalizers their turn;
/// the idiom "collect, then a non-blocking receive of what a finalizer
/// sent" relies on it). It does not wait longer: a finalizer that blocks
/// cannot hang `gc`. Calling `gc` from a finalizer or cleanup is fine (it
/// does not wait for the finalizer goroutine). Calling it from a `Drop` impl that the
/// collector itself is running (an object of a collected cycle) panics
/// (it would wait for its own cycle). Only the collecting goroutine is
/// affected: if such a `Drop` parks, another goroutine of the same thread
/// that calls `gc` meanwhile waits for the cycle like any caller — so a
/// collector-run `Drop` must not wait for a goroutine that calls `gc` (that
/// is a deadlock, as any wait on a waiter of yourself).
pub fn gc() {
    collect(true);
    #[cfg(not(gort_loom))]
    crate::special::let_finalizers_run();
}

/// Whether the calling goroutine (or thread) is running a collection.
pub(crate) fn collecting() -> bool {
    COLLECTING.try_with(|_| ()).is_some()
}

/// The collector lock, taken once no collection is running (parking, as
/// `gc()` callers do, while one is).
fn lock_idle_collector(hp: &'static heap::Heap) -> MutexGuard<'static, CollectorState> {
    let mut st = lock(&hp.collector);
    while st.running {
        st.waiters.push(Waiter::current());
        park(WaitReason::GcWait, move || {
            drop(st);
            true
        });
        st = lock(&hp.collector);
    }
    st
}

pub(crate) fn collect(forced: bool) {
    if collecting() {
        panic!("gort-gc: gc() called from a Drop impl run by the collector");
    }
    let hp = heap();
    let mut st = lock_idle_collector(hp);
    // A background cycle re-checks its trigger here, after any forced cycle
    // that ran meanwhile recomputed the goal (GOGC may have been turned off).
    if !forced && hp.live.load(Relaxed) < hp.next_gc.load(Relaxed) {
        return;
    }
    st.running = true;
    st.epoch = st.epoch % 0xffff + 1;
    let epoch = st.epoch;
    let mut bufs = st.bufs.take().unwrap_or_default();
    drop(st);

    /// The cycle's end, also when a user `Drop` or `Trace` panicked: wakes
    /// `gc()` callers and allocators waiting in the pacer's `assist`.
    struct Done(Instant);
    impl Drop for Done {
        fn drop(&mut self) {
            let hp = heap();
            hp.active.store(0, SeqCst);
            // Normally drained by the cycle already; after a panic that
            // escaped it, the frees it deferred happen here.
            if let Some(p) = free_deferred() {
                drop(p); // the cycle's own panic is already unwinding
            }
            let mut st = lock(&hp.collector);
            st.running = false;
            let ws = std::mem::take(&mut st.waiters);
            drop(st);
            for w in ws {
                w.ready();
            }
            crate::pacer::cycle_ended(Some(self.0.elapsed()));
        }
    }
    let done = Done(Instant::now());
    let panicked = COLLECTING.scope((), || {
        let hooks: Vec<fn()> = lock(&hp.hooks).clone();
        for f in hooks {
            f();
        }
        let (longest_hold, panicked) = cycle(epoch, &mut bufs);
        // The garbage the cycle freed went to its shards' `pending` stacks:
        // count it out of the live heap the next goal is set from.
        heap::drain_all();
        let live = hp.live.load(Relaxed).max(0);
        {
            let mut st = lock(&hp.collector);
            st.live_after_last = live;
            st.bufs = Some(bufs);
        }
        crate::pacer::update_goal(live);
        special::flush();
        let s = &hp.stats;
        s.num_gc.fetch_add(1, Relaxed);
        if forced {
            s.num_forced_gc.fetch_add(1, Relaxed);
        }
        s.pause_total_ns.fetch_add(longest_hold, Relaxed);
        s.last_pause_ns.store(longest_hold, Relaxed);
        #[cfg(not(gort_loom))]
        GC_PAUSES.record(longest_hold as i64);
        s.last_gc_ns.store(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            Relaxed,
        );
        panicked
    });
    drop(done);
    // A user Drop or Trace impl panicked during the cycle: the cycle was
    // wound down completely (nothing left undropped); now the
    // panic goes on to the caller.
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
}

/// A panic caught from user code during a cycle.
type Panic = Box<dyn std::any::Any + Send>;

/// One cycle. Returns the longest time a registry shard was locked (the
/// longest a mutator could have waited on the collector), in ns, and the
/// first panic of a user Trace or Drop impl, if any.
fn cycle(epoch: u64, bufs: &mut Bufs) -> (u64, Option<Panic>) {
    let hp = heap();
    let mut panicked: Option<Panic> = None;
    let Bufs {
        nodes,
        edges,
        stack,
        garbage,
        dead,
    } = bufs;
    nodes.clear();
    edges.clear();
    stack.clear();
    garbage.clear();
    dead.clear();
    // 0. Start: from here on every mutator clone/drop/deref/upgrade of an
    //    object touches its word (pairs with the SeqCst load in `active`).
    hp.active.store(epoch, SeqCst);

    // 1. Take every registered object with a positive count as a node
    //    (examined), so that nothing we look at is freed under us: under the shard
    //    lock (which the free path takes before deallocating), store the
    //    epoch into each object's `seen`, fence, then read the counts. An
    //    object whose count a mutator takes to zero from here on waits for
    //    the end of the cycle to be freed (`heap::zero_or_defer`, which
    //    reads `seen` after its decrement: the Dekker pair of this fence);
    //    one whose count was zero already is not examined. One fence per
    //    chunk: no locked instruction per object (a pin count was two, the
    //    pin and the unpin, and a third of a cycle).
    //    The lock is dropped every CHUNK objects so that no mutator
    //    waits long; objects moved by a swap_remove meanwhile may be missed
    //    (not examined: then their handles count as external — safe) and
    //    are never registered twice (`scan` check).
    const CHUNK: usize = 4096;
    let mut longest = 0u64;
    let t_start = Instant::now();
    let mut phases = [0u64; 5];
    // Objects freed on other threads than their shard's wait on its
    // `pending` stack; unregister them before the pass reads the lists.
    heap::drain_all();
    for sh in hp.shards.iter() {
        let mut i = 0;
        loop {
            let g = lock(&sh.inner);
            if i >= g.objs.len() {
                break;
            }
            let t0 = Instant::now();
            let end = (i + CHUNK).min(g.objs.len());
            let chunk = &g.objs[i..end];
            for &h in chunk {
                // SAFETY: registered objects are allocated while we hold the
                // lock.
                let reg = &unsafe { h.as_ref() }.reg;
                // Only lock holders write `reg`: no other writer races this.
                let r = reg.load(Relaxed);
                reg.store(
                    (r & !(u64::MAX << SEEN_SHIFT)) | (epoch << SEEN_SHIFT),
                    Relaxed,
                );
            }
            fence(SeqCst);
            for &h in chunk {
                // SAFETY: as above.
                let hr = unsafe { h.as_ref() };
                let sc = hr.scan.load(Relaxed);
                if sc >> 32 == epoch && nodes.get(sc as u32 as usize).is_some_and(|n| n.h == h) {
                    continue;
                }
                let w = hr.rc.load(SeqCst);
                if w & STRONG == 0 || w & DEAD != 0 {
                    continue;
                }
                debug_assert_eq!(reg_seen(hr.reg.load(Relaxed)), epoch);
                hr.scan.store((epoch << 32) | nodes.len() as u64, Relaxed);
                nodes.push(Node {
                    h,
                    word: 0,
                    internal: 0,
                    start: 0,
                    end: 0,
                    root: false,
                    mark: false,
                    fin_mark: false,
                    // Read once here, while the header is in cache; a
                    // finalizer set later needs a handle (a touch).
                    has_fin: special::has_finalizer(hr),
                });
            }
            i = end;
            longest = longest.max(t0.elapsed().as_nanos() as u64);
            drop(g);
        }
    }

    phases[0] = t_start.elapsed().as_micros() as u64;
    let examined = nodes.len();
    // 2. Trace each examined object once; the edges recorded here are the
    //    only ones used for marking (a field emptied later cannot hide an
    //    edge the count saw).
    for i in 0..nodes.len() {
        let h = nodes[i].h;
        nodes[i].start = edges.len() as u32;
        let mut t = Tracer {
            mode: Mode::Scan {
                epoch,
                nodes,
                edges,
                cur: i,
            },
        };
        // A panicking Trace impl must not abandon the cycle (the deferred
        // frees would never run): its object becomes a root (the edges
        // recorded so far are real, so counts stay conservative) and the
        // panic resumes once the cycle is wound down.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: examined, so the value lives until the cycle ends.
            unsafe { (h.as_ref().vtable.trace)(h, &mut t) };
        }));
        if let Err(p) = r {
            nodes[i].root = true;
            panicked.get_or_insert(p);
        }
        nodes[i].end = edges.len() as u32;
        // The decision's read of the count word, right after the trace
        // while the header is in cache (a pass of its own after all traces
        // missed the cache once per object: 20% of a cycle). An object
        // touched later is kept either way: marked (then its snapshot
        // edges are too), or unmarked and read again after the marking
        // (step 3), or, touched after that, the whole claim fails.
        // SAFETY: examined: freed only after the cycle.
        nodes[i].word = unsafe { h.as_ref() }.rc.load(SeqCst);
    }

    phases[1] = t_start.elapsed().as_micros() as u64;
    // 3. Decide, once every trace has counted its handles, on each word as
    //    read after the object's own trace. Roots: touched this cycle (by
    //    then), flagged, more handles than found inside examined objects,
    //    or none at all (its last handle went during the cycle: its free
    //    waits for the cycle's end, and drops its handles then, so what it
    //    reaches must live until then).
    for (i, n) in nodes.iter_mut().enumerate() {
        if n.root || is_root(n.word, n.internal, epoch) {
            n.root = true;
            n.mark = true;
            stack.push(i as u32);
        }
    }
    mark(nodes, edges, stack, false);
    // The words of what is left unmarked, read again: an object touched
    // since its read (a weak upgrade of a member of a garbage cycle, say)
    // becomes a root now, as it would have with the read after all traces,
    // instead of failing the whole claim below and freeing nothing this
    // cycle. One read per unmarked object; a touch after this one fails
    // the claim, as a touch between the decision and the claim always did.
    for (i, n) in nodes.iter_mut().enumerate() {
        if n.mark {
            continue;
        }
        // SAFETY: examined: freed only after the cycle.
        let w = unsafe { n.h.as_ref() }.rc.load(SeqCst);
        if w != n.word {
            n.word = w;
            if is_root(w, n.internal, epoch) {
                n.root = true;
                n.mark = true;
                stack.push(i as u32);
            }
        }
    }
    mark(nodes, edges, stack, false);

    // 4. Garbage with finalizers keeps what it reaches (Go marks the
    //    referents of finalizable objects, not the objects themselves).
    for i in 0..nodes.len() {
        if !nodes[i].mark && nodes[i].has_fin {
            let (s, e) = (nodes[i].start as usize, nodes[i].end as usize);
            for &c in &edges[s..e] {
                let c = c as usize;
                if !nodes[c].mark && !nodes[c].fin_mark {
                    nodes[c].fin_mark = true;
                    stack.push(c as u32);
                }
            }
        }
    }
    mark(nodes, edges, stack, true);

    phases[2] = t_start.elapsed().as_micros() as u64;
    // 5. Claim every unmarked object: CAS from the word we decided on. Any
    //    mutator action since then changed the word, and the whole set is
    //    released (kept) for this cycle.
    garbage.extend((0..nodes.len() as u32).filter(|&i| !nodes[i as usize].mark));
    let mut claimed = 0;
    for &i in garbage.iter() {
        let n = &nodes[i as usize];
        // SAFETY: examined: freed only after the cycle.
        let hr = unsafe { n.h.as_ref() };
        if hr
            .rc
            .compare_exchange(n.word, n.word | CLAIMING, SeqCst, SeqCst)
            .is_err()
        {
            break;
        }
        claimed += 1;
    }
    let ok = claimed == garbage.len();
    // From here `mark` means "keep".
    let mut fins = Vec::new();
    for (k, &i) in garbage.iter().enumerate() {
        let n = &mut nodes[i as usize];
        // SAFETY: examined: freed only after the cycle.
        let hr = unsafe { n.h.as_ref() };
        if !ok {
            if k < claimed {
                hr.rc.fetch_and(!CLAIMING, SeqCst);
            }
            n.mark = true;
        } else if n.fin_mark {
            hr.rc.fetch_and(!CLAIMING, SeqCst);
            n.mark = true;
        } else if n.has_fin {
            match special::take_finalizer(hr) {
                Some(f) => {
                    // Resurrect: weak pointers cleared, and a count for
                    // the finalizer's handle.
                    let _ = hr
                        .rc
                        .fetch_update(SeqCst, SeqCst, |w| Some(((w & !CLAIMING) | WEAK_DEAD) + 1));
                    fins.push((n.h, f));
                }
                None => {
                    // Cleared since the registration read: kept this
                    // cycle, a plain object for the next.
                    hr.rc.fetch_and(!CLAIMING, SeqCst);
                    n.mark = true;
                }
            }
        } else {
            let _ = hr
                .rc
                .fetch_update(SeqCst, SeqCst, |w| Some((w & !CLAIMING) | DEAD | WEAK_DEAD));
            dead.push(n.h);
        }
    }
    for (h, f) in fins {
        special::queue_finalizer(h, f);
    }

    // 6. Free the dead: sever handles between them (so a Drop impl cannot
    //    smuggle one out), drop all values, then release the allocations.
    if !dead.is_empty() {
        for &h in dead.iter() {
            let mut t = Tracer { mode: Mode::Sever };
            // (A Trace impl panicking here unwinds out of the cycle: the
            // dead set is leaked, never dropped with unsevered handles,
            // and `Done` still frees what the cycle deferred.)
            // SAFETY: dead objects' values are alive until the next loop.
            unsafe { (h.as_ref().vtable.trace)(h, &mut t) };
        }
        for &h in dead.iter() {
            // A panicking Drop (e.g. one that used a dead sibling) must not
            // leave the other dead values undropped or the deferred frees
            // undone: keep going, resume the panic at the end.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: claimed dead: unreachable by every mutator;
                // dropped once.
                unsafe { (h.as_ref().vtable.drop_value)(h) };
            }));
            if let Err(p) = r {
                panicked.get_or_insert(p);
            }
        }
        hp.stats.cycles_freed.fetch_add(dead.len() as u64, Relaxed);
        for &h in dead.iter() {
            // SAFETY: dropped above.
            unsafe { heap::after_drop(h) };
        }
    }

    phases[3] = t_start.elapsed().as_micros() as u64;
    // 7. End the cycle; from here no object is read through `nodes`. Then
    //    free the objects whose last handle went while the cycle could read
    //    them (`heap::zero_or_defer`: an entry pushed after our drain finds
    //    `active` cleared, and frees at once).
    hp.active.store(0, SeqCst);
    if let Some(p) = free_deferred() {
        panicked.get_or_insert(p);
    }
    nodes.clear();
    edges.clear();
    phases[4] = t_start.elapsed().as_micros() as u64;
    if gctrace() {
        eprintln!(
            "gort-gc: cycle {epoch}: {} objects, {} freed as cycles; register {} us, trace {} us, decide+mark {} us, claim+free {} us, deferred frees {} us; longest shard hold {} us",
            examined,
            dead.len(),
            phases[0],
            phases[1] - phases[0],
            phases[2] - phases[1],
            phases[3] - phases[2],
            phases[4] - phases[3],
            longest / 1000
        );
    }
    (longest, panicked)
}

/// The decision on one count word (step 3): touched this cycle, flagged,
/// no handle left, or more handles than found inside examined objects.
#[inline]
fn is_root(w: u64, internal: u32, epoch: u64) -> bool {
    let strong = w & STRONG;
    w >> EPOCH_SHIFT == epoch || w & FLAGS != 0 || strong == 0 || strong > internal as u64
}

/// Frees the objects whose last handle went while the cycle could read
/// them (`heap::zero_or_defer`); called once `ACTIVE` is cleared (an
/// entry pushed after this drain finds it cleared and frees at once).
/// Returns the first panic of a user `Drop`, after freeing all of them.
fn free_deferred() -> Option<Panic> {
    let mut panicked = None;
    for sh in heap().shards.iter() {
        let deferred = std::mem::take(&mut *lock(&sh.deferred));
        for heap::Deferred(h) in deferred {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: its count reached zero during the cycle (no handle
                // remains) and it was not freed since.
                unsafe { heap::zero(h) };
            }));
            if let Err(p) = r {
                panicked.get_or_insert(p);
            }
        }
    }
    panicked
}

/// `GORT_GCTRACE=1` prints one line per cycle (Go's `GODEBUG=gctrace=1`).
fn gctrace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("GORT_GCTRACE").is_ok_and(|v| v == "1"))
}

fn mark(nodes: &mut [Node], edges: &[u32], stack: &mut Vec<u32>, fin: bool) {
    while let Some(i) = stack.pop() {
        let (s, e) = (
            nodes[i as usize].start as usize,
            nodes[i as usize].end as usize,
        );
        for &c in &edges[s..e] {
            let n = &mut nodes[c as usize];
            if fin {
                if !n.mark && !n.fin_mark {
                    n.fin_mark = true;
                    stack.push(c);
                }
            } else if !n.mark {
                n.mark = true;
                stack.push(c);
            }
        }
    }
}

/// Registers a function to run at the start of every collection (gort-std
/// registers its `Pool` cleanup here). Registering the same function twice
/// runs it once.
pub fn add_gc_hook(f: fn()) {
    let mut g = lock(&heap().hooks);
    if !g.iter().any(|&x| std::ptr::fn_addr_eq(x, f)) {
        g.push(f);
    }
}

/// Every cycle's pause (see `MemStats::pause_total_ns`), for
/// `/gc/pauses:seconds` and Prometheus' `go_gc_duration_seconds`.
#[cfg(not(gort_loom))]
static GC_PAUSES: gort_sched::prof::TimeHistogram = gort_sched::prof::TimeHistogram::new();

/// The distribution of collection pauses so far (Go's `/gc/pauses:seconds`
/// histogram; see [`crate::MemStats::pause_total_ns`] for what a pause is
/// here).
#[cfg(not(gort_loom))]
pub fn gc_pauses() -> gort_sched::prof::Float64Histogram {
    GC_PAUSES.read()
}
