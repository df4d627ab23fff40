//! Runs `examples/leak_check.rs` as a child process both ways: its
//! workers torn down, the check passes (exit 0); with `leak`, a forgotten
//! goroutine is reported on stderr (`found unexpected goroutines`, its
//! state and function) and the process fails.

mod build_examples;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long a run may take (generous: the machines are shared).
const LIMIT: Duration = Duration::from_secs(60);

/// The example's binary (built once per test run; see `build_examples`).
fn example_binary() -> PathBuf {
    build_examples::example_dir(&["leak_check"]).join("leak_check")
}

/// Runs the example with `args`; panics if it takes longer than `LIMIT`
/// (the child is killed then).
fn run(args: &[&str]) -> Output {
    let child = Command::new(example_binary())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (its waiter
            // is still blocked in wait).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("leak_check {args:?} did not finish in {LIMIT:?}");
        }
    }
}

#[test]
fn the_example_passes_when_its_workers_are_torn_down() {
    let out = run(&[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("no goroutines leaked"), "{stdout}");
    assert!(!stderr.contains("found unexpected goroutines"), "{stderr}");
}

#[test]
fn the_example_reports_a_leaked_goroutine() {
    let out = run(&["leak"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("found unexpected goroutines:\n"),
        "{stderr}"
    );
    assert!(stderr.contains(" [chan receive]:\n"), "{stderr}");
    assert!(
        stderr.contains("leak_check::forgotten_worker(...)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("created by gort/examples/leak_check.rs:"),
        "{stderr}"
    );
    // Only the forgotten one: the pool's workers were all stopped.
    let heads = stderr.lines().filter(|l| l.starts_with("goroutine "));
    assert_eq!(heads.count(), 1, "{stderr}");
}
