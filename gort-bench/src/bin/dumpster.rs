//! The `dumpster` crate's side of the GC workloads of `cargo xtask bench`
//! (a thread-safe, cycle-collecting `Gc` without root registration; see
//! `gort_bench::gc` for the workloads). dumpster has no finalizers or
//! cleanups: those workloads have no counterpart here.

use dumpster::sync::{collect, Gc};
use dumpster::Trace;
use gort_bench::pause::{PauseProbe, Pauses};
use gort_bench::{args, report, unknown};

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

/// One `collect()` over `n` live objects with a mutator thread running,
/// measured by the same probe as gort's (`gort_bench::pause`).
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
    // No warm-up collect: the measured one examines the million candidates
    // the construction left (after a warm-up it would find none, as
    // dumpster only looks at handles dropped since its last collection).
    let probe = PauseProbe::new();
    let m = {
        let (probe, h) = (probe.clone(), head.clone());
        // dumpster may start a collection from any drop: a big stack here
        // too.
        std::thread::Builder::new()
            .stack_size(4 << 30)
            .spawn(move || {
                probe.mutator(|sum| {
                    // The same everyday work as gort's mutator.
                    let x = Gc::new(Obj {
                        v: sum,
                        p: Some(Gc::new(Obj { v: 1, p: None })),
                    });
                    let y = h.clone();
                    let sum = sum.wrapping_add(x.v + y.v + x.p.as_ref().map_or(0, |p| p.v));
                    drop((x, y));
                    sum
                })
            })
            .expect("spawn")
    };
    let r = probe.measure(collect);
    m.join().expect("mutator");
    drop(head);
    r
}

fn main() {
    let (w, n) = args();
    match w.as_str() {
        "gc_cycle" | "gc_pause" | "gc_pause_wall" => {
            // dumpster's collector and drops recurse once per list node: a
            // million nodes need a big stack (the default 8 MiB overflows).
            let n = n.unwrap_or(1_000_000);
            let r = std::thread::Builder::new()
                .stack_size(4 << 30)
                .spawn(move || gc_cycle(n))
                .expect("spawn")
                .join()
                .expect("gc_cycle");
            match w.as_str() {
                "gc_cycle" => report(r.cycle.as_secs_f64() * 1e3, "ms"),
                "gc_pause" => report(r.pause.as_secs_f64() * 1e6, "us"),
                _ => report(r.wall.as_secs_f64() * 1e6, "us"),
            }
        }
        _ => unknown(&w),
    }
}
