//! The park/ready handshake, shared by goroutines and plain OS threads.
//!
//! One 64-bit word per waiter: `epoch << 3 | state`, state one of `EMPTY`,
//! `NOTIFIED`, `PARKED`, and the two states of a parked goroutine pinned by
//! an inspector (`PINNED`, `PINNED_WOKEN`; see "Pinning" below). Making a [`crate::Waiter`] starts a new epoch
//! ([`ParkState::new_epoch`]); the waiter can wake only the park of that
//! epoch. Every new waiter, every completed or abandoned park and every
//! goroutine exit advances the epoch, so a stale waiter is a no-op instead
//! of a spurious wake-up of some later park — in particular of a park inside
//! the runtime (a channel receive, a semaphore) whose own waiter is newer.
//!
//! ```text
//!   parker                               waker (epoch e)
//!   ------                               ---------------
//!   commit()   (e.g. unlock)             EMPTY    -> NOTIFIED   (parker will not sleep)
//!   switch out / prepare to sleep        NOTIFIED -> (no-op)
//!   EMPTY -> PARKED  (try_park)          PARKED   -> e+1,EMPTY  then enqueue/unpark it
//!   NOTIFIED -> e+1,EMPTY, don't sleep
//! ```
//!
//! The goroutine side runs `try_park` on the M's own stack *after* switching
//! away from the goroutine, so a waker that sees `PARKED` may run the
//! goroutine anywhere at once: its stack is no longer in use. A waker that
//! comes earlier (`EMPTY`) leaves `NOTIFIED` and the park returns at once. No
//! interleaving loses a wake-up (see `tests/loom_park.rs`).
//!
//! # Pinning
//!
//! A goroutine dump reads a parked goroutine's stack from another thread,
//! so the goroutine must stay switched out meanwhile, without costing the
//! park or ready paths anything. The inspector *pins* the park:
//!
//! ```text
//!   inspector                            waker (epoch e)
//!   ---------                            ---------------
//!   PARKED -> PINNED  (pin, same epoch)  PINNED -> PINNED_WOKEN, Done
//!   ... read the stack ...
//!   PINNED -> PARKED  (unpin)
//!   PINNED_WOKEN -> e+1,EMPTY  then the inspector resumes the owner
//! ```
//!
//! A waker never waits for the inspector: it hands the resume over. Only
//! goroutine parks are pinned (a thread's timed park may `cancel`, which
//! expects `PARKED`).
//!
//! # Invariants
//! * Only the owner moves `EMPTY -> PARKED` and `NOTIFIED -> EMPTY`, and
//!   only the owner starts a new epoch from `EMPTY`/`NOTIFIED`.
//! * Only a waker of the current epoch moves `PARKED -> (e+1, EMPTY)`, and
//!   then it alone is responsible for resuming the owner.

use crate::loom::{AtomicU64, Ordering};

const EMPTY: u64 = 0;
const NOTIFIED: u64 = 1;
const PARKED: u64 = 2;
/// Parked, and pinned by an inspector (see "Pinning").
const PINNED: u64 = 3;
/// Pinned, and a waker came: the inspector resumes the owner at unpin.
const PINNED_WOKEN: u64 = 4;
const STATE: u64 = 7;
/// The epoch's shift in the word.
const SHIFT: u32 = 3;

pub(crate) struct ParkState {
    /// Written by the owner (try_park, consume) and wakers (notify); see the
    /// module table. Every transition is a CAS with AcqRel, pairing the
    /// owner's commit (before try_park) with the waker's resume of it.
    word: AtomicU64,
}

/// What a waker must do after [`ParkState::notify`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notify {
    /// The owner is parked and now belongs to the waker: resume it.
    Resume,
    /// The owner will see the token itself (or the waiter was stale).
    Done,
}

impl ParkState {
    pub(crate) fn new() -> Self {
        ParkState {
            word: AtomicU64::new(EMPTY),
        }
    }

    /// The epoch a new waiter for the owner's next park gets.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> SHIFT
    }

    /// Owner, making a new waiter: starts a fresh epoch and returns it. Every
    /// waiter made earlier goes stale (its `notify` becomes a no-op), and a
    /// token an earlier waiter left (`NOTIFIED`) is discarded: it was for a
    /// park that never happened, or that nobody owns any more. This is what
    /// makes a leftover or late waiter harmless to every later park — the
    /// runtime's own waits always make their waiter just before parking.
    #[inline]
    pub(crate) fn new_epoch(&self) -> u64 {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            // The owner is running, so the state is EMPTY or NOTIFIED; a
            // concurrent notify can only move EMPTY -> NOTIFIED (retried).
            // A CAS, not a plain store: with a store, loom found an
            // execution where a stale waker's token (old epoch, NOTIFIED)
            // ends up after the new epoch and the next park consumes it.
            debug_assert!(w & STATE < PARKED, "new_epoch while parked");
            let e = (w >> SHIFT) + 1;
            // AcqRel: Release orders the owner's earlier writes before any
            // waker of the new epoch; Acquire pairs with a stale waker's
            // notify (its writes are visible, though its token is dropped).
            match self.word.compare_exchange_weak(
                w,
                e << SHIFT | EMPTY,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return e,
                Err(cur) => w = cur,
            }
        }
    }

    /// Waker side.
    #[inline]
    pub(crate) fn notify(&self, epoch: u64) -> Notify {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if w >> SHIFT != epoch {
                return Notify::Done; // stale: that park already completed
            }
            let (new, res) = match w & STATE {
                EMPTY => (epoch << SHIFT | NOTIFIED, Notify::Done),
                PARKED => ((epoch + 1) << SHIFT | EMPTY, Notify::Resume),
                // The inspector resumes it at unpin.
                PINNED => (epoch << SHIFT | PINNED_WOKEN, Notify::Done),
                _ => return Notify::Done, // already notified
            };
            // AcqRel: Acquire pairs with the owner's Release in try_park (its
            // switch-out is complete); Release pairs with its Acquire in
            // consume_notified (our writes before notify are visible).
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return res,
                Err(cur) => w = cur,
            }
        }
    }

    /// Owner: if a token is already there, consumes it (advancing the epoch)
    /// and returns true.
    #[inline]
    pub(crate) fn consume_notified(&self) -> bool {
        let w = self.word.load(Ordering::Acquire);
        if w & STATE != NOTIFIED {
            return false;
        }
        // Only the owner leaves NOTIFIED, so this cannot fail.
        self.word
            .store(((w >> SHIFT) + 1) << SHIFT | EMPTY, Ordering::Release);
        true
    }

    /// Owner, once it is ready to sleep: EMPTY -> PARKED. Returns false (and
    /// consumes the token) if a waker came first.
    #[inline]
    pub(crate) fn try_park(&self) -> bool {
        let w = self.word.load(Ordering::Acquire);
        if w & STATE == EMPTY
            && self
                .word
                // Release: everything the owner did (its commit, its
                // switch-out) happens before a waker that sees PARKED.
                .compare_exchange(w, w | PARKED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return true;
        }
        let consumed = self.consume_notified();
        debug_assert!(consumed, "try_park from a state other than EMPTY/NOTIFIED");
        false
    }

    /// The park word (epoch and state), for an exact "parked in this
    /// epoch" test: read it twice around other reads (`parked_untimed`).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::SeqCst)
    }

    /// Whether a word read by [`ParkState::word`] says parked (pinned or
    /// not; a pinned park a waker came for counts as woken).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn word_is_parked(w: u64) -> bool {
        matches!(w & STATE, PARKED | PINNED)
    }

    /// Whether the owner is parked now (a racy snapshot).
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn is_parked(&self) -> bool {
        Self::word_is_parked(self.word.load(Ordering::Relaxed))
    }

    /// Whether an inspector holds the park pinned now (woken meanwhile or
    /// not): until it unpins, only it may touch the owner's state.
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn is_pinned(&self) -> bool {
        matches!(
            self.word.load(Ordering::Acquire) & STATE,
            PINNED | PINNED_WOKEN
        )
    }

    /// Inspector: pins a parked owner (`PARKED -> PINNED`, same epoch) so
    /// that it stays switched out until [`ParkState::unpin`]. Returns false
    /// (nothing pinned) if it is not parked, or pinned by someone else.
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn pin(&self) -> bool {
        let w = self.word.load(Ordering::Acquire);
        // Acquire pairs with the owner's Release in try_park: its
        // switch-out, and everything it stored before, is visible.
        w & STATE == PARKED
            && self
                .word
                .compare_exchange(w, w & !STATE | PINNED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Inspector, after a successful [`ParkState::pin`]: back to `PARKED`,
    /// or, if a waker came meanwhile, on to the next epoch with
    /// [`Notify::Resume`]: the inspector must then resume the owner, as
    /// that waker would have.
    #[cfg_attr(gort_loom, allow(dead_code))]
    pub(crate) fn unpin(&self) -> Notify {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            let (new, res) = match w & STATE {
                PINNED => (w & !STATE | PARKED, Notify::Done),
                PINNED_WOKEN => (((w >> SHIFT) + 1) << SHIFT | EMPTY, Notify::Resume),
                _ => unreachable!("unpin of a park that is not pinned"),
            };
            // AcqRel: Acquire pairs with the waker's Release (its writes
            // before the wake are visible to whoever we resume).
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return res,
                Err(cur) => w = cur,
            }
        }
    }

    /// Owner, after sleeping: whether the park of `epoch` was woken.
    #[inline]
    pub(crate) fn woken(&self, epoch: u64) -> bool {
        self.word.load(Ordering::Acquire) >> SHIFT != epoch
    }

    /// Owner, giving up a park (a timeout): returns true if it withdrew the
    /// park, false if a waker resumed it meanwhile (then the wake counts).
    pub(crate) fn cancel(&self, epoch: u64) -> bool {
        self.word
            .compare_exchange(
                epoch << SHIFT | PARKED,
                (epoch + 1) << SHIFT | EMPTY,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Owner exits, is reused, or abandons a park: waiters for its current
    /// epoch go stale.
    #[cfg_attr(gort_loom, allow(dead_code))]
    #[inline]
    pub(crate) fn retire(&self) {
        self.new_epoch();
    }
}
