//! P: the right to run goroutines, with its local run queue of fresh (and
//! migratable) goroutines that other Ps steal from.

use super::*;

pub(super) const P_IDLE: u32 = 0;

pub(super) const P_RUNNING: u32 = 1;

pub(super) const P_DEAD: u32 = 2;

/// A processor: the right to run goroutines, with a local run queue of fresh
/// (and migratable) goroutines that other Ps may steal.
pub(crate) struct P {
    pub(super) id: usize,
    pub(super) runq: RunQueue<G>,
    /// P_IDLE / P_RUNNING / P_DEAD; changed under the scheduler lock (or by
    /// the M taking the P from the idle list), read racily by thieves.
    pub(super) status: AtomicU32,
    /// Free descriptors; only the M holding the P touches it.
    pub(super) gfree: UnsafeCell<Vec<*mut G>>,
    /// Goroutines spawned minus finished on this P. Written only by the M
    /// holding the P (load + Release store, no lock prefix); read by
    /// num_goroutine. Ownership of the P moves through the idle lock.
    pub(super) ngoroutine: AtomicIsize,
}

// SAFETY: `gfree` is only touched by the M that holds the P (ownership of a P
// passes through the scheduler lock or the nextp hand-off, both of which
// synchronise); everything else is atomic.
unsafe impl Sync for P {}

// SAFETY: as above.
unsafe impl Send for P {}

pub(super) fn new_p(id: usize) -> &'static P {
    Box::leak(Box::new(P {
        id,
        runq: RunQueue::new(),
        status: AtomicU32::new(P_IDLE),
        gfree: UnsafeCell::new(Vec::new()),
        ngoroutine: AtomicIsize::new(0),
    }))
}
