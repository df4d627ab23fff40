//! # gort-sema: Go's runtime sleep/wake-up primitives
//!
//! The layer between the scheduler's bare [`park`](gort_sched::park) /
//! [`Waiter`](gort_sched::Waiter) and the sync types of gort-std, after Go's
//! runtime/sema.go:
//!
//! * [`semacquire`] / [`semrelease`] — a counter (`u32`) plus wait queues
//!   keyed by the counter's address: every sleep pairs with one wake-up even
//!   when the wake-up comes first. FIFO, with LIFO queueing on request and
//!   for a woken waiter that lost the race, and direct hand-off of the count
//!   to the woken waiter when the releaser asks (sync.Mutex's starvation
//!   mode).
//! * [`NotifyList`] — ticket-based wait/notify for sync.Cond: a notify wakes
//!   only waiters that took their ticket before it.
//! * [`Note`] — a one-shot sleep/wake-up.
//!
//! Every primitive works the same from a goroutine (it parks the goroutine;
//! its M runs others) and from a plain OS thread (it parks the thread).
//!
//! ## Design
//!
//! Go's table of 251 roots, each a treap of addresses with per-address wait
//! lists, becomes 251 cache-padded roots each holding a hash map of
//! per-address FIFO queues: the same guarantees (O(1) per queue, addresses
//! that share a root do not slow each other much), less code. Queued waiters
//! are heap records owned by the blocked caller, as Go's sudogs; the queue
//! holds pointers to them only while their owners are parked. They are never
//! on the caller's stack, which may be compacted away while it is parked.
//!
//! Rejected: one global lock (every semaphore would contend on it); a
//! futex per counter (would not park goroutines).
//!
//! # Invariants
//!
//! * A queued sudog's owner is parked (or about to park with its wake-up
//!   pending) until the releaser that dequeued it readies it; nothing
//!   touches the sudog after that ready.
//! * `nwait` of a root counts the sudogs queued in it, plus acquirers about
//!   to queue; it is raised before the acquirer's last look at the counter.
//! * NotifyList: `notify` never passes `wait`; every ticket below `notify`
//!   has been (or will at its `wait` be) woken exactly once.

mod loom;
mod note;
mod notify;
mod sema;

pub use note::Note;
pub use notify::{NotifyList, Ticket};
pub use sema::{semacquire, semacquire_mutex, semacquire_with, semrelease, semwaiters};

#[cfg(all(test, gort_loom))]
mod tests;
