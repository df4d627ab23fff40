//! Runs `examples/context_worker.rs` (the guide's context examples) as a
//! child process: both workers stop for the right reason, and the fan-out
//! reports its first error.

mod build_examples;

use std::process::Command;

#[test]
fn context_worker_tears_down_and_the_fan_out_stops() {
    let bin = build_examples::example_dir(&["context_worker"]).join("context_worker");
    let out = Command::new(bin).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("worker 2: stopped after"), "{stdout}");
    assert!(stdout.contains("context canceled"), "{stdout}");
    assert!(stdout.contains("worker 1: stopped after"), "{stdout}");
    assert!(stdout.contains("context deadline exceeded"), "{stdout}");
    assert!(
        stdout.contains("fan-out: shard 5 failed; every shard stopped"),
        "{stdout}"
    );
}
