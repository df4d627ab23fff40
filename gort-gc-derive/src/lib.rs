//! gort-gc-derive (under construction).
