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
//! * `gc_pressure [secs]`: with the soft memory limit at 100 MiB (as
//!   `GOMEMLIMIT=100MiB`; the environment's value wins when set), the main
//!   goroutine allocates two-object cycles (`a.p = b`, `b.p = a`, both
//!   dropped) in a loop for `secs` (default 10) seconds; reports the
//!   process's peak RSS (`MB`). Only the cycle collector can reclaim them,
//!   so this measures whether collection keeps up with allocation (issue
//!   20: without back-pressure the heap outran the background collector).

use crate::pause::{PauseProbe, Pauses};
use crate::{per, report};
use gort_gc::{add_cleanup, gc, set_finalizer, Gc, Trace};
use std::sync::atomic::{AtomicU64, Ordering::*};
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
            let r = gc_cycle(n);
            match workload {
                "gc_cycle" => report(r.cycle.as_secs_f64() * 1e3, "ms"),
                "gc_pause" => report(r.pause.as_secs_f64() * 1e6, "us"),
                _ => report(r.wall.as_secs_f64() * 1e6, "us"),
            }
            true
        }
        "gc_pressure" => {
            let secs = n.unwrap_or(10);
            if std::env::var_os("GOMEMLIMIT").is_none() {
                gort_gc::set_memory_limit(100 << 20);
            }
            let iters = gort::run(move || gc_pressure(Duration::from_secs(secs)));
            eprintln!(
                "gc_pressure: {iters} cycles allocated, {} collections",
                gort_gc::read_mem_stats().num_gc
            );
            report(crate::peak_rss() as f64 / 1e6, "MB");
            true
        }
        _ => false,
    }
}

/// One node of a two-object cycle.
#[derive(Trace)]
struct Cyc {
    v: u64,
    p: std::sync::Mutex<Option<Gc<Cyc>>>,
}

/// Allocates two-object cycles until `d` has passed; how many.
fn gc_pressure(d: Duration) -> u64 {
    let t0 = Instant::now();
    let mut i = 0u64;
    loop {
        for _ in 0..1024 {
            let a = Gc::new(Cyc {
                v: i,
                p: std::sync::Mutex::new(None),
            });
            let b = Gc::new(Cyc {
                v: i,
                p: std::sync::Mutex::new(Some(a.clone())),
            });
            *a.p.lock().unwrap() = Some(b);
            i += 1;
        }
        if t0.elapsed() >= d {
            return i;
        }
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

/// One `gc()` over `n` live objects with a mutator goroutine running.
fn gc_cycle(n: u64) -> Pauses {
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
    let probe = PauseProbe::new();
    let m = {
        let (probe, h) = (probe.clone(), head.clone());
        gort::go(move || probe.mutator(|sum| mutator_step(&h, sum)))
    };
    let r = probe.measure(gc);
    m.join().expect("mutator");
    drop(head);
    r
}

/// A mutator's everyday work: allocate, link, read, drop.
fn mutator_step(h: &Gc<L>, sum: u64) -> u64 {
    let x = Gc::new(Obj {
        v: sum,
        p: Some(Gc::new(Obj { v: 1, p: None })),
    });
    let y = h.clone();
    let sum = sum.wrapping_add(x.v + y.v + x.p.as_ref().map_or(0, |p| p.v));
    drop((x, y));
    sum
}
