//! gort-gc (under construction).
