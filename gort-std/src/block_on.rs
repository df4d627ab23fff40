//! `block_on`: runs a Rust future to completion on the calling goroutine (or
//! thread), parking it — not its M — while the future is pending.
//!
//! # The problem
//!
//! The async ecosystem (HTTP clients, database drivers) hands out futures; a
//! goroutine wants a value. A goroutine must not block its OS thread while
//! it waits (the other goroutines bound to that M would stall with it), so
//! the bridge parks the goroutine through gort-sched's [`park`] and lets the
//! future's [`Waker`] ready it, like any channel or mutex wake-up. From a
//! plain OS thread the same code parks the thread.
//!
//! # The design
//!
//! Each call owns a small `Signal` shared (through an `Arc`) with the waker
//! it hands to `poll`: a state word and a slot for the parked owner's
//! [`Waiter`]. The future itself is pinned on the caller's stack, never
//! boxed: a goroutine's stack stays in place while it is parked.
//!
//! ```text
//!   owner                                    waker (wake / wake_by_ref)
//!   -----                                    --------------------------
//!   poll -> Pending                          POLLING  -> NOTIFIED (owner polls again)
//!   waiter = Waiter::current(); slot = it    NOTIFIED -> (no-op)
//!   park(commit: POLLING -> PARKED)          PARKED   -> NOTIFIED, take slot, ready it
//!     commit fails (NOTIFIED): park abandoned DONE    -> (no-op: stale)
//!   state := POLLING, poll again
//!   Ready or unwinding: state := DONE
//! ```
//!
//! The waiter is made *after* `poll` returns, not before it: a `poll` may
//! itself park the goroutine (a gort `Mutex`, a nested `block_on`), and
//! every park makes its own waiter, which would leave one made earlier
//! stale. The move to `PARKED` is [`park`]'s commit, so a wake that comes
//! before the commit makes the commit fail (the park is abandoned and its
//! waiter retired), and one that comes between the commit and the switch
//! readies a waiter whose park then returns at once: no interleaving loses
//! a wake-up. Only the waker that moves `PARKED -> NOTIFIED` reads the slot,
//! so wakes from many threads at once ready the owner once, and the rest are
//! two atomic operations at most.
//! `src/tests/loom_block_on.rs` checks every interleaving of a wake (one
//! or two wakers) with the poll, the commit and the park, on gort-sched's
//! loom parker; storing `PARKED` instead of the commit's CAS fails it.
//!
//! # Invariants
//! * The owner is parked (or about to be) only in state `PARKED`, and its
//!   current waiter is then in the slot.
//! * Exactly one waker moves the state out of `PARKED` (or the owner, if
//!   its park returned for another reason), and that one readies the
//!   waiter it takes from the slot.
//! * After `block_on` returns or unwinds the state is `DONE` for good: a
//!   waker kept by the future (or a task that outlived it) is a no-op.
//!
//! Rejected: a waker that readies a [`Waiter`] made before the poll (a
//! `poll` that parks makes it stale, losing the wake); making the waker
//! with a hand-written `RawWakerVTable` (`std::task::Wake` on an `Arc` is
//! the same cost without `unsafe`); a lock-free slot (an `UnsafeCell` read
//! by the winning waker is sound only if a park never returns before its
//! ready; the uncontended lock is two atomic operations next to a park).

use crate::loom::{park, AtomicU32, Ordering, StdMutex, StdMutexGuard, WaitReason, Waiter};
use std::future::{Future, IntoFuture};
use std::pin::pin;
// A std Arc even under loom: `Waker::from` takes one (the state inside it
// is loom's).
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// The owner is polling, or between a poll and its park.
const POLLING: u32 = 0;
/// A wake came while the owner was not parked: it polls again.
const NOTIFIED: u32 = 1;
/// The owner committed to park; its waiter is in the slot.
const PARKED: u32 = 2;
/// `block_on` returned (or unwound): every wake is stale.
const DONE: u32 = 3;

/// What a goroutine parked in `block_on` shows in dumps.
const REASON: WaitReason = WaitReason::Other("block_on");

/// One `block_on` call's wake-up state, shared by the owner and every clone
/// of its waker.
struct Signal {
    /// POLLING / NOTIFIED / PARKED / DONE (module table). Written by the
    /// owner (commit, resume, done) and by wakers (CAS to NOTIFIED).
    /// AcqRel/Acquire throughout: a waker's CAS releases what it did before
    /// the wake to the owner's next poll (its CAS failure or its swap back
    /// to POLLING acquires it).
    state: AtomicU32,
    /// The parked owner's waiter. Written by the owner before its commit;
    /// taken by the one waker that moved the state from PARKED, and cleared
    /// by the owner when done. The lock makes it sound whatever the timing;
    /// the state machine keeps it uncontended.
    slot: StdMutex<Option<Waiter>>,
}

impl Signal {
    fn slot(&self) -> StdMutexGuard<'_, Option<Waiter>> {
        // Nothing panics under the lock; ignore poisoning all the same.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s == NOTIFIED || s == DONE {
                return; // someone else will see to it, or it is stale
            }
            // POLLING or PARKED -> NOTIFIED. AcqRel: Release pairs with the
            // owner's Acquire when it next reads the state (the future's
            // wake-up cause is visible to its next poll); Acquire pairs
            // with the owner's commit (its waiter is in the slot).
            match self
                .state
                .compare_exchange_weak(s, NOTIFIED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(cur) => s = cur,
            }
        }
        if s == PARKED {
            // We won the owner's park: ready it (outside the lock).
            let w = self.slot().take();
            if let Some(w) = w {
                w.ready();
            }
        }
    }
}

/// Marks the call done when `block_on` returns or unwinds (a panic in
/// `poll`), so wakers kept beyond it are no-ops.
struct Done<'a>(&'a Signal);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.state.store(DONE, Ordering::Release);
        // A waiter left from an abandoned park: stale, drop it now.
        drop(self.0.slot().take());
    }
}

/// Runs `fut` to completion on the calling goroutine or thread and returns
/// its output.
///
/// While the future is pending, a goroutine parks (its M runs other
/// goroutines) and a plain OS thread parks on a futex, until the future's
/// [`Waker`] is woken; then it polls again. The future stays pinned on the
/// caller's stack (no allocation for it; one small `Arc` per call for the
/// waker). The waker is `Send + Sync` and may be woken from any thread, a
/// goroutine, a timer callback or another runtime's task, any number of
/// times: a wake before the park is not lost, concurrent wakes ready the
/// caller once, and a wake after `block_on` returned does nothing.
///
/// # Which futures work
///
/// Any *runtime-agnostic* future: one whose wake-up comes from whatever
/// completes it — a oneshot or channel of the `futures` crate or of
/// `tokio::sync`, a tokio `JoinHandle`, a hand-written future whose waker a
/// goroutine or a gort timer wakes, an `async fn` that only awaits such
/// futures.
///
/// gort has **no tokio reactor**. A future that needs one — `tokio::net`,
/// `tokio::time`, `tokio::fs`, or one that calls `tokio::spawn` — panics
/// with tokio's "there is no reactor running, must be called from the
/// context of a Tokio 1.x runtime" when it is created or first polled
/// outside a tokio runtime. Run such a future *on* a runtime kept on its
/// own threads, and block on the handle, which is runtime-agnostic:
///
/// ```ignore
/// let rt = tokio::runtime::Runtime::new()?; // its own worker threads
/// gort::go(move || {
///     let handle = rt.spawn(async { tokio::time::sleep(d).await; 42 });
///     let v = gort_std::block_on(handle).unwrap(); // parks this goroutine
/// });
/// ```
///
/// The future must also be *created* on the runtime: `rt.spawn(tokio::time::
/// sleep(d))` builds the `Sleep` on the calling goroutine, outside the
/// runtime, and panics there; `rt.spawn(async move { tokio::time::sleep(d).
/// await })` (or an `async fn` call, whose body runs only when polled)
/// builds it inside the task. The runtime must drive its reactor on threads
/// of its own: a multi-thread runtime does; a current-thread runtime only
/// runs while some thread is inside its `block_on`.
///
/// (`rt.handle().enter()` also makes tokio's constructors work on the
/// calling thread, but its guard is a thread-local that must be dropped in
/// LIFO order, and the goroutines of one M share their thread: never hold
/// it across a park — including this `block_on` — in a goroutine. Spawning
/// is the robust recipe; see the README's "Goroutines share their thread".)
///
/// Do not call `block_on` from inside a tokio task: it parks a tokio worker
/// thread (a plain thread to gort), and on a current-thread runtime the
/// future it waits for may never run.
///
/// # Nesting
///
/// A `poll` may call `block_on` (or block on any gort primitive): the inner
/// call parks the same goroutine, whose M runs other goroutines meanwhile,
/// and a wake of the outer future during it is kept for the outer call's
/// next poll.
///
/// # Panics
///
/// A panic in `poll` propagates to the caller (the future is dropped as the
/// stack unwinds; its waker goes stale).
///
/// ```
/// // An async fn that awaits nothing runtime-specific runs directly.
/// async fn add(a: u32, b: u32) -> u32 {
///     a + b
/// }
/// assert_eq!(gort_std::block_on(add(2, 3)), 5);
/// ```
pub fn block_on<F: IntoFuture>(fut: F) -> F::Output {
    let mut fut = pin!(fut.into_future());
    let signal = Arc::new(Signal {
        state: AtomicU32::new(POLLING),
        slot: StdMutex::new(None),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let _done = Done(&signal);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        block_on_slow(&signal);
    }
}

/// The owner's half after a `Pending` poll: parks until woken (or returns
/// at once if a wake already came), leaving the state POLLING.
#[cold]
fn block_on_slow(signal: &Signal) {
    // A preemption point, as every gort-std operation that may park: a
    // future that keeps waking itself (a cooperative yield) never parks,
    // and would otherwise keep its M from the goroutines bound to it once
    // sysmon asks it to yield.
    crate::loom::preempt_point();
    // A wake during the poll: poll again without making a waiter. Acquire
    // pairs with the waker's CAS.
    if signal
        .state
        .compare_exchange(NOTIFIED, POLLING, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    // Made now, after the poll: a park inside the poll made its own.
    *signal.slot() = Some(Waiter::current());
    park(REASON, || {
        // The commit. AcqRel: Release publishes the slot to the waker that
        // moves PARKED -> NOTIFIED (its Acquire); on failure (a wake came:
        // NOTIFIED) the park is abandoned and the waiter retired.
        signal
            .state
            .compare_exchange(POLLING, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    // Woken (state NOTIFIED), or the commit failed (NOTIFIED). Should the
    // park ever return without its wake (PARKED), taking the state back is
    // still right: a later waker sees POLLING and leaves NOTIFIED. Acquire
    // pairs with the waker's CAS: its writes are visible to the next poll.
    signal.state.swap(POLLING, Ordering::Acquire);
}
