//! # gort-std: Go's sync package for goroutines and threads
//!
//! So far: [`Mutex`] / [`RawMutex`] (sync.Mutex with Go's spinning and
//! starvation mode), [`RwLock`] / [`RawRwLock`] (writer preference),
//! [`WaitGroup`] (with Go 1.25's `go`), [`Cond`], [`Once`],
//! [`OnceValue`] and [`Pool`] (per-P shards, victim cache, cleared by
//! [`pool_cleanup`], the hook the GC layer will call). Every blocking operation parks the calling goroutine
//! (its M runs other goroutines) or, from a plain OS thread such as `main`,
//! parks the thread — `main` calling `wg.wait()` just works.
//!
//! Built on gort-sema (address-keyed semaphores, notify lists), which is
//! built on gort-sched's park/ready. Misuse panics with Go's messages:
//! unlocking an unlocked mutex, a negative WaitGroup counter, reusing a
//! WaitGroup before `wait` returned.
//!
//! Still to come (issue 3): channels and `select!`.
//!
//! # Invariants
//! * A mutex's state word counts exactly the goroutines/threads queued on
//!   its semaphore (plus those about to queue) in its waiter bits.
//! * A WaitGroup's waiter count is only cleared when its counter is zero.

mod chan;
#[cfg(not(gort_loom))]
mod cond;
mod loom;
mod mutex;
#[cfg(not(gort_loom))]
mod once;
#[cfg(not(gort_loom))]
mod pool;
#[cfg(not(gort_loom))]
mod rwlock;
mod waitgroup;

pub use chan::{
    chan, IntoIter, Iter, Receiver, RecvCase, RecvError, Select, SendCase, SendError, Sender,
    TryIter, TryRecvError, TrySendError,
};
#[cfg(not(gort_loom))]
pub use cond::Cond;
pub use mutex::{Mutex, MutexGuard, RawMutex};
#[cfg(not(gort_loom))]
pub use once::{Once, OnceValue};
#[cfg(not(gort_loom))]
pub use pool::{pool_cleanup, Pool};
#[cfg(not(gort_loom))]
pub use rwlock::{RawRwLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use waitgroup::WaitGroup;

#[cfg(all(test, gort_loom))]
mod tests;
