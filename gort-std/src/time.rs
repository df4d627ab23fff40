//! Go's time package on channels: [`Timer`], [`Ticker`], [`after`],
//! [`after_func`], [`sleep`], and [`Receiver::recv_timeout`].
//!
//! Built on gort-timer's [`RawTimer`] (per-P heaps run by the scheduler),
//! with Go 1.23's semantics for timer channels:
//!
//! * No stale values: after [`Timer::stop`] or [`Timer::reset`] returns, no
//!   value from before it is ever received — the raw timer's stop is exact
//!   (its callback runs under the heap lock), and the channel's one
//!   buffered slot is drained after it.
//! * Stop and Reset report a fired but unreceived value as pending: the
//!   timer counts as active until its value is received, so they return
//!   true when they discard one (Go's `timerchandrain` result). Go's idiom
//!   `if !t.stop() { t.c().recv(); }` therefore never blocks.
//! * A timer channel looks unbuffered: `len()` and `capacity()` are 0
//!   (Go 1.23 made timer channels synchronous). Inside, it keeps its one
//!   buffered slot, which the stop/reset drain makes unobservable.
//! * The channel owns its timer: a timer nobody can receive from is
//!   stopped and freed when the last receiver is dropped, even one made by
//!   [`after`] (Go 1.23 collects unreferenced timers; the pattern
//!   `select! { recv(work) ..., recv(after(hour)) ... }` in a loop leaves
//!   nothing behind). Cloning `t.c()` keeps the timer running after the
//!   `Timer` is dropped, as the channel keeps it alive in Go.
//!
//! Rejected: Go's own design (the timer is armed only while a goroutine
//! blocks on its channel, and a receive runs an expired timer itself): it
//! hooks the channel's receive paths and `select` for every channel, where
//! exact stop plus a drain gives the same observable results from the
//! timer side alone.

use crate::chan::timer_chan;
use crate::{Receiver, Sender, TryRecvError};
use gort_timer::{deadline_after, RawTimer};
use std::fmt;
use std::time::{Duration, Instant};

pub use gort_timer::{sleep, sleep_until};

/// A one-shot timer that sends the time on its channel when it fires
/// (Go's `time.Timer`).
///
/// ```
/// use std::time::Duration;
/// let t = gort_std::Timer::new(Duration::from_millis(1));
/// let fired_at = t.c().recv().unwrap();
/// assert!(fired_at.elapsed() < Duration::from_secs(5));
/// assert!(!t.stop()); // already fired, and its value received
///
/// // Go's idiom: stop, and drain if it had fired. Never blocks.
/// let t = gort_std::Timer::new(Duration::from_millis(1));
/// gort_std::sleep(Duration::from_millis(10));
/// if !t.stop() {
///     t.c().recv().unwrap();
/// }
/// ```
pub struct Timer {
    /// Owns the timer (see the module docs).
    c: Receiver<Instant>,
}

/// A timer's channel and its raw timer, unarmed.
fn sender_timer() -> Receiver<Instant> {
    timer_chan(|tx: Sender<Instant>| {
        // SAFETY: the callback is one `try_send`: it takes the channel's
        // short-hold lock and at most readies a receiver, never blocks or
        // parks; it cannot panic (the channel is never closed: this private
        // Sender is its only one and nobody calls `close` on it); it touches
        // no timer. Running under the heap lock makes `stop` exact, which
        // the drain after it relies on (no stale value).
        unsafe {
            RawTimer::new_unchecked(move || {
                // Full: an earlier value is still unreceived (a ticker drops
                // ticks for slow receivers); no receivers: nothing to do.
                let _ = tx.try_send(Instant::now());
            })
        }
    })
}

/// The raw timer of a channel made by [`sender_timer`].
fn raw(c: &Receiver<Instant>) -> &RawTimer {
    c.timer().expect("a timer channel has its timer")
}

/// Empties a stopped timer's one-slot channel (the Go 1.23 guarantee: no
/// value from before a stop or reset is received); returns whether it
/// discarded a value (then the stop or reset reports the timer as pending).
fn drain(c: &Receiver<Instant>) -> bool {
    let mut drained = false;
    while c.try_recv().is_ok() {
        drained = true;
    }
    drained
}

impl Timer {
    /// A timer that fires once, `d` from now.
    pub fn new(d: Duration) -> Timer {
        let c = sender_timer();
        raw(&c).reset(d);
        Timer { c }
    }

    /// The channel the fire time arrives on (Go's `t.C`); usable in
    /// [`select!`](crate::select!). It reports `len() == 0` and
    /// `capacity() == 0`, as Go 1.23's timer channels do.
    pub fn c(&self) -> &Receiver<Instant> {
        &self.c
    }

    /// Stops the timer; returns whether it was still active — armed, or
    /// fired with its value not yet received (that value is discarded), as
    /// Go 1.23's `Stop`. Afterwards no value is received until the next
    /// [`Timer::reset`].
    pub fn stop(&self) -> bool {
        let was = raw(&self.c).stop();
        drain(&self.c) || was
    }

    /// Re-arms the timer for `d` from now; returns whether it was active
    /// (as [`Timer::stop`] counts it). No value from before the reset is
    /// received afterwards.
    pub fn reset(&self, d: Duration) -> bool {
        let r = raw(&self.c);
        let was = r.stop();
        let was = drain(&self.c) || was;
        r.reset(d);
        was
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// Sends the time on its channel every period (Go's `time.Ticker`); ticks
/// a slow receiver has not taken are dropped, not queued.
pub struct Ticker {
    /// Owns the timer (see the module docs).
    c: Receiver<Instant>,
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    /// `non-positive interval for Ticker::new` if `d` is zero, as Go's
    /// NewTicker does.
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for Ticker::new");
        let c = sender_timer();
        raw(&c).reset_at(deadline_after(d), d);
        Ticker { c }
    }

    /// The channel the ticks arrive on (Go's `t.C`); `len()` and
    /// `capacity()` report 0, as in Go 1.23.
    pub fn c(&self) -> &Receiver<Instant> {
        &self.c
    }

    /// Stops the ticker; no tick is received afterwards (until a reset).
    pub fn stop(&self) {
        raw(&self.c).stop();
        drain(&self.c);
    }

    /// Stops and restarts the ticker with period `d`, the next tick `d`
    /// from now; no tick from before is received afterwards.
    ///
    /// # Panics
    /// `non-positive interval for Ticker::reset` if `d` is zero.
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for Ticker::reset");
        self.stop();
        raw(&self.c).reset_at(deadline_after(d), d);
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}

/// A channel that receives the time once, `d` from now (Go's
/// `time.After`). The channel owns the timer: dropping the receiver (and
/// its clones) before it fires stops and frees it, so an `after` in a loop
/// of `select!`s leaves nothing behind. As in Go, the channel is never
/// closed: after its one value, a receive blocks.
pub fn after(d: Duration) -> Receiver<Instant> {
    let c = sender_timer();
    raw(&c).reset(d);
    c
}

/// A channel that receives the time every `d` (Go's `time.Tick`): a ticker
/// with no handle to stop it. Since Go 1.23 that no longer leaks: the
/// channel owns the ticker, so dropping the receiver (and its clones) stops
/// and frees it.
///
/// # Panics
/// `non-positive interval for tick` if `d` is zero. (Go's `Tick` returns
/// nil there, a channel that never delivers; a Rust caller gets a clear
/// error instead.)
pub fn tick(d: Duration) -> Receiver<Instant> {
    assert!(!d.is_zero(), "non-positive interval for tick");
    let c = sender_timer();
    raw(&c).reset_at(deadline_after(d), d);
    c
}

/// Runs `f` in its own goroutine `d` from now (Go's `time.AfterFunc`),
/// never under a runtime lock: it may block, sleep and use timers. A panic
/// in it ends the process (`fatal error: panic in a timer callback: ...`),
/// as in Go. Dropping the returned handle does not cancel it;
/// [`AfterFunc::stop`] does.
pub fn after_func<F: Fn() + Send + Sync + 'static>(d: Duration, f: F) -> AfterFunc {
    // gort-timer's safe RawTimer: each fire runs `f` on a new goroutine.
    let raw = RawTimer::new(f);
    raw.reset(d);
    AfterFunc { raw: Some(raw) }
}

/// The handle of an [`after_func`] timer.
pub struct AfterFunc {
    raw: Option<RawTimer>,
}

impl AfterFunc {
    fn raw(&self) -> &RawTimer {
        self.raw.as_ref().expect("AfterFunc timer")
    }

    /// Cancels the call if it has not started; returns whether it was
    /// pending. As Go's `Timer.Stop`, it does not wait for a call that has
    /// already started.
    pub fn stop(&self) -> bool {
        self.raw().stop()
    }

    /// Schedules the call (again) `d` from now; returns whether it was
    /// pending.
    pub fn reset(&self, d: Duration) -> bool {
        self.raw().reset(d)
    }
}

impl Drop for AfterFunc {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            raw.detach(); // a pending call still runs, as in Go
        }
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFunc").finish_non_exhaustive()
    }
}

/// A receive with a timeout failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    Timeout,
    /// The channel is closed and drained.
    Closed,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on a channel"),
            RecvTimeoutError::Closed => f.write_str("receiving on a closed channel"),
        }
    }
}
impl std::error::Error for RecvTimeoutError {}

impl<T> Receiver<T> {
    /// Receives a value, waiting at most `d` (Go's select with
    /// `time.After`).
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time,
    /// [`RecvTimeoutError::Closed`] once the channel is closed and drained.
    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        match self.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
            Err(TryRecvError::Empty) => {}
        }
        let t = Timer::new(d);
        crate::select! {
            recv(self) -> v => v.map_err(|_| RecvTimeoutError::Closed),
            recv(t.c()) -> _t => Err(RecvTimeoutError::Timeout),
        }
    }
}
