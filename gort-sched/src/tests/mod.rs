mod loom_idle;
mod loom_park;
mod loom_runq;
