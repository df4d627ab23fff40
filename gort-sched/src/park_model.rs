//! Under `--cfg gort_loom`: `park` and `Waiter` for the upper layers'
//! models, on loom threads.
//!
//! The goroutine context switch cannot run under loom, so the layers above
//! (gort-sema's semaphores and notes, gort-std's channels, mutexes and
//! WaitGroup) model their state machines on this parker instead. It keeps
//! the contract of the real [`park`](crate::waiter) that those state
//! machines rely on, and nothing more:
//!
//! * a [`Waiter`] made by a thread wakes that thread's next `park` (every
//!   waiter made before one park shares its state, as the real ones share
//!   the goroutine's park epoch);
//! * a `ready` that comes before the park is not lost, and one that comes
//!   after the commit closure returned `false` is harmless;
//! * `park` returns at once when the commit closure refuses.
//!
//! What it leaves out, on purpose: spurious wake-ups (the real `park` has
//! none either: a goroutine is readied once per park epoch) and the wait
//! reason, which only dumps read.

use crate::WaitReason;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use std::cell::RefCell;

struct Inner {
    notified: AtomicBool,
    thread: loom::thread::Thread,
}

loom::thread_local! {
    // Loom's thread-locals are per model thread (no goroutines exist under
    // loom), which is exactly a real parker's per-goroutine state.
    static CURRENT: RefCell<Option<Arc<Inner>>> = RefCell::new(None);
}

/// Wakes the next [`park`] of the thread that made it.
#[derive(Clone)]
pub struct Waiter(Arc<Inner>);

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

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

/// Parks until a waiter made for this park is readied; returns at once if
/// `commit` returns `false`.
///
/// # Panics
/// If this thread made no [`Waiter`] since its last park (the real `park`
/// has the same precondition).
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
