mod loom_park;
mod loom_runq;
