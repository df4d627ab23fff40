//! The `Trace` trait: how the collector finds the `Gc` handles an object
//! owns, and its implementations for std types.

use crate::collect::Tracer;
use crate::gc::Gc;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::sync::{Mutex, OnceLock, RwLock, TryLockError};

/// A type whose `Gc` handles the collector can enumerate.
///
/// `trace` must call [`Tracer::visit`] once for each [`Gc`] handle the value
/// owns (directly, or through fields, boxes, collections and cells), and
/// nothing else. Use `#[derive(Trace)]` (from `gort-gc-derive`, re-exported
/// here) rather than implementing it by hand.
///
/// Reading a cell must never block: the implementations for `Mutex` and
/// `RwLock` use `try_lock`/`try_read` and call [`Tracer::opaque`] when the
/// lock is held elsewhere, which makes the object a root for this cycle.
///
/// # Safety
///
/// Visiting a handle the value does *not* own (one held by a global, by an
/// `Arc` shared with other owners, or the same handle twice through two
/// paths) makes the collector count a reference as internal to the heap that
/// is not, and can free a live object. *Omitting* a handle is always safe:
/// its target then counts as referenced from outside (a root), so a cycle
/// through it is merely never collected. This is why `Arc<T>` and `Rc<T>`
/// are traced as opaque leaves.
pub unsafe trait Trace {
    /// Visits every `Gc` handle this value owns.
    fn trace(&self, t: &mut Tracer<'_>);
}

// SAFETY: a handle owns itself: visiting it once is exactly right.
unsafe impl<T: Trace + Send + Sync + 'static> Trace for Gc<T> {
    #[inline]
    fn trace(&self, t: &mut Tracer<'_>) {
        t.visit(self);
    }
}

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: holds no `Gc` handles (or hides them: see `Trace`).
        unsafe impl Trace for $t {
            #[inline]
            fn trace(&self, _: &mut Tracer<'_>) {}
        }
    )*};
}

leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    str,
    std::time::Duration,
    std::time::Instant,
    std::path::PathBuf,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize,
);

// SAFETY: `'static` references and shared pointers are not owned by the
// value alone; not visiting them is the safe direction (see `Trace`).
unsafe impl<T: ?Sized> Trace for &'static T {
    fn trace(&self, _: &mut Tracer<'_>) {}
}
// SAFETY: as above; a shared `Arc` is a leaf.
unsafe impl<T: ?Sized> Trace for std::sync::Arc<T> {
    fn trace(&self, _: &mut Tracer<'_>) {}
}
// SAFETY: no handles.
unsafe impl<T: ?Sized> Trace for std::marker::PhantomData<T> {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

// SAFETY: a box owns its contents.
unsafe impl<T: Trace + ?Sized> Trace for Box<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        (**self).trace(t);
    }
}
// SAFETY: owns its element.
unsafe impl<T: Trace> Trace for Option<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        if let Some(v) = self {
            v.trace(t);
        }
    }
}
// SAFETY: owns its payload.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self {
            Ok(v) => v.trace(t),
            Err(e) => e.trace(t),
        }
    }
}
// SAFETY: owns its elements.
unsafe impl<T: Trace> Trace for [T] {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self {
            v.trace(t);
        }
    }
}
// SAFETY: owns its elements.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self {
            v.trace(t);
        }
    }
}

macro_rules! seq {
    ($($c:ident),*) => {$(
        // SAFETY: owns its elements.
        unsafe impl<T: Trace> Trace for $c<T> {
            fn trace(&self, t: &mut Tracer<'_>) {
                for v in self.iter() {
                    v.trace(t);
                }
            }
        }
    )*};
}
seq!(Vec, VecDeque, LinkedList, BinaryHeap, BTreeSet);

// SAFETY: owns its elements.
unsafe impl<T: Trace, S> Trace for HashSet<T, S> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self.iter() {
            v.trace(t);
        }
    }
}
// SAFETY: owns its keys and values.
unsafe impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for (k, v) in self.iter() {
            k.trace(t);
            v.trace(t);
        }
    }
}
// SAFETY: owns its keys and values.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for (k, v) in self.iter() {
            k.trace(t);
            v.trace(t);
        }
    }
}

macro_rules! tuple {
    ($(($($n:tt $t:ident),+))*) => {$(
        // SAFETY: owns its fields.
        unsafe impl<$($t: Trace),+> Trace for ($($t,)+) {
            fn trace(&self, t: &mut Tracer<'_>) {
                $(self.$n.trace(t);)+
            }
        }
    )*};
}
tuple! {
    (0 A)
    (0 A, 1 B)
    (0 A, 1 B, 2 C)
    (0 A, 1 B, 2 C, 3 D)
    (0 A, 1 B, 2 C, 3 D, 4 E)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F)
}

// SAFETY: the guard gives shared access to the contents it owns; a held
// lock is reported as opaque (never blocks the collector).
unsafe impl<T: Trace + ?Sized> Trace for Mutex<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self.try_lock() {
            Ok(g) => g.trace(t),
            Err(TryLockError::Poisoned(p)) => p.into_inner().trace(t),
            Err(TryLockError::WouldBlock) => t.opaque(),
        }
    }
}
// SAFETY: as for Mutex, with a read lock.
unsafe impl<T: Trace + ?Sized> Trace for RwLock<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self.try_read() {
            Ok(g) => g.trace(t),
            Err(TryLockError::Poisoned(p)) => p.into_inner().trace(t),
            Err(TryLockError::WouldBlock) => t.opaque(),
        }
    }
}
// SAFETY: a set OnceLock owns its value and never changes it again.
unsafe impl<T: Trace> Trace for OnceLock<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        if let Some(v) = self.get() {
            v.trace(t);
        }
    }
}
