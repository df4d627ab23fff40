mod loom_block_on;
mod loom_chan;
mod loom_mutex;
mod loom_pool;
mod loom_rwlock;
mod loom_select;
mod loom_waitgroup;
