//! Runs the LockOSThread examples and the async bridge's (`block_on`) as
//! separate processes and checks what they print (each also asserts its own invariants and fails with a
//! non-zero exit if one breaks). Every run has a deadline.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 5] = [
    "thread_affine",
    "thread_state",
    "main_thread",
    "async_tokio",
    "async_agnostic",
];

/// The example binaries, built once per test run into this test's target
/// directory (`cargo test` does not build examples, and a stale binary
/// would test old code).
fn example_binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        // The profile this test was built with (its directory's name; the
        // dev profile's directory is `debug`).
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(p) => p.to_string(),
        };
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "gort-examples", "--examples"]);
        cmd.arg("--target-dir").arg(profile_dir.parent().unwrap());
        cmd.args(["--profile", &profile]);
        assert!(
            cmd.status().unwrap().success(),
            "building the examples failed"
        );
        profile_dir.join("examples")
    });
    dir.join(name)
}

/// Runs an example to completion (at most 60 s); returns its stdout.
fn run(name: &str) -> String {
    let mut child = Command::new(example_binary(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn thread_affine_calls_c_from_one_thread_that_nobody_else_uses() {
    let out = run(EXAMPLES[0]);
    assert!(out.contains("worker: library bound to OS thread"), "{out}");
    assert!(
        out.contains("goroutines seen on the worker's thread: 0"),
        "{out}"
    );
    assert!(out.contains("exited with it: true"), "{out}");
    // One thread id in every "call N on OS thread T" line.
    let tids: std::collections::BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.split(" on OS thread ").nth(1))
        .filter(|l| l.starts_with(char::is_numeric))
        .collect();
    assert_eq!(tids.len(), 1, "{out}");
}

#[test]
fn thread_state_is_set_up_used_and_torn_down() {
    let out = run(EXAMPLES[1]);
    assert!(out.contains("worker: set up on thread"), "{out}");
    assert_eq!(out.matches("worker: job ").count(), 5, "{out}");
    assert!(out.contains("state torn down"), "{out}");
    assert!(
        out.contains("other goroutines saw no worker state: true"),
        "{out}"
    );
}

#[test]
fn main_goroutine_stays_on_the_main_thread() {
    let out = run(EXAMPLES[2]);
    assert!(out.contains("main thread: true"), "{out}");
    assert!(
        out.contains("12 events handled on the main thread"),
        "{out}"
    );
}

#[test]
fn goroutines_call_tokio_through_spawn_and_block_on() {
    let out = run(EXAMPLES[3]);
    assert!(
        out.contains("without a tokio runtime: there is no reactor running"),
        "{out}"
    );
    assert!(out.contains("tokio echo server on 127.0.0.1:"), "{out}");
    for i in 0..8 {
        assert!(
            out.contains(&format!("echoed: hello from goroutine {i}\n")),
            "{out}"
        );
    }
    assert!(out.contains("8 goroutines got their echo"), "{out}");
}

#[test]
fn runtime_agnostic_futures_run_directly() {
    let out = run(EXAMPLES[4]);
    assert!(out.contains("sum over 10 goroutines: 890"), "{out}");
    assert!(
        out.contains("goroutine received: sent from an OS thread"),
        "{out}"
    );
    assert!(out.contains("main thread: 3^2 + 4^2 = 25"), "{out}");
}
