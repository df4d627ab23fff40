//! A goroutine that overflows its stack is named in a fatal message and the
//! process aborts: at the faulting access for every guarded stack (guards
//! installed inside slabs, or guard mappings on kernels without
//! `MADV_GUARD_INSTALL`), at any goroutine count; at the next switch for the
//! unguarded stacks of the `unsafe` opt-in (the canary). Each case runs in a
//! child process; the parent checks the child got as far as the overflow.

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

const GUARD_MSG: &str = "fatal error: stack overflow (hit the guard page) in goroutine";

/// Runs `test` in a child with `env`; asserts it aborted after printing
/// `marker` (so it ran the code meant) and that stderr has every `want`.
fn expect_abort(test: &str, env: &[(&str, &str)], want: &[&str]) {
    let (ok, err) = run_child(test, env);
    assert!(!ok, "the child must abort; stderr: {err}");
    assert!(
        err.contains("child: diving"),
        "the child did not run {test}: {err}"
    );
    for w in want {
        assert!(err.contains(w), "missing {w:?} in stderr: {err}");
    }
}

fn dive(name: &str, parked: usize) -> ! {
    // Goroutines parked meanwhile, each holding a stack (past the mapping
    // budget of 16k guard mappings when `parked` is large).
    let release = std::sync::Arc::new(common::Sema::new());
    let hs: Vec<_> = (0..parked)
        .map(|_| {
            let r = release.clone();
            go(move || r.acquire())
        })
        .collect();
    while release.waiters() < parked {
        std::thread::yield_now();
    }
    eprintln!("child: diving with {parked} goroutines parked");
    let h = Builder::new()
        .name(name)
        .stack_size(32 * 1024)
        .spawn(|| recurse(1_000_000));
    let _ = h.join();
    drop(hs);
    unreachable!("overflow must abort");
}

#[test]
fn guarded_overflow_names_the_goroutine() {
    if !is_child() {
        expect_abort(
            "guarded_overflow_names_the_goroutine",
            &[],
            &[GUARD_MSG, "\"deep-diver\""],
        );
        return;
    }
    dive("deep-diver", 0);
}

/// Issue 11.3: past vm.max_map_count/4 live goroutines (and with the
/// guarded-mapping budget set to zero, as the review did) a running
/// goroutine's overflow is still stopped at its guard page, not detected
/// later by a canary after it trampled a neighbour.
#[test]
fn overflow_past_the_mapping_budget_hits_a_guard() {
    if !is_child() {
        let want: &[&str] = if gort_os::stack::guard_install_available() {
            &[GUARD_MSG, "\"slab-diver\""]
        } else {
            // Older kernel: no unguarded stack without the unsafe opt-in.
            &["vm.max_map_count"]
        };
        expect_abort("overflow_past_the_mapping_budget_hits_a_guard", &[], want);
        return;
    }
    gort_os::stack::set_guarded_stack_limit(0);
    dive("slab-diver", 20_000);
}

/// The fallback for kernels without MADV_GUARD_INSTALL: a guard mapping per
/// stack, and an overflow hits it.
#[test]
fn guard_mapping_overflow_names_the_goroutine() {
    if !is_child() {
        expect_abort(
            "guard_mapping_overflow_names_the_goroutine",
            &[("GORT_STACK_GUARD", "mappings")],
            &[GUARD_MSG, "\"map-diver\""],
        );
        return;
    }
    assert!(!gort_os::stack::guard_install_available());
    dive("map-diver", 10);
}

/// The fallback's budget: a stack past it is a fatal error naming the
/// sysctl (never an unguarded stack without the opt-in).
#[test]
fn guard_mapping_budget_exhausted_is_a_clear_error() {
    if !is_child() {
        let (ok, err) = run_child(
            "guard_mapping_budget_exhausted_is_a_clear_error",
            &[("GORT_STACK_GUARD", "mappings")],
        );
        assert!(!ok, "the child must fail; stderr: {err}");
        assert!(err.contains("child: spawning"), "child did not run: {err}");
        assert!(
            err.contains("cannot allocate")
                && err.contains("vm.max_map_count")
                && err.contains("allow_unguarded_stacks"),
            "stderr was: {err}"
        );
        return;
    }
    gort_os::stack::set_guarded_stack_limit(gort_os::stack::stack_stats().guarded_mapped + 20);
    eprintln!("child: spawning");
    let release = std::sync::Arc::new(common::Sema::new());
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let r = release.clone();
            go(move || r.acquire())
        })
        .collect();
    while release.waiters() < 100 {
        std::thread::yield_now();
    }
    drop(hs);
    unreachable!("the 21st stack must fail");
}

#[test]
fn slab_overflow_is_caught_by_the_canary() {
    if !is_child() {
        let (ok, err) = run_child(
            "slab_overflow_is_caught_by_the_canary",
            &[("GORT_STACK_GUARD", "mappings")],
        );
        assert!(!ok, "the child must abort");
        assert!(
            err.contains("canary overwritten") && err.contains("\"slab-diver\""),
            "stderr was: {err}"
        );
        return;
    }
    gort_os::stack::set_guarded_stack_limit(0);
    // SAFETY: the one goroutine that overflows here writes only its own
    // canary, deliberately, and the process aborts at its next switch.
    unsafe { gort_os::stack::allow_unguarded_stacks() };
    let h = Builder::new()
        .name("slab-diver")
        .stack_size(32 * 1024)
        .spawn(|| {
            assert_eq!(gort_os::stack::stack_stats().guarded_slab, 0);
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
