//! The heap profile (Go's `MemProfileRate` sampling in malloc.go and the
//! memory records of mprof.go), for `Gc` allocations: about one allocation
//! per `rate` bytes is sampled with its allocating stack; a sampled object
//! carries its record's index in its specials, so its free is counted too.
//!
//! Cost on the allocation path: a thread-local countdown (a load, a
//! subtraction and a store; no atomic read-modify-write, no clock read).
//! The countdown is per thread, shared by the goroutines of an M: it only
//! spaces samples by bytes allocated, so which goroutine consumes it does
//! not matter.

use crate::gc::Header;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;

/// Go's default `MemProfileRate`: 512 KiB.
pub const DEFAULT_MEM_PROFILE_RATE: i64 = 512 * 1024;

static RATE: AtomicI64 = AtomicI64::new(DEFAULT_MEM_PROFILE_RATE);

/// Sets the heap profile's sampling rate (Go's `runtime.MemProfileRate`):
/// on average one sample per `rate` bytes of `Gc` allocations; 1 records
/// every allocation, 0 turns sampling off. Set it as early as possible: as
/// in Go, a change applies from each thread's next sample on.
pub fn set_mem_profile_rate(rate: i64) {
    RATE.store(rate.max(0), Relaxed);
}

/// The heap profile's sampling rate.
pub fn mem_profile_rate() -> i64 {
    RATE.load(Relaxed)
}

/// One allocation stack's totals (Go's `MemProfileRecord`): sampled
/// objects and bytes, as recorded (readers scale by the rate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemRecord {
    /// Sampled objects allocated here.
    pub alloc_objects: i64,
    /// Their bytes.
    pub alloc_bytes: i64,
    /// Sampled objects allocated here and freed since.
    pub free_objects: i64,
    /// Their bytes.
    pub free_bytes: i64,
    /// The allocating stack: return addresses, innermost first (starting
    /// in the runtime).
    pub stack: Vec<usize>,
}

struct Records {
    by_stack: std::collections::HashMap<Box<[usize]>, usize>,
    list: Vec<MemRecord>,
}

static RECORDS: Mutex<Option<Records>> = Mutex::new(None);

/// Every sampled allocation stack (Go's `MemProfile` with
/// `inuseZero = true`).
pub fn mem_profile() -> Vec<MemRecord> {
    let r = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    r.as_ref().map_or_else(Vec::new, |r| r.list.clone())
}

/// The countdown before a thread's first allocation: far below zero, so
/// the first allocation takes the slow path, which draws a random interval
/// instead of sampling (Go draws one per mcache).
const UNSET: i64 = i64::MIN / 2;

// Right across a park: a per-thread byte countdown (see the module docs).
thread_local! {
    static NEXT: Cell<i64> = const { Cell::new(UNSET) };
}

/// Counts an allocation of `size` bytes; samples it when the countdown
/// runs out. Called after the object is registered, outside any lock.
/// (Off under loom: sampling is random, and models must be deterministic.)
#[inline]
pub(crate) fn on_alloc(h: NonNull<Header>, size: usize) {
    if cfg!(gort_loom) {
        return;
    }
    let Ok(left) = NEXT.try_with(|n| {
        let left = n.get() - size as i64;
        n.set(left);
        left
    }) else {
        return; // thread-locals being torn down
    };
    if left <= 0 {
        sample(h, size, left < UNSET / 2);
    }
}

#[cold]
fn sample(h: NonNull<Header>, size: usize, first: bool) {
    let rate = RATE.load(Relaxed);
    let _ = NEXT.try_with(|n| n.set(next_interval(rate)));
    if rate <= 0 || (first && rate > 1) {
        return;
    }
    let mut pcs = Vec::new();
    #[cfg(not(gort_loom))]
    gort_sched::prof::callers(&mut pcs);
    #[cfg(gort_loom)]
    let _ = &mut pcs;
    let idx = {
        let mut r = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
        let r = r.get_or_insert_with(|| Records {
            by_stack: Default::default(),
            list: Vec::new(),
        });
        let next = r.list.len();
        let idx = *r
            .by_stack
            .entry(pcs.clone().into_boxed_slice())
            .or_insert(next);
        if idx == next {
            r.list.push(MemRecord {
                alloc_objects: 0,
                alloc_bytes: 0,
                free_objects: 0,
                free_bytes: 0,
                stack: pcs,
            });
        }
        let rec = &mut r.list[idx];
        rec.alloc_objects += 1;
        rec.alloc_bytes += size as i64;
        idx
    };
    // SAFETY: the caller's fresh object, alive (its handle is not returned
    // to the user yet).
    crate::special::mark_sampled(unsafe { h.as_ref() }, idx, size);
}

/// A sampled object was freed.
pub(crate) fn on_free(idx: usize, size: usize) {
    let mut r = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rec) = r.as_mut().and_then(|r| r.list.get_mut(idx)) {
        rec.free_objects += 1;
        rec.free_bytes += size as i64;
    }
}

/// Bytes until the next sample: exponentially distributed with mean `rate`
/// (Go's `nextSample`), so samples do not lock onto allocation patterns.
fn next_interval(rate: i64) -> i64 {
    match rate {
        i64::MIN..=0 => i64::MAX,
        1 => 0,
        _ => {
            let u = (rand() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            (-(1.0 - u).ln() * rate as f64).min(i64::MAX as f64) as i64
        }
    }
}

fn rand() -> u64 {
    // Right across a park: randomness only.
    thread_local! {
        static S: Cell<u64> = const { Cell::new(0) };
    }
    S.try_with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = (std::ptr::from_ref(s) as u64) ^ 0x9E37_79B9_7F4A_7C15 | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
    .unwrap_or(0x2545_F491_4F6C_DD1D)
}
