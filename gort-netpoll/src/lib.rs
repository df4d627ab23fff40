//! gort-netpoll (under construction).

mod loom;
mod pd;

#[cfg(all(test, gort_loom))]
mod tests;
