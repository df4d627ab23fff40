//! Hooks for the layers above: timers and the network poller are *sources*
//! that the scheduler's idle path asks for ready goroutines and deadlines.
//!
//! gort-sched knows nothing of timers or sockets. A source registers itself
//! once ([`register_source`]); from then on:
//! * every M, when it looks for work and the earliest reported deadline has
//!   passed — and every M, before it sleeps — calls [`Source::poll`], which
//!   readies whatever is due (through [`crate::Waiter::ready`] or
//!   [`crate::go`]) and returns its next deadline;
//! * one idle M at a time may block inside a source that [`Source::blocks`]
//!   (the netpoller's `epoll_wait`), with the earliest deadline as timeout;
//!   anyone who readies a goroutine bound to that M, or reports an earlier
//!   deadline, interrupts it with [`Source::wake`] (Go's netpollBreak);
//! * otherwise one idle M sleeps on its futex exactly until the earliest
//!   deadline (no polling loop, no tick); [`note_deadline`] wakes it when an
//!   earlier deadline appears, and so does a poll that finds one (a poll
//!   may have skipped a timer heap another M was running, and reported a
//!   later deadline than that heap's next);
//! * sysmon runs deadlines overdue by a millisecond: a backstop, should
//!   every M be busy, or a wake-up be lost.

use std::sync::Arc;

/// Something that makes goroutines ready at times or on events.
pub trait Source: Send + Sync + 'static {
    /// Readies everything due at `now` (nanotime) without blocking; returns
    /// the next deadline (nanotime), if any.
    fn poll(&self, now: i64) -> Option<i64>;

    /// Whether this source can block an idle M in [`Source::block`].
    fn blocks(&self) -> bool {
        false
    }

    /// Blocks until an event, `until` (nanotime) or a [`Source::wake`]; then
    /// readies what became ready. Called by at most one M at a time.
    fn block(&self, until: Option<i64>) {
        let _ = until;
    }

    /// Interrupts a concurrent [`Source::block`]. Must be cheap and must not
    /// block.
    fn wake(&self) {}

    /// Whether the calling M (an idle M, on its own thread) has a wait of
    /// its own in this source that it should block in rather than sleep:
    /// the netpoller's epoll instance for the descriptors this M's
    /// goroutines wait on. Only the eager source (the first that
    /// [`Source::blocks`]) is asked.
    fn has_own(&self) -> bool {
        false
    }

    /// Readies what the calling M's own wait has (see [`Source::has_own`])
    /// without blocking: a busy M every so often, a watching idle M
    /// often (nobody else polls it).
    fn poll_own(&self) {}

    /// Blocks the calling M in its own wait until an event, `until`
    /// (nanotime) or [`Source::wake_own`] with its id; then readies what
    /// became ready. Called by each M for itself, only after
    /// [`Source::has_own`] said yes.
    fn block_own(&self, until: Option<i64>) {
        let _ = until;
    }

    /// Interrupts M `m`'s [`Source::block_own`] (`m` as
    /// [`crate::m_id`] gives it). Must be cheap and must not block.
    fn wake_own(&self, m: u64) {
        let _ = m;
    }

    /// Whether this source may still ready a goroutine or spawn one by
    /// itself (a timer is pending, a goroutine waits on a descriptor).
    /// sysmon's deadlock check declares deadlock only when no source has
    /// anything pending; the default, `true`, keeps it from ever firing
    /// while this source is registered. Called rarely (when nothing runs).
    fn pending(&self) -> bool {
        true
    }
}

/// Registers a source with the runtime (starting it if needed).
///
/// # Safety
/// The source's methods run on an M's own scheduler stack, not on a
/// goroutine, while the runtime holds its list of sources. They must not
/// park or block (except [`Source::block`], in its documented wait), panic,
/// run arbitrary user code (which might), spawn a thread that waits for
/// them, or call `register_source`; they may ready goroutines
/// ([`crate::Waiter::ready`]) and spawn them ([`crate::go`]). Breaking this
/// hangs or kills an M (and with it every goroutine bound to it). This is a
/// hook for the runtime's own layers (timers, the netpoller).
///
/// ```compile_fail,E0133
/// struct Blocking;
/// impl gort_sched::Source for Blocking {
///     fn poll(&self, _now: i64) -> Option<i64> {
///         std::thread::sleep(std::time::Duration::from_secs(3600)); // stalls an M
///         None
///     }
/// }
/// gort_sched::register_source(std::sync::Arc::new(Blocking)); // needs `unsafe`
/// ```
pub unsafe fn register_source(src: Arc<dyn Source>) {
    crate::rt::register_source(src)
}

/// Tells the scheduler a source has something due at `when` (nanotime), so
/// that an idle M wakes by then.
pub fn note_deadline(when: i64) {
    crate::rt::note_deadline(crate::rt::sched(), when)
}
