//! # gort-kit: Go's everyday concurrency toolkit on gort
//!
//! What Go services use beside goroutines and channels, built on gort-std's
//! channels, timers and sync types:
//!
//! * [`context`] — Go's `context` package: cancellation that flows down a
//!   tree, deadlines on gort timers, typed request-scoped values,
//!   `Done()` as a channel for `select!`, causes, `WithoutCancel`,
//!   `AfterFunc`.
//! * [`errgroup`] — golang.org/x/sync/errgroup: run a group of goroutines,
//!   wait for all, get the first error; optionally cancel a context on the
//!   first error; a limit on active goroutines.
//! * [`semaphore`] — golang.org/x/sync/semaphore's weighted semaphore:
//!   FIFO acquisition of `n` units, cancellable through a context.
//! * [`singleflight`] — golang.org/x/sync/singleflight: concurrent calls
//!   for the same key share one execution and its result.
//!
//! Every blocking call parks the calling goroutine (its thread runs other
//! goroutines) or, from a plain thread, parks the thread.

pub mod context;
#[cfg(not(gort_loom))]
pub mod errgroup;
mod rt;
#[cfg(not(gort_loom))]
pub mod semaphore;
#[cfg(not(gort_loom))]
pub mod singleflight;

#[cfg(all(test, gort_loom))]
mod tests;

#[cfg(not(gort_loom))]
/// The message of a panic payload (`&str` or `String`; else a placeholder).
fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
