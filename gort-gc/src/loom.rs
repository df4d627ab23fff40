//! The one place this crate takes atomics, locks, thread-locals,
//! goroutine-locals and parking from.
//!
//! Under `--cfg gort_loom` they are loom's (and gort-sched's loom parker), so
//! the models in `src/tests/` explore the real header, registry and
//! collector code. Statics holding loom atomics must be created inside each
//! model, so the global heap is a `loom::lazy_static` there (see
//! `heap::heap`), and the registry has 2 shards instead of 64.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(gort_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

// gort-sched's parker; under loom, its loom-thread version (same contract).
pub(crate) use gort_sched::{park, WaitReason, Waiter};

/// Yield while waiting for a short, bounded collector step (a claim pass).
#[cfg(not(gort_loom))]
pub(crate) fn spin_yield() {
    std::thread::yield_now();
}
#[cfg(gort_loom)]
pub(crate) fn spin_yield() {
    loom::thread::yield_now();
}

/// Registry shards (each a mutex-protected vector of headers).
#[cfg(not(gort_loom))]
pub(crate) const SHARDS: usize = 64;
#[cfg(gort_loom)]
pub(crate) const SHARDS: usize = 2;

/// `thread_local!`, loom's under the model (loom threads share an OS
/// thread). Only for state that is right across a park — per-thread hints
/// and the like; state of a flow of control that can live across a park
/// belongs in a [`FlowLocal`] (gort-sched's crate docs, "Goroutines share
/// their thread"). Each use says why.
#[cfg(not(gort_loom))]
macro_rules! gc_thread_local {
    ($($t:tt)*) => { std::thread_local!($($t)*); };
}
#[cfg(gort_loom)]
macro_rules! gc_thread_local {
    ($($t:tt)*) => { loom::thread_local!($($t)*); };
}
pub(crate) use gc_thread_local;

/// Runtime state of one flow of control that may live across a park:
/// per goroutine on a goroutine (gort-sched's goroutine-local storage),
/// per thread on a plain OS thread. Declare with [`gc_flow_local!`].
///
/// Goroutines bound to one M interleave on its thread, so state kept in a
/// `thread_local!` while user code runs (a `Drop` that may park) leaks to
/// every goroutine that runs meanwhile (gort-sched's crate docs). A plain thread is a
/// single flow — parking blocks it — so a thread-local slot with a scoped
/// set/restore is right there, and unlike gort-sched's `LocalKey` on a
/// plain thread it stays readable in thread-local destructors (a `Gc`
/// dropped by another thread-local's destructor after gort-sched's
/// per-thread scope stack was destroyed must still be freed, not abort the
/// process). Under loom the runtime is compiled out and every loom thread
/// is a plain flow, so only the thread slot exists.
pub(crate) struct FlowLocal<T: 'static> {
    #[cfg(not(gort_loom))]
    goroutine: &'static gort_sched::LocalKey<T>,
    thread: &'static ThreadKey<std::cell::Cell<*const T>>,
}

#[cfg(not(gort_loom))]
type ThreadKey<T> = std::thread::LocalKey<T>;
#[cfg(gort_loom)]
type ThreadKey<T> = loom::thread::LocalKey<T>;

/// Whether the caller runs on a goroutine (else a plain thread).
#[cfg(not(gort_loom))]
#[inline]
fn on_goroutine() -> bool {
    gort_sched::goid().is_some()
}

impl<T: 'static> FlowLocal<T> {
    #[cfg(not(gort_loom))]
    pub(crate) const fn new(
        goroutine: &'static gort_sched::LocalKey<T>,
        thread: &'static ThreadKey<std::cell::Cell<*const T>>,
    ) -> FlowLocal<T> {
        FlowLocal { goroutine, thread }
    }

    #[cfg(gort_loom)]
    pub(crate) const fn new(thread: &'static ThreadKey<std::cell::Cell<*const T>>) -> FlowLocal<T> {
        FlowLocal { thread }
    }

    /// Sets the value for the calling flow while `f` runs (scopes nest).
    /// Other goroutines on this thread, while this one is parked inside
    /// `f`, do not see it.
    pub(crate) fn scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        #[cfg(not(gort_loom))]
        if on_goroutine() {
            return self.goroutine.scope(value, f);
        }
        struct Restore<T: 'static>(&'static ThreadKey<std::cell::Cell<*const T>>, *const T);
        impl<T: 'static> Drop for Restore<T> {
            fn drop(&mut self) {
                let _ = self.0.try_with(|c| c.set(self.1));
            }
        }
        let me = &value as *const T;
        // If the slot is gone (loom thread teardown), nothing is set:
        // nested users then open scopes of their own.
        let _restore = self
            .thread
            .try_with(|c| c.replace(me))
            .ok()
            .map(|prev| Restore(self.thread, prev));
        f()
    }

    /// Calls `f` with the calling flow's innermost value, or returns `None`
    /// if it has set none.
    pub(crate) fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Option<R> {
        #[cfg(not(gort_loom))]
        if on_goroutine() {
            return self.goroutine.try_with(f).ok();
        }
        let p = self.thread.try_with(|c| c.get()).ok()?;
        // SAFETY: a non-null slot points at the value of a `scope` still
        // running on this thread: the thread is one flow, so scopes nest
        // and each restores the slot when it returns or unwinds.
        (!p.is_null()).then(|| f(unsafe { &*p }))
    }
}

/// Declares a [`FlowLocal`]: `gc_flow_local! { static NAME: T; }`.
#[cfg(not(gort_loom))]
macro_rules! gc_flow_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty;) => {
        $(#[$attr])*
        static $name: $crate::loom::FlowLocal<$t> = {
            gort_sched::goroutine_local! {
                static GOROUTINE: $t;
            }
            // The plain thread's innermost scope (see `FlowLocal`). Right
            // across a park: a plain thread that parks blocks, so no other
            // flow runs on it; goroutines use `GOROUTINE`, never this.
            // Const and without `Drop`, so never destroyed.
            std::thread_local! {
                static THREAD: std::cell::Cell<*const $t> =
                    const { std::cell::Cell::new(std::ptr::null()) };
            }
            $crate::loom::FlowLocal::new(&GOROUTINE, &THREAD)
        };
    };
}
#[cfg(gort_loom)]
macro_rules! gc_flow_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty;) => {
        $(#[$attr])*
        static $name: $crate::loom::FlowLocal<$t> = {
            // The loom thread's innermost scope: each loom thread is one
            // flow (nothing interleaves on it across a park), so a scoped
            // set/restore nests (see `FlowLocal`).
            loom::thread_local! {
                static THREAD: std::cell::Cell<*const $t> =
                    std::cell::Cell::new(std::ptr::null());
            }
            $crate::loom::FlowLocal::new(&THREAD)
        };
    };
}
pub(crate) use gc_flow_local;

/// Locks a std/loom mutex, ignoring poisoning (the protected data is kept
/// consistent by every critical section before anything can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
