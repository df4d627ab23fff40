//! P: the right to run goroutines, with its local run queue of fresh (and
//! migratable) goroutines that other Ps steal from.

use super::*;

pub(super) const P_IDLE: u32 = 0;
pub(super) const P_RUNNING: u32 = 1;
pub(super) const P_DEAD: u32 = 2;
/// Held by an M in a blocking call (`syscall`): sysmon may take it (CAS to
/// `P_IDLE`) and hand it on; the M then needs another P when it returns.
pub(super) const P_SYSCALL: u32 = 3;

/// A processor: the right to run goroutines, with a local run queue of fresh
/// (and migratable) goroutines that other Ps may steal.
pub(crate) struct P {
    pub(super) id: usize,
    pub(super) runq: RunQueue<G>,
    /// P_IDLE / P_RUNNING / P_DEAD / P_SYSCALL; changed under the scheduler
    /// lock (or by the M taking the P from the idle list), read racily by
    /// thieves and sysmon. P_SYSCALL → P_RUNNING (the M is back) and
    /// P_SYSCALL → P_IDLE (sysmon retakes it) race by CAS.
    pub(super) status: AtomicU32,
    /// The M holding the P (set by `acquirep`; stale while idle): whom
    /// sysmon asks to yield when the P runs one goroutine too long.
    pub(super) m: AtomicPtr<M>,
    /// Bumped by the holder at every schedule (Go's `p.schedtick`): sysmon
    /// sees a long runner as a tick that did not move for 10 ms. Written
    /// only by the holder (Relaxed store, no RMW).
    pub(super) schedtick: AtomicU32,
    /// Bumped at every `syscall` entry and exit (Go's `p.syscalltick`):
    /// sysmon retakes a P only from a call it has seen for a whole tick.
    pub(super) syscalltick: AtomicU32,
    /// Free descriptors; only the M holding the P touches it.
    pub(super) gfree: UnsafeCell<Vec<&'static G>>,
    /// Goroutines spawned minus finished on this P. Written only by the M
    /// holding the P (load + Release store, no lock prefix); read by
    /// num_goroutine. Ownership of the P moves through the idle lock.
    pub(super) ngoroutine: AtomicIsize,
    /// Fresh goroutines another M gave this P to start (`place_fresh`),
    /// each with the time it was given: its holder takes them alternately
    /// with the P's own queue (`p_fresh`); an M with nothing else to do
    /// takes one that waited `GIFT_GRACE_NS` for a busy holder
    /// (`reclaim_gift`), sysmon all once the oldest waited 10 ms. Every
    /// check for fresh work on a P sees them (`has_fresh`), so a gift on a
    /// P whose holder blocks, runs long, turns own-only or lets go of it is
    /// not stranded.
    pub(super) gifts: Mutex<VecDeque<(&'static G, i64)>>,
    /// `gifts.len()`, for lock-free looks. SeqCst increments pair with the
    /// loads of an M letting go of the P (`recheck_queues`), as the run
    /// queue's do.
    pub(super) ngifts: AtomicU32,
}

// SAFETY: `gfree` is only touched by the M that holds the P (ownership of a P
// passes through the scheduler lock or the nextp hand-off, both of which
// synchronise); everything else is atomic.
unsafe impl Sync for P {}

// SAFETY: as above.
unsafe impl Send for P {}

impl P {
    /// Queues `g` (see `RunQueue::put`); a full ring spills a batch for the
    /// global queue.
    #[inline]
    pub(super) fn runq_put(&self, g: &'static G, next: bool) -> Result<(), Vec<&'static G>> {
        self.runq
            .put(ptr::from_ref(g).cast_mut(), next)
            .map_err(|batch| batch.into_iter().map(entry).collect())
    }

    /// Owner only: the next G of this P (`runnext` first).
    #[inline]
    pub(super) fn runq_get(&self) -> Option<&'static G> {
        self.runq.get().map(|(g, _)| entry(g))
    }

    /// Owner only: `runq_get`, and whether the G came from `runnext` (the
    /// one spawned last: Go runs it next, as the spawner's likely partner).
    #[inline]
    pub(super) fn runq_get_next(&self) -> Option<(&'static G, bool)> {
        self.runq.get().map(|(g, next)| (entry(g), next))
    }

    /// Whether fresh goroutines wait on this P: in its queue, or given to it
    /// (a racy look).
    #[inline]
    pub(super) fn has_fresh(&self) -> bool {
        !self.runq.is_empty() || self.ngifts.load(Ordering::SeqCst) > 0
    }

    /// Whether fresh goroutines wait on this P that nobody is about to
    /// take: in its queue, or given to it while nobody holds it (gifts on a
    /// held P are its holder's: `recheck_queues` wakes no M for them).
    #[inline]
    pub(super) fn has_unheld_fresh(&self) -> bool {
        !self.runq.is_empty()
            || (self.ngifts.load(Ordering::SeqCst) > 0
                && self.status.load(Ordering::Relaxed) != P_RUNNING)
    }

    /// When the oldest gift was given, if any.
    pub(super) fn oldest_gift(&self) -> Option<i64> {
        if self.ngifts.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.gifts.lock().front().map(|&(_, at)| at)
    }

    /// Takes every gift (for the global queue).
    pub(super) fn take_gifts(&self) -> Vec<&'static G> {
        let mut q = self.gifts.lock();
        self.ngifts.store(0, Ordering::Relaxed);
        q.drain(..).map(|(g, _)| g).collect()
    }

    /// The oldest gift if it was given at or before `given_by` (the P's
    /// holder passes `i64::MAX`).
    pub(super) fn take_gift(&self, given_by: i64) -> Option<&'static G> {
        if self.ngifts.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut q = self.gifts.lock();
        let &(g, at) = q.front()?;
        if at > given_by {
            return None;
        }
        q.pop_front();
        self.ngifts.fetch_sub(1, Ordering::Relaxed);
        Some(g)
    }

    /// Thief: moves about half of this P's queue to `dst` (the caller's P)
    /// and returns one G to run.
    pub(super) fn runq_steal(&self, dst: &P, steal_runnext: bool) -> Option<&'static G> {
        self.runq.steal_into(&dst.runq, steal_runnext).map(entry)
    }
}

/// A run-queue entry back as the reference it was queued as.
#[inline]
fn entry(g: *mut G) -> &'static G {
    // SAFETY: entries are only ever queued by `runq_put`, from a
    // `&'static G` (descriptors are never freed).
    unsafe { &*g }
}

pub(super) fn new_p(id: usize) -> &'static P {
    Box::leak(Box::new(P {
        id,
        runq: RunQueue::new(),
        status: AtomicU32::new(P_IDLE),
        m: AtomicPtr::new(ptr::null_mut()),
        schedtick: AtomicU32::new(0),
        syscalltick: AtomicU32::new(0),
        gfree: UnsafeCell::new(Vec::new()),
        ngoroutine: AtomicIsize::new(0),
        gifts: Mutex::new(VecDeque::new()),
        ngifts: AtomicU32::new(0),
    }))
}
