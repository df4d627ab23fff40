//! gort-netpoll (under construction).
