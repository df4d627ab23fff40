mod loom_mutex;
mod loom_waitgroup;
