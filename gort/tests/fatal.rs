//! Fatal reports end to end, each case in a child process of this binary:
//! SIGQUIT prints every goroutine and exits 2; `GOTRACEBACK` decides what a
//! deadlock report and a stack overflow print (`none`, `single`, `all`,
//! `system`, `crash`); an unusable `GOTRACEBACK` is reported. Every child
//! has a time limit.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const DEADLOCK: &str = "fatal error: all goroutines are asleep - deadlock!";

/// How a case must end.
enum End {
    /// Exit status 2.
    Status2,
    /// Killed by SIGABRT (`GOTRACEBACK=crash`).
    Abort,
    /// Any failure.
    Fails,
    /// This exit status.
    Code(i32),
}

/// (case, GOTRACEBACK, how it ends, texts stderr must contain, texts it
/// must not).
type Case = (
    &'static str,
    &'static str,
    End,
    &'static [&'static str],
    &'static [&'static str],
);

const CASES: &[Case] = &[
    (
        "sigquit",
        "",
        End::Status2,
        &[
            "SIGQUIT: quit\n",
            "[chan receive]",
            "fatal::parked_until_quit",
            "created by ",
            "[sleep]",
        ],
        &["gort_sched::"],
    ),
    (
        "deadlock",
        "none",
        End::Status2,
        &[DEADLOCK],
        &["goroutine "],
    ),
    (
        "deadlock",
        "single",
        End::Status2,
        &[DEADLOCK, "[chan receive]", "fatal::deadlocked_receiver"],
        &["gort_sched::", "gort_os::"],
    ),
    (
        "deadlock",
        "all",
        End::Status2,
        &[DEADLOCK, "[chan receive]", "fatal::deadlocked_receiver"],
        &["gort_sched::"],
    ),
    (
        "deadlock",
        "system",
        End::Status2,
        &[DEADLOCK, "fatal::deadlocked_receiver", "gort_sched::"],
        &[],
    ),
    (
        "deadlock",
        "crash",
        End::Abort,
        &[DEADLOCK, "fatal::deadlocked_receiver"],
        &[],
    ),
    (
        "deadlock",
        "everything",
        End::Fails,
        &["GOTRACEBACK"],
        &[DEADLOCK],
    ),
    (
        "overflow",
        "none",
        End::Status2,
        &["stack overflow"],
        &["goroutine 1 ", "[running]"],
    ),
    (
        "overflow",
        "single",
        End::Status2,
        &["stack overflow", "[running]:", "fatal::recurse_forever"],
        &["[chan receive]"],
    ),
    (
        "overflow",
        "all",
        End::Status2,
        &["stack overflow", "fatal::recurse_forever", "[chan receive]"],
        &[],
    ),
    (
        "overflow",
        "crash",
        End::Abort,
        &["stack overflow", "fatal::recurse_forever"],
        &[],
    ),
    // A report never goes through std's stderr lock (held here by the
    // goroutine that deadlocks or overflows), nor relies on SIGALRM.
    (
        "deadlock_holding_stderr",
        "",
        End::Status2,
        &[DEADLOCK, "[chan receive]", "fatal::deadlocked_receiver"],
        &["did not finish"],
    ),
    (
        "overflow_holding_stderr",
        "",
        End::Status2,
        &["stack overflow", "fatal::recurse_forever"],
        &["did not finish"],
    ),
    // Two goroutines overflow at once: the first report is printed whole.
    (
        "two_overflows",
        "all",
        End::Status2,
        &["stack overflow", "[running]:", "fatal::recurse_forever"],
        &[],
    ),
    // A SIGQUIT handler the program installed before the runtime started
    // is kept.
    (
        "sigquit_own_handler",
        "",
        End::Code(7),
        &["own SIGQUIT handler"],
        &["SIGQUIT: quit"],
    ),
];

fn main() {
    if let Ok(case) = std::env::var("GORT_FATAL_CASE") {
        run_case(&case);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    for (case, tb, end, want, not) in CASES {
        let name = format!(
            "{case}_gotraceback_{}",
            if tb.is_empty() { "unset" } else { tb }
        );
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match check(case, tb, end, want, not) {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED\n{e}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("fatal cases failed: {failed:?}");
        std::process::exit(1);
    }
    println!("test result: ok");
}

fn check(case: &str, tb: &str, end: &End, want: &[&str], not: &[&str]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.env("GORT_FATAL_CASE", case)
        .env("GOMAXPROCS", "2")
        .env_remove("GOTRACEBACK")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !tb.is_empty() {
        cmd.env("GOTRACEBACK", tb);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    let ended_right = match end {
        End::Status2 => status.code() == Some(2),
        End::Abort => status.signal() == Some(libc::SIGABRT),
        End::Fails => !status.success(),
        End::Code(c) => status.code() == Some(*c),
    };
    let missing: Vec<_> = want.iter().filter(|w| !err.contains(*w)).collect();
    let present: Vec<_> = not.iter().filter(|w| err.contains(*w)).collect();
    if !ended_right || !missing.is_empty() || !present.is_empty() {
        return Err(format!(
            "ended with {status}; missing {missing:?}; unexpected {present:?}; stderr:\n{err}"
        ));
    }
    Ok(())
}

#[inline(never)]
fn parked_until_quit(rx: gort::Receiver<i32>) {
    let _ = rx.recv();
}

#[inline(never)]
fn deadlocked_receiver() {
    let (_tx, rx) = gort::chan::<i32>(0);
    let _ = rx.recv();
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_forever(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 64]);
    recurse_forever(n + 1) + buf[3]
}

fn run_case(case: &str) {
    match case {
        "sigquit" => {
            // The signal comes from a plain thread once both goroutines
            // are asleep, so the dump shows them parked.
            std::thread::spawn(|| {
                let t0 = std::time::Instant::now();
                loop {
                    let d = gort::stack(true);
                    if d.contains("[sleep]") && d.contains("[chan receive]") {
                        break;
                    }
                    assert!(t0.elapsed() < LIMIT, "never asleep:\n{d}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                // SAFETY: kill(2) on our own process.
                unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
            });
            gort::run(|| {
                let (tx, rx) = gort::chan::<i32>(0);
                let _h = gort::go(move || parked_until_quit(rx));
                gort::time::sleep(Duration::from_secs(30));
                drop(tx);
            })
        }
        "deadlock" => gort::run(deadlocked_receiver),
        "overflow" => gort::run(|| {
            let (_tx, rx) = gort::chan::<i32>(0);
            let parked = rx.clone();
            let _h = gort::go(move || parked_until_quit(rx));
            // The "all" dump lists it in `[chan receive]`: wait until it is.
            while parked.blocked_receivers() == 0 {
                gort::time::sleep(Duration::from_millis(1));
            }
            gort::go(|| recurse_forever(0)).join().unwrap();
        }),
        "deadlock_holding_stderr" => gort::run(|| {
            let _held = std::io::stderr().lock();
            deadlocked_receiver();
        }),
        "overflow_holding_stderr" => {
            // SAFETY: ignoring SIGALRM (a report must not rely on it).
            unsafe { libc::signal(libc::SIGALRM, libc::SIG_IGN) };
            gort::run(|| {
                gort::go(|| {
                    let _held = std::io::stderr().lock();
                    recurse_forever(0)
                })
                .join()
                .unwrap();
            })
        }
        "two_overflows" => gort::run(|| {
            let a = gort::go(|| recurse_forever(0));
            let b = gort::go(|| recurse_forever(0));
            let _ = (a.join(), b.join());
        }),
        "sigquit_own_handler" => {
            extern "C" fn own(_: libc::c_int) {
                let msg = b"own SIGQUIT handler\n";
                // SAFETY: write(2) and _exit(2) are async-signal-safe.
                unsafe {
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                    libc::_exit(7);
                }
            }
            // SAFETY: installs an async-signal-safe handler.
            unsafe { libc::signal(libc::SIGQUIT, own as *const () as libc::sighandler_t) };
            gort::run(|| {
                // SAFETY: kill(2) on our own process.
                unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
                gort::time::sleep(Duration::from_secs(30));
            })
        }
        other => panic!("unknown case {other}"),
    }
}
