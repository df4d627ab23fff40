//! The profiling types the scheduler's descriptors hold (built under loom
//! too): time histograms and label sets. See `prof.rs`.

// Reachable through `prof` only in non-loom builds.
#![cfg_attr(gort_loom, allow(unreachable_pub))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A goroutine's profiler labels (Go's `pprof.LabelSet`): key/value pairs,
/// sorted by key, keys unique.
pub type Labels = Arc<[(String, String)]>;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 2;
/// Values below 2^MIN_EXP ns share the first bucket.
const MIN_EXP: u32 = 4;
/// Values from 2^MAX_EXP ns (about 18 minutes) on share the last bucket.
const MAX_EXP: u32 = 40;
/// Buckets in a [`TimeHistogram`].
pub const TIME_BUCKETS: usize = 1 + ((MAX_EXP - MIN_EXP) << SUB_BITS) as usize + 1;

/// Nanosecond durations in log-linear buckets (four per power of two, from
/// 16 ns to 2^40 ns), counted with atomics; the shape of Go's
/// `timeHistogram`, read as a [`Float64Histogram`] in seconds.
pub struct TimeHistogram {
    counts: [AtomicU64; TIME_BUCKETS],
}

impl Default for TimeHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeHistogram {
    /// An empty histogram.
    pub const fn new() -> TimeHistogram {
        TimeHistogram {
            counts: [const { AtomicU64::new(0) }; TIME_BUCKETS],
        }
    }

    fn bucket(ns: i64) -> usize {
        let v = ns.max(0) as u64;
        if v < 1 << MIN_EXP {
            return 0;
        }
        let e = 63 - v.leading_zeros();
        if e >= MAX_EXP {
            return TIME_BUCKETS - 1;
        }
        let sub = (v >> (e - SUB_BITS)) as usize & ((1 << SUB_BITS) - 1);
        1 + (((e - MIN_EXP) as usize) << SUB_BITS) + sub
    }

    /// Counts one duration (an atomic add: for histograms many threads
    /// record into).
    pub fn record(&self, ns: i64) {
        self.counts[Self::bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one duration with a load and a store (no read-modify-write):
    /// only for a histogram one thread writes.
    pub(crate) fn record_owned(&self, ns: i64) {
        let c = &self.counts[Self::bucket(ns)];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Moves this histogram's counts into `into` (atomic adds), leaving it
    /// empty. Only by the histogram's one writer.
    pub(crate) fn drain_into(&self, into: &TimeHistogram) {
        for (c, t) in self.counts.iter().zip(&into.counts) {
            let n = c.swap(0, Ordering::Relaxed);
            if n != 0 {
                t.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Adds this histogram's counts into `into` (`TIME_BUCKETS` long).
    pub fn add_to(&self, into: &mut [u64]) {
        for (a, c) in into.iter_mut().zip(&self.counts) {
            *a += c.load(Ordering::Relaxed);
        }
    }

    /// Bucket boundaries in seconds: `TIME_BUCKETS + 1` values, the first 0,
    /// the last +Inf.
    pub fn boundaries() -> Vec<f64> {
        let mut b = Vec::with_capacity(TIME_BUCKETS + 1);
        b.push(0.0);
        for e in MIN_EXP..MAX_EXP {
            for sub in 0..1u64 << SUB_BITS {
                let lo = (1u64 << e) + (sub << (e - SUB_BITS));
                b.push(lo as f64 / 1e9);
            }
        }
        b.push((1u64 << MAX_EXP) as f64 / 1e9);
        b.push(f64::INFINITY);
        b
    }

    /// A snapshot in Go's `Float64Histogram` shape.
    pub fn read(&self) -> Float64Histogram {
        let mut counts = vec![0; TIME_BUCKETS];
        self.add_to(&mut counts);
        Float64Histogram {
            counts,
            buckets: Self::boundaries(),
        }
    }
}

/// Go's `metrics.Float64Histogram`: `counts[i]` values fell in
/// `[buckets[i], buckets[i+1])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Float64Histogram {
    /// Per-bucket counts.
    pub counts: Vec<u64>,
    /// Boundaries, one more than `counts`, increasing; the last may be +Inf.
    pub buckets: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_increasing_and_cover_every_value() {
        let b = TimeHistogram::boundaries();
        assert_eq!(b.len(), TIME_BUCKETS + 1);
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        for ns in [
            0i64,
            1,
            15,
            16,
            17,
            20,
            24,
            31,
            32,
            1000,
            123_456_789,
            1 << 39,
            1 << 41,
            i64::MAX,
        ] {
            let i = TimeHistogram::bucket(ns);
            let s = ns as f64 / 1e9;
            assert!(
                b[i] <= s && s < b[i + 1],
                "{ns} ns in bucket {i} [{}, {})",
                b[i],
                b[i + 1]
            );
        }
    }
}
