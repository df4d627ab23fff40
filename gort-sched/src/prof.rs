//! Profiling records (Go's runtime/mprof.go and the scheduler's latency
//! tracking): the block and mutex profiles' event buckets, stack capture for
//! them, goroutine profile snapshots, goroutine labels, and the time
//! histograms behind `/sched/latencies:seconds` and
//! `/sync/mutex/wait/total:seconds`.
//!
//! The encoding (pprof's protobuf, Go's `debug=1` text) and the HTTP
//! endpoint live in the `gort` facade; this layer only records.
//!
//! # What it costs while off
//!
//! * Block profile: one relaxed load of a global on the park path (no clock
//!   read, no read-modify-write) while [`set_block_profile_rate`] is 0.
//! * Mutex profile: one relaxed load on the semaphore's *slow* (parking)
//!   path while [`set_mutex_profile_fraction`] is 0.
//! * Latency tracking (always on, as in Go): one park in 64 of each
//!   goroutine (Go's `gTrackingPeriod` is 8; see `rt/profile.rs` for why
//!   64) reads the clock at the ready and when it runs again (and at the
//!   park for a mutex wait); the waker and the M record with relaxed loads
//!   and stores into per-M histograms (no read-modify-write, no shared
//!   cache line). Spawns and yields are tracked the same way.
//!
//! # Stacks
//!
//! A goroutine's own stack is walked by its M: the goroutine switches out
//! with a walk request and its M walks the suspended stack from the saved
//! registers on the M's own (large) stack, then resumes it at once (Go's
//! `systemstack` for `callers`). No unwinder runs on a small goroutine
//! stack. Stacks are raw return addresses, innermost first, starting inside
//! the runtime; encoders drop the leading runtime frames when they
//! symbolise.

use crate::rt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Frames recorded per event at most (Go records 128 since 1.23; 64 keeps
/// the walk short).
pub const MAX_STACK: usize = 64;

// ---------------------------------------------------------------------------
// Rates

static BLOCK_RATE: AtomicI64 = AtomicI64::new(0);
static MUTEX_FRACTION: AtomicI64 = AtomicI64::new(0);

/// Go's `runtime.SetBlockProfileRate`: sample one blocking event per `rate`
/// nanoseconds spent blocked (events blocked `rate` or longer are always
/// recorded; shorter ones with probability `blocked / rate`, and counted
/// `rate / blocked` times so totals stay unbiased). 1 records every event;
/// 0 (the default) or less turns the profile off.
///
/// Recorded: goroutines blocked on channel operations, `select`, and
/// gort-std's Mutex, RwLock, Cond and WaitGroup waits (each park with those
/// wait reasons). Plain threads are not recorded (Go has none).
pub fn set_block_profile_rate(rate: i64) {
    BLOCK_RATE.store(rate.max(0), Ordering::Relaxed);
}

/// The current block profile rate.
pub fn block_profile_rate() -> i64 {
    BLOCK_RATE.load(Ordering::Relaxed)
}

/// Go's `runtime.SetMutexProfileFraction`: report one in `fraction`
/// contention events on gort-std's Mutex and RwLock (0 turns it off; a
/// negative value only reads). Returns the previous fraction.
///
/// As in Go 1.22+, the delay is charged to the stack that *unlocked* (the
/// holder that made the others wait), and it counts the time every queued
/// waiter waited (approximated as Go does).
pub fn set_mutex_profile_fraction(fraction: i64) -> i64 {
    if fraction < 0 {
        return MUTEX_FRACTION.load(Ordering::Relaxed);
    }
    MUTEX_FRACTION.swap(fraction, Ordering::Relaxed)
}

/// Whether parks with `reason` go to the block profile.
fn blocks(reason: crate::WaitReason) -> bool {
    use crate::WaitReason as W;
    matches!(
        reason,
        W::ChanReceive
            | W::ChanSend
            | W::Select
            | W::SelectNoCases
            | W::SemAcquire
            | W::SyncMutexLock
            | W::SyncRwLockRead
            | W::SyncRwLockWrite
            | W::SyncWaitGroupWait
            | W::SyncCondWait
    )
}

/// Whether waits with `reason` are mutex waits (Go's `isMutexWait`).
pub(crate) fn is_mutex_wait(reason: crate::WaitReason) -> bool {
    use crate::WaitReason as W;
    matches!(
        reason,
        W::SyncMutexLock | W::SyncRwLockRead | W::SyncRwLockWrite
    )
}

/// Whether the block profile is on (one relaxed load, on every park).
#[inline]
pub(crate) fn block_profiling() -> bool {
    BLOCK_RATE.load(Ordering::Relaxed) > 0
}

/// The block profile's start time for a park with `reason`: 0 while the
/// profile is off or the reason is not a blocking one, else now.
pub(crate) fn block_start(reason: crate::WaitReason) -> i64 {
    if block_profiling() && blocks(reason) {
        gort_os::clock::nanotime().max(1)
    } else {
        0
    }
}

/// Records a park that began at `t0` (from [`block_start`]) and was
/// released (readied) at `released`, if sampled; `walk` hands the parked
/// goroutine's stack to its argument (from a buffer it reuses). Called by
/// its M just before it resumes the goroutine. As Go's `blocksampled` and
/// `saveblockevent`: an event shorter than the rate is kept with
/// probability `delay / rate` and then counts `rate / delay` times; every
/// event counts at least 1 ns, so a rate of 1 records them all.
#[cold]
pub(crate) fn block_end(t0: i64, released: i64, walk: impl FnOnce(&mut dyn FnMut(&[usize]))) {
    let rate = BLOCK_RATE.load(Ordering::Relaxed);
    let dt = (released - t0).max(1);
    if rate <= 0 || (dt < rate && (cheaprand() % rate as u64) as i64 >= dt) {
        return; // not sampled (Go's blocksampled)
    }
    let (count, delay) = if dt < rate {
        (rate as f64 / dt as f64, rate)
    } else {
        (1.0, dt)
    };
    walk(&mut |pcs| record(&BLOCK, pcs, count, delay));
}

/// For gort-sema's parking path: when a wait with `reason` began, if it is
/// a Mutex/RwLock wait (Go's `isMutexWait`) and the mutex profile is on
/// (then the waiter is stamped), else 0 (one relaxed load, no clock read).
#[doc(hidden)]
#[inline]
pub fn mutex_wait_start(reason: crate::WaitReason) -> i64 {
    if MUTEX_FRACTION.load(Ordering::Relaxed) > 0 && is_mutex_wait(reason) {
        gort_os::clock::nanotime().max(1)
    } else {
        0
    }
}

/// For gort-sema's release that just woke a stamped waiter: records the
/// contention, charged to the caller's stack (the unlocker's), sampled one
/// in `fraction` (Go's `mutexevent` from `semrelease1`). The delay is the
/// woken waiter's wait plus, for the `others` still queued, the average of
/// the head's and the tail's waits each (Go's O(1) approximation). Any
/// arguments only make a (saturated) record: no invariant rests on them.
#[doc(hidden)]
#[cold]
pub fn mutex_released(head_start: i64, tail_start: i64, others: usize) {
    let fraction = MUTEX_FRACTION.load(Ordering::Relaxed);
    if fraction <= 0 || cheaprand() % fraction as u64 != 0 {
        return;
    }
    let now = gort_os::clock::nanotime();
    let head = now.saturating_sub(head_start).max(0);
    let mut delay = head;
    if others > 0 {
        let tail = if tail_start == 0 {
            head
        } else {
            now.saturating_sub(tail_start).max(0)
        };
        let each = head / 2 + tail / 2;
        delay = delay.saturating_add(each.saturating_mul(others as i64));
    }
    let mut pcs = Vec::with_capacity(MAX_STACK);
    callers(&mut pcs);
    // Scaled now, by the fraction in force (Go 1.27's saveBlockEventStack),
    // so a later change of the fraction does not rescale the past.
    record(&MUTEX, &pcs, fraction as f64, delay.saturating_mul(fraction));
}

// ---------------------------------------------------------------------------
// Buckets

/// One stack's totals in the block or mutex profile (Go's
/// `BlockProfileRecord`).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockRecord {
    /// Events: estimates, already scaled for the sampling (the block
    /// profile's debiasing; the mutex profile's fraction at record time).
    pub count: i64,
    /// Total nanoseconds blocked.
    pub delay_ns: i64,
    /// Return addresses, innermost first (starting in the runtime).
    pub stack: Vec<usize>,
}

#[derive(Default)]
struct Bucket {
    count: f64,
    delay: i64,
}

/// A cheap hasher for stacks (return addresses are already well spread;
/// Go's `stkbucket` mixes them as simply). SipHash was a seventh of a
/// block event's cost.
#[derive(Default)]
struct StackHasher(u64);

impl std::hash::Hasher for StackHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // (A `[usize]` hashes as its bytes in one call: take words.)
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_ne_bytes(w.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type StackMap = HashMap<Box<[usize]>, Bucket, std::hash::BuildHasherDefault<StackHasher>>;
type Buckets = OnceLock<Mutex<StackMap>>;

static BLOCK: Buckets = OnceLock::new();
static MUTEX: Buckets = OnceLock::new();

/// Adds an event to `pcs`'s bucket; allocates only for a new stack.
fn record(b: &'static Buckets, pcs: &[usize], count: f64, delay: i64) {
    let mut m = b
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let e = match m.get_mut(pcs) {
        Some(e) => e,
        None => m.entry(pcs.into()).or_default(),
    };
    e.count += count;
    e.delay = e.delay.saturating_add(delay);
}

fn records(b: &'static Buckets) -> Vec<BlockRecord> {
    let m = b
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    m.iter()
        .map(|(pcs, b)| BlockRecord {
            count: b.count.round() as i64,
            delay_ns: b.delay,
            stack: pcs.to_vec(),
        })
        .collect()
}

/// Every stack the block profile has recorded (Go's `BlockProfile`).
pub fn block_profile() -> Vec<BlockRecord> {
    records(&BLOCK)
}

/// Every stack the mutex profile has recorded (Go's `MutexProfile`),
/// scaled by the fraction in force when each event was recorded.
pub fn mutex_profile() -> Vec<BlockRecord> {
    records(&MUTEX)
}

/// A cheap per-thread xorshift (sampling decisions only).
fn cheaprand() -> u64 {
    // Right across a park: any thread's generator serves any goroutine; it
    // only has to be random, not per goroutine.
    thread_local! {
        static S: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    S.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = (gort_os::clock::nanotime() as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

// ---------------------------------------------------------------------------
// Stacks

/// Pushes the calling goroutine's (or plain thread's) return addresses onto
/// `out`, innermost first, at most [`MAX_STACK`], starting inside the
/// runtime (Go's `runtime.Callers`). A goroutine's stack is walked by its M
/// (see the module docs). Inside [`crate::syscall`] nothing is pushed (the
/// goroutine's stack is in use by the call and its M is not available).
pub fn callers(out: &mut Vec<usize>) {
    if rt::current_g().is_some() {
        rt::walk_self(out);
    } else if rt::current_g_any().is_none() {
        let start = out.len();
        gort_os::unwind::backtrace_here(out, MAX_STACK);
        // (The walk may end with a null return address.)
        while out.len() > start && out.last() == Some(&0) {
            out.pop();
        }
    }
}

// ---------------------------------------------------------------------------
// Labels

pub use crate::prof_types::*;

/// The calling goroutine's labels (Go's `runtime/pprof` goroutine labels),
/// None on a plain thread or when it has none. New goroutines inherit their
/// spawner's labels.
pub fn goroutine_labels() -> Option<Labels> {
    rt::labels_of_current()
}

/// Replaces the calling goroutine's labels (Go's `pprof.SetGoroutineLabels`);
/// on a plain thread it does nothing. Prefer [`with_labels`], which restores
/// the previous set.
pub fn set_goroutine_labels(labels: Option<Labels>) {
    rt::set_labels_of_current(labels);
}

/// Runs `f` with the calling goroutine's labels extended by `labels` (a
/// later pair overrides an earlier one with the same key), then restores
/// them (Go's `pprof.Do`). Goroutines `f` spawns inherit the set; the CPU
/// and goroutine profiles carry it.
pub fn with_labels<R>(labels: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    let prev = goroutine_labels();
    let mut set: Vec<(String, String)> = prev.as_deref().map(<[_]>::to_vec).unwrap_or_default();
    for (k, v) in labels {
        match set.iter_mut().find(|(sk, _)| sk == k) {
            Some(e) => e.1 = (*v).to_string(),
            None => set.push(((*k).to_string(), (*v).to_string())),
        }
    }
    set.sort_by(|a, b| a.0.cmp(&b.0));
    set_goroutine_labels(Some(set.into()));
    struct Restore(Option<Option<Labels>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                set_goroutine_labels(p);
            }
        }
    }
    let _restore = Restore(Some(prev));
    f()
}

// ---------------------------------------------------------------------------
// CPU profile

/// One stack's samples in a CPU profile.
#[derive(Clone, Debug)]
pub struct CpuRecord {
    /// Samples taken with this stack and labels.
    pub count: i64,
    /// Return addresses, innermost first (Go's convention: the first one
    /// is the interrupted program counter plus one).
    pub stack: Vec<usize>,
    /// The running goroutine's labels, if it had any.
    pub labels: Option<Labels>,
}

/// A finished CPU profile (see [`cpu_profile`]).
#[derive(Clone, Debug, Default)]
pub struct CpuProfile {
    /// Samples by stack and labels.
    pub records: Vec<CpuRecord>,
    /// Samples dropped because the sample buffer was full.
    pub lost: u64,
    /// The sampling rate.
    pub hz: u32,
}

/// Samples every running thread's stack `hz` times a second of CPU time
/// for `d` (Go's `StartCPUProfile`, then `StopCPUProfile` after `d`; Go's
/// rate is 100 Hz), with the running goroutines' labels. Blocks the caller
/// for `d`: a goroutine waits in [`crate::blocking`] (its P serves others),
/// and a pool thread reads the samples every 100 ms. Errors if a CPU
/// profile is already running, or `hz` is not in `1..=1000`.
///
/// Samples cover all code: goroutines, the scheduler's own (its threads'
/// stacks), plain threads (their stacks once they call
/// [`gort_os::cpuprof::register_thread_stack`], else the interrupted
/// program counter only).
pub fn cpu_profile(d: std::time::Duration, hz: u32) -> std::io::Result<CpuProfile> {
    if rt::current_g().is_some() {
        crate::blocking(move || collect_cpu(d, hz))
    } else {
        collect_cpu(d, hz)
    }
}

fn collect_cpu(d: std::time::Duration, hz: u32) -> std::io::Result<CpuProfile> {
    type Key = (Vec<usize>, usize);
    let mut by_stack: HashMap<Key, i64> = HashMap::new();
    let mut lost = 0;
    let take = |by_stack: &mut HashMap<Key, i64>| {
        let r = gort_os::cpuprof::drain(|s| {
            *by_stack.entry((s.pcs.to_vec(), s.tag)).or_default() += 1;
        });
        r.lost
    };
    let end = std::time::Instant::now().checked_add(d).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "cpu profile duration too long")
    })?;
    rt::cpu_profile_started();
    // Ends the window and stops the sampler however this returns (a panic
    // in a drain included), so no profile is left running.
    struct Window {
        started: bool,
    }
    impl Drop for Window {
        fn drop(&mut self) {
            if self.started {
                gort_os::cpuprof::stop();
            }
            rt::cpu_profile_ended();
        }
    }
    let mut window = Window { started: false };
    gort_os::cpuprof::start(hz)?;
    window.started = true;
    loop {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(100)));
        lost += take(&mut by_stack);
    }
    gort_os::cpuprof::stop();
    window.started = false; // (a profile started after this is not ours)
    lost += take(&mut by_stack);
    // Resolve tags while the replaced sets are still known.
    let records = by_stack
        .into_iter()
        .map(|((stack, tag), count)| CpuRecord {
            count,
            stack,
            labels: (tag != 0).then(|| rt::cpu_labels(tag)).flatten(),
        })
        .collect();
    drop(window);
    Ok(CpuProfile { records, lost, hz })
}

// ---------------------------------------------------------------------------
// Goroutine profile

/// One goroutine in a goroutine profile snapshot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GoroutineRecord {
    /// Its id.
    pub goid: u64,
    /// Return addresses, innermost first; empty for a goroutine running on
    /// another thread (gort cannot stop it soundly; see the dump docs) or
    /// runnable and not started.
    pub stack: Vec<usize>,
    /// Its labels.
    pub labels: Option<Labels>,
    /// Why it waits (Go's wait reason text), or "running" / "runnable" /
    /// "syscall".
    pub state: String,
    /// Its [`Builder::name`](crate::Builder::name), if it has one and is
    /// parked or is the caller (another thread's running or runnable
    /// goroutine's name cannot be read soundly).
    pub name: Option<std::sync::Arc<str>>,
    /// The id of the goroutine that spawned it; 0 if a plain thread did.
    pub creator: u64,
    /// Where it was spawned (`go` and `Builder::spawn` are
    /// `#[track_caller]`): Go's `created by` line.
    pub created_at: Option<&'static std::panic::Location<'static>>,
    /// It has returned (its result is published) and only the runtime's
    /// teardown of it is left: a joined goroutine can still be seen so for
    /// a moment after `join` returned.
    pub finished: bool,
}

/// Every user goroutine's stack, the caller's first (Go's
/// `runtime.GoroutineProfile`, without stopping the world: parked
/// goroutines are pinned one at a time while their stacks are walked).
pub fn goroutine_profile() -> Vec<GoroutineRecord> {
    rt::goroutine_profile()
}

/// Whether `function` (a demangled name, as `gort_os::unwind::symbolize`
/// gives it) is runtime machinery that goroutine dumps hide unless
/// `GOTRACEBACK=system`: the scheduler layers, channels, select, timers and
/// the netpoller's parking (Go hides `runtime.*` the same way), and the
/// spawn trampoline's `core`/`std` glue. gort-std's sync types are not
/// (Go shows `sync.(*Mutex).Lock`). Readers of [`goroutine_profile`]
/// stacks use it to find a goroutine's own frames, as dumps do.
pub fn is_runtime_frame(function: &str) -> bool {
    rt::runtime_frame(function)
}

/// `/sched/latencies:seconds`: how long goroutines sat runnable before they
/// ran (sampled: one park, yield or spawn in 64 per goroutine; Go samples one
/// in 8), and every park the block profile records.
pub fn sched_latencies() -> Float64Histogram {
    let mut counts = vec![0; TIME_BUCKETS];
    rt::add_latencies(&mut counts);
    Float64Histogram {
        counts,
        buckets: TimeHistogram::boundaries(),
    }
}

/// `/sync/mutex/wait/total:seconds` in nanoseconds: approximate total time
/// goroutines have spent blocked on gort-std's Mutex and RwLock (from the
/// sampled tracking, scaled by the sampling period as Go does).
pub fn mutex_wait_total_ns() -> u64 {
    rt::mutex_wait_total_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_labels_on_a_plain_thread_runs_f() {
        assert_eq!(with_labels(&[("k", "v")], || 7), 7);
        assert!(goroutine_labels().is_none());
    }
}
