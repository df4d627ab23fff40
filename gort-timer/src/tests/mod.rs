mod loom_timer;
