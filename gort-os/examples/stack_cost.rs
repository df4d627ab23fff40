//! Measures what a goroutine stack costs: a fresh stack (guard installed
//! inside a slab, or a guard mapping of its own), a pooled one, and a
//! context-switch round trip, with more live stacks than the guarded-mapping
//! budget (16k on default sysctls). `cargo run --release -p gort-os --example
//! stack_cost`; figures are per operation, medians of 5 rounds.

use gort_os::context::{Context, Label, Resumed, Suspender};
use gort_os::stack::{self, Stack, DEFAULT_STACK_SIZE};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// ns per fresh stack, making `n` (never freed within the round).
fn fresh(n: usize, size: usize) -> (f64, Vec<Stack>) {
    let t = Instant::now();
    let v: Vec<Stack> = (0..n).map(|_| Stack::new(size).unwrap()).collect();
    (t.elapsed().as_nanos() as f64 / n as f64, v)
}

fn switch_round_trip(stack: Stack, rounds: u64) -> f64 {
    let body = move |s: Suspender| loop {
        // SAFETY: on this context's own stack while it runs.
        unsafe { s.suspend() };
    };
    // SAFETY: the body suspends only through its own Suspender.
    let mut c = unsafe { Context::new(stack, Label::default(), body) };
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(c.resume(), Resumed::Suspended);
    }
    t.elapsed().as_nanos() as f64 / rounds as f64
}

fn main() {
    let mode = if stack::guard_install_available() {
        "guard installed inside slabs (MADV_GUARD_INSTALL)"
    } else {
        "guard mappings (no MADV_GUARD_INSTALL)"
    };
    println!("mode: {mode}");
    // Past the guarded-mapping budget of the old design where guards go
    // inside slabs; within the budget where each is a mapping.
    let live = if stack::guard_install_available() {
        20_000
    } else {
        10_000
    };
    let mut keep = Vec::new();
    let mut per = Vec::new();
    for i in 0..5 {
        // A size per round, so every stack is fresh (none pooled yet).
        let (ns, v) = fresh(live / 5, DEFAULT_STACK_SIZE + (i + 1) * 4096);
        per.push(ns);
        keep.extend(v);
    }
    println!(
        "fresh stack: {:.0} ns ({} live stacks)",
        median(per),
        keep.len()
    );
    // Pooled: the thread's cache hands the same warm stack back.
    let mut per = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..100_000 {
            drop(Stack::new(DEFAULT_STACK_SIZE).unwrap());
        }
        per.push(t.elapsed().as_nanos() as f64 / 100_000.0);
    }
    println!("pooled stack: {:.1} ns", median(per));
    let per: Vec<f64> = (0..5)
        .map(|_| switch_round_trip(Stack::new(DEFAULT_STACK_SIZE).unwrap(), 1_000_000))
        .collect();
    println!("switch round trip: {:.1} ns", median(per));
    println!("{:?}", stack::stack_stats());
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    println!("mappings: {maps}");
}
