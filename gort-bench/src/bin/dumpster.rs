//! The `dumpster` crate's side of the GC workloads of `cargo xtask bench`
//! (a thread-safe, cycle-collecting `Gc` without root registration; see
//! `gort_bench::gc` for the workloads). dumpster has no finalizers or
//! cleanups: those workloads have no counterpart here.

use dumpster::sync::{collect, Gc};
use dumpster::Trace;
use gort_bench::gc::nivcsw;
use gort_bench::{args, report, unknown};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Trace)]
struct Obj {
    v: u64,
    p: Option<Gc<Obj>>,
}

#[derive(Trace)]
struct L {
    v: u64,
    next: Option<Gc<L>>,
}

/// One `collect()` over `n` live objects with a mutator thread running:
/// (duration, longest mutator iteration gap without an OS preemption,
/// longest gap overall) — as in `gort_bench::gc`.
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
    // No warm-up collect: the measured one examines the million candidates
    // the construction left (after a warm-up it would find none, as
    // dumpster only looks at handles dropped since its last collection).
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let max_gap = Arc::new(AtomicU64::new(0));
    let max_wall = Arc::new(AtomicU64::new(0));
    let m = {
        let (running, measuring, max_gap, max_wall, started) = (
            running.clone(),
            measuring.clone(),
            max_gap.clone(),
            max_wall.clone(),
            started.clone(),
        );
        let h = head.clone();
        // dumpster may start a collection from any drop: a big stack here
        // too.
        std::thread::Builder::new()
            .stack_size(4 << 30)
            .spawn(move || {
                let mut prev = Instant::now();
                let mut prev_cs = nivcsw();
                let mut sum = 0u64;
                while running.load(Relaxed) {
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
            .expect("spawn")
    };
    while !started.load(Relaxed) {
        std::thread::yield_now();
    }
    measuring.store(true, SeqCst);
    let t0 = Instant::now();
    collect();
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

fn main() {
    let (w, n) = args();
    match w.as_str() {
        "gc_cycle" | "gc_pause" | "gc_pause_wall" => {
            // dumpster's collector and drops recurse once per list node: a
            // million nodes need a big stack (the default 8 MiB overflows).
            let n = n.unwrap_or(1_000_000);
            let (cycle, pause, wall) = std::thread::Builder::new()
                .stack_size(4 << 30)
                .spawn(move || gc_cycle(n))
                .expect("spawn")
                .join()
                .expect("gc_cycle");
            match w.as_str() {
                "gc_cycle" => report(cycle.as_secs_f64() * 1e3, "ms"),
                "gc_pause" => report(pause.as_secs_f64() * 1e6, "us"),
                _ => report(wall.as_secs_f64() * 1e6, "us"),
            }
        }
        _ => unknown(&w),
    }
}
