//! The one place this crate takes atomics, locks and parking from.
//!
//! Normally parking is gort-sched's [`park`]/[`Waiter`], which serve
//! goroutines and plain threads alike. Under `--cfg gort_loom` the scheduler
//! is not available, so a loom-thread parker with the same contract stands
//! in (a waiter wakes the next park of the thread that made it, and a ready
//! before the park is not lost), and atomics and mutexes are loom's. The
//! public semaphore functions then take loom atomics, so the layers above
//! can model their own state machines on top of them.

#[cfg(not(gort_loom))]
pub(crate) use gort_sched::gosched as yield_now;
#[cfg(not(gort_loom))]
pub(crate) use gort_sched::{park, WaitReason, Waiter};
#[cfg(gort_loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(gort_loom))]
pub(crate) use std::sync::Mutex;

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(gort_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(gort_loom)]
pub(crate) use shim::{park, WaitReason, Waiter};

/// The loom stand-in for gort-sched's `park`/`Waiter`, exported (under
/// `--cfg gort_loom` only) so the layers above model their own protocols
/// on the same parker.
#[cfg(gort_loom)]
pub mod shim {
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;
    use std::cell::RefCell;

    /// gort-sched's wait reasons (the ones used by the modelled layers).
    #[derive(Debug, Clone, Copy)]
    #[allow(missing_docs)]
    pub enum WaitReason {
        SemAcquire,
        SyncCondWait,
        ChanSend,
        ChanReceive,
        Select,
        SelectNoCases,
        IoWait,
        GcWait,
        FinalizerWait,
        Other(&'static str),
    }

    struct Inner {
        notified: AtomicBool,
        thread: loom::thread::Thread,
    }

    loom::thread_local! {
        static CURRENT: RefCell<Option<Arc<Inner>>> = RefCell::new(None);
    }

    /// Wakes the next `park` of the thread that made it (all waiters made
    /// before one park share its state, as gort-sched's do through the
    /// epoch).
    #[derive(Clone)]
    pub struct Waiter(Arc<Inner>);

    impl Waiter {
        /// A waiter for this thread's next park.
        pub fn current() -> Waiter {
            let inner = CURRENT.with(|c| {
                c.borrow_mut()
                    .get_or_insert_with(|| {
                        Arc::new(Inner {
                            notified: AtomicBool::new(false),
                            thread: loom::thread::current(),
                        })
                    })
                    .clone()
            });
            Waiter(inner)
        }

        /// Wakes the park this waiter was made for.
        pub fn ready(self) {
            self.0.notified.store(true, Ordering::Release);
            self.0.thread.unpark();
        }
    }

    /// Parks until a waiter made for this park is readied.
    pub fn park<F: FnOnce() -> bool>(_reason: WaitReason, commit: F) {
        let inner = CURRENT
            .with(|c| c.borrow_mut().take())
            .expect("park without Waiter::current");
        if !commit() {
            return;
        }
        while !inner.notified.load(Ordering::Acquire) {
            loom::thread::park();
        }
    }
}
