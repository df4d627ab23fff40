//! Issue 19's workloads (gort-kit): Go's twins are in go/kit.go.
//!
//! * `context_cancel` — a child of a cancellable context made and
//!   cancelled, 1M times (ns per child): the link into the parent's
//!   children and the unlink.
//! * `errgroup_fanout` — an errgroup with its context runs 1,000
//!   goroutines that each return no error, then waits; 200 rounds (ns per
//!   round).

use crate::{per, report};
use gort_kit::{context, errgroup};
use std::time::Instant;

/// Runs `w` if it is one of this file's workloads.
pub fn run(w: &str, n: Option<u64>) -> bool {
    match w {
        "context_cancel" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let (parent, stop) = context::with_cancel(&context::background());
                let t0 = Instant::now();
                for _ in 0..n {
                    let (_child, cancel) = context::with_cancel(&parent);
                    cancel.cancel();
                }
                let el = t0.elapsed();
                stop.cancel();
                el
            });
            report(per(el, n), "ns/op");
        }
        "errgroup_fanout" => {
            let rounds = n.unwrap_or(200);
            let el = gort::run(move || {
                let t0 = Instant::now();
                for _ in 0..rounds {
                    let (g, _ctx) =
                        errgroup::with_context::<std::sync::Arc<str>>(&context::background());
                    for _ in 0..1000 {
                        g.go(|| Ok(()));
                    }
                    g.wait().expect("no task fails");
                }
                t0.elapsed()
            });
            report(per(el, rounds), "ns/round");
        }
        _ => return false,
    }
    true
}
