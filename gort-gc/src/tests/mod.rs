#[cfg(gort_loom)]
mod loom_assist;
#[cfg(gort_loom)]
mod loom_collect;
#[cfg(not(gort_loom))]
mod unit;
#[cfg(not(gort_loom))]
mod unsafe_core;
