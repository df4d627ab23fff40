//! Go's time package on channels: [`Timer`], [`Ticker`], [`after`],
//! [`after_func`], [`sleep`], and [`Receiver::recv_timeout`].
//!
//! Built on gort-timer's [`RawTimer`] (per-P heaps run by the scheduler).
//! Go 1.23 semantics: after [`Timer::stop`] or [`Timer::reset`] returns, no
//! value from before it is ever received — the raw timer's stop is exact
//! (its callback runs under the heap lock), and the channel's one buffered
//! slot is drained after it. A `Timer` or `Ticker` nobody holds is stopped
//! and freed at once.

use crate::{chan, Receiver, Sender, TryRecvError};
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
/// assert!(!t.stop()); // already fired
/// ```
pub struct Timer {
    c: Receiver<Instant>,
    raw: RawTimer,
}

fn sender_timer(tx: Sender<Instant>) -> RawTimer {
    // SAFETY: the callback is one `try_send`: it takes the channel's
    // short-hold lock and at most readies a receiver, never blocks or
    // parks; it cannot panic (the channel is never closed: this private
    // Sender is its only one and nobody calls `close` on it); it touches no
    // timer. Running under the heap lock makes `stop` exact, which the
    // drain after it relies on (no stale value).
    unsafe {
        RawTimer::new_unchecked(move || {
            // Full: an earlier value is still unreceived (a ticker drops
            // ticks for slow receivers); no receivers: nothing to do.
            let _ = tx.try_send(Instant::now());
        })
    }
}

/// Empties a stopped timer's one-slot channel (the Go 1.23 guarantee: no
/// value from before a stop or reset is received).
fn drain(c: &Receiver<Instant>) {
    while c.try_recv().is_ok() {}
}

impl Timer {
    /// A timer that fires once, `d` from now.
    pub fn new(d: Duration) -> Timer {
        let (tx, c) = chan(1);
        let raw = sender_timer(tx);
        raw.reset(d);
        Timer { c, raw }
    }

    /// The channel the fire time arrives on (Go's `t.C`); usable in
    /// [`select!`](crate::select!).
    pub fn c(&self) -> &Receiver<Instant> {
        &self.c
    }

    /// Stops the timer; returns whether it was still pending. Afterwards no
    /// value is received until the next [`Timer::reset`].
    pub fn stop(&self) -> bool {
        let was = self.raw.stop();
        drain(&self.c);
        was
    }

    /// Re-arms the timer for `d` from now; returns whether it was pending.
    /// No value from before the reset is received afterwards.
    pub fn reset(&self, d: Duration) -> bool {
        let was = self.raw.stop();
        drain(&self.c);
        self.raw.reset(d);
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
    c: Receiver<Instant>,
    raw: RawTimer,
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    /// `non-positive interval for Ticker::new` if `d` is zero, as Go's
    /// NewTicker does.
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for Ticker::new");
        let (tx, c) = chan(1);
        let raw = sender_timer(tx);
        raw.reset_at(deadline_after(d), d);
        Ticker { c, raw }
    }

    /// The channel the ticks arrive on (Go's `t.C`).
    pub fn c(&self) -> &Receiver<Instant> {
        &self.c
    }

    /// Stops the ticker; no tick is received afterwards (until a reset).
    pub fn stop(&self) {
        self.raw.stop();
        drain(&self.c);
    }

    /// Stops and restarts the ticker with period `d`, the next tick `d`
    /// from now.
    ///
    /// # Panics
    /// `non-positive interval for Ticker::reset` if `d` is zero.
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for Ticker::reset");
        self.stop();
        self.raw.reset_at(deadline_after(d), d);
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}

/// A channel that receives the time once, `d` from now (Go's
/// `time.After`). The timer is freed when it fires.
pub fn after(d: Duration) -> Receiver<Instant> {
    let (tx, c) = chan(1);
    let raw = sender_timer(tx);
    raw.reset(d);
    raw.detach();
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
            recv(t.c) -> _t => Err(RecvTimeoutError::Timeout),
        }
    }
}
