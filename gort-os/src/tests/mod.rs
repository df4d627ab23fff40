mod loom_parker;
mod loom_lock;
