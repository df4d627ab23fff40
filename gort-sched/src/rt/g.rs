//! G: the goroutine descriptor, its reference count and the per-goroutine
//! state its M keeps while it is switched out. Descriptors are never freed
//! (Go's `allgs`); `gfree.rs` recycles them.

use super::*;
use std::panic::Location;
use std::sync::atomic::AtomicU8;

/// What a goroutine asks its M to do after it switched out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Req {
    None,
    Park,
    Yield,
    /// Move to a new M of its own (`lock_os_thread_alone`).
    Relocate,
    /// Have the M walk this suspended goroutine's stack into
    /// `MLocal::walk_out`, then resume it at once (`prof::callers`).
    Walk,
}

/// [`G::status`]: queued or fresh.
pub(super) const G_RUNNABLE: u8 = 0;
/// [`G::status`]: running on its M.
pub(super) const G_RUNNING: u8 = 1;
/// [`G::status`]: inside `syscall`.
pub(super) const G_SYSCALL: u8 = 2;

/// A goroutine descriptor. Never freed (like Go's `allgs`): exited
/// descriptors are reused, so a [`Waiter`] pointer is always valid memory and
/// the park epoch tells a stale one apart.
///
/// Cache-line aligned, and kept to eight lines (asserted below): spawning
/// a million goroutines writes a million descriptors, and a field that
/// pushes it past costs every spawn a ninth line (measured: spawn_join at
/// 592 bytes was ~10% slower than at 512).
#[repr(align(64))]
pub(crate) struct G {
    /// Park handshake; see `park_state.rs`.
    pub(crate) park: ParkState,
    /// Intrusive link for an M's inbox (a Treiber stack). Written by the
    /// waker that pushes the G; published by the inbox CAS.
    pub(super) link: AtomicPtr<G>,
    /// The M this goroutine is bound to once it has run (null while fresh).
    /// Written by that M before the goroutine first runs; read by wakers
    /// after they won `park` (Acquire, pairing with the park's Release).
    pub(super) m: AtomicPtr<M>,
    /// Set at spawn before the G is published; read by wakers.
    pub(super) migratable: AtomicBool,
    /// Goroutine id; written at spawn before publication, read by anyone.
    pub(super) goid: AtomicU64,
    /// For dumps (a relaxed snapshot): `G_RUNNABLE`, `G_RUNNING` or
    /// `G_SYSCALL`, written by the thread that holds the G. Parked is the
    /// park word's to say.
    pub(super) status: AtomicU8,
    /// For dumps: the spawner's goroutine id (0: a plain thread) and the
    /// spawn site; written at spawn before publication.
    pub(super) creator: AtomicU64,
    pub(super) site: AtomicPtr<Location<'static>>,
    /// A runtime helper (`Builder::system`): not counted by num_goroutine,
    /// left out of dumps. Written at spawn before publication.
    pub(super) sys: AtomicBool,
    /// `lock_os_thread` nesting count (Go's `lockedExt`): written by the
    /// goroutine itself while it runs, or by its M while it holds the G
    /// (spawn, exit); read by dumps (relaxed snapshot).
    pub(super) locks: AtomicU32,
    /// References: the goroutine's and its JoinHandle's. The last one to let
    /// go recycles the descriptor (AcqRel).
    pub(super) refs: AtomicU32,
    /// Whether the goroutine has profiler labels (`prof::with_labels`; kept
    /// in a side table, `profile.rs`): written with the table, read
    /// relaxed to skip the table when there are none.
    pub(super) has_labels: std::sync::atomic::AtomicBool,
    /// Latency tracking (prof.rs): when this goroutine became runnable
    /// (nanotime; 0: not tracked this time). Written by the goroutine at a
    /// tracked park (reset), by its waker (`ready_g`, before the hand-off
    /// that publishes the G), by the spawner or the M at a yield; read and
    /// reset by the M that runs it next.
    pub(super) ready_stamp: std::sync::atomic::AtomicI64,
    /// Whether the goroutine's current park is tracked (its waker stamps
    /// `ready_stamp`). Written by the goroutine before it parks.
    pub(super) tracked: std::sync::atomic::AtomicBool,
    /// Join handshake (task.rs): RUNNING, DONE or WAITING.
    pub(crate) join_state: AtomicU32,
    /// The joiner's waiter; written by the joiner before its Release CAS to
    /// WAITING, taken by the goroutine after its AcqRel swap to DONE.
    pub(crate) join_waiter: UnsafeCell<Option<Waiter>>,
    /// Closure, then result (task.rs). Owned by the goroutine until DONE,
    /// then by the handle.
    pub(super) payload: UnsafeCell<Payload>,
    /// Goroutine-local scopes (local.rs): touched only by the goroutine
    /// itself, on its own stack, never across a switch. Empty when it exits.
    pub(super) locals: UnsafeCell<Vec<Entry>>,
    /// Owned by the thread that currently holds the G: the spawner until
    /// queued, then the M that dequeued or runs it. Never accessed by two
    /// threads at once; hand-offs go through queues (Release/Acquire).
    pub(super) inner: UnsafeCell<GInner>,
    /// The goroutine's context (None until its first run): touched only by
    /// the M that holds the G, which resumes it in place (a context is two
    /// cache lines; moving it out and back at every run cost two copies),
    /// or by a reader that pinned the parked G (dumps, compaction). Apart
    /// from `inner` because the goroutine borrows `inner` while it runs,
    /// while its M's borrow of the context is live across the switch.
    pub(super) ctx: UnsafeCell<Option<Context>>,
}

pub(super) struct GInner {
    pub(super) task: Option<TaskVtable>,
    pub(super) suspender: Option<Suspender>,
    pub(super) name: Option<Arc<str>>,
    pub(super) stack_size: usize,
    pub(super) req: Req,
    pub(super) wait_reason: WaitReason,
    /// Parked for a reason counted in the M's `quiet_parked`.
    pub(super) quiet: bool,
    /// Parked for any other reason (a channel, a lock: another goroutine
    /// may release it any moment); its M notes the resume (`sync_resumed`).
    pub(super) sync_park: bool,
    /// When the current park began (`coarse_now`: sysmon's clock), for dumps.
    pub(super) wait_since: i64,
    /// The M's compaction pass number when this goroutine last parked.
    pub(super) park_pass: u32,
    /// Whether the G is in its M's compaction candidates.
    pub(super) in_cand: bool,
    /// Whether the spawner allowed compaction of this goroutine's stack
    /// while it is parked (`Builder::compact_when_parked`, unsafe).
    pub(super) compactable: bool,
    /// A migratable goroutine that `lock_os_thread` bound to its M until
    /// it unlocks (locked.rs).
    pub(super) lock_pinned: bool,
    /// A fresh goroutine that was given to a P once (`place_fresh`): it is
    /// not given again (from the global queue, where sysmon moved it, it
    /// would bounce back to the same busy P). Cleared when it starts.
    pub(super) given: bool,
    /// Parks and yields so far, mod 256: every eighth is tracked (Go's
    /// `trackingSeq`).
    pub(super) track_seq: u8,
    /// When a tracked mutex wait began (nanotime; 0: none), and the
    /// `track_seq` of its park.
    pub(super) park_stamp: i64,
    pub(super) park_seq: u8,
    /// When a park the block profile stamped began (nanotime; 0: none);
    /// the M records the event before it resumes the goroutine.
    pub(super) block_t0: i64,
}

#[cfg(all(not(gort_loom), target_pointer_width = "64"))]
const _: () = assert!(
    std::mem::size_of::<G>() <= 512,
    "a G outgrew eight cache lines"
);

// SAFETY: a G is shared as `&'static G` (descriptors are never freed).
// Every field reached through a shared reference is atomic, except the
// cells, whose field docs say which single thread may touch each at a
// time; hand-offs between those threads go through Release/Acquire pairs
// (run queues, the inbox, the park state, the join state).
unsafe impl Sync for G {}

impl G {
    pub(super) fn new() -> G {
        G {
            park: ParkState::new(),
            link: AtomicPtr::new(ptr::null_mut()),
            m: AtomicPtr::new(ptr::null_mut()),
            migratable: AtomicBool::new(false),
            goid: AtomicU64::new(0),
            status: AtomicU8::new(G_RUNNABLE),
            creator: AtomicU64::new(0),
            site: AtomicPtr::new(ptr::null_mut()),
            sys: AtomicBool::new(false),
            locks: AtomicU32::new(0),
            refs: AtomicU32::new(0),
            has_labels: std::sync::atomic::AtomicBool::new(false),
            ready_stamp: std::sync::atomic::AtomicI64::new(0),
            tracked: std::sync::atomic::AtomicBool::new(false),
            join_state: AtomicU32::new(RUNNING),
            join_waiter: UnsafeCell::new(None),
            payload: UnsafeCell::new(Payload::new()),
            locals: UnsafeCell::new(Vec::new()),
            inner: UnsafeCell::new(GInner {
                task: None,
                suspender: None,
                name: None,
                stack_size: 0,
                req: Req::None,
                wait_reason: WaitReason::Unspecified,
                quiet: false,
                sync_park: false,
                wait_since: 0,
                park_pass: 0,
                in_cand: false,
                compactable: false,
                lock_pinned: false,
                given: false,
                track_seq: 0,
                park_stamp: 0,
                park_seq: 0,
                block_t0: 0,
            }),
            ctx: UnsafeCell::new(None),
        }
    }

    pub(crate) fn goid(&self) -> u64 {
        self.goid.load(Ordering::Relaxed)
    }

    /// # Safety
    /// The caller holds the G (see the field docs of `inner`).
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn inner(&self) -> &mut GInner {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.inner.get() }
    }

    /// # Safety
    /// The caller holds the G (see the field docs of `ctx`).
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn ctx(&self) -> &mut Option<Context> {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.ctx.get() }
    }
}

/// The goroutine-local scopes of `g` (local.rs).
///
/// # Safety
/// `g` is the calling goroutine; the borrow ends before it can switch.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn locals<'a>(g: &G) -> &'a mut Vec<Entry> {
    // SAFETY: only the goroutine itself touches the cell (forwarded).
    unsafe { &mut *g.locals.get() }
}

/// The payload of a G (task.rs).
pub(crate) fn payload(g: &G) -> *mut Payload {
    g.payload.get()
}
