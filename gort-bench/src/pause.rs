//! The mutator of the GC pause workloads (`gc_cycle`, `gc_pause`,
//! `gc_pause_wall`), written once so that every collector is measured the
//! same way: a loop doing a mutator's everyday work, timing the gap between
//! consecutive iterations while a collection runs. Gaps in which the OS
//! involuntarily preempted the mutator's thread (`ru_nivcsw` changed) count
//! only for the wall figure: on a loaded machine they are other processes'
//! time slices, not collector pauses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Involuntary context switches of the calling thread so far.
pub fn nivcsw() -> i64 {
    // SAFETY: getrusage writes the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_nivcsw as i64
    }
}

/// Shared between the mutator and the measuring side.
#[derive(Clone, Default)]
pub struct PauseProbe {
    running: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
    started: Arc<AtomicBool>,
    max_gap: Arc<AtomicU64>,
    max_wall: Arc<AtomicU64>,
}

/// What one measured collection gave.
pub struct Pauses {
    /// How long the collection call took.
    pub cycle: Duration,
    /// The longest mutator gap during it without an OS preemption.
    pub pause: Duration,
    /// The longest mutator gap during it.
    pub wall: Duration,
}

impl PauseProbe {
    /// A probe whose mutator runs until [`PauseProbe::measure`] ends.
    pub fn new() -> PauseProbe {
        let p = PauseProbe::default();
        p.running.store(true, SeqCst);
        p
    }

    /// The mutator loop (run it on the mutator's goroutine or thread):
    /// calls `step` with a running sum until the measurement ends,
    /// recording the gaps between iterations while a collection runs.
    pub fn mutator(&self, mut step: impl FnMut(u64) -> u64) {
        let mut prev = Instant::now();
        let mut prev_cs = nivcsw();
        let mut sum = 0u64;
        while self.running.load(Relaxed) {
            sum = step(sum);
            let now = Instant::now();
            let cs = nivcsw();
            if self.measuring.load(Relaxed) {
                let gap = now.duration_since(prev).as_nanos() as u64;
                self.max_wall.fetch_max(gap, Relaxed);
                if cs == prev_cs {
                    self.max_gap.fetch_max(gap, Relaxed);
                }
            }
            prev = now;
            prev_cs = cs;
            self.started.store(true, Relaxed);
        }
        std::hint::black_box(sum);
    }

    /// Waits until the mutator runs, times `collect` while measuring its
    /// gaps, then stops the mutator (join it before reading anything it
    /// owns).
    pub fn measure(&self, collect: impl FnOnce()) -> Pauses {
        while !self.started.load(Relaxed) {
            std::thread::yield_now();
        }
        self.measuring.store(true, SeqCst);
        let t0 = Instant::now();
        collect();
        let cycle = t0.elapsed();
        self.measuring.store(false, SeqCst);
        self.running.store(false, SeqCst);
        Pauses {
            cycle,
            pause: Duration::from_nanos(self.max_gap.load(SeqCst)),
            wall: Duration::from_nanos(self.max_wall.load(SeqCst)),
        }
    }
}
