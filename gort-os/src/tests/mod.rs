mod loom_lock;
mod loom_parker;
