//! gort's side of the garbage collector workloads (issue 6), called from
//! the `gort` bench binary's dispatch:
//!
//! * `finalizers [n]`: allocate `n` (default 1,000,000) objects, each with
//!   a finalizer, drop every reference, collect until every finalizer has
//!   run. Reports ns per object (`ns/obj`), everything included.
//! * `cleanups [n]`: the same with `add_cleanup` (`ns/obj`).
//! * `gc_cycle [n]`: the time of one `gc()` with `n` (default 1,000,000)
//!   live objects in a linked list, while a mutator goroutine allocates and
//!   reads objects (`ms`).
//! * `gc_pause [n]`: in the same run, the longest gap between two
//!   iterations of the mutator's loop during the `gc()`, leaving out the
//!   iterations in which the OS involuntarily preempted the mutator's
//!   thread (`getrusage(RUSAGE_THREAD).ru_nivcsw` changed): on a loaded
//!   machine those are time slices of other processes, not collector
//!   pauses (`us`). A mutator that blocked on the collector would show up
//!   here (that is a voluntary switch).
//! * `gc_pause_wall [n]`: the same without leaving anything out (`us`).

use crate::{per, report};
use gort_gc::{add_cleanup, gc, set_finalizer, Gc, Trace};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Trace)]
struct Obj {
    v: u64,
    p: Option<Gc<Obj>>,
}

/// A node of the live list (the `next` field is fixed at construction).
#[derive(Trace)]
struct L {
    v: u64,
    next: Option<Gc<L>>,
}

static RAN: AtomicU64 = AtomicU64::new(0);

/// Runs a GC workload; false if `workload` is not one of them.
pub fn run(workload: &str, n: Option<u64>) -> bool {
    match workload {
        "finalizers" | "cleanups" => {
            let n = n.unwrap_or(1_000_000);
            let fin = workload == "finalizers";
            RAN.store(0, SeqCst);
            let t0 = Instant::now();
            for i in 0..n {
                let x = Gc::new(Obj { v: i, p: None });
                if fin {
                    set_finalizer(&x, |_x| {
                        RAN.fetch_add(1, Relaxed);
                    });
                } else {
                    add_cleanup(
                        &x,
                        |_a: u64| {
                            RAN.fetch_add(1, Relaxed);
                        },
                        i,
                    );
                }
                drop(x);
            }
            wait_all(n);
            report(per(t0.elapsed(), n), "ns/obj");
            true
        }
        "gc_cycle" | "gc_pause" | "gc_pause_wall" => {
            let n = n.unwrap_or(1_000_000);
            let (cycle, pause, wall) = gc_cycle(n);
            match workload {
                "gc_cycle" => report(cycle.as_secs_f64() * 1e3, "ms"),
                "gc_pause" => report(pause.as_secs_f64() * 1e6, "us"),
                _ => report(wall.as_secs_f64() * 1e6, "us"),
            }
            true
        }
        _ => false,
    }
}

/// Collects until `n` finalizers or cleanups have run.
fn wait_all(n: u64) {
    let mut last = Instant::now();
    gc();
    while RAN.load(Relaxed) < n {
        std::thread::sleep(Duration::from_micros(100));
        if last.elapsed() > Duration::from_millis(20) {
            gc();
            last = Instant::now();
        }
    }
}

/// Involuntary context switches of the calling thread so far.
pub fn nivcsw() -> i64 {
    // SAFETY: getrusage writes the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_nivcsw as i64
    }
}

/// One `gc()` over `n` live objects with a mutator goroutine running:
/// (duration of the gc, longest mutator iteration gap during it without an
/// OS preemption, longest gap overall).
fn gc_cycle(n: u64) -> (Duration, Duration, Duration) {
    let mut head: Option<Gc<L>> = None;
    for i in 0..n {
        // Link through a clone and drop the original, as a program passing
        // handles around would (for dumpster this makes every node a
        // candidate its collector must examine).
        let prev = head.take();
        head = Some(Gc::new(L {
            v: i,
            next: prev.clone(),
        }));
        drop(prev);
    }
    let head = head.expect("n > 0");
    gc(); // warm up: the finalizer/GC machinery, page faults
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    let max_gap = Arc::new(AtomicU64::new(0));
    let max_wall = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let m = {
        let (running, measuring, max_gap, max_wall, started) = (
            running.clone(),
            measuring.clone(),
            max_gap.clone(),
            max_wall.clone(),
            started.clone(),
        );
        let h = head.clone();
        gort::go(move || {
            let mut prev = Instant::now();
            let mut prev_cs = nivcsw();
            let mut sum = 0u64;
            while running.load(Relaxed) {
                // A mutator's everyday work: allocate, link, read, drop.
                let x = Gc::new(Obj {
                    v: sum,
                    p: Some(Gc::new(Obj { v: 1, p: None })),
                });
                let y = h.clone();
                sum = sum.wrapping_add(x.v + y.v + x.p.as_ref().map_or(0, |p| p.v));
                drop((x, y));
                let now = Instant::now();
                let cs = nivcsw();
                if measuring.load(Relaxed) {
                    let gap = now.duration_since(prev).as_nanos() as u64;
                    max_wall.fetch_max(gap, Relaxed);
                    if cs == prev_cs {
                        max_gap.fetch_max(gap, Relaxed);
                    }
                }
                prev = now;
                prev_cs = cs;
                started.store(true, Relaxed);
            }
            std::hint::black_box(sum);
        })
    };
    while !started.load(Relaxed) {
        std::thread::yield_now();
    }
    measuring.store(true, SeqCst);
    let t0 = Instant::now();
    gc();
    let el = t0.elapsed();
    measuring.store(false, SeqCst);
    running.store(false, SeqCst);
    m.join().expect("mutator");
    drop(head);
    (
        el,
        Duration::from_nanos(max_gap.load(SeqCst)),
        Duration::from_nanos(max_wall.load(SeqCst)),
    )
}
