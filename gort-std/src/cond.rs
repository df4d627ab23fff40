//! `Cond`: Go's sync.Cond over a gort [`Mutex`](crate::Mutex), on
//! gort-sema's ticket-based `NotifyList`: `signal` wakes the longest waiter,
//! `broadcast` all, and neither ever wakes a waiter that started waiting
//! after it.

use crate::mutex::MutexGuard;
use gort_sema::NotifyList;

/// A condition variable (Go's sync.Cond; Rust's Condvar shape).
#[derive(Default)]
pub struct Cond {
    notify: NotifyList,
}

impl Cond {
    /// A new condition variable.
    pub fn new() -> Cond {
        Cond {
            notify: NotifyList::new(),
        }
    }

    /// Atomically unlocks the guard's mutex and waits for a `signal` or
    /// `broadcast`, then relocks it. As in Go, check the condition in a loop
    /// (or use [`Cond::wait_while`]): being woken does not mean it holds.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let m = MutexGuard::mutex(&guard);
        // The ticket is taken while the lock is held: a signal after this
        // point wakes us even if it comes before we sleep.
        let t = self.notify.add();
        drop(guard);
        self.notify.wait(t);
        m.lock()
    }

    /// Waits until `condition` is false.
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// How many goroutines or threads are asleep in [`Cond::wait`] right
    /// now, not yet woken: a snapshot, for tests and diagnostics (a test
    /// waits for it instead of sleeping and hoping the waiters are
    /// asleep). A waiter counts from the moment it is queued — a `signal`
    /// will find it even if it has not finished parking — until a `signal`
    /// or `broadcast` takes it off the queue.
    pub fn waiting(&self) -> usize {
        self.notify.waiting()
    }

    /// Wakes the goroutine (or thread) that has waited longest, if any.
    pub fn signal(&self) {
        self.notify.notify_one();
    }

    /// Wakes every waiter.
    pub fn broadcast(&self) {
        self.notify.notify_all();
    }
}

impl std::fmt::Debug for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cond { .. }")
    }
}
