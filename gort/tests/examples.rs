//! Runs the dump examples as separate processes: `examples/dump_on_signal.rs`
//! gets real signals (`kill(2)`) and must dump its goroutines on SIGUSR1 and
//! exit 0 on SIGTERM or SIGINT; `examples/panic_dump.rs` must print the
//! panic and a dump of every goroutine, then fail as the panic would.
//! (`examples/http_hello.rs`'s `/debug/goroutines` is tested with the rest
//! of that example in `http_example.rs`.) Every wait has a deadline; a
//! child still running at the end of a test is killed.

mod build_examples;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one wait may take (generous: the machines are shared).
const LIMIT: Duration = Duration::from_secs(60);

/// The examples under test.
const EXAMPLES: [&str; 2] = ["dump_on_signal", "panic_dump"];

/// An example binary (built once per test run; see `build_examples`).
fn example_binary(name: &str) -> PathBuf {
    build_examples::example_dir(&EXAMPLES).join(name)
}

/// A running example whose stdout and stderr are collected by two reader
/// threads; killed (SIGKILL) and reaped on drop if still running.
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    stream: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    let h = std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            t.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    (text, h)
}

impl Proc {
    fn start(example: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example_binary(example))
            .args(args)
            // A backtrace from std's hook would also name the functions
            // the dump must name; a GOTRACEBACK from the caller's
            // environment would change the dump.
            .env("RUST_BACKTRACE", "0")
            .env_remove("GOTRACEBACK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, r1) = collect(child.stdout.take().unwrap());
        let (err, r2) = collect(child.stderr.take().unwrap());
        Proc {
            child,
            out,
            err,
            readers: vec![r1, r2],
        }
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for (stdout, stderr); panics with both at
    /// the deadline or if the process exits first.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str, &str) -> bool) {
        let t0 = Instant::now();
        loop {
            if pred(&self.stdout(), &self.stderr()) {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the readers take the rest of the output.
                std::thread::sleep(Duration::from_millis(100));
                if pred(&self.stdout(), &self.stderr()) {
                    return;
                }
                panic!(
                    "exited ({st}) before {what}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                t0.elapsed() < LIMIT,
                "no {what} within {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` to the process.
    fn kill(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) has no memory-safety preconditions. (`pid` is
        // our child's and not reused: a child is reaped only by `try_wait`
        // in `wait_for`, which then panics, and in `exit` and drop, which
        // consume or end the `Proc`.)
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the process to exit, then for its output to end; returns
    /// the status, stdout and stderr.
    fn exit(mut self) -> (ExitStatus, String, String) {
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                t0.elapsed() < LIMIT,
                "still running after {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipes close with the process (the examples start no
        // children that could hold them open).
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (st, self.stdout(), self.stderr())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dump number `n` of dump_on_signal's stderr, between its markers.
fn nth_dump(stderr: &str, n: u32) -> Option<&str> {
    let start = format!("=== SIGUSR1: goroutine dump {n} ===\n");
    let end = format!("=== end of goroutine dump {n} ===\n");
    let from = stderr.find(&start)? + start.len();
    let to = from + stderr[from..].find(&end)?;
    Some(&stderr[from..to])
}

/// The block of the goroutine named `name` in `dump` (its header line to
/// the blank line after it), if there is one.
fn block<'a>(dump: &'a str, name: &str) -> Option<&'a str> {
    let head = format!(" \"{name}\" [");
    let at = dump.find(&head)?;
    let start = dump[..at].rfind('\n').map_or(0, |i| i + 1);
    let rest = &dump[start..];
    Some(&rest[..rest.find("\n\n").map_or(rest.len(), |e| e + 1)])
}

/// What dump_on_signal's goroutines must show once they all wait: (name,
/// state, a frame of its own function).
const WORKERS: [(&str, &str, &str); 6] = [
    (
        "signal-dumper",
        "running",
        "dump_on_signal::dump_on_usr1(...)",
    ),
    ("main", "select", "dump_on_signal::main::"),
    ("producer", "select", "dump_on_signal::produce_orders(...)"),
    (
        "processor",
        "chan receive",
        "dump_on_signal::process_orders(...)",
    ),
    (
        "recorder",
        "chan receive",
        "dump_on_signal::record_results(...)",
    ),
    (
        "health-listener",
        "IO wait",
        "dump_on_signal::serve_health_checks(...)",
    ),
];

/// Why `dump` is not the dump of a service whose goroutines all wait, if
/// it is not.
fn check_dump(dump: &str) -> Result<(), String> {
    for (name, state, frame) in WORKERS {
        let b = block(dump, name).ok_or_else(|| format!("no goroutine \"{name}\""))?;
        if !b.contains(&format!(" \"{name}\" [{state}]:\n")) {
            return Err(format!("\"{name}\" is not [{state}]:\n{b}"));
        }
        if !b.contains(frame) {
            return Err(format!("\"{name}\" has no frame {frame}:\n{b}"));
        }
        if name != "main" && !b.contains("created by ") {
            return Err(format!("\"{name}\" has no created-by line:\n{b}"));
        }
    }
    // Runtime frames are trimmed (GOTRACEBACK unset).
    if dump.contains("gort_sched::") || dump.contains("corosensei::") {
        return Err("runtime frames in the dump".into());
    }
    Ok(())
}

/// Starts dump_on_signal and waits for its banner, which it prints once
/// its signal channels are notified; checks the pid in it.
fn start_service(args: &[&str]) -> Proc {
    let mut p = Proc::start("dump_on_signal", args);
    let hint = format!("kill -USR1 {}", p.child.id());
    p.wait_for("banner", |out, _| out.contains(&hint));
    p
}

/// Sends SIGUSR1 until a dump shows every worker waiting where it should
/// (a dump taken while a worker is still on its way to its first wait is
/// correct but not the one to check); returns how many dumps it took.
fn dump_until_all_wait(p: &mut Proc) -> u32 {
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        p.kill(libc::SIGUSR1);
        p.wait_for(&format!("goroutine dump {n}"), |_, err| {
            nth_dump(err, n).is_some()
        });
        let err = p.stderr();
        let dump = nth_dump(&err, n).unwrap();
        match check_dump(dump) {
            Ok(()) => return n,
            Err(why) => assert!(t0.elapsed() < LIMIT, "dump {n}: {why}\nwhole dump:\n{dump}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dump_on_signal_dumps_on_sigusr1_and_exits_0_on_sigterm() {
    let mut p = start_service(&[]);
    let n = dump_until_all_wait(&mut p);
    // Still serving after a dump: another one comes.
    p.kill(libc::SIGUSR1);
    p.wait_for("another dump", |_, err| nth_dump(err, n + 1).is_some());
    p.kill(libc::SIGTERM);
    let (st, out, err) = p.exit();
    assert_eq!(st.code(), Some(0), "{st}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("terminated, shutting down"), "{out}");
    assert!(out.contains("clean exit"), "{out}");
}

#[test]
fn dump_on_signal_exits_0_on_sigint() {
    let p = start_service(&[]);
    p.kill(libc::SIGINT);
    let (st, out, err) = p.exit();
    assert_eq!(st.code(), Some(0), "{st}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("interrupt, shutting down"), "{out}");
    assert!(out.contains("clean exit"), "{out}");
    assert!(!err.contains("goroutine dump"), "{err}");
}

#[test]
fn dump_on_signal_exits_after_the_dumps_asked_for() {
    let mut p = start_service(&["--exit-after-dumps", "2"]);
    for n in 1..=2 {
        p.kill(libc::SIGUSR1);
        p.wait_for(&format!("goroutine dump {n}"), |_, err| {
            nth_dump(err, n).is_some()
        });
    }
    let (st, out, err) = p.exit();
    assert_eq!(st.code(), Some(0), "{st}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("dumps done, shutting down"), "{out}");
    assert!(out.contains("clean exit"), "{out}");
}

#[test]
fn panic_dump_prints_the_panic_and_every_goroutine_then_fails() {
    let (st, out, err) = Proc::start("panic_dump", &[]).exit();
    let all = format!("{st}\nstdout:\n{out}\nstderr:\n{err}");
    // A Rust program whose main panicked exits with 101.
    assert_eq!(st.code(), Some(101), "{all}");
    // The previous (std's) hook ran: the message and where.
    assert!(
        err.contains("order 42 has a negative quantity (-3)"),
        "{all}"
    );
    assert!(err.contains("panicked at "), "{all}");
    // Then the dump: the panicking goroutine at its panic, the main
    // goroutine, and the idle one.
    let v = block(&err, "validator").unwrap_or_else(|| panic!("no validator: {all}"));
    assert!(v.contains(" \"validator\" [running]:\n"), "{v}");
    assert!(v.contains("panic_dump::validate_order(...)"), "{v}");
    assert!(v.contains("panic_dump::dump_hook(...)"), "{v}");
    // `main` is in `join` by then (the validator sleeps 20 ms first); on a
    // machine so loaded that it is not parked yet, it is listed as running
    // or runnable, without frames.
    let m = block(&err, "main").unwrap_or_else(|| panic!("no main goroutine: {all}"));
    assert!(
        !m.contains("[join]:\n") || m.contains("panic_dump::main::"),
        "{m}"
    );
    let q = block(&err, "order-queue").unwrap_or_else(|| panic!("no order-queue: {all}"));
    assert!(q.contains(" \"order-queue\" [chan receive]:\n"), "{q}");
    assert!(q.contains("panic_dump::wait_for_orders(...)"), "{q}");
    // Printed once: `resume_unwind` runs no hook.
    assert_eq!(err.matches(" \"validator\" [").count(), 1, "{all}");
    assert_eq!(err.matches("order 42 has a negative").count(), 1, "{all}");
}
