mod loom_notify;
mod loom_sema;
