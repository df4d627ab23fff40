//! `Waiter`, `park`, and the wait reasons: the one blocking primitive every
//! upper layer (semaphores, channels, timers, netpoll) is built from, for
//! goroutines and plain OS threads alike.

use crate::park_state::{Notify, ParkState};
use crate::rt::{self, G};
use gort_os::futex::Parker;
use crate::WaitReason;
use std::fmt;
use std::sync::Arc;


/// A plain OS thread's park state (one per thread, shared with its waiters).
pub(crate) struct ThreadWaiter {
    state: ParkState,
    parker: Parker,
    /// Whether the current park has a timeout (then it does not count as
    /// parked for sysmon's deadlock check: it wakes by itself). Written by
    /// the thread before `try_park`, so it is stable while the park word
    /// says PARKED with the same epoch (see `parked_untimed`).
    timed: std::sync::atomic::AtomicBool,
}

// Only for plain threads, and for a goroutine inside `syscall` (which acts
// as one): a thread that parks here blocks, and an M blocked in a call runs
// none of its other goroutines, so no other flow of control uses this
// waiter meanwhile (a waiter left over from an earlier park is stale by
// its epoch).
thread_local! {
    static THREAD_WAITER: Arc<ThreadWaiter> = {
        let t = Arc::new(ThreadWaiter {
            state: ParkState::new(),
            parker: Parker::new(),
            timed: std::sync::atomic::AtomicBool::new(false),
        });
        // Once per thread: sysmon's deadlock check counts the parked ones.
        THREAD_WAITERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&t));
        t
    };
}

/// Every plain thread's waiter (dead entries pruned when counted).
static THREAD_WAITERS: std::sync::Mutex<Vec<std::sync::Weak<ThreadWaiter>>> =
    std::sync::Mutex::new(Vec::new());

/// Plain threads (and goroutines inside `syscall`) asleep in an untimed
/// park right now, for sysmon's deadlock check. Exact per thread: a park
/// counts if its word says PARKED, it is untimed, and the word did not
/// change meanwhile (the epoch advances at every wake), so a thread that
/// was woken and parks again, timed, is never miscounted.
pub(crate) fn parked_untimed() -> usize {
    let mut ws = THREAD_WAITERS.lock().unwrap_or_else(|e| e.into_inner());
    ws.retain(|w| w.strong_count() > 0);
    ws.iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|t| {
            let w = t.state.word();
            ParkState::word_is_parked(w)
                && !t.timed.load(std::sync::atomic::Ordering::SeqCst)
                && t.state.word() == w
        })
        .count()
}

#[derive(Clone)]
enum Target {
    /// Goroutine descriptors are never freed (like Go's `allgs`), so the
    /// pointer stays valid; the epoch makes a waiter for a finished park or
    /// an exited goroutine a no-op.
    G(&'static G),
    Thread(Arc<ThreadWaiter>),
}

/// A handle that wakes one park of one goroutine or OS thread.
///
/// Take it with [`Waiter::current`] *before* calling [`park`], publish it
/// where a waker will find it (under the lock that [`park`]'s commit
/// releases), and the waker calls [`Waiter::ready`].
///
/// A waiter wakes at most the next park of its owner after it was made, and
/// only while it is the owner's newest waiter:
/// * `ready` before that park has started makes the park return at once
///   (nothing is lost);
/// * `ready` after that park completed or was abandoned (its commit returned
///   false), after the owner made another waiter, or after the goroutine
///   exited, does nothing.
///
/// So a waiter that outlives its park — kept by mistake, readied late — can
/// never wake some later, unrelated park of the same goroutine, such as the
/// runtime's own wait inside a channel receive or a mutex: every wait makes
/// a fresh waiter. To wake one park from several places (a `select` queued
/// on many channels), [`Clone`] the waiter: the first `ready` wins, the
/// others are no-ops.
#[derive(Clone)]
pub struct Waiter {
    target: Target,
    epoch: u64,
}

// SAFETY: a Waiter is a handle: a pointer to an immortal G whose shared state
// is atomic, or an Arc of an atomic state + parker.
unsafe impl Send for Waiter {}
// SAFETY: as above; `&Waiter` gives no access beyond Send-safe reads.
unsafe impl Sync for Waiter {}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::G(g) => {
                let goid = g.goid();
                write!(f, "Waiter(goroutine {goid}, epoch {})", self.epoch)
            }
            Target::Thread(_) => write!(f, "Waiter(thread, epoch {})", self.epoch),
        }
    }
}

impl Waiter {
    /// A waiter for the calling goroutine's (or thread's) next park. Every
    /// waiter made before it by the same goroutine or thread goes stale.
    #[inline]
    pub fn current() -> Waiter {
        match rt::current_g() {
            Some(g) => Waiter {
                // Only the running goroutine starts new epochs of its park.
                epoch: g.park.new_epoch(),
                target: Target::G(g),
            },
            None => THREAD_WAITER.with(|t| Waiter {
                epoch: t.state.new_epoch(),
                target: Target::Thread(t.clone()),
            }),
        }
    }

    /// Whether this waiter belongs to a goroutine (else a plain thread).
    pub fn is_goroutine(&self) -> bool {
        matches!(self.target, Target::G(_))
    }

    /// Wakes the park this waiter was made for (see the type docs).
    #[inline]
    pub fn ready(self) {
        match self.target {
            Target::G(g) => {
                if g.park.notify(self.epoch) == Notify::Resume {
                    rt::ready_g(g);
                }
            }
            Target::Thread(t) => {
                if t.state.notify(self.epoch) == Notify::Resume {
                    rt::progress(); // for sysmon's deadlock check
                    t.parker.unpark();
                }
            }
        }
    }
}

/// Parks the calling goroutine (or thread) until a [`Waiter`] made for this
/// park is readied.
///
/// `commit` runs first; if it returns `false` the park is abandoned and
/// `park` returns at once. Use it to release the lock that protects the
/// queue where the waiter was published: a waker that runs between the
/// commit and the actual switch is not lost (the park then returns at once).
///
/// From a goroutine this switches to the M's scheduler, which runs other
/// goroutines; from a plain thread it sleeps on a futex.
#[inline]
pub fn park<F: FnOnce() -> bool>(reason: WaitReason, commit: F) {
    if let Some(g) = rt::current_g() {
        rt::park_g(g, reason, commit);
        return;
    }
    THREAD_WAITER.with(|t| {
        let epoch = t.state.epoch();
        if !commit() {
            t.state.retire(); // the abandoned park's waiters go stale
            return;
        }
        t.timed.store(false, std::sync::atomic::Ordering::Relaxed);
        if !t.state.try_park() {
            return;
        }
        // (sysmon counts it while its word says PARKED.)
        rt::thread_parked();
        while !t.state.woken(epoch) {
            t.parker.park();
        }
    });
}

/// Like [`park`], for a plain OS thread only, giving up after `timeout`.
/// Returns true if woken by a waiter, false on timeout.
///
/// Goroutines get timeouts from gort-timer, which readies their waiter.
///
/// # Panics
/// If called from a goroutine.
pub fn park_thread_timeout<F: FnOnce() -> bool>(
    _reason: WaitReason,
    timeout: std::time::Duration,
    commit: F,
) -> bool {
    assert!(
        rt::current_g().is_none(),
        "park_thread_timeout called from a goroutine; use gort-timer for goroutine timeouts"
    );
    THREAD_WAITER.with(|t| {
        let epoch = t.state.epoch();
        if !commit() {
            t.state.retire();
            return true;
        }
        t.timed.store(true, std::sync::atomic::Ordering::Relaxed);
        if !t.state.try_park() {
            return true;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if t.state.woken(epoch) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                // Withdraw; if a waker won the race, its wake counts.
                return !t.state.cancel(epoch);
            }
            t.parker.park_timeout(deadline - now);
        }
    })
}
