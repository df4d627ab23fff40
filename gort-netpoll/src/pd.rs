//! One direction (read or write) of a [`PollDesc`](crate::poller::PollDesc):
//! Go's `rg`/`wg` word — readiness, the parked waiter, and the error flags.
//!
//! The word's two low bits are Go's states; two more bits carry the errors a
//! waiter must see (Go keeps them in separate fields and re-checks them after
//! publishing `pdWait`; keeping them in the same word makes every transition
//! one compare-and-swap, with no Dekker pair between "deadline expired" and
//! "a waiter is committing"):
//!
//! | state    | meaning                                                   |
//! |----------|-----------------------------------------------------------|
//! | `NIL`    | nothing pending, nobody waiting                           |
//! | `READY`  | readiness arrived and nobody consumed it (Go's `pdReady`) |
//! | `WAIT`   | a waiter is about to park (Go's `pdWait`)                 |
//! | `PARKED` | a waiter is parked; its [`Waiter`] is in the slot (Go: the G pointer) |
//!
//! Transitions: the waiter moves `NIL → WAIT → PARKED` (the second in the
//! park's commit, Go's `netpollblockcommit`) and back to `NIL` after it
//! resumes; it consumes `READY → NIL`. Wakers — readiness from the poller,
//! an expired deadline, a close — move the state to `READY` (readiness) or
//! set a flag; whoever moves it *out of* `PARKED` takes the waiter from the
//! slot and readies it. A waker that finds `WAIT` only changes the word: the
//! commit then fails and the waiter does not park.

use crate::loom::{park, AtomicUsize, Ordering, UnsafeCell, WaitReason, Waiter};

const ST_MASK: usize = 0b11;
const NIL: usize = 0;
const READY: usize = 1;
const WAIT: usize = 2;
const PARKED: usize = 3;
/// The direction's deadline has passed (cleared by a new deadline).
pub(crate) const EXPIRED: usize = 1 << 2;
/// The descriptor is closing: every wait fails from now on.
pub(crate) const CLOSING: usize = 1 << 3;
/// The poller reported more than plain readiness for the descriptor:
/// urgent data (`EPOLLPRI`: a TCP read stops short at its mark), the peer's
/// shutdown (`EPOLLRDHUP`: a read returns the bytes before the FIN short,
/// end-of-stream next) or an error. Sticky until reuse; not an
/// error for waits. The reader's short-read hint is off from then on (see
/// `NetFd::read_stream`).
pub(crate) const UNUSUAL: usize = 1 << 4;

/// Why a wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollError {
    /// The descriptor was closed ([`CLOSING`]).
    Closing,
    /// The direction's deadline passed ([`EXPIRED`]).
    Timeout,
}

fn check(s: usize) -> Result<(), PollError> {
    if s & CLOSING != 0 {
        Err(PollError::Closing)
    } else if s & EXPIRED != 0 {
        Err(PollError::Timeout)
    } else {
        Ok(())
    }
}

/// One direction's state word and waiter slot.
pub(crate) struct Dir {
    /// State (low 2 bits) and flags. Written by the waiter (claim, commit,
    /// reset) and by wakers (readiness, flags), always by CAS or RMW.
    state: AtomicUsize,
    /// The parked waiter. Written by the waiter while the state is `WAIT`
    /// (nobody else touches the slot then); taken by the one waker whose CAS
    /// moved the state out of `PARKED` (the commit's Release CAS to `PARKED`
    /// publishes the write; the waker's AcqRel CAS acquires it).
    waiter: UnsafeCell<Option<Waiter>>,
}

// SAFETY: the slot is accessed only under the ownership protocol above; a
// Waiter is Send.
unsafe impl Sync for Dir {}
// SAFETY: as above.
unsafe impl Send for Dir {}

impl Dir {
    pub(crate) fn new() -> Dir {
        Dir {
            state: AtomicUsize::new(NIL),
            waiter: UnsafeCell::new(None),
        }
    }

    /// The error a new operation would get (closing or deadline passed).
    #[inline]
    pub(crate) fn check(&self) -> Result<(), PollError> {
        check(self.state.load(Ordering::Acquire))
    }

    /// Whether a waiter is parked on this direction now (the state is
    /// `PARKED`: its park committed, and only a waker can resume it). A
    /// snapshot, for tests and diagnostics.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) & ST_MASK == PARKED
    }

    /// Waits until readiness, an error flag, or a close. Returns `Ok` when
    /// readiness was consumed (the caller retries its system call; the
    /// readiness may be stale, then it waits again). At most one waiter per
    /// direction at a time (the descriptor's I/O lock sees to that).
    pub(crate) fn wait(&self) -> Result<(), PollError> {
        // Claim: consume a pending READY, or publish WAIT (Go's netpollblock).
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            check(s)?;
            let (new, done) = match s & ST_MASK {
                READY => (s & !ST_MASK, true),
                NIL => (s | WAIT, false),
                _ => panic!("gort-netpoll: two waiters on one direction of a descriptor"),
            };
            // Acquire: consuming READY pairs with the waker's AcqRel CAS.
            match self
                .state
                .compare_exchange(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if done => return Ok(()),
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        // SAFETY: the state is WAIT and ours: no waker reads the slot unless
        // it sees PARKED, which only our commit below can publish.
        unsafe { self.waiter.with_mut(|w| *w = Some(Waiter::current())) };
        park(WaitReason::IoWait, || {
            // Go's netpollblockcommit: WAIT → PARKED unless a waker came.
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & ST_MASK != WAIT || check(s).is_err() {
                    return false;
                }
                // Release: publishes the slot to the waker that takes it.
                match self.state.compare_exchange(
                    s,
                    (s & !ST_MASK) | PARKED,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(actual) => s = actual,
                }
            }
        });
        // Resumed by a waker, or the commit failed: back to NIL, keeping
        // readiness that arrived (Go: "be careful to not lose concurrent
        // pdReady notification"). Acquire pairs with the waker's CAS.
        let old = self.state.fetch_and(!ST_MASK, Ordering::AcqRel);
        debug_assert_ne!(old & ST_MASK, PARKED, "resumed while still parked");
        if old & ST_MASK == READY {
            return Ok(());
        }
        check(old)
    }

    /// Drops a pending readiness; returns whether [`UNUSUAL`] was set by
    /// then. For the direction's one reader (it holds the descriptor's I/O
    /// lock, so the state is `NIL` or `READY`) just before the system call
    /// that readiness would prompt: whatever arrives after that call raises
    /// readiness again (the poller is edge-triggered), so after a read that
    /// drained the socket, `READY` means "new bytes since" (see
    /// `NetFd::read_stream`). Always an RMW: it reads the latest state, so
    /// an `UNUSUAL` marked before is seen, and one marked after comes with
    /// a readiness that this does not drop.
    #[inline]
    pub(crate) fn clear_ready(&self) -> bool {
        self.state.fetch_and(!ST_MASK, Ordering::AcqRel) & UNUSUAL != 0
    }

    /// Marks [`UNUSUAL`] (the poller's dispatch, before the readiness it
    /// came with).
    pub(crate) fn mark_unusual(&self) {
        self.state.fetch_or(UNUSUAL, Ordering::AcqRel);
    }

    /// Readiness arrived (Go's netpollready → netpollunblock(ioready)).
    #[inline]
    pub(crate) fn ready(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & ST_MASK == READY {
                return;
            }
            // AcqRel: acquires the slot published by the commit (PARKED);
            // releases the readiness to the waiter's consuming CAS.
            match self.state.compare_exchange(
                s,
                (s & !ST_MASK) | READY,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if s & ST_MASK == PARKED {
                        self.wake_parked();
                    }
                    return;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Sets an error flag ([`EXPIRED`] or [`CLOSING`]) and wakes a parked
    /// waiter, which then reports the error (Go's netpollunblock without
    /// ioready, after setting the deadline to -1 or `closing`).
    pub(crate) fn set_flag(&self, flag: usize) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let parked = s & ST_MASK == PARKED;
            let new = if parked {
                (s | flag) & !ST_MASK
            } else {
                s | flag
            };
            // AcqRel: as in `ready`.
            match self
                .state
                .compare_exchange(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if parked {
                        self.wake_parked();
                    }
                    return;
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Clears an error flag (a new deadline in the future; a descriptor
    /// slot being reused clears everything with [`Dir::reset`]).
    pub(crate) fn clear_flag(&self, flag: usize) {
        self.state.fetch_and(!flag, Ordering::AcqRel);
    }

    /// Back to a fresh `NIL` for a reused descriptor slot. The caller owns
    /// the slot: no waiter, no waker can reach it.
    pub(crate) fn reset(&self) {
        self.state.store(NIL, Ordering::Release);
        // SAFETY: the caller owns the whole descriptor (see above).
        unsafe { self.waiter.with_mut(|w| *w = None) };
    }

    #[cold]
    fn wake_parked(&self) {
        // SAFETY: our CAS moved the state out of PARKED: the slot is ours
        // until the waiter resumes (which `ready` below causes).
        let w = unsafe { self.waiter.with_mut(|w| w.take()) };
        if let Some(w) = w {
            w.ready();
        }
    }
}
