//! The one place this crate takes its atomics from.
//!
//! Under `--cfg gort_loom` every atomic is loom's, so the models in
//! `src/tests/` explore every interleaving of the real code. Nothing else in
//! the crate names `std::sync::atomic` for modelled state (the stack pool's
//! statistics counters are plain std atomics: they order nothing).

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};
