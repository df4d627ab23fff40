//! Why a goroutine or thread is parked. Built under loom too: the loom
//! parker (`crate::loom::park_model`) takes the same reasons.

use std::fmt;

/// Why a goroutine or thread is parked (Go's `waitReason`), for dumps and
/// for the scheduler.
///
/// The scheduler records it on every park of a goroutine; goroutine dumps
/// print it as Go's tracebacks print `[chan receive]`. Two reasons also
/// steer the goroutine's M: after `IoWait` and `Sleep` parks (usually ended
/// by a poll of the network or the timers) it does not spin waiting for the
/// goroutine when it has nothing else to run, as it may after a park for
/// another reason ended quickly (a channel, a lock). Pass the reason that
/// says what the goroutine waits for: a wrong one costs a wake-up or a
/// spin, never correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// No reason given.
    Unspecified,
    /// Waiting in `JoinHandle::join`.
    Join,
    /// Blocked receiving from a channel.
    ChanReceive,
    /// Blocked sending on a channel.
    ChanSend,
    /// Blocked in `select!`.
    Select,
    /// Blocked in `select!` with no cases.
    SelectNoCases,
    /// Semaphore acquire.
    SemAcquire,
    /// `Mutex::lock`.
    SyncMutexLock,
    /// `RwLock::read`.
    SyncRwLockRead,
    /// `RwLock::write`.
    SyncRwLockWrite,
    /// `WaitGroup::wait`.
    SyncWaitGroupWait,
    /// `Cond::wait`.
    SyncCondWait,
    /// `sleep`.
    Sleep,
    /// Waiting for network I/O.
    IoWait,
    /// Waiting for a `blocking` call on the pool (its stack may be lent to
    /// the pool thread, so it is never compacted meanwhile).
    Blocking,
    /// Waiting for a garbage collection.
    GcWait,
    /// The finalizer goroutine, idle.
    FinalizerWait,
    /// A layer-specific reason.
    Other(&'static str),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReason::Unspecified => "",
            WaitReason::Join => "join",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::SemAcquire => "semacquire",
            WaitReason::SyncMutexLock => "sync.Mutex.Lock",
            WaitReason::SyncRwLockRead => "sync.RWMutex.RLock",
            WaitReason::SyncRwLockWrite => "sync.RWMutex.Lock",
            WaitReason::SyncWaitGroupWait => "sync.WaitGroup.Wait",
            WaitReason::SyncCondWait => "sync.Cond.Wait",
            WaitReason::Sleep => "sleep",
            WaitReason::IoWait => "IO wait",
            WaitReason::Blocking => "blocking call",
            WaitReason::GcWait => "GC wait",
            WaitReason::FinalizerWait => "finalizer wait",
            WaitReason::Other(s) => s,
        })
    }
}
