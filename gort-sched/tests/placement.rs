//! Where fresh goroutines start (`place_fresh`): in a binary of its own, so
//! that no other test competes for the two CPUs it measures on.

mod common;

use common::{is_child, run_child, Sema};
use gort_sched::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A started goroutine never leaves its M, so where a fresh one starts
/// decides the balance for good: a burst of spawns spreads over the Ms
/// that hold a P, whichever of them happens to be awake. Here 16
/// goroutines, spawned by one goroutine, each park until all have started;
/// before the rule the spawner's M started 12 to 16 of them in every round
/// (its peer was still waking up while it ran them one after another).
/// A round can still come out uneven when the OS leaves the other M
/// without a CPU for a while (its gifts are then taken back): three of
/// five rounds must split at worst 11/5.
#[test]
fn spawn_bursts_spread_over_the_ms() {
    if !is_child() {
        let (ok, err) = run_child("spawn_bursts_spread_over_the_ms", &[("GOMAXPROCS", "2")]);
        assert!(ok, "{err}");
        return;
    }
    assert_eq!(gomaxprocs(0), 2);
    const N: usize = 16;
    let mut splits = Vec::new();
    for _round in 0..5 {
        let ms = go(|| {
            let gate = Arc::new((Sema::new(), AtomicUsize::new(0)));
            let hs: Vec<_> = (0..N)
                .map(|_| {
                    let gate = gate.clone();
                    go(move || {
                        let m = m_id().unwrap();
                        if gate.1.fetch_add(1, Ordering::SeqCst) + 1 == N {
                            (0..N - 1).for_each(|_| gate.0.release());
                        } else {
                            gate.0.acquire();
                        }
                        m
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        let mut per_m = std::collections::BTreeMap::new();
        for m in ms {
            *per_m.entry(m).or_insert(0usize) += 1;
        }
        splits.push(per_m.values().copied().collect::<Vec<_>>());
    }
    let even = splits
        .iter()
        .filter(|c| c.len() == 2 && c.iter().all(|&c| c >= N / 2 - 3))
        .count();
    assert!(
        even >= 3,
        "{N} goroutines per round started {splits:?} on the two Ms"
    );
}
