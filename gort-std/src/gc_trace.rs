//! gort-gc tracing through gort-std's locks, so a `Gc<Mutex<T>>` or a
//! `#[derive(Trace)]` struct with `gort::sync::Mutex` fields takes part in
//! cycle collection like one with std's locks.
//!
//! The collector never waits for a lock: a lock held while it traces makes
//! the value opaque for that cycle (its object is kept, a root), exactly as
//! gort-gc's impls for std's `Mutex`/`RwLock` do.

use crate::{Mutex, RwLock};
use gort_gc::{Trace, Tracer};

// SAFETY: the value is owned by the mutex; under the guard we visit exactly
// the handles it owns (T's own Trace); a held lock reports `opaque`, which
// only keeps things alive.
unsafe impl<T: Trace + ?Sized> Trace for Mutex<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self.try_lock() {
            Some(g) => T::trace(&g, t),
            None => t.opaque(),
        }
    }
}

// SAFETY: as for Mutex, under a read guard.
unsafe impl<T: Trace + ?Sized> Trace for RwLock<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self.try_read() {
            Some(g) => T::trace(&g, t),
            None => t.opaque(),
        }
    }
}
