//! `cargo xtask test`: the workspace's tests, every test binary under a time
//! limit.
//!
//! `cargo test` has no timeout, so a test that hangs (a lost wake-up, an
//! assertion in a goroutine nobody joins) would eat CI's whole budget and
//! report nothing. This runs what `cargo test --profile release-test`
//! (release without LTO) runs in the
//! workspace (its default members, the library crates) — every unit,
//! integration and doc-test binary — but gives each binary a time
//! limit. A binary that exceeds it is killed with everything it spawned and
//! reported as a failure that names the tests that had not finished. Every
//! binary runs even after a failure, and the summary names each failure.
//!
//! Each binary runs in a process group of its own (so that a kill reaches
//! what it spawned), which the terminal's Ctrl-C does not reach: SIGINT and
//! SIGTERM to xtask kill the running group before xtask exits.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The suite's Cargo profile: release's optimisation, no LTO (see the
/// workspace's Cargo.toml).
pub(crate) const TEST_PROFILE: &str = "release-test";

/// A test binary cargo built: its package directory name, target name
/// (`lib` for a crate's unit tests) and path.
pub(crate) struct TestBinary {
    pub(crate) package: String,
    pub(crate) target: String,
    pub(crate) exe: PathBuf,
}

/// Builds the test binaries of `packages` (the workspace when empty) with
/// `extra_env`, in `target_dir` (cargo's default when None), and returns
/// them in cargo's order. Compiler output goes to the terminal (stderr).
pub(crate) fn build_test_binaries(
    root: &Path,
    packages: &[&str],
    extra_env: &[(&str, &str)],
    target_dir: Option<&Path>,
) -> Result<Vec<TestBinary>, String> {
    let mut build = Command::new(env!("CARGO"));
    build
        .args([
            "test",
            "--profile",
            TEST_PROFILE,
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // No packages: the workspace's default members (the library crates),
    // as a plain `cargo test` would; the benchmark peers are not built.
    for p in packages {
        build.args(["-p", p]);
    }
    for (k, v) in extra_env {
        build.env(k, v);
    }
    if let Some(dir) = target_dir {
        build.env("CARGO_TARGET_DIR", dir);
    }
    let out = build
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the test binaries failed ({})",
            out.status
        ));
    }
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(key)? + key.len();
        let rest = &line[at..];
        Some(rest[..rest.find('"')?].to_string())
    };
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Only artifacts built as test harnesses (the *profile* says so;
        // examples and plain binaries are executables too, but `cargo test`
        // does not run them).
        let profile_test = line
            .find("\"profile\":{")
            .and_then(|at| line[at..].find('}').map(|end| &line[at..at + end]))
            .is_some_and(|p| p.contains("\"test\":true"));
        if !profile_test {
            continue;
        }
        let (Some(exe), Some(manifest), Some(kind), Some(name)) = (
            field(line, "\"executable\":\""),
            field(line, "\"manifest_path\":\""),
            field(line, "\"target\":{\"kind\":[\""),
            field(line, "\"name\":\""),
        ) else {
            continue;
        };
        let package = Path::new(&manifest)
            .parent()
            .and_then(|d| d.file_name())
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = if kind == "lib" {
            "lib".to_string()
        } else {
            name
        };
        bins.push(TestBinary {
            package,
            target,
            exe: PathBuf::from(exe),
        });
    }
    Ok(bins)
}

struct Options {
    limit: Duration,
    repeat: usize,
    only: Vec<String>,
    doc: bool,
    harness_args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        limit: Duration::from_secs(600),
        repeat: 1,
        only: Vec::new(),
        doc: true,
        harness_args: Vec::new(),
    };
    if let Ok(v) = std::env::var("GORT_TEST_LIMIT") {
        o.limit = parse_secs(&v).map_err(|e| format!("GORT_TEST_LIMIT: {e}"))?;
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--limit" => {
                let v = it.next().ok_or("--limit needs a number of seconds")?;
                o.limit = parse_secs(v).map_err(|e| format!("--limit: {e}"))?;
            }
            "--repeat" => {
                let v = it.next().ok_or("--repeat needs a count")?;
                o.repeat = match v.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--repeat: {v:?} is not a count >= 1")),
                };
            }
            "--no-doc" => o.doc = false,
            "--" => {
                o.harness_args = it.by_ref().cloned().collect();
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.only.push(s.to_string()),
        }
    }
    if !o.only.is_empty() {
        o.doc = false;
    }
    Ok(o)
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(format!("{v:?} is not a whole number of seconds > 0")),
    }
}

/// How one binary ended.
enum Outcome {
    Passed,
    Failed(String),
    /// Killed at the limit; `finished` holds the tests that had reported.
    TimedOut {
        finished: BTreeSet<String>,
    },
}

pub(crate) fn run(root: &Path, args: &[String]) -> ExitCode {
    forward_interrupts();
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask test: {e}");
            eprintln!(
                "usage: cargo xtask test [--limit SECS] [--repeat N] [--no-doc] \
                 [PACKAGE[:TARGET]...] [-- HARNESS-ARGS...]"
            );
            return ExitCode::from(2);
        }
    };
    let packages: Vec<&str> = {
        let mut p: Vec<&str> = opts
            .only
            .iter()
            .map(|s| s.split_once(':').map_or(s.as_str(), |(p, _)| p))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let bins = match build_test_binaries(root, &packages, &[], None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bins: Vec<&TestBinary> = bins
        .iter()
        .filter(|b| {
            opts.only.is_empty()
                || opts.only.iter().any(|o| match o.split_once(':') {
                    Some((p, t)) => b.package == p && b.target == t,
                    None => b.package == *o,
                })
        })
        .collect();
    if bins.is_empty() {
        eprintln!("xtask test: no test binary matches {:?}", opts.only);
        return ExitCode::FAILURE;
    }
    let mut failures = Vec::new();
    for round in 1..=opts.repeat {
        if opts.repeat > 1 {
            eprintln!("xtask test: round {round} of {}", opts.repeat);
        }
        let started = Instant::now();
        for b in &bins {
            let name = format!("{}:{}", b.package, b.target);
            let mut cmd = Command::new(&b.exe);
            cmd.args(&opts.harness_args)
                .current_dir(root.join(&b.package));
            let listed = list_tests(&b.exe, &opts.harness_args, &root.join(&b.package));
            eprintln!("     Running {name} ({})", b.exe.display());
            match run_limited(cmd, opts.limit, true) {
                Ok(Outcome::Passed) => {}
                Ok(Outcome::Failed(why)) => failures.push(format!("round {round}: {name}: {why}")),
                Ok(Outcome::TimedOut { finished }) => {
                    let unfinished: Vec<&str> = listed
                        .iter()
                        .filter(|t| !finished.contains(*t))
                        .map(String::as_str)
                        .collect();
                    failures.push(format!(
                        "round {round}: {name}: exceeded the {} s limit and was killed; \
                         not finished: {}",
                        opts.limit.as_secs(),
                        if unfinished.is_empty() {
                            "(unknown)".to_string()
                        } else {
                            unfinished.join(", ")
                        }
                    ));
                }
                Err(e) => failures.push(format!("round {round}: {name}: cannot run: {e}")),
            }
        }
        if opts.doc {
            eprintln!("     Running the doc tests");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["test", "--profile", TEST_PROFILE, "--doc"])
                .current_dir(root);
            match run_limited(cmd, opts.limit, false) {
                Ok(Outcome::Passed) => {}
                Ok(Outcome::Failed(why)) => {
                    failures.push(format!("round {round}: doc tests: {why}"))
                }
                Ok(Outcome::TimedOut { .. }) => failures.push(format!(
                    "round {round}: doc tests: exceeded the {} s limit and were killed",
                    opts.limit.as_secs()
                )),
                Err(e) => failures.push(format!("round {round}: doc tests: cannot run: {e}")),
            }
        }
        eprintln!(
            "xtask test: round {round}: {} test binaries{} in {:.0} s, {} failure(s) so far",
            bins.len(),
            if opts.doc { " and the doc tests" } else { "" },
            started.elapsed().as_secs_f64(),
            failures.len()
        );
    }
    if failures.is_empty() {
        eprintln!("xtask test: all passed");
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask test: FAILED:");
        for f in &failures {
            eprintln!("  {f}");
        }
        ExitCode::FAILURE
    }
}

/// The names `exe` would run with `args` (libtest's `--list`).
fn list_tests(exe: &Path, args: &[String], dir: &Path) -> Vec<String> {
    let Ok(out) = Command::new(exe)
        .args(args)
        .args(["--list", "--format", "terse"])
        .current_dir(dir)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` in its own process group, echoing its output, and kills the
/// whole group (child processes of tests included) if it outlives `limit`.
/// With `track`, libtest's "test NAME ... RESULT" lines are recorded so that
/// a timeout can name the tests that never finished.
fn run_limited(mut cmd: Command, limit: Duration, track: bool) -> std::io::Result<Outcome> {
    cmd.process_group(0).stdout(Stdio::piped());
    let mut child: Child = cmd.spawn()?;
    let finished = Arc::new(Mutex::new(BTreeSet::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("{line}");
                if track {
                    if let Some((name, result)) = line
                        .strip_prefix("test ")
                        .and_then(|r| r.split_once(" ... "))
                    {
                        if !result.is_empty() {
                            finished.lock().unwrap().insert(name.to_string());
                        }
                    }
                }
            }
        })
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            break None;
        }
        let sig = INTERRUPTED.load(Ordering::Relaxed);
        if sig != 0 {
            kill_group(child.id());
            let _ = child.wait();
            eprintln!("xtask test: interrupted (signal {sig}); killed the running tests");
            std::process::exit(128 + sig);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever happened, nothing of the group may outlive it: a process a
    // test started (a server, a child) would keep the output pipe open and
    // the reader below waiting. (The group id cannot have been reused while
    // any member lives, and its leader is not reaped yet.)
    kill_group(child.id());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        join_reader(reader);
        let finished = std::mem::take(&mut *finished.lock().unwrap());
        return Ok(Outcome::TimedOut { finished });
    };
    join_reader(reader);
    Ok(if status.success() {
        Outcome::Passed
    } else {
        Outcome::Failed(status.to_string())
    })
}

/// Waits for the output reader, but not forever: a process that left the
/// group could still hold the pipe.
fn join_reader(reader: std::thread::JoinHandle<()>) {
    let t0 = Instant::now();
    while !reader.is_finished() {
        if t0.elapsed() > Duration::from_secs(10) {
            eprintln!("xtask test: output pipe still open 10 s after the test ended; not waiting");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = reader.join();
}

/// The signal (SIGINT or SIGTERM) that asked xtask to stop, 0 if none.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Records SIGINT/SIGTERM in [`INTERRUPTED`] instead of dying at once, so
/// that the wait loop of [`run_limited`] kills the test's process group
/// first.
fn forward_interrupts() {
    extern "C" {
        fn signal(sig: i32, handler: usize) -> usize;
    }
    extern "C" fn on_signal(sig: i32) {
        // Async-signal-safe: one atomic store.
        INTERRUPTED.store(sig, Ordering::Relaxed);
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    for sig in [SIGINT, SIGTERM] {
        // SAFETY: signal(2) with a handler that only stores to an atomic.
        unsafe { signal(sig, on_signal as extern "C" fn(i32) as usize) };
    }
}

/// SIGKILL to the process group `pgid` (a child made leader of its own group
/// by `process_group(0)`).
fn kill_group(pgid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) takes no pointers; a negative pid names exactly
        // the group, and pgid > 1 rules out "every process" (-1).
        unsafe { kill(-pgid, SIGKILL) };
    }
}
