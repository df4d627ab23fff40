mod loom_pd;
