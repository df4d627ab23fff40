//! # gort-timer: Go's timers (runtime/time.go) for gort
//!
//! * [`RawTimer`] — a callback run once at a deadline or periodically,
//!   armed ([`RawTimer::reset`]) and disarmed ([`RawTimer::stop`]) with
//!   Go's results; dropping it stops it.
//! * [`sleep`] / [`sleep_until`] — park the calling goroutine (or thread)
//!   until a deadline.
//!
//! Channel timers (`Timer`, `Ticker`, `after`, `after_func`) and channel
//! timeouts live in gort-std, which sits above this layer and owns the
//! channels; they are built on [`RawTimer`].
//!
//! ## Design
//!
//! As Go since 1.14: one 4-ary min-heap of timers per P, each behind a
//! short-hold lock; a timer lives in the heap of the P that created it.
//! The heaps are a gort-sched *source*: whichever M looks for work after
//! the earliest deadline (and every M before it sleeps) runs all due heaps,
//! so timers of a busy or idle P are not delayed; an idle M sleeps on its
//! futex exactly until the earliest deadline (nanosecond timeouts, no tick),
//! and arming a timer earlier than every other wakes it
//! ([`gort_sched::note_deadline`]).
//!
//! Callbacks run under their heap's lock. They are tiny (ready a waiter,
//! try a channel send, spawn a goroutine), and this makes stop exact: when
//! `stop` returns, the callback is neither running nor going to run. Go 1.23's
//! guarantee — no stale value after `Stop` or `Reset` — follows in gort-std
//! by draining the timer's channel after stopping.
//!
//! Rejected: one global heap (every timer operation of every P would share
//! one lock); a hierarchical timing wheel (cheaper inserts, but coarse
//! resolution or a tick; Go's heaps give exact deadlines).
//!
//! # Invariants
//! * An entry's `idx` is its position in its heap's vector, or "not
//!   queued"; both change only under that heap's lock.
//! * A heap's `min` is its first deadline (or i64::MAX), stored before the
//!   lock is released.

#![cfg_attr(gort_loom, allow(dead_code, unused_imports))]

mod heap;
mod loom;
#[cfg(not(gort_loom))]
mod rt;

#[cfg(not(gort_loom))]
pub use rt::{deadline_after, deadline_at, sleep, sleep_until, RawTimer};

#[cfg(all(test, gort_loom))]
mod tests;
