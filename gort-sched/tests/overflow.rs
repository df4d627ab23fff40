//! A goroutine that overflows its stack is named in a fatal message and the
//! process aborts — for guarded stacks (the SIGSEGV handler) and for slab
//! stacks (the canary check at the next switch).

mod common;
use common::{is_child, run_child};
use gort_sched::*;

fn recurse(n: u64) -> u64 {
    let buf = [n as u8; 512];
    std::hint::black_box(&buf);
    if n == 0 {
        return 0;
    }
    recurse(n - 1) + buf[7] as u64
}

#[test]
fn guarded_overflow_names_the_goroutine() {
    if !is_child() {
        let (ok, err) = run_child("guarded_overflow_names_the_goroutine", &[]);
        assert!(!ok, "the child must abort");
        assert!(
            err.contains("fatal error: stack overflow (hit the guard page) in goroutine")
                && err.contains("\"deep-diver\""),
            "stderr was: {err}"
        );
        return;
    }
    let h = Builder::new()
        .name("deep-diver")
        .stack_size(32 * 1024)
        .spawn(|| recurse(1_000_000));
    let _ = h.join();
    unreachable!("overflow must abort");
}

#[test]
fn slab_overflow_is_caught_by_the_canary() {
    if !is_child() {
        let (ok, err) = run_child("slab_overflow_is_caught_by_the_canary", &[]);
        assert!(!ok, "the child must abort");
        assert!(
            err.contains("canary overwritten") && err.contains("\"slab-diver\""),
            "stderr was: {err}"
        );
        return;
    }
    gort_os::stack::set_guarded_stack_limit(0);
    let h = Builder::new()
        .name("slab-diver")
        .stack_size(32 * 1024)
        .spawn(|| {
            // Touch just below the usable stack (into the canary) without
            // running off the slab: a small, deterministic overflow.
            let (lo, _) = current_stack_bounds();
            // SAFETY: writes one byte into this goroutine's own canary (the
            // lowest bytes of its stack), which is mapped and unused.
            unsafe { (lo as *mut u8).write_volatile(0xAA) };
            gosched(); // the switch finds the canary clobbered
        });
    let _ = h.join();
    unreachable!("canary check must abort");
}

/// Approximates the running stack's lowest address from a local's address
/// and the known stack size (slab stacks are size-aligned within a slab).
fn current_stack_bounds() -> (usize, usize) {
    let x = 0u8;
    let sp = &x as *const u8 as usize;
    let size = 32 * 1024;
    let lo = find_stack_bottom(sp, size);
    (lo, lo + size)
}

fn find_stack_bottom(sp: usize, size: usize) -> usize {
    // The slab base is page aligned but not size aligned, so read the
    // mapping from /proc/self/maps and compute the offset within it.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let range = line.split(' ').next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        if sp >= a && sp < b {
            // Slab stacks are carved from the mapping's start, every `size`
            // bytes (slabs of one size may merge into one mapping).
            return a + (sp - a) / size * size;
        }
    }
    panic!("stack not found in /proc/self/maps");
}
