mod loom_idle;
mod loom_locked;
mod loom_park;
mod loom_runq;
