mod loom_context;
