//! A million goroutines: spawned and joined, and all parked at once on the
//! default `vm.max_map_count`, every one of them on a guarded stack (guards
//! installed inside slabs with MADV_GUARD_INSTALL; guard mappings alone run
//! out near 32k).

mod common;
use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const N: usize = 1_000_000;

#[test]
fn a_million_goroutines_spawned_and_joined() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let sum = run(move || {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let d = d.clone();
                go(move || {
                    d.fetch_add(1, Ordering::Relaxed);
                    i as u64
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(done.load(Ordering::Relaxed), N);
    assert_eq!(sum, (N as u64 - 1) * N as u64 / 2);
}

#[test]
fn a_million_goroutines_parked_at_once() {
    if !is_child() {
        // Own process: RSS and mappings of other tests stay out of it.
        let (ok, err) = run_child("a_million_goroutines_parked_at_once", &[]);
        assert!(ok, "{err}");
        return;
    }
    if !gort_os::stack::guard_install_available() {
        // A kernel older than Linux 6.13 guards only ~16k stacks on default
        // sysctls.
        // SAFETY: these goroutines make no deep calls; none overflows.
        unsafe { gort_os::stack::allow_unguarded_stacks() };
    }
    let parked = Arc::new(Sema::new());
    let release = Arc::new(Sema::new());
    let woke = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let (p, r, w) = (parked.clone(), release.clone(), woke.clone());
            go(move || {
                p.release();
                r.acquire();
                w.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for _ in 0..N {
        parked.acquire();
    }
    // Every goroutine has run and is parked (or about to park) in acquire.
    while release.waiters() < N {
        std::thread::yield_now();
    }
    assert_eq!(num_goroutine(), N);
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0);
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65530);
    assert!(
        maps < max,
        "{maps} mappings for {N} goroutines exceeds vm.max_map_count {max}"
    );
    let st = gort_os::stack::stack_stats();
    if gort_os::stack::guard_install_available() {
        assert_eq!(st.unguarded, 0, "every stack guarded");
        assert!(st.guarded_slab >= N, "{st:?}");
    }
    for _ in 0..N {
        release.release();
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(woke.load(Ordering::Relaxed), N);
}
