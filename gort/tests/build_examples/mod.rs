//! Building the examples a test runs as child processes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The directory of the example binaries next to this test's
/// (target/<profile>/examples), after building `names` once per test run
/// into this test's target directory with this test's profile:
/// `cargo test --test X` does not build examples, and a stale binary would
/// test old code.
pub(crate) fn example_dir(names: &[&str]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        // The profile this test was built with (its directory's name; the
        // dev profile's directory is `debug`).
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(p) => p.to_string(),
        };
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "gort"]);
        for e in names {
            cmd.args(["--example", e]);
        }
        cmd.arg("--target-dir").arg(profile_dir.parent().unwrap());
        cmd.args(["--profile", &profile]);
        assert!(
            cmd.status().unwrap().success(),
            "building the examples failed"
        );
        profile_dir.join("examples")
    })
    .clone()
}
