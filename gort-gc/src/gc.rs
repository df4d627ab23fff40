//! The object header, `Gc<T>` and `Weak<T>`: counting, touching, and the
//! zero path (finalize or free).

use crate::collect::Tracer;
use crate::heap::{self, heap};
use crate::loom::{spin_yield, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use crate::special::Specials;
use crate::trace::Trace;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

// The `rc` word: [epoch:16 | flags:8 | strong:40].
pub(crate) const STRONG: u64 = (1 << 40) - 1;
/// The collector is claiming this object as garbage (transient: weak
/// upgrades wait until it is resolved).
pub(crate) const CLAIMING: u64 = 1 << 40;
/// The value is dropped or being dropped; weak upgrades fail, handles
/// inside a dying cycle must not be dereferenced.
pub(crate) const DEAD: u64 = 1 << 41;
/// Weak pointers are cleared (a finalizer was queued); upgrades fail.
pub(crate) const WEAK_DEAD: u64 = 1 << 42;
pub(crate) const FLAGS: u64 = CLAIMING | DEAD | WEAK_DEAD;
pub(crate) const EPOCH_SHIFT: u32 = 48;
/// Where `Header::reg` keeps the epoch of the last cycle that examined the
/// object.
pub(crate) const SEEN_SHIFT: u32 = 48;

/// The shard of a `Header::reg` word.
#[inline]
pub(crate) fn reg_shard(reg: u64) -> usize {
    ((reg >> 32) & 0xffff) as usize
}

/// The slot of a `Header::reg` word.
#[inline]
pub(crate) fn reg_slot(reg: u64) -> usize {
    reg as u32 as usize
}

/// The epoch of the last cycle that examined the object (0: none).
#[inline]
pub(crate) fn reg_seen(reg: u64) -> u64 {
    reg >> SEEN_SHIFT
}

/// A handle's tag after the collector freed its target as part of a dead
/// cycle: dropping it does nothing, dereferencing or cloning it panics.
pub(crate) const SEVERED: u64 = u64::MAX;

/// What the collector needs to know about a `GcBox<T>` without `T`.
pub(crate) struct VTable {
    /// Traces the value.
    pub(crate) trace: unsafe fn(NonNull<Header>, &mut Tracer<'_>),
    /// Drops the value in place.
    pub(crate) drop_value: unsafe fn(NonNull<Header>),
    /// Frees the allocation.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
    /// Bytes of the allocation (for pacing and MemStats).
    pub(crate) size: usize,
}

/// The header in front of every managed value.
#[repr(C)]
pub(crate) struct Header {
    /// Strong count, flags and the epoch of the last touch (see the
    /// constants). Written by mutators (clone, drop, deref/upgrade during a
    /// collection: one SeqCst RMW each) and by the collector (claim).
    /// All writes are SeqCst RMWs so they sit in one total order with the
    /// collector's `ACTIVE` store and its decision loads: a claim CAS fails
    /// if anything touched the word after the collector's decision read.
    pub(crate) rc: AtomicU64,
    /// Weak handles, plus one held by the strong side until the value has
    /// been dropped and the object unregistered. The allocation is freed by
    /// whoever takes it to zero (AcqRel: the release of every previous user
    /// pairs with the acquire of the freeing decrement).
    pub(crate) weak: AtomicUsize,
    /// Set once at allocation; read-only after.
    pub(crate) vtable: &'static VTable,
    /// Finalizer and cleanups, allocated lazily by `set_finalizer`/
    /// `add_cleanup` (CAS null → box, AcqRel; the loser frees its box).
    /// Freed with the header.
    pub(crate) specials: AtomicPtr<Specials>,
    /// `seen << 48 | shard << 32 | slot`: the registry position, written
    /// only under the shard's lock (Relaxed; the lock orders it), and the
    /// epoch of the last cycle that examined the object, written by that
    /// cycle's registration pass under the same lock (a move of the slot
    /// keeps it). A mutator that takes the count to zero reads `seen`
    /// (SeqCst, after its decrement) to learn whether the running cycle
    /// may still read the object: then the free waits for the cycle's end
    /// (see `heap::zero_or_defer`). See [`reg_shard`], [`reg_slot`],
    /// [`reg_seen`].
    pub(crate) reg: AtomicU64,
    /// `epoch << 32 | node` when examined by cycle `epoch`: written and
    /// read only by the collector (one at a time), Relaxed. Once the object
    /// is dead and unreachable, the link of its shard's `pending` stack
    /// (written by the freeing thread): a pending object is never a node
    /// of the running cycle (an examined object's free waits for the
    /// cycle's end, `heap::zero_or_defer`), and a stale link that looks like
    /// the epoch fails the collector's `nodes[..].h == h` check.
    pub(crate) scan: AtomicU64,
}

#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: ManuallyDrop<T>,
}

impl<T: Trace + Send + Sync + 'static> GcBox<T> {
    const VTABLE: VTable = VTable {
        trace: Self::trace_erased,
        drop_value: Self::drop_erased,
        dealloc: Self::dealloc_erased,
        size: std::mem::size_of::<GcBox<T>>(),
    };

    /// # Safety
    /// `h` is the header of a live `GcBox<T>` whose value is not dropped.
    unsafe fn trace_erased(h: NonNull<Header>, t: &mut Tracer<'_>) {
        // SAFETY: the header is the first field of a repr(C) GcBox<T>, and
        // the value is alive (caller's contract).
        let b = unsafe { h.cast::<GcBox<T>>().as_ref() };
        b.value.trace(t);
    }

    /// # Safety
    /// `h` is the header of a `GcBox<T>` whose value nobody can reach any
    /// more and which has not been dropped yet.
    unsafe fn drop_erased(h: NonNull<Header>) {
        // SAFETY: as the caller promises: no other access, dropped once.
        unsafe { ManuallyDrop::drop(&mut (*h.cast::<GcBox<T>>().as_ptr()).value) };
    }

    /// # Safety
    /// `h` came from `Box::<GcBox<T>>::into_raw`, its value is dropped, and
    /// no pointer to it remains in use.
    unsafe fn dealloc_erased(h: NonNull<Header>) {
        // SAFETY: as the caller promises.
        drop(unsafe { Box::from_raw(h.cast::<GcBox<T>>().as_ptr()) });
    }
}

/// The current collection's epoch (1..=65535) if one is active, else 0.
#[inline]
pub(crate) fn active() -> u64 {
    heap().active.load(SeqCst)
}

/// Records that a mutator used the object during collection `a`: sets the
/// epoch bits, adding `delta` to the strong count in the same RMW so that a
/// collector decision read either sees both or neither.
#[cold]
pub(crate) fn touch_slow(h: &Header, a: u64, delta: i64) -> u64 {
    let mut w = h.rc.load(SeqCst);
    loop {
        let n = ((w & !(0xffff << EPOCH_SHIFT)) | (a << EPOCH_SHIFT)).wrapping_add(delta as u64);
        match h.rc.compare_exchange_weak(w, n, SeqCst, SeqCst) {
            Ok(_) => return w,
            Err(x) => w = x,
        }
    }
}

/// A shared, thread-safe pointer to a garbage-collected `T`.
///
/// Cloning and dropping adjust a reference count: an object nobody points
/// to is freed (or finalized) at once, on the dropping thread. Cycles are
/// found by the concurrent cycle collector ([`crate::gc`], or automatically
/// when the heap grows by `GOGC` percent). No roots are registered and no
/// stacks are scanned: a reference the collector did not find inside a
/// managed object is, by definition, a root.
pub struct Gc<T: Trace + Send + Sync + 'static> {
    ptr: NonNull<GcBox<T>>,
    /// The epoch of the last collection that traced this handle (the
    /// collector swaps it; a handle seen twice in one cycle was moved during
    /// the cycle, and the object where it was seen the second time is made a
    /// root). Only the collector writes it; SeqCst swap.
    pub(crate) tag: AtomicU64,
    _p: PhantomData<T>,
}

// SAFETY: the value is shared between threads through `&T` (T: Sync) and
// dropped on whichever thread drops the last handle or collects it (T: Send);
// the header is atomic.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Gc<T> {}

impl<T: Trace + Send + Sync + 'static> Gc<T> {
    /// Moves `value` into a new managed object.
    ///
    /// When allocation outruns the background collector (the heap 1/16
    /// past its `GOGC`/`GOMEMLIMIT` goal), this waits for the collection in
    /// progress to end, as Go's allocation assists do: for a bounded time,
    /// blocking the calling thread (a goroutine keeps its thread and its P,
    /// as in a raw blocking call; it does not park, so holding a `std` lock
    /// across `Gc::new` stays fine).
    pub fn new(value: T) -> Gc<T> {
        let b = Box::new(GcBox {
            header: Header {
                rc: AtomicU64::new(1),
                weak: AtomicUsize::new(1),
                vtable: &Self::VT,
                specials: AtomicPtr::new(std::ptr::null_mut()),
                reg: AtomicU64::new(0),
                scan: AtomicU64::new(0),
            },
            value: ManuallyDrop::new(value),
        });
        let ptr = NonNull::from(Box::leak(b));
        heap::register(ptr.cast(), std::mem::size_of::<GcBox<T>>());
        crate::memprof::on_alloc(ptr.cast(), std::mem::size_of::<GcBox<T>>());
        Gc::from_inner(ptr)
    }

    const VT: VTable = GcBox::<T>::VTABLE;

    fn from_inner(ptr: NonNull<GcBox<T>>) -> Gc<T> {
        Gc {
            ptr,
            tag: AtomicU64::new(0),
            _p: PhantomData,
        }
    }

    /// Makes a handle from a header whose strong count already includes it.
    ///
    /// # Safety
    /// `h` is the header of a live `GcBox<T>`, and the caller transfers one
    /// strong count to the new handle.
    pub(crate) unsafe fn from_header(h: NonNull<Header>) -> Gc<T> {
        Gc::from_inner(h.cast())
    }

    /// The header, for a handle that owns a count. A severed handle (taken
    /// out of a member of a freed cycle by a Drop impl) owns none and may
    /// point at freed memory: every use of the header goes through here, so
    /// such a handle panics before touching it.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.check_severed();
        // SAFETY: a non-severed handle owns a strong count, which keeps the
        // allocation (and its header) alive.
        unsafe { &self.ptr.as_ref().header }
    }

    #[inline]
    pub(crate) fn header_ptr(&self) -> NonNull<Header> {
        self.ptr.cast()
    }

    #[inline]
    fn check_severed(&self) {
        if self.tag.load(Relaxed) == SEVERED {
            severed();
        }
    }

    /// Whether two handles point to the same object.
    #[inline]
    pub fn ptr_eq(a: &Gc<T>, b: &Gc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The address of the value.
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        this.check_severed();
        // SAFETY: the handle keeps the allocation alive; no reference is made.
        unsafe { (&raw const (*this.ptr.as_ptr()).value).cast::<T>() }
    }

    /// A weak pointer to the object (Go's `weak.Make`).
    pub fn downgrade(this: &Gc<T>) -> Weak<T> {
        this.header().weak.fetch_add(1, Relaxed);
        Weak {
            ptr: this.ptr,
            _p: PhantomData,
        }
    }

    /// Strong handles to the object (racy; for tests and diagnostics). A
    /// collection holds no counts of its own, so a quiet object reads its
    /// exact count also while one runs (a queued finalizer's handle is a
    /// handle).
    pub fn strong_count(this: &Gc<T>) -> usize {
        (this.header().rc.load(SeqCst) & STRONG) as usize
    }
}

impl<T: Trace + Send + Sync + 'static> std::ops::Deref for Gc<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.check_severed();
        let a = active();
        if a != 0 {
            deref_slow(self.header(), a);
        }
        // SAFETY: the handle holds a strong count, so the value is alive
        // (or, inside a dying cycle, deref_slow panicked).
        unsafe { &self.ptr.as_ref().value }
    }
}

#[cold]
#[inline(never)]
fn severed() -> ! {
    panic!("gort-gc: Gc used after its object was collected: it was taken out of an object of a collected cycle (in a Drop impl)")
}

#[cold]
fn deref_slow(h: &Header, a: u64) {
    let w = h.rc.load(SeqCst);
    if w & DEAD != 0 {
        panic!("gort-gc: Gc dereferenced after its object was collected (a Drop of an object in a collected cycle used a Gc to another member)");
    }
    if w >> EPOCH_SHIFT != a {
        touch_slow(h, a, 0);
    }
}

impl<T: Trace + Send + Sync + 'static> Clone for Gc<T> {
    #[inline]
    fn clone(&self) -> Gc<T> {
        self.check_severed();
        let h = self.header();
        let a = active();
        if a == 0 {
            h.rc.fetch_add(1, SeqCst);
        } else {
            let old = touch_slow(h, a, 1);
            if old & DEAD != 0 {
                h.rc.fetch_sub(1, SeqCst);
                panic!("gort-gc: Gc cloned after its object was collected (in a Drop impl of a collected cycle)");
            }
        }
        Gc::from_inner(self.ptr)
    }
}

impl<T: Trace + Send + Sync + 'static> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        if self.tag.load(Relaxed) != SEVERED {
            release(self.header_ptr());
        }
    }
}

/// Drops one strong count; runs the zero path if it was the last.
#[inline]
pub(crate) fn release(hp: NonNull<Header>) {
    // SAFETY: the caller owns a strong count, which keeps the header alive.
    let h = unsafe { hp.as_ref() };
    let a = active();
    let old = if a == 0 {
        h.rc.fetch_sub(1, SeqCst)
    } else {
        touch_slow(h, a, -1)
    };
    if old & STRONG == 1 && old & DEAD == 0 {
        // SAFETY: we took the strong count to zero on a live object.
        unsafe { heap::zero_or_defer(hp) };
    }
}

impl<T: Trace + Send + Sync + 'static + fmt::Debug> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + Send + Sync + 'static + fmt::Display> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Trace + Send + Sync + 'static + Default> Default for Gc<T> {
    fn default() -> Self {
        Gc::new(T::default())
    }
}

// Comparison and hashing look at the values, as for `Arc` (use
// [`Gc::ptr_eq`] for identity).
impl<T: Trace + Send + Sync + 'static + PartialEq> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Trace + Send + Sync + 'static + Eq> Eq for Gc<T> {}

impl<T: Trace + Send + Sync + 'static + PartialOrd> PartialOrd for Gc<T> {
    fn partial_cmp(&self, other: &Gc<T>) -> Option<std::cmp::Ordering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Trace + Send + Sync + 'static + Ord> Ord for Gc<T> {
    fn cmp(&self, other: &Gc<T>) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: Trace + Send + Sync + 'static + std::hash::Hash> std::hash::Hash for Gc<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl<T: Trace + Send + Sync + 'static> fmt::Pointer for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&Gc::as_ptr(self), f)
    }
}

impl<T: Trace + Send + Sync + 'static> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: Trace + Send + Sync + 'static> std::borrow::Borrow<T> for Gc<T> {
    fn borrow(&self) -> &T {
        self
    }
}

/// A weak pointer to a managed object (Go's `weak.Pointer`): it does not
/// keep the object alive, and [`Weak::upgrade`] fails once the object has
/// been collected — or, for an object with a finalizer, as soon as the
/// finalizer is queued (Go's rule: weak pointers are cleared before the
/// object is resurrected for its finalizer).
pub struct Weak<T: Trace + Send + Sync + 'static> {
    ptr: NonNull<GcBox<T>>,
    _p: PhantomData<T>,
}

// SAFETY: upgrading yields a Gc<T>, which is Send + Sync for these T.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Weak<T> {}

impl<T: Trace + Send + Sync + 'static> Weak<T> {
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a weak handle keeps the allocation alive (weak count).
        unsafe { &self.ptr.as_ref().header }
    }

    /// A strong handle, or `None` if the object was collected (or its
    /// finalizer queued).
    ///
    /// If the collector is in the middle of claiming this object as
    /// garbage, this waits (yielding) for that short pass to finish, so
    /// that the object is either revived by this upgrade or dead — never
    /// both.
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let h = self.header();
        let mut w = h.rc.load(SeqCst);
        loop {
            if w & STRONG == 0 || w & (DEAD | WEAK_DEAD) != 0 {
                return None;
            }
            if w & CLAIMING != 0 {
                spin_yield();
                w = h.rc.load(SeqCst);
                continue;
            }
            let a = active();
            let mut n = w + 1;
            if a != 0 {
                n = (n & !(0xffff << EPOCH_SHIFT)) | (a << EPOCH_SHIFT);
            }
            match h.rc.compare_exchange_weak(w, n, SeqCst, SeqCst) {
                Ok(_) => return Some(Gc::from_inner(self.ptr)),
                Err(x) => w = x,
            }
        }
    }

    /// Whether two weak pointers were made from the same object.
    pub fn ptr_eq(a: &Weak<T>, b: &Weak<T>) -> bool {
        a.ptr == b.ptr
    }
}

impl<T: Trace + Send + Sync + 'static> Clone for Weak<T> {
    fn clone(&self) -> Self {
        self.header().weak.fetch_add(1, Relaxed);
        Weak {
            ptr: self.ptr,
            _p: PhantomData,
        }
    }
}

impl<T: Trace + Send + Sync + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        // SAFETY: we own one weak count.
        unsafe { heap::release_weak(self.ptr.cast()) };
    }
}

impl<T: Trace + Send + Sync + 'static> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(Weak)")
    }
}

// SAFETY: a weak pointer owns no strong handle.
unsafe impl<T: Trace + Send + Sync + 'static> Trace for Weak<T> {
    fn trace(&self, _: &mut Tracer<'_>) {}
}
