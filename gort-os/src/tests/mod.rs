mod loom_parker;
