//! GOGC and GOMEMLIMIT from the environment, in child processes (the
//! values are read once, at the first allocation).

use gort_gc::{read_mem_stats, Gc};
use std::process::Command;

/// The child: allocates once, then prints what the pacer uses.
#[test]
fn child_report() {
    if std::env::var_os("GORT_GC_ENV_CHILD").is_none() {
        return;
    }
    drop(Gc::new(1u8));
    let s = read_mem_stats();
    println!("SETTINGS {} {}", s.gc_percent, s.memory_limit);
}

fn run_child(vars: &[(&str, &str)]) -> (bool, String) {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_report", "--nocapture", "--test-threads=1"])
        .env("GORT_GC_ENV_CHILD", "1")
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT");
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn env_values_used() {
    let (ok, out) = run_child(&[("GOGC", "50"), ("GOMEMLIMIT", "64MiB")]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("SETTINGS 50 {}", 64 << 20)), "{out}");
    let (ok, out) = run_child(&[("GOGC", "off"), ("GOMEMLIMIT", "off")]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("SETTINGS -1 {}", i64::MAX)), "{out}");
    let (ok, out) = run_child(&[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("SETTINGS 100 {}", i64::MAX)), "{out}");
}

#[test]
fn invalid_env_values_reported() {
    let (ok, out) = run_child(&[("GOMEMLIMIT", "64MB")]);
    assert!(!ok);
    assert!(out.contains("invalid GOMEMLIMIT=\"64MB\""), "{out}");
    let (ok, out) = run_child(&[("GOGC", "lots")]);
    assert!(!ok);
    assert!(out.contains("invalid GOGC=\"lots\""), "{out}");
}

/// GORT_GCTRACE=1 prints one line per collection (issue 13: untested
/// before); unset, nothing.
#[test]
fn gctrace_prints_each_cycle() {
    let (ok, out) = run_child(&[("GORT_GCTRACE", "1")]);
    assert!(ok, "{out}");
    assert!(out.contains("SETTINGS"), "the child did not run: {out}");
    assert!(
        !out.contains("gort-gc: cycle"),
        "no collection ran yet: {out}"
    );
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_collects",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GORT_GC_ENV_CHILD", "1")
    .env_remove("GOGC")
    .env_remove("GOMEMLIMIT");
    let run = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
    };
    let quiet = run(&mut c);
    assert!(
        quiet.contains("COLLECTED"),
        "the child did not run: {quiet}"
    );
    assert!(!quiet.contains("gort-gc: cycle"), "{quiet}");
    let traced = run(c.env("GORT_GCTRACE", "1"));
    assert!(traced.contains("COLLECTED"), "{traced}");
    assert!(
        traced.matches("gort-gc: cycle").count() >= 2,
        "one line per gc(): {traced}"
    );
}

/// The child of `gctrace_prints_each_cycle`: two forced collections.
#[test]
fn child_collects() {
    if std::env::var_os("GORT_GC_ENV_CHILD").is_none() {
        return;
    }
    drop(Gc::new(1u8));
    gort_gc::gc();
    gort_gc::gc();
    println!("COLLECTED");
}
