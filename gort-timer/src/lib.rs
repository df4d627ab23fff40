//! # gort-timer: Go's timers (runtime/time.go) for gort
//!
//! * [`RawTimer`] — a callback run once at a deadline or periodically,
//!   armed ([`RawTimer::reset`]) and disarmed ([`RawTimer::stop`]) with
//!   Go's results; dropping it stops it. The safe [`RawTimer::new`] runs
//!   the function on a goroutine of its own; the `unsafe`
//!   [`RawTimer::new_unchecked`] runs a tiny callback under the heap lock.
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
//! Callbacks run under their heap's lock. The runtime's own are tiny
//! (ready a waiter, try a channel send, set a flag), and this makes stop
//! exact: when `stop` returns, the callback is neither running nor going to
//! run. Go 1.23's guarantee — no stale value after `Stop` or `Reset` —
//! follows in gort-std by draining the timer's channel after stopping; the
//! netpoller's deadlines and `sleep` rely on it too.
//!
//! ## User callbacks run on goroutines (issue 11, item 8)
//!
//! A callback under the heap lock, on an M's scheduler stack, is a hazard
//! for arbitrary code: a panic unwound out of the M with the heap locked
//! (every later `sleep` on that heap hung, the process never exited), and a
//! callback that slept, made a timer or blocked deadlocked the heap. So the
//! API is split:
//!
//! * [`RawTimer::new`] is safe and takes an `Fn() + Send + Sync`: the heap
//!   callback only spawns a goroutine that runs it, as Go's `AfterFunc`
//!   does (`go f()`). The function runs outside every runtime lock and may
//!   block, sleep and use timers. A panic in it is fatal (`fatal error:
//!   panic in a timer callback: <message>`, then abort), as a panic in an
//!   `AfterFunc` function is in Go: reported, never lost with a detached
//!   goroutine, never a hang. Stop and reset keep Go's results (true if
//!   they prevented a fire) and, as Go's, do not wait for a goroutine a
//!   fire already started. Fires of a re-armed one-shot timer may overlap
//!   (Go's semantics); a periodic timer's tick is dropped while the
//!   previous tick's goroutine still runs, so a slow callback cannot pile
//!   up goroutines. The entry of a fired detached timer, which owns the
//!   user's closure, is dropped on a goroutine too, never on the scheduler
//!   stack (its captures' `Drop` is user code).
//! * [`RawTimer::new_unchecked`] is `unsafe`: the callback keeps running
//!   under the heap lock, with a `# Safety` contract (no blocking, parking,
//!   panicking or touching timers). gort's own users take it — `sleep`,
//!   gort-std's channel timers, gort-netpoll's deadlines — each with a
//!   `SAFETY` comment on why its callback qualifies.
//!
//! Either way the heap runs callbacks inside `catch_unwind`: a panic that
//! breaks the unchecked contract is the same fatal error, not a poisoned,
//! forever-locked heap. And fired one-shot entries are dropped after the
//! heap lock is released, so no closure's captures drop under it.
//!
//! Rejected: containing a panic (report it, keep the M and the heap) —
//! Go makes it fatal, and a half-run callback leaves its user's state
//! unknown; running every callback on a goroutine — an extra goroutine per
//! `sleep` and per channel-timer fire, and stop would no longer be exact,
//! which the channel timers' "no stale value" rests on; a `FnMut` safe
//! callback serialised through a lock — either a std lock held across a
//! park (which deadlocks goroutines sharing the M) or fires queued behind a
//! blocked run, where Go runs each fire independently.
//!
//! Rejected: one global heap (every timer operation of every P would share
//! one lock); a hierarchical timing wheel (cheaper inserts, but coarse
//! resolution or a tick; Go's heaps give exact deadlines).
//!
//! # Invariants
//! * An entry's `idx` is its position in its heap's vector, or "not
//!   queued"; both change only under that heap's lock.
//! * User code (a [`RawTimer::new`] function, or the drop of its closure)
//!   never runs under a heap lock or on an M's scheduler stack.
//! * A heap's `min` is its first deadline (or i64::MAX), stored before the
//!   lock is released.

#![cfg_attr(gort_loom, allow(dead_code, unused_imports))]

mod heap;
mod loom;
#[cfg(not(gort_loom))]
mod rt;

#[cfg(not(gort_loom))]
pub use rt::{deadline_after, deadline_at, sleep, sleep_until, timers_pending, RawTimer};

#[cfg(all(test, gort_loom))]
mod tests;
