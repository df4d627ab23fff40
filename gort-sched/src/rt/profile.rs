//! The scheduler's side of profiling (`crate::prof`): a goroutine's walk of
//! its own stack by its M, goroutine labels, and the latency tracking that
//! feeds `/sched/latencies:seconds` and `/sync/mutex/wait/total:seconds`
//! (Go's `gTrackingPeriod` sampling in `casgstatus`).

use super::*;
use crate::prof::Labels;
use std::sync::atomic::Ordering::Relaxed;

/// Every how many parks, yields (per goroutine) and spawns one is tracked.
/// Go tracks one in 8; a tracked park costs two clock reads (~20 ns each
/// through the vDSO), which at one in 8 added ~8% to a 150 ns channel
/// ping-pong here. One in 64 keeps tracking under 1% and still gives
/// thousands of samples a second to any busy program.
const TRACK_PERIOD: u8 = 64;

/// Set once any goroutine has had labels: until then spawns skip the
/// inheritance check (a thread-local read).
static LABELS_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Has the calling goroutine's M walk its stack into `out`, at most
/// `prof::MAX_STACK` (see `Req::Walk`): the goroutine switches out, the M
/// walks the suspended stack on its own stack and resumes it.
pub(crate) fn walk_self(out: &mut Vec<usize>) {
    let g = current_g().expect("walk_self from a goroutine");
    let m = current_m();
    // SAFETY: the running goroutine is held by this thread, and its M's
    // local state is this thread's (nothing else borrows it while the
    // goroutine runs); both borrows end before the switch, and the M
    // handles the request before anything else runs on this thread.
    let s = unsafe {
        (*m).local().walk_out = out;
        let gi = g.inner();
        gi.req = Req::Walk;
        gi.suspender.expect("running goroutine has a suspender")
    };
    // SAFETY: on the goroutine's own stack while it runs.
    unsafe { s.suspend() };
}

/// The M's side of `Req::Walk`.
///
/// # Safety
/// `ctx` is the suspended context of a goroutine this M holds, resumed only
/// after this returns; `out` points to a live vector in its frame.
pub(super) unsafe fn walk_for(ctx: &Context, out: *mut Vec<usize>) {
    // SAFETY: suspended and held by this M: nothing resumes, compacts or
    // drops it meanwhile; the vector lives in its (unchanging) frame.
    unsafe { ctx.backtrace(&mut *out, crate::prof::MAX_STACK) };
}

/// Label sets in use, in a side table: labels are rare, and the descriptor
/// stays small for the hot paths. Each set installed on a goroutine gets an
/// id, which is also its CPU profile tag (`gort_os::cpuprof`): samples carry
/// the word, and `cpu_labels` looks it up here, so a forged tag (any code
/// may set one) is only an unknown id, never a pointer.
#[derive(Default)]
struct LabelTable {
    /// Descriptor address -> (id, labels).
    by_g: std::collections::HashMap<usize, (u64, Labels)>,
    /// Id -> labels, for every set installed, plus those replaced while a
    /// CPU profile may still hold samples tagged with them (`retired`).
    by_id: std::collections::HashMap<u64, Labels>,
    /// Ids replaced while a CPU profile was active: dropped from `by_id`
    /// when it ends (`cpu_profile_ended`).
    retired: Vec<u64>,
    next_id: u64,
}

static LABELS: std::sync::Mutex<Option<LabelTable>> = std::sync::Mutex::new(None);

/// CPU profiles collecting or trying to start (from before the timer
/// starts to after the last drain): label sets replaced meanwhile stay
/// resolvable. A count, so that a refused second start does not end the
/// running one's window. SeqCst with the tag store before the check (see
/// `set_labels`).
static CPU_PROFILE_ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn label_table() -> std::sync::MutexGuard<'static, Option<LabelTable>> {
    LABELS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `g`'s labels and their id.
pub(super) fn labels_and_id(g: &G) -> Option<(u64, Labels)> {
    if !g.has_labels.load(Relaxed) {
        return None;
    }
    let key = ptr::from_ref(g) as usize;
    label_table().as_ref()?.by_g.get(&key).cloned()
}

/// `g`'s labels, for dumps: bounded, since fatal reports call this while a
/// thread that will never run again may hold the lock (then: none).
pub(super) fn labels_for_dump(g: &G) -> Option<Labels> {
    if !g.has_labels.load(Relaxed) {
        return None;
    }
    let key = ptr::from_ref(g) as usize;
    for _ in 0..1000 {
        let t = match LABELS.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::yield_now();
                continue;
            }
        };
        return t.as_ref()?.by_g.get(&key).map(|(_, l)| l.clone());
    }
    None
}

pub(super) fn labels_of(g: &G) -> Option<Labels> {
    labels_and_id(g).map(|(_, l)| l)
}

/// The calling goroutine's labels.
pub(crate) fn labels_of_current() -> Option<Labels> {
    labels_of(current_g_any()?)
}

/// Replaces the calling goroutine's labels (nothing on a plain thread).
pub(crate) fn set_labels_of_current(l: Option<Labels>) {
    if let Some(g) = current_g_any() {
        let id = set_labels(g, l);
        // The running context's CPU profile tag (no context inside a
        // `syscall` on a pool thread's stack: the next resume sets it).
        gort_os::cpuprof::set_current_tag(id as usize);
    }
}

/// Installs `l` on `g` (a new id) and returns the id (0: none). The old
/// set's id stays resolvable while a CPU profile is active.
fn set_labels(g: &G, l: Option<Labels>) -> u64 {
    let key = ptr::from_ref(g) as usize;
    let mut guard = label_table();
    let t = guard.get_or_insert_with(Default::default);
    g.has_labels.store(l.is_some(), Relaxed);
    match l {
        Some(l) => {
            LABELS_USED.store(true, Relaxed);
            t.next_id += 1;
            let id = t.next_id;
            t.by_id.insert(id, l.clone());
            if let Some((old, _)) = t.by_g.insert(key, (id, l)) {
                retire(t, old);
            }
            id
        }
        None => {
            if let Some((old, _)) = t.by_g.remove(&key) {
                retire(t, old);
            }
            0
        }
    }
}

fn retire(t: &mut LabelTable, id: u64) {
    if CPU_PROFILE_ACTIVE.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        t.retired.push(id);
    } else {
        t.by_id.remove(&id);
    }
}

/// A CPU profile may begin: replaced label sets stay resolvable until
/// every such window has ended ([`cpu_profile_ended`]).
pub(crate) fn cpu_profile_started() {
    CPU_PROFILE_ACTIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// A window opened by [`cpu_profile_started`] ends (its samples are all
/// drained, or its start was refused); the last one forgets the sets
/// replaced meanwhile.
pub(crate) fn cpu_profile_ended() {
    let mut guard = label_table();
    if CPU_PROFILE_ACTIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) != 1 {
        return;
    }
    if let Some(t) = guard.as_mut() {
        for id in std::mem::take(&mut t.retired) {
            t.by_id.remove(&id);
        }
    }
}

/// The labels a CPU sample's tag names, if it names a known set.
pub(crate) fn cpu_labels(tag: usize) -> Option<Labels> {
    label_table().as_ref()?.by_id.get(&(tag as u64)).cloned()
}

/// The CPU profile tag of `g`'s labels (0: none), for its new context.
pub(super) fn tag_of(g: &G) -> usize {
    labels_and_id(g).map_or(0, |(id, _)| id as usize)
}

/// At spawn: the new goroutine `g` inherits the spawner's labels (a
/// recycled descriptor drops its old ones), and one spawn in eight is
/// tracked from now.
pub(super) fn at_spawn(g: &G, goid: u64) {
    if LABELS_USED.load(Relaxed) {
        let parent = current_g_any().and_then(labels_of);
        if parent.is_some() || g.has_labels.load(Relaxed) {
            set_labels(g, parent);
        }
    }
    let stamp = if goid % u64::from(TRACK_PERIOD) == 0 {
        nanotime().max(1)
    } else {
        0
    };
    g.ready_stamp.store(stamp, Relaxed);
    // SAFETY: the spawner holds the fresh G (not yet published).
    let gi = unsafe { g.inner() };
    gi.block_t0 = 0;
    gi.park_stamp = 0;
}

/// At a park, on the goroutine, just before it switches out: decides
/// whether this park is tracked, and stamps it for the block profile. The
/// common case is an increment, a test and a relaxed load; the rest is
/// out of line.
#[inline]
pub(super) fn at_park(g: &G, gi: &mut GInner, reason: WaitReason) {
    gi.track_seq = gi.track_seq.wrapping_add(1);
    if gi.track_seq % TRACK_PERIOD == 0 || crate::prof::block_profiling() {
        prof_park(g, gi, reason);
    }
}

#[cold]
fn prof_park(g: &G, gi: &mut GInner, reason: WaitReason) {
    if gi.track_seq % TRACK_PERIOD == 0 {
        g.ready_stamp.store(0, Relaxed);
        gi.park_stamp = if crate::prof::is_mutex_wait(reason) {
            nanotime()
        } else {
            0
        };
        gi.park_seq = gi.track_seq;
        // Until the M records the run (`prof_run`): a tracked park that
        // ends without a ready leaves it set, and the next park's waker
        // stamps that one too (one more latency sample, and no mutex wait:
        // `park_seq` no longer matches).
        g.tracked.store(true, Relaxed);
    }
    gi.block_t0 = crate::prof::block_start(reason);
    if gi.block_t0 != 0 && gi.track_seq % TRACK_PERIOD != 0 {
        // The waker stamps the release (Go's `releasetime`): the delay
        // ends there, not when the goroutine runs.
        g.ready_stamp.store(0, Relaxed);
        gi.park_stamp = 0;
        g.tracked.store(true, Relaxed);
    }
}

/// A park that was woken while its goroutine was switching out: the M runs
/// it again at once, without `at_run`; nothing of the park is recorded.
pub(super) fn park_abandoned(g: &G, gi: &mut GInner) {
    gi.block_t0 = 0;
    gi.park_stamp = 0;
    g.ready_stamp.store(0, Relaxed);
    g.tracked.store(false, Relaxed);
}

/// At a yield, on the M: one in `TRACK_PERIOD` is tracked.
#[inline]
pub(super) fn at_yield(g: &G, gi: &mut GInner) {
    gi.track_seq = gi.track_seq.wrapping_add(1);
    gi.park_stamp = 0; // (a yield is no mutex wait)
    if gi.track_seq % TRACK_PERIOD == 0 {
        g.ready_stamp.store(nanotime().max(1), Relaxed);
    }
}

/// Before the M resumes `g` (whose suspended context is `ctx`): records how
/// long it was runnable if tracked, and its block event if it was stamped
/// for the block profile -- walking its stack right here, on the M's stack,
/// while it is still suspended.
#[inline]
pub(super) fn at_run(m: &M, g: &G, gi: &mut GInner, ctx: &Context) {
    if g.ready_stamp.load(Relaxed) != 0 || gi.block_t0 != 0 {
        prof_run(m, g, gi, ctx);
    }
}

#[cold]
fn prof_run(m: &M, g: &G, gi: &mut GInner, ctx: &Context) {
    let since = g.ready_stamp.load(Relaxed);
    let t0 = std::mem::take(&mut gi.block_t0);
    if t0 != 0 {
        // Blocked until its waker readied it (or until now, if it was
        // queued some other way).
        let released = if since != 0 { since } else { nanotime() };
        crate::prof::block_end(t0, released, |record| {
            // SAFETY: our own M; nothing else borrows its local state here.
            let buf = &mut unsafe { m.local() }.walk_buf;
            buf.clear();
            // SAFETY: suspended, held by this M, resumed only after we
            // return (at_run's caller's promise).
            unsafe { ctx.backtrace(buf, crate::prof::MAX_STACK) };
            record(buf);
        });
    }
    // A latency sample for tracked parks, yields and spawns; a park stamped
    // only for the block profile costs no third clock read.
    let sampled = t0 == 0 || gi.park_seq == gi.track_seq;
    if since != 0 {
        g.ready_stamp.store(0, Relaxed);
        g.tracked.store(false, Relaxed);
    }
    if since != 0 && sampled {
        m.latencies.record_owned(nanotime() - since);
        if gi.park_stamp != 0 && gi.park_seq == gi.track_seq {
            let waited = (since - gi.park_stamp).max(0) as u64 * u64::from(TRACK_PERIOD);
            let w = &m.mutex_wait_ns;
            w.store(w.load(Relaxed) + waited, Relaxed);
        }
        gi.park_stamp = 0;
    }
}

/// The counts of Ms that left the scheduler (`leave_sched`).
static DEPARTED_LATENCIES: crate::prof_types::TimeHistogram =
    crate::prof_types::TimeHistogram::new();
static DEPARTED_MUTEX_WAIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An M leaves the scheduler (on its own thread): its counts move to the
/// departed totals, under `allm`'s lock so a reader sees them in one place
/// or the other, never both or neither.
pub(super) fn fold_m_counts(m: &M) {
    let _readers = sched().allm.lock();
    m.latencies.drain_into(&DEPARTED_LATENCIES);
    let w = m.mutex_wait_ns.swap(0, Relaxed);
    DEPARTED_MUTEX_WAIT.fetch_add(w, Relaxed);
}

/// Adds every M's latency histogram into `into`.
pub(crate) fn add_latencies(into: &mut [u64]) {
    if let Some(s) = sched_if_started() {
        let ms = s.allm.lock();
        DEPARTED_LATENCIES.add_to(into);
        for m in ms.iter() {
            m.latencies.add_to(into);
        }
    }
}

/// Sum of every M's tracked mutex waits.
pub(crate) fn mutex_wait_total_ns() -> u64 {
    sched_if_started().map_or(0, |s| {
        let ms = s.allm.lock();
        let live: u64 = ms.iter().map(|m| m.mutex_wait_ns.load(Relaxed)).sum();
        live + DEPARTED_MUTEX_WAIT.load(Relaxed)
    })
}
