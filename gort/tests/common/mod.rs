//! Helpers shared by the profile tests: the Go toolchain, when present.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The Go toolchain: `$GO`, else `go` on `PATH`; `None` (the caller
/// prints why and skips) when there is none, as in `.ci/run`.
pub(crate) fn go_tool() -> Option<PathBuf> {
    if let Some(go) = std::env::var_os("GO").map(PathBuf::from) {
        return go.is_file().then_some(go);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("go"))
        .find(|go| go.is_file())
}

/// Runs `go tool pprof <args> <source>` (a file or a URL), asserting it
/// succeeds; returns its stdout and echoes both outputs for the log.
pub(crate) fn go_pprof(go: &Path, args: &[&str], source: &OsStr) -> String {
    // pprof keeps a copy of each profile it fetches: in a directory of
    // this call's, removed after.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let keep = std::env::temp_dir().join(format!(
        "gort-pprof-tmp-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let out = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(source)
        .env("PPROF_TMPDIR", &keep)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&keep);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {stderr}\n{stdout}"
    );
    eprintln!("go tool pprof {args:?} {source:?}:\n{stdout}{stderr}");
    stdout
}
