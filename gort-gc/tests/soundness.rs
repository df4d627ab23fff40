//! Regression tests for issue 11, item 9 (gort-gc's part): an invalid
//! `GOGC`/`GOMEMLIMIT` was reported once, as a panic in whichever goroutine
//! allocated the first `Gc`, then ignored; an out-of-range `GOMEMLIMIT`
//! was called "malformed". Now the runtime refuses to start on them, as on
//! an invalid `GOMAXPROCS`, and out of range says so.
//!
//! Each case runs in a child process (the variables are read once per
//! process): this binary re-executes itself with `--exact child_probe`,
//! and the parent checks the child's start marker before anything else (a
//! renamed test would run nothing and pass).

use gort_gc::{read_mem_stats, Gc};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// The child: starts the runtime with a goroutine, then allocates twice,
/// printing what happened at each step.
#[test]
fn child_probe() {
    if std::env::var_os("GORT_GC_SOUNDNESS_CHILD").is_none() {
        return;
    }
    println!("CHILD STARTED");
    match catch_unwind(|| gort_sched::go(|| 7).join().unwrap()) {
        Ok(v) => println!("START OK {v}"),
        Err(p) => println!("START PANIC: {}", panic_message(p)),
    }
    // Nothing was allocated by starting (or failing to start).
    println!("MALLOCS BEFORE GC {}", read_mem_stats().mallocs);
    for i in 0..2 {
        match catch_unwind(AssertUnwindSafe(|| drop(Gc::new(1u8)))) {
            Ok(()) => println!("GC {i} OK"),
            Err(p) => println!("GC {i} PANIC: {}", panic_message(p)),
        }
    }
}

fn run_child(vars: &[(&str, &str)]) -> String {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_probe", "--nocapture", "--test-threads=1"])
        .env("GORT_GC_SOUNDNESS_CHILD", "1")
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT")
        .env_remove("GOMAXPROCS");
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("CHILD STARTED"),
        "the child did not run child_probe: {text}"
    );
    text
}

#[test]
fn invalid_gogc_fails_at_runtime_start() {
    let out = run_child(&[("GOGC", "abc")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOGC=\"abc\""),
        "the runtime started with GOGC=abc: {out}"
    );
    assert!(out.contains("MALLOCS BEFORE GC 0"), "{out}");
    // Never swallowed: every allocation reports it, not only the first.
    assert!(
        out.contains("GC 0 PANIC: gort: invalid GOGC=\"abc\""),
        "{out}"
    );
    assert!(
        out.contains("GC 1 PANIC: gort: invalid GOGC=\"abc\""),
        "{out}"
    );
}

#[test]
fn invalid_gomemlimit_fails_at_runtime_start() {
    let out = run_child(&[("GOMEMLIMIT", "64MB")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOMEMLIMIT=\"64MB\": malformed"),
        "{out}"
    );
    assert!(
        out.contains("GC 1 PANIC: gort: invalid GOMEMLIMIT"),
        "{out}"
    );
}

#[test]
fn out_of_range_gomemlimit_says_out_of_range() {
    for v in ["99999999999999999999999", "8EiB", "9223372036854775808B"] {
        let out = run_child(&[("GOMEMLIMIT", v)]);
        let want = format!("START PANIC: gort: invalid GOMEMLIMIT=\"{v}\": out of range");
        assert!(out.contains(&want), "{v}: {out}");
        assert!(!out.contains("malformed"), "{v} called malformed: {out}");
    }
    let out = run_child(&[("GOGC", "99999999999")]);
    assert!(
        out.contains("START PANIC: gort: invalid GOGC=\"99999999999\": out of range"),
        "{out}"
    );
}

#[test]
fn valid_values_start_and_allocate() {
    for vars in [
        [("GOGC", "50"), ("GOMEMLIMIT", "64MiB")],
        [("GOGC", "off"), ("GOMEMLIMIT", "7EiB")],
    ] {
        let out = run_child(&vars);
        assert!(out.contains("START OK 7"), "{vars:?}: {out}");
        assert!(out.contains("GC 0 OK"), "{vars:?}: {out}");
        assert!(out.contains("GC 1 OK"), "{vars:?}: {out}");
    }
}
