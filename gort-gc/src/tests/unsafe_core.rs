//! Unit tests of the unsafe core: the object header (layout, counts, the
//! `rc` word), the registry (registration, unregistration, the deferred
//! `pending` stack), the zero path, weak handles against freed objects,
//! and a collection's registration, snapshot, touch, claim, sever, free
//! and deferred-free steps, each driven to a known point with no timing
//! involved.
//!
//! A collection examines every registered object, so these tests run one
//! at a time (`serial`), with automatic collection off: every cycle here is
//! the test's own, and every count is exact. Mutator actions *during* a
//! cycle are run by the collector itself, from a `Trace` impl
//! (`Probe::after_trace`): the traces come after the registration pass and
//! before the decision (each object's word is read right after its own
//! trace, and an unmarked one's again after the marking), so an action
//! there is, deterministically, "a mutator racing the cycle between its
//! registration and its decision".
//!
//! They are written for miri (`cargo +nightly miri test -p gort-gc --lib`;
//! see the crate docs, "Testing under miri"): small sizes, no goroutines
//! except in the two tests marked `cfg_attr(miri, ignore)` (the finalizer
//! goroutine runs on gort-sched's stacks, which miri cannot switch).

use crate::collect::collect;
use crate::gc::{
    touch_slow, GcBox, Header, CLAIMING, DEAD, EPOCH_SHIFT, SEVERED, STRONG, WEAK_DEAD,
};
use crate::heap::{
    drain_locked, footprint, heap, lock_shard, release_drained, set_my_shard, shard_totals,
    PENDING_MAX,
};
use crate::loom::{lock, Ordering::*};
use crate::{Gc, Trace, Tracer, Weak};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};

/// One test at a time, GOGC off (no background cycle), and the registry
/// consistent when the test starts and ends.
struct Serial {
    _guard: MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    static SERIAL: Mutex<()> = Mutex::new(());
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    crate::set_gc_percent(-1);
    registry_consistent();
    Serial { _guard: g }
}

impl Drop for Serial {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            registry_consistent();
        }
    }
}

/// Every shard's counters agree with its list: mallocs - frees = objects.
fn registry_consistent() {
    let (m, f, _, o) = shard_totals();
    assert_eq!(m - f, o, "shard counters disagree with the registry");
}

/// A mutator action a collection runs from a trace.
type Action = Box<dyn FnOnce(&Probe) + Send>;

/// A value that counts its drops, owns handles behind a lock, and can run
/// one mutator action from inside its trace.
struct Probe {
    drops: Arc<AtomicUsize>,
    edges: Mutex<Vec<Gc<Probe>>>,
    after_trace: Mutex<Option<Action>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

// SAFETY: visits exactly the handles in `edges` (once each); the action
// run after the visit owns nothing the trace reports.
unsafe impl Trace for Probe {
    fn trace(&self, t: &mut Tracer<'_>) {
        self.edges.trace(t);
        let f = self.after_trace.lock().unwrap().take();
        if let Some(f) = f {
            f(self);
        }
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn probe(d: &Arc<AtomicUsize>) -> Gc<Probe> {
    Gc::new(Probe {
        drops: d.clone(),
        edges: Mutex::new(Vec::new()),
        after_trace: Mutex::new(None),
    })
}

/// Makes `g` run `f` (once) the next time a collection traces it.
fn on_trace(g: &Gc<Probe>, f: impl FnOnce(&Probe) + Send + 'static) {
    *g.after_trace.lock().unwrap() = Some(Box::new(f));
}

fn link(from: &Gc<Probe>, to: &Gc<Probe>) {
    from.edges.lock().unwrap().push(to.clone());
}

fn word<T: Trace + Send + Sync + 'static>(g: &Gc<T>) -> u64 {
    g.header().rc.load(SeqCst)
}

fn strong(w: u64) -> u64 {
    w & STRONG
}

/// The `rc` word through a weak handle (the header outlives the value).
fn weak_word<T: Trace + Send + Sync + 'static>(w: &Weak<T>) -> u64 {
    w.header().rc.load(SeqCst)
}

fn weak_count<T: Trace + Send + Sync + 'static>(w: &Weak<T>) -> usize {
    w.header().weak.load(SeqCst)
}

/// (shard, slot) from the header's registry position.
fn position(h: &Header) -> (usize, usize) {
    let r = h.reg.load(Relaxed);
    (crate::gc::reg_shard(r), crate::gc::reg_slot(r))
}

/// Whether the header is in its shard's list (at its recorded slot).
fn registered(h: NonNull<Header>) -> bool {
    // SAFETY: the caller keeps the header allocated.
    let (s, slot) = position(unsafe { h.as_ref() });
    let (g, drained) = lock_shard(s);
    let found = g.objs.get(slot) == Some(&h);
    assert_eq!(
        found,
        g.objs.contains(&h),
        "registered, but not at the slot its header records"
    );
    drop(g);
    release_drained(drained);
    found
}

#[repr(align(64))]
struct Aligned([u8; 3]);
// SAFETY: no handles.
unsafe impl Trace for Aligned {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

/// Layout: the header sits at the start of the allocation, the value at its
/// field offset and alignment, and the vtable's size is the whole box's;
/// a fresh object has one strong handle, the strong side's weak count, no
/// flags, no epoch, no specials, an untagged handle, and is registered at
/// the slot its header records.
#[test]
fn header_layout_and_a_fresh_object() {
    let _s = serial();
    fn check<T: Trace + Send + Sync + 'static>(v: T) {
        let g = Gc::new(v);
        let h = g.header_ptr();
        let value = Gc::as_ptr(&g) as usize;
        assert_eq!(
            value - h.as_ptr() as usize,
            std::mem::offset_of!(GcBox<T>, value),
            "value offset"
        );
        assert_eq!(std::mem::offset_of!(GcBox<T>, header), 0);
        assert_eq!(value % std::mem::align_of::<T>(), 0, "value misaligned");
        let hr = g.header();
        assert_eq!(hr.vtable.size, std::mem::size_of::<GcBox<T>>());
        assert_eq!(hr.rc.load(SeqCst), 1, "one handle, no flags, no epoch");
        assert_eq!(hr.weak.load(SeqCst), 1, "the strong side's weak count");
        assert!(hr.specials.load(SeqCst).is_null(), "specials are lazy");
        assert_eq!(g.tag.load(Relaxed), 0);
        assert!(registered(h));
        assert_eq!(Gc::strong_count(&g), 1);
    }
    check(7u64);
    check(());
    check(Aligned([1, 2, 3]));
    assert_eq!(Gc::new(Aligned([1, 2, 3])).0, [1, 2, 3]);
    check(String::from("x"));
    // Bit layout of the word: 40 bits of count, then the flags, then the
    // epoch; none overlap.
    assert_eq!(STRONG, (1 << 40) - 1);
    assert_eq!(CLAIMING & STRONG, 0);
    assert_eq!((CLAIMING | DEAD | WEAK_DEAD) >> EPOCH_SHIFT, 0);
    assert_eq!(
        [CLAIMING, DEAD, WEAK_DEAD].iter().fold(0, |a, f| a | f),
        CLAIMING + DEAD + WEAK_DEAD
    );
}

/// Clone, drop, downgrade, weak clone and upgrade move exactly their own
/// count, and without a running cycle touch nothing (no epoch bits).
#[test]
fn counts_follow_clones_drops_and_weak_handles() {
    let _s = serial();
    let d = counter();
    let a = probe(&d);
    let b = a.clone();
    assert_eq!(word(&a), 2);
    let w = Gc::downgrade(&a);
    assert_eq!(weak_count(&w), 2);
    let w2 = w.clone();
    assert_eq!(weak_count(&w), 3);
    assert!(Weak::ptr_eq(&w, &w2));
    let up = w2.upgrade().expect("alive");
    assert!(Gc::ptr_eq(&up, &a));
    assert_eq!(word(&a), 3);
    drop(up);
    drop(b);
    assert_eq!(word(&a), 1, "back to one handle, untouched");
    drop(w2);
    assert_eq!(weak_count(&w), 2);
    assert_eq!(d.load(SeqCst), 0);
    drop(w);
    assert_eq!(a.header().weak.load(SeqCst), 1);
    drop(a);
    assert_eq!(d.load(SeqCst), 1);
}

/// `touch_slow` writes the epoch and the count change in one RMW and
/// returns the old word.
#[test]
fn touch_sets_the_epoch_with_the_count_change() {
    let _s = serial();
    let g = Gc::new(0u8);
    let h = g.header();
    assert_eq!(touch_slow(h, 7, 1), 1);
    assert_eq!(h.rc.load(SeqCst), (7 << EPOCH_SHIFT) | 2);
    assert_eq!(touch_slow(h, 9, -1), (7 << EPOCH_SHIFT) | 2);
    assert_eq!(h.rc.load(SeqCst), (9 << EPOCH_SHIFT) | 1);
    assert_eq!(touch_slow(h, 9, 0), (9 << EPOCH_SHIFT) | 1);
    assert_eq!(h.rc.load(SeqCst), (9 << EPOCH_SHIFT) | 1);
    // A stale epoch is harmless: the last drop still frees.
    let w = Gc::downgrade(&g);
    drop(g);
    assert_eq!(strong(weak_word(&w)), 0);
    assert!(w.upgrade().is_none());
}

/// The last drop frees at once, on the dropping thread: the value is
/// dropped, the object marked dead and unregistered; the header stays for
/// the weak handles, whose upgrades fail; the last weak handle frees it
/// (miri checks both the use and the release).
#[test]
fn last_drop_frees_at_once_and_weak_handles_outlive_the_value() {
    let _s = serial();
    let d = counter();
    let a = probe(&d);
    let h = a.header_ptr();
    let w = Gc::downgrade(&a);
    let before = crate::read_mem_stats();
    drop(a);
    assert_eq!(d.load(SeqCst), 1, "freed at the last drop");
    let after = crate::read_mem_stats();
    assert_eq!(after.frees, before.frees + 1);
    assert_eq!(after.heap_objects, before.heap_objects - 1);
    assert_eq!(after.num_gc, before.num_gc, "no collection involved");
    let rc = weak_word(&w);
    assert_eq!(strong(rc), 0);
    assert_eq!(rc & (DEAD | WEAK_DEAD), DEAD | WEAK_DEAD);
    assert_eq!(weak_count(&w), 1, "the strong side's count was released");
    assert!(!registered(h));
    assert!(w.upgrade().is_none());
    let w2 = w.clone();
    drop(w);
    assert!(w2.upgrade().is_none());
    drop(w2); // frees the header
}

/// Freeing is iterative: dropping the head of a list frees every node on
/// the dropping thread, in one call, without recursion per node.
#[test]
fn a_chain_is_freed_iteratively_at_the_last_drop() {
    let _s = serial();
    let n = if cfg!(miri) { 50 } else { 20_000 };
    let d = counter();
    let head = probe(&d);
    let mut cur = head.clone();
    for _ in 0..n {
        let x = probe(&d);
        link(&cur, &x);
        cur = x;
    }
    drop(cur);
    let objects = crate::read_mem_stats().heap_objects;
    // A small stack: one frame per node would overflow it.
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || drop(head))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(d.load(SeqCst), n + 1);
    assert_eq!(
        crate::read_mem_stats().heap_objects,
        objects - (n as u64 + 1)
    );
}

/// Unregistration moves the shard's last object into the freed slot and
/// updates its recorded position.
#[test]
fn unregistration_keeps_positions_right() {
    let _s = serial();
    let d = counter();
    let a = probe(&d);
    let b = probe(&d);
    let c = probe(&d);
    let (sa, slot_a) = position(a.header());
    if position(b.header()).0 != sa || position(c.header()).0 != sa {
        // Registered elsewhere only if this thread's shard was locked:
        // nobody else runs, so that cannot happen.
        panic!("objects of one thread spread over shards");
    }
    drop(a);
    assert_eq!(position(c.header()), (sa, slot_a), "the last one moved in");
    assert!(registered(b.header_ptr()));
    assert!(registered(c.header_ptr()));
    drop((b, c));
    assert_eq!(d.load(SeqCst), 3);
}

/// A probe watched through its header, a weak handle and its shard.
struct Watched {
    d: Arc<AtomicUsize>,
    h: NonNull<Header>,
    w: Weak<Probe>,
    s: usize,
}

fn watched() -> (Gc<Probe>, Watched) {
    let d = counter();
    let a = probe(&d);
    let (s, _) = position(a.header());
    let x = Watched {
        h: a.header_ptr(),
        w: Gc::downgrade(&a),
        s,
        d,
    };
    (a, x)
}

impl Watched {
    /// Its last handle is gone and it sits on top of its shard's `pending`
    /// stack, still registered and holding the strong side's weak count.
    fn assert_pending(&self) {
        assert_eq!(self.d.load(SeqCst), 1, "the value is dropped at once");
        assert_eq!(
            heap().shards[self.s].pending.load(SeqCst),
            self.h.as_ptr(),
            "pushed"
        );
        assert_eq!(
            weak_count(&self.w),
            2,
            "the pending entry holds a weak count"
        );
        assert!(self.w.upgrade().is_none(), "dead before it is unregistered");
    }
}

/// A free that finds its shard locked (by the collector, here by the test)
/// does not wait: the value is dropped at once, the object pushed on the
/// shard's `pending` stack, still holding the strong side's weak count; the
/// next lock holder unregisters it, and the weak count is released after.
#[test]
fn a_free_into_a_locked_shard_is_deferred_to_the_next_holder() {
    let _s = serial();
    let (a, x) = watched();
    let (h, s) = (x.h, x.s);
    let shard = &heap().shards[s];
    {
        let g = lock(&shard.inner);
        let len = g.objs.len();
        drop(a); // the free's try_lock fails: we hold the lock
        x.assert_pending();
        assert_eq!(g.objs.len(), len, "still registered");
        // The next holder of the lock (here, still us) drains the stack.
        let (g, drained) = drain_locked(s, g);
        assert!(shard.pending.load(SeqCst).is_null(), "drained");
        assert_eq!(drained, h.as_ptr());
        assert_eq!(g.objs.len(), len - 1);
        assert!(!g.objs.contains(&h));
        drop(g);
        release_drained(drained);
    }
    assert_eq!(weak_count(&x.w), 1);
}

/// Runs `f` on a new thread mapped to a shard other than `s`.
fn on_another_shard(s: usize, f: impl FnOnce() + Send) {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            set_my_shard((s + 1) % heap().shards.len());
            f()
        });
    });
}

/// The entries of shard `s`'s `pending` stack (nobody drains it meanwhile:
/// the tests run one at a time and hold no lock).
fn pending_len(s: usize) -> usize {
    let mut n = 0;
    let mut p = heap().shards[s].pending.load(SeqCst);
    while let Some(h) = NonNull::new(p) {
        n += 1;
        // SAFETY: pending objects stay allocated until drained.
        p = std::ptr::with_exposed_provenance_mut(unsafe { h.as_ref() }.scan.load(SeqCst) as usize);
    }
    n
}

/// The last drop of an object on another thread than the one that
/// allocated it (a finalizer goroutine, a consumer) drops the value at once
/// and hands the object back with one push on its shard's `pending` stack;
/// the allocating thread's next allocation unregisters and deallocates it
/// (on the thread whose allocator cache it came from).
#[test]
fn a_free_on_another_thread_is_finished_by_the_allocating_one() {
    let _s = serial();
    let (a, x) = watched();
    let s = x.s;
    let shard = &heap().shards[s];
    assert!(shard.pending.load(SeqCst).is_null());
    on_another_shard(s, move || drop(a));
    x.assert_pending();
    let b = Gc::new(0u8);
    assert_eq!(position(b.header()).0, s, "this thread's shard");
    assert!(
        shard.pending.load(SeqCst).is_null(),
        "drained by the allocation"
    );
    assert_eq!(shard.pending_bytes.load(SeqCst), 0);
    assert!(!registered(x.h));
    assert_eq!(weak_count(&x.w), 1, "released");
}

/// What a shard's `pending` stack holds back is bounded: a thread that
/// frees many objects of another thread's shard, while that thread
/// allocates nothing, drains the stack itself past `PENDING_MAX` bytes.
#[test]
fn what_a_pending_stack_holds_back_is_bounded() {
    let _s = serial();
    let d = counter();
    let first = probe(&d);
    let each = footprint(first.header().vtable.size);
    let n = (3 * PENDING_MAX / each) as usize; // three times the bound
    let mut objs: Vec<_> = (1..n).map(|_| probe(&d)).collect();
    objs.push(first);
    let (s, _) = position(objs[0].header());
    assert!(objs.iter().all(|o| position(o.header()).0 == s));
    on_another_shard(s, move || drop(objs));
    assert_eq!(d.load(SeqCst), n);
    let held = pending_len(s) as i64;
    assert!(
        held * each < PENDING_MAX,
        "{held} objects of {each} bytes held back"
    );
    assert_eq!(heap().shards[s].pending_bytes.load(SeqCst), held * each);
}

/// An allocation that finds its own shard locked registers in another one.
#[test]
fn an_allocation_into_a_locked_shard_goes_elsewhere() {
    let _s = serial();
    let first = Gc::new(1u32);
    let (mine, _) = position(first.header());
    let g = lock(&heap().shards[mine].inner);
    let other = Gc::new(2u32);
    let (s, slot) = position(other.header());
    assert_ne!(s, mine);
    drop(g);
    let (g, drained) = lock_shard(s);
    assert_eq!(g.objs[slot], other.header_ptr());
    drop(g);
    release_drained(drained);
    drop((first, other));
}

/// A garbage cycle is claimed, marked dead (weak upgrades fail), its
/// values dropped and its objects unregistered; the live objects the cycle
/// examined keep their exact counts (it holds none of its own).
#[test]
fn a_cycle_frees_garbage_and_leaves_the_rest_counted_exactly() {
    let _s = serial();
    let d = counter();
    let live = probe(&d);
    let x = probe(&d);
    let y = probe(&d);
    link(&x, &y);
    link(&y, &x);
    link(&live, &x); // keeps x and y
    let g1 = probe(&d);
    let g2 = probe(&d);
    link(&g1, &g2);
    link(&g2, &g1);
    let (w1, hg1) = (Gc::downgrade(&g1), g1.header_ptr());
    drop((x, y, g1, g2));
    let before = crate::read_mem_stats();
    collect(true);
    let after = crate::read_mem_stats();
    assert_eq!(d.load(SeqCst), 2, "exactly the garbage cycle");
    assert_eq!(after.cycle_frees, before.cycle_frees + 2);
    assert_eq!(after.frees, before.frees + 2);
    assert_eq!(after.num_gc, before.num_gc + 1);
    assert!(w1.upgrade().is_none());
    let rc = weak_word(&w1);
    assert_eq!(rc & (DEAD | WEAK_DEAD | CLAIMING), DEAD | WEAK_DEAD);
    assert!(!registered(hg1));
    // The survivors' counts are the handles only.
    assert_eq!(strong(word(&live)), 1);
    let x = live.edges.lock().unwrap()[0].clone();
    assert_eq!(strong(word(&x)), 3, "live's, y's and this one");
    assert_eq!(word(&x) & (DEAD | WEAK_DEAD | CLAIMING), 0);
    drop(x);
    drop(live);
    assert_eq!(d.load(SeqCst), 3, "live freed at its last drop");
    collect(true);
    assert_eq!(d.load(SeqCst), 5);
    drop(w1);
}

/// The snapshot: a handle moved out of a traced object onto the stack
/// during the cycle changes no count and touches nothing; the edge the
/// trace recorded still marks its target, which must not be freed.
#[test]
fn a_handle_moved_out_during_the_cycle_keeps_its_target() {
    let _s = serial();
    let d = counter();
    let a = probe(&d);
    let y = probe(&d);
    link(&y, &y);
    link(&a, &y);
    let wy = Gc::downgrade(&y);
    drop(y); // y: a's handle and its own
    let stash: Arc<Mutex<Option<Gc<Probe>>>> = Arc::default();
    let s2 = stash.clone();
    on_trace(&a, move |me| {
        // After a's trace: move its only handle to y out of the heap.
        *s2.lock().unwrap() = me.edges.lock().unwrap().pop();
    });
    collect(true);
    assert_eq!(d.load(SeqCst), 0, "y freed while a handle to it lived");
    let y = stash.lock().unwrap().take().expect("the action ran");
    assert!(Gc::ptr_eq(&y, &wy.upgrade().expect("y alive")));
    assert_eq!(strong(word(&y)), 2, "the moved handle and the self-loop");
    assert_eq!(y.edges.lock().unwrap().len(), 1);
    drop(y);
    collect(true);
    assert_eq!(d.load(SeqCst), 1, "y is garbage now");
    assert!(wy.upgrade().is_none());
    drop(a);
}

/// A touch: a weak upgrade and drop of a garbage object during the cycle
/// leaves its count as it was, but writes the epoch: the object is a root
/// for that cycle (kept), and garbage for the next (freed). Here the touch
/// comes after the object's own read (it was traced before the trigger),
/// so it is the re-read of the unmarked words that makes it a root.
#[test]
fn a_touch_during_the_cycle_makes_a_root() {
    let _s = serial();
    let d = counter();
    let y = probe(&d);
    link(&y, &y);
    let wy = Gc::downgrade(&y);
    drop(y); // garbage: only its self-loop
    let dz = counter();
    let z = probe(&dz); // more garbage, never touched
    link(&z, &z);
    drop(z);
    let trigger = probe(&counter());
    let w2 = wy.clone();
    on_trace(&trigger, move |_| {
        let g = w2.upgrade().expect("not claimed before the decision");
        drop(g);
    });
    collect(true);
    assert_eq!(d.load(SeqCst), 0, "touched this cycle: kept");
    assert_eq!(
        dz.load(SeqCst),
        1,
        "the untouched garbage is freed in the same cycle (the touch made a root, not a failed claim)"
    );
    let rc = weak_word(&wy);
    assert_eq!(strong(rc), 1, "count back to the self-loop");
    assert_ne!(rc >> EPOCH_SHIFT, 0, "the touch wrote the epoch");
    collect(true);
    assert_eq!(d.load(SeqCst), 1, "untouched: freed");
    drop(trigger);
}

/// An object the cycle examined is not freed when its last handle is
/// dropped during the cycle (the cycle may still read it): its free waits
/// for the end of the cycle, which frees it.
#[test]
fn a_last_drop_during_the_cycle_frees_at_the_cycle_end() {
    let _s = serial();
    let d = counter();
    let x = probe(&d);
    let slot = Arc::new(Mutex::new(Some(x)));
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let trigger = probe(&counter());
    let (s2, d2, seen2) = (slot.clone(), d.clone(), seen.clone());
    on_trace(&trigger, move |_| {
        drop(s2.lock().unwrap().take());
        seen2.store(d2.load(SeqCst), SeqCst);
    });
    collect(true);
    assert_eq!(seen.load(SeqCst), 0, "freed while the cycle could read it");
    assert_eq!(d.load(SeqCst), 1, "freed at the end of the cycle");
    drop(trigger);
}

/// The registration writes the cycle's epoch into each examined object's
/// `seen` bits, and a later unregistration that moves another object into
/// the freed slot keeps that object's `seen` (a mutator deciding whether to
/// defer its free reads it).
#[test]
fn seen_survives_a_slot_move() {
    let _s = serial();
    let d = counter();
    let a = probe(&d);
    let b = probe(&d);
    let c = probe(&d); // the last registered: moved into a's slot
    let (sa, _) = position(a.header());
    let (sc, _) = position(c.header());
    assert_eq!(sa, sc, "one thread allocates into one shard");
    collect(true);
    let epoch = crate::gc::reg_seen(c.header().reg.load(Relaxed));
    assert_ne!(epoch, 0, "examined by the cycle");
    let slot_a = position(a.header()).1;
    drop(a); // unregistered: the shard's last object takes its slot
    let moved = [&b, &c]
        .into_iter()
        .find(|g| position(g.header()).1 == slot_a)
        .expect("the last object moved into the freed slot");
    assert_eq!(crate::gc::reg_seen(moved.header().reg.load(Relaxed)), epoch);
    assert!(registered(moved.header_ptr()));
    drop((b, c));
}

/// The collector's own drops (of a dead cycle's values, step 6) can take a
/// live examined object's count to zero: that free is deferred to the end
/// of the cycle like a mutator's, and happens exactly once.
#[test]
fn a_dead_cycle_dropping_the_last_handle_of_a_live_object() {
    let _s = serial();
    let d = counter();
    let dx = counter();
    let g1 = probe(&d);
    let g2 = probe(&d);
    link(&g1, &g2);
    link(&g2, &g1);
    let x = probe(&dx);
    link(&g1, &x); // g1 holds x; so does the slot below, until the trace
    let slot = Arc::new(Mutex::new(Some(x)));
    let s2 = slot.clone();
    on_trace(&g2, move |_| drop(s2.lock().unwrap().take())); // touches x
    drop((g1, g2));
    collect(true);
    assert_eq!(d.load(SeqCst), 2, "the garbage cycle is freed");
    assert_eq!(dx.load(SeqCst), 1, "x freed once, at the end of the cycle");
}

/// A finalizable object whose last handle is dropped during the cycle
/// that examined it: the deferred free at the cycle's end resurrects it
/// for its finalizer (the zero path, run late), which then runs once.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs the finalizer goroutine (gort-sched stacks, which miri cannot switch)"
)]
fn a_deferred_free_still_finalizes() {
    let _s = serial();
    let d = counter();
    let x = probe(&d);
    let (tx, rx) = std::sync::mpsc::channel();
    crate::set_finalizer(&x, move |x: Gc<Probe>| tx.send(x).unwrap());
    let w = Gc::downgrade(&x);
    let slot = Arc::new(Mutex::new(Some(x)));
    let trigger = probe(&counter());
    let (s2, w2) = (slot.clone(), w.clone());
    on_trace(&trigger, move |_| {
        drop(s2.lock().unwrap().take());
        assert_eq!(
            weak_word(&w2) & WEAK_DEAD,
            0,
            "deferred: not resurrected while the cycle may read it"
        );
    });
    crate::gc();
    let x = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the finalizer did not run within 60 s");
    assert!(w.upgrade().is_none(), "weak handles cleared");
    assert_eq!(d.load(SeqCst), 0);
    drop(x);
    assert_eq!(
        d.load(SeqCst),
        1,
        "freed at the finalized object's last drop"
    );
    drop(trigger);
}

/// An object allocated during the cycle (after the registration) is not
/// examined: its handles count as outside ones; the next cycle frees it.
#[test]
fn an_object_allocated_during_the_cycle_waits_for_the_next() {
    let _s = serial();
    let d = counter();
    let trigger = probe(&counter());
    let wz: Arc<Mutex<Option<Weak<Probe>>>> = Arc::default();
    let (d2, wz2) = (d.clone(), wz.clone());
    on_trace(&trigger, move |_| {
        let z = probe(&d2);
        link(&z, &z);
        *wz2.lock().unwrap() = Some(Gc::downgrade(&z));
    });
    collect(true);
    let wz = wz.lock().unwrap().take().expect("the action ran");
    assert_eq!(d.load(SeqCst), 0);
    assert!(wz.upgrade().is_some());
    collect(true);
    assert_eq!(d.load(SeqCst), 1);
    assert!(wz.upgrade().is_none());
    drop(trigger);
}

/// A cycle member whose `Drop` moves its handles out.
struct Smuggler {
    to: Arc<Mutex<Vec<Gc<Smuggler>>>>,
    edges: Mutex<Vec<Gc<Smuggler>>>,
}

impl Drop for Smuggler {
    fn drop(&mut self) {
        let mut e = std::mem::take(&mut *self.edges.lock().unwrap());
        self.to.lock().unwrap().append(&mut e);
    }
}

// SAFETY: visits exactly the handles in `edges`.
unsafe impl Trace for Smuggler {
    fn trace(&self, t: &mut Tracer<'_>) {
        self.edges.trace(t);
    }
}

/// Severing: the handles between members of a freed cycle are severed
/// before any value is dropped, so a `Drop` that smuggles one out gets an
/// inert handle (its target's memory may be gone): using it panics before
/// reading the header, dropping it does nothing, and a later cycle that
/// traces it skips it. Miri checks that nothing reads the freed memory.
#[test]
fn handles_between_freed_objects_are_severed() {
    let _s = serial();
    let to: Arc<Mutex<Vec<Gc<Smuggler>>>> = Arc::default();
    let mk = || {
        Gc::new(Smuggler {
            to: to.clone(),
            edges: Mutex::new(Vec::new()),
        })
    };
    let a = mk();
    let b = mk();
    a.edges.lock().unwrap().push(b.clone());
    b.edges.lock().unwrap().push(a.clone());
    drop((a, b)); // no weak handles: both headers are freed
    collect(true);
    let smuggled = std::mem::take(&mut *to.lock().unwrap());
    assert_eq!(smuggled.len(), 2);
    for h in &smuggled {
        assert_eq!(h.tag.load(Relaxed), SEVERED);
        let r = catch_unwind(AssertUnwindSafe(|| h.edges.lock().unwrap().len()));
        assert!(r.is_err(), "deref of a severed handle must panic");
        let r = catch_unwind(AssertUnwindSafe(|| drop(h.clone())));
        assert!(r.is_err(), "clone of a severed handle must panic");
        let r = catch_unwind(AssertUnwindSafe(|| drop(Gc::downgrade(h))));
        assert!(r.is_err(), "downgrade of a severed handle must panic");
    }
    // Stored in a live object, then in a dying cycle: the next cycles skip
    // them (scan and sever), and dropping them is a no-op.
    let c = mk();
    let e = mk();
    c.edges.lock().unwrap().extend(smuggled);
    c.edges.lock().unwrap().push(e.clone());
    e.edges.lock().unwrap().push(c.clone());
    collect(true);
    assert_eq!(
        c.edges.lock().unwrap().len(),
        3,
        "alive, still holding them"
    );
    drop((c, e));
    collect(true);
    let left = std::mem::take(&mut *to.lock().unwrap());
    assert_eq!(left.len(), 4, "c's three and e's one");
    assert_eq!(
        left.iter()
            .filter(|h| h.tag.load(Relaxed) == SEVERED)
            .count(),
        4
    );
}

/// Specials: allocated on first use; a stopped cleanup is gone (nothing is
/// queued when the object dies); `stop` after the header is freed is safe
/// (the specials are shared with the `Cleanup`).
#[test]
fn specials_and_a_stopped_cleanup() {
    let _s = serial();
    let d = counter();
    let x = probe(&d);
    let dropped_arg = counter();
    struct Arg(Arc<AtomicUsize>);
    impl Drop for Arg {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let c = crate::add_cleanup(
        &x,
        |_a: Arg| unreachable!("stopped"),
        Arg(dropped_arg.clone()),
    );
    assert!(!x.header().specials.load(SeqCst).is_null());
    assert!(!crate::special::has_finalizer(x.header()));
    crate::set_finalizer(&x, |_| unreachable!("cleared"));
    assert!(crate::special::has_finalizer(x.header()));
    crate::clear_finalizer(&x);
    assert!(!crate::special::has_finalizer(x.header()));
    c.stop();
    assert_eq!(dropped_arg.load(SeqCst), 1, "stop drops the cleanup");
    let queued = crate::read_mem_stats().cleanups_queued;
    drop(x);
    assert_eq!(d.load(SeqCst), 1);
    assert_eq!(crate::read_mem_stats().cleanups_queued, queued);
    c.stop(); // the header is gone; the specials are not
    let r = catch_unwind(AssertUnwindSafe(|| {
        let y = probe(&d);
        crate::add_cleanup(&y, |_| {}, y.clone());
    }));
    assert!(r.is_err(), "a cleanup whose arg is its object must panic");
}

/// The zero path with a finalizer: the object is resurrected in the RMW
/// that clears its weak handles (never dropped, never upgradable), the
/// finalizer gets the one handle, and after it the object is freed at its
/// last drop (one-shot).
#[test]
#[cfg_attr(
    miri,
    ignore = "runs the finalizer goroutine (gort-sched stacks, which miri cannot switch)"
)]
fn a_finalizer_resurrects_once() {
    let _s = serial();
    let d = counter();
    let x = probe(&d);
    let w = Gc::downgrade(&x);
    let (tx, rx) = std::sync::mpsc::channel();
    crate::set_finalizer(&x, move |x: Gc<Probe>| tx.send(x).unwrap());
    drop(x);
    let rc = weak_word(&w);
    assert_eq!(rc & (DEAD | WEAK_DEAD), WEAK_DEAD, "resurrected");
    assert_eq!(strong(rc), 1, "the finalizer's handle");
    assert!(w.upgrade().is_none(), "weak handles cleared first");
    assert_eq!(d.load(SeqCst), 0);
    crate::gc(); // finalizers run after a collection
    let x = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the finalizer did not run within 60 s");
    assert_eq!(d.load(SeqCst), 0);
    assert_eq!(Gc::strong_count(&x), 1);
    assert!(w.upgrade().is_none(), "stay cleared");
    drop(x);
    assert_eq!(d.load(SeqCst), 1, "one-shot: freed at the last drop");
}

/// The collector finds finalizable garbage hanging off a garbage cycle:
/// the cycle is freed; the finalizable object is resurrected (weak handles
/// cleared, value not dropped), and what it reaches is kept until its
/// finalizer has run.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs the finalizer goroutine (gort-sched stacks, which miri cannot switch)"
)]
fn the_collector_resurrects_finalizable_garbage() {
    let _s = serial();
    let d = counter();
    let g = probe(&d); // a garbage self-cycle, holding f
    let f = probe(&d); // finalizable, holding r
    let r = probe(&d); // a self-cycle reached only from f
    link(&g, &g);
    link(&g, &f);
    link(&f, &r);
    link(&r, &r);
    let wf = Gc::downgrade(&f);
    let (tx, rx) = std::sync::mpsc::channel();
    crate::set_finalizer(&f, move |f: Gc<Probe>| {
        let r = f.edges.lock().unwrap()[0].clone();
        let intact = r.edges.lock().unwrap().len();
        // Break r's self-loop: r goes with f's last handle.
        r.edges.lock().unwrap().clear();
        tx.send(intact).unwrap();
    });
    drop((g, f, r));
    let before = crate::read_mem_stats();
    crate::gc();
    let after = crate::read_mem_stats();
    assert_eq!(after.cycle_frees, before.cycle_frees + 1, "g only");
    assert_eq!(after.finalizers_queued, before.finalizers_queued + 1);
    assert_ne!(weak_word(&wf) & WEAK_DEAD, 0, "weak handles cleared");
    assert!(wf.upgrade().is_none());
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the finalizer did not run within 60 s"),
        1,
        "the referent was intact"
    );
    // The finalizer goroutine drops f's handle after the call returns.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while d.load(SeqCst) < 3 && std::time::Instant::now() < end {
        std::thread::yield_now();
    }
    assert_eq!(
        d.load(SeqCst),
        3,
        "f and r not freed after the finalizer (60 s)"
    );
}

/// A finalizable object that its own referents reach (any cycle through
/// it) is kept by them, so it is never finalized nor freed (Go's
/// SetFinalizer: "If a cyclic structure includes a block with a finalizer,
/// that cycle is not guaranteed to be garbage collected"). Needs no
/// finalizer goroutine: nothing is queued.
#[test]
fn a_finalizable_object_in_a_cycle_is_kept() {
    let _s = serial();
    let d = counter();
    let f = probe(&d);
    let r = probe(&d);
    link(&f, &r);
    link(&r, &f);
    crate::set_finalizer(&f, |_| unreachable!("never finalized"));
    let wf = Gc::downgrade(&f);
    drop((f, r));
    let queued = crate::read_mem_stats().finalizers_queued;
    collect(true);
    collect(true);
    assert_eq!(d.load(SeqCst), 0);
    assert_eq!(crate::read_mem_stats().finalizers_queued, queued);
    let f = wf.upgrade().expect("kept, not finalized");
    crate::clear_finalizer(&f);
    drop(f);
    collect(true);
    assert_eq!(d.load(SeqCst), 2, "collected once the finalizer is gone");
}
