//! The one place this crate takes atomics from: loom's under
//! `--cfg gort_loom`, so the model in `src/tests/` explores the real heap.

#[cfg(not(gort_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

#[cfg(gort_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
