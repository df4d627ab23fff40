//! # gort-std: Go's sync package for goroutines and threads
//!
//! [`Mutex`] / [`RawMutex`] (sync.Mutex with Go's spinning and
//! starvation mode), [`RwLock`] / [`RawRwLock`] (writer preference),
//! [`WaitGroup`] (with Go 1.25's `go`), [`Cond`], [`Once`],
//! [`OnceValue`] and [`Pool`] (per-P shards in Go's private-then-shared
//! order, victim cache, cleared — private slots included — by
//! [`pool_cleanup`], which the first `Pool` registers as a gort-gc hook, so
//! every collection rotates the victim caches), and Go's channels:
//! [`chan`] gives a cloneable [`Sender`]/[`Receiver`] pair (capacity 0 is
//! a rendezvous), [`select!`] / [`Select`] wait on several operations at
//! once; [`Timer`], [`Ticker`], [`after`], [`after_func`], [`sleep`] and
//! [`Receiver::recv_timeout`] are Go's time package on top, with Go 1.23's
//! semantics: no stale value after a stop or reset, Stop and Reset count a
//! fired but unreceived value as pending, timer channels report `len` and
//! `capacity` 0, and a timer channel owns its timer, which is stopped and
//! freed with the channel's last receiver. Every blocking operation parks
//! the calling goroutine (its M runs other goroutines) or, from a plain OS
//! thread such as `main`, parks the thread — `main` calling `wg.wait()`
//! just works. [`fs`] is `std::fs` with every call that can block made on
//! gort-sched's blocking pool, so a goroutine's file I/O does not stall the
//! other goroutines of its thread. [`signal`] is Go's os/signal: Unix
//! signals delivered on channels (Linux). [`block_on`] bridges to async
//! Rust: it runs a future on the calling goroutine, parking the goroutine
//! (not its M) until the future's waker fires; futures that need a tokio
//! reactor run on a tokio runtime of their own, the goroutine blocking on
//! the `JoinHandle` (see its docs).
//!
//! The sync types are built on gort-sema (address-keyed semaphores, notify
//! lists); channels park directly through gort-sched's park/ready, with
//! gort-os's short-hold `RawLock` per channel (design notes in `src/chan/`:
//! Go's hchan and selectgo, plus a pass that tries each
//! select case under its own lock first). Misuse panics with Go's
//! messages: unlocking an unlocked mutex, a negative WaitGroup counter,
//! reusing a WaitGroup before `wait` returned, sending on or closing a
//! closed channel.
//!
//! ## Raw locks: releasing one is `unsafe`
//!
//! [`RawMutex`] and [`RawRwLock`] keep Go's shape — any goroutine may unlock
//! what another locked — but their `unlock`, `read_unlock` and
//! `write_unlock` are `unsafe fn`s, as in lock_api: the caller must own the
//! hold it releases (it took it, or it was handed over) and no guard may
//! still rely on it. With a safe unlock, `m.raw().unlock()` under a live
//! [`MutexGuard`] let a second `lock()` in: two live `&mut T` to the same
//! value, from safe code. Go's misuse panics (`sync: unlock of unlocked
//! mutex`, `sync: RUnlock of unlocked RWMutex`, `sync: Unlock of unlocked
//! RWMutex`) stay: they catch the broken contract they can see. Rejected:
//! keeping unlock safe and making [`Mutex::raw`] private (`Cond`-style
//! users and tests need the raw lock, and a standalone `RawMutex` guarding
//! data through `unsafe` code would still have a safe way to break it);
//! tracking the owner (Go does not, and hand-over between goroutines is
//! legitimate). The guards are the safe API.
//!
//! Timers: [`after_func`] runs its function on a goroutine of its own for
//! each fire (gort-timer's safe `RawTimer`), never under the timer heap's
//! lock; a panic in it ends the process with `fatal error: panic in a timer
//! callback: ...`, as a panic in Go's `AfterFunc` goroutine does. The
//! channel timers ([`Timer`], [`Ticker`], [`after`]) use the unchecked
//! variant: their callback is a `try_send` that never blocks, and running
//! it under the heap lock is what makes their stop exact.
//!
//! # Invariants
//! * A mutex's state word counts exactly the goroutines/threads queued on
//!   its semaphore (plus those about to queue) in its waiter bits.
//! * A WaitGroup's waiter count is only cleared when its counter is zero.
//! * A channel's blocked operations are complete when their owners wake:
//!   a waker moves the value and sets the result before readying them.

mod block_on;
mod chan;
#[cfg(not(gort_loom))]
mod cond;
#[cfg(not(gort_loom))]
pub mod fs;
#[cfg(not(gort_loom))]
mod gc_trace;
mod loom;
mod mutex;
#[cfg(not(gort_loom))]
mod once;
#[cfg(not(gort_loom))]
mod pool;
// Under loom only for its model (src/tests/loom_pool.rs).
#[cfg(any(not(gort_loom), test))]
mod pool_slot;
mod rwlock;
#[cfg(all(target_os = "linux", not(gort_loom)))]
pub mod signal;
#[cfg(not(gort_loom))]
mod time;
mod waitgroup;

pub use block_on::block_on;
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
pub use rwlock::{RawRwLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(gort_loom))]
pub use time::{
    after, after_func, sleep, sleep_until, tick, AfterFunc, RecvTimeoutError, Ticker, Timer,
};
pub use waitgroup::WaitGroup;

#[cfg(all(test, gort_loom))]
mod tests;
