//! The runtime proper: G, M, P, the scheduler loop (`schedule` /
//! `find_runnable`), spinning and wake-up of Ms (`wakep` / `startm` /
//! `stopm`), the global run queue, goroutine descriptors' free lists,
//! `gomaxprocs` and the source hooks. Go's runtime/proc.go is the model; the
//! differences all come from one rule (a started goroutine never changes
//! OS thread) and are described in the crate docs ("The one departure from
//! Go", "Goroutines share their thread").
//!
//! | file | what | Go |
//! |------|------|----|
//! | `g.rs` | the goroutine descriptor | runtime2.go `g` |
//! | `p.rs` | processors and their run queues | runtime2.go `p` |
//! | `m.rs` | Ms, the thread-local current M/G, M start-up | runtime2.go `m`, proc.go `newm`/`mstart` |
//! | `sched.rs` | the scheduler singleton, global run queue, goroutine counts | runtime2.go `schedt`, proc.go `globrunq*` |
//! | `gfree.rs` | spawning and descriptor free lists | proc.go `newproc`, `gfget`/`gfput` |
//! | `schedule.rs` | the run loop: find work, ready | proc.go `schedule`, `findRunnable`, `ready` |
//! | `switch.rs` | the context switch: run a goroutine, park, yield | proc.go `execute`, `park_m`, `gosched_m` |
//! | `locked.rs` | `lock_os_thread` counts, exit while locked | proc.go `LockOSThread`, `dolockOSThread`, `goexit0` |
//! | `idle.rs` | spinning, waking, handing Ps over, sleeping | proc.go `wakep`, `startm`, `stopm`, `handoffp` |
//! | `sources.rs` | timer/netpoll sources and idle sleep | proc.go `findRunnable`'s netpoll/timer part |
//! | `compact.rs` | stack compaction of long-parked goroutines | (none: Go shrinks stacks at GC) |
//! | `procs.rs` | GOMAXPROCS, spin advice for sync | proc.go `procresize`, `sync_runtime_canSpin` |
//! | `dump.rs` | goroutine dumps | traceback.go `tracebackothers`, mprof.go `Stack` |
//! | `sysmon.rs` | the watchdog thread; blocking calls; preemption requests; deadlock check; schedtrace | proc.go `sysmon`, `retake`, `entersyscall`/`exitsyscall`, `checkdead`, `schedtrace` |
//!
//! The join handshake lives beside the task states it drives, in `task.rs`.
//!
//! Under `--cfg gort_loom` everything here but the context switch, the
//! descriptor free lists and stack compaction is built on loom's atomics,
//! locks and threads (`crate::loom`), and `model.rs` stands in for those
//! three: its `execute` counts a goroutine as run instead of switching to
//! it, so the models in `src/tests/` run the real idle protocol with M
//! threads that queue and dequeue goroutine descriptors.

use crate::loom::{
    nanotime, spin_loop, AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64,
    AtomicUsize, Mutex, MutexGuard, Ordering, Parker, RwLock,
};
use crate::park_state::ParkState;
use crate::runq::RunQueue;
use crate::source::Source;
use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::ptr;
use std::sync::Arc;

cfg_not_loom! {
    use crate::config::Config;
    use crate::local::Entry;
    use crate::task::{Payload, TaskVtable, RUNNING};
    use crate::waiter::Waiter;
    use gort_os::context::{Context, Suspender};
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::OnceLock;

    mod compact;
    mod dump;
    mod gfree;
    mod locked;
    mod switch;
    mod profile;

    use crate::park_state::Notify;
    pub(crate) use self::profile::*;
    pub(crate) use self::dump::*;

    use self::compact::*;
    pub(crate) use self::gfree::*;
    pub(crate) use self::locked::*;
    pub(crate) use self::switch::*;
}

cfg_loom! {
    pub(crate) mod model;

    use self::model::inert::*;
    use self::model::{compact_pass, compaction_due};
    pub(crate) use self::model::{execute, sched};
}

use crate::WaitReason;

mod g;
mod idle;
mod m;
mod p;
mod procs;
mod sched;
mod schedule;
mod sources;
mod sysmon;

pub(crate) use self::g::*;
pub(crate) use self::idle::*;
pub(crate) use self::m::*;
pub(crate) use self::p::*;
// (Used by the public API only, which loom builds do not have.)
#[cfg_attr(gort_loom, allow(unused_imports))]
pub(crate) use self::procs::*;
pub(crate) use self::sched::*;
pub(crate) use self::schedule::*;
pub(crate) use self::sources::*;
// (Mostly the normal build's: its crate-visible items are not loom's.)
#[cfg_attr(gort_loom, allow(unused_imports))]
pub(crate) use self::sysmon::*;

/// Most Ps a runtime may have (4 under loom, whose models build a few).
pub const MAX_PROCS: usize = if cfg!(gort_loom) { 4 } else { 1024 };

/// The timekeeper M sleeps until this long before the next deadline, then
/// spins to it (bounded CPU per timer wake-up, for ~µs timer accuracy).
pub(super) const TIMER_EARLY_NS: i64 = 25_000;

/// How long an idle M that has parked goroutines of its own keeps its P and
/// watches its inbox before sleeping. A cross-thread hand-off (ping-pong
/// between goroutines bound to different Ms) then costs a cache-line
/// transfer instead of a futex wake-up (~20-50 us on a VM) per message.
pub(super) const IDLE_SPIN_NS: i64 = 50_000;

/// The shorter watch of an idle M whose recent wake-ups came through a
/// poll or a fresh goroutine (`MLocal::spin_worthy`): in A/B runs,
/// tcp_conns_ms took 0.92-1.05 s without a watch, 0.45-0.55 s with 10 µs
/// (0.41-0.44 s with the old unconditional 50 µs), and the HTTP example
/// under wrk 4% more ns per request than without (50 µs: 9%; medians of
/// 3 to 7).
pub(super) const QUIET_SPIN_NS: i64 = 10_000;

/// A watching idle M polls its own wait in the eager source (the
/// netpoller's per-M instance, which no other M polls) this often.
pub(super) const WATCH_POLL_NS: i64 = 2_000;

/// A busy M polls the network poller once every this many schedules (its
/// own descriptors' events reach nobody else; Go's 61 for the global queue).
pub(super) const POLL_TICKS: u32 = 61;

/// Schedules an M may run on its P while another M waits for one.
pub(super) const P_QUANTUM: u32 = 64;

/// An M gives a fresh goroutine to another M's P when that M has at least
/// this much less load, rather than start it itself (`place_fresh`).
pub(super) const BALANCE_MARGIN: u32 = 2;

/// How long a fresh goroutine given to another P waits for that P's holder
/// before an M with nothing else to do takes it back (`reclaim_gift`):
/// well past a wake-up of a sleeping M (20-60 µs on the 2-core VM), and
/// past most of the OS's descheduling of a busy one (at 200 µs, 1 run of
/// the placement test in 30 had its gifts taken back; none at 1 ms).
pub(super) const GIFT_GRACE_NS: i64 = 1_000_000;

/// Free goroutine descriptors a P keeps.
pub(super) const GFREE_MAX: usize = 64;

/// Interval of an M's stack-compaction passes: a goroutine parked through a
/// whole interval (10-20 ms) has its stack compacted (gort-os `context.rs`).
pub(super) const COMPACT_NS: i64 = 10_000_000;

/// Most stacks an M compacts in one pass while it holds a P (an idle M has
/// no limit).
pub(super) const COMPACT_BUSY_MAX: usize = 1024;

pub(crate) use gort_os::fatal;
