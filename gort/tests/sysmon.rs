//! sysmon with timers and the schedule trace, end to end. Cases that need
//! `GOMAXPROCS=1` or `GODEBUG` run in a child process of their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_child() -> bool {
    std::env::var_os("GORT_TEST_CHILD").is_some()
}

/// Runs `test` of this binary in a child with `env`; returns its stderr
/// after checking it passed.
fn run_child(test: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("GORT_TEST_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stdout.contains(&format!("test {test} ... ok")),
        "child {test} {env:?} did not pass:\n{stdout}\n{stderr}"
    );
    stderr
}

/// With one P, a goroutine blocked for a second in `syscall` does not stop
/// a 1 ms ticker on another goroutine: sysmon hands the P on. Without the
/// hand-off the ticker's goroutine could not run at all during the call.
#[test]
fn a_ticker_keeps_time_while_a_goroutine_blocks_in_syscall() {
    if !is_child() {
        run_child(
            "a_ticker_keeps_time_while_a_goroutine_blocks_in_syscall",
            &[("GOMAXPROCS", "1")],
        );
        return;
    }
    let entered = Arc::new(AtomicBool::new(false));
    let e = entered.clone();
    let blocker = gort::go(move || {
        gort::syscall(|| {
            e.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
        })
    });
    while !entered.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Spawned from this plain thread while the blocker's M is inside the
    // call, the ticker goroutine starts on another M.
    let ticker = gort::go(|| {
        let t = gort::time::Ticker::new(Duration::from_millis(1));
        let mut last = Instant::now();
        let mut worst = Duration::ZERO;
        for _ in 0..300 {
            t.c().recv().unwrap();
            let now = Instant::now();
            worst = worst.max(now - last);
            last = now;
        }
        worst
    });
    let worst = ticker.join().unwrap();
    assert!(
        !blocker.is_finished(),
        "the ticks should all have come during the blocking call"
    );
    // Behaviour, not speed: without the hand-off a tick waits for the whole
    // call (~1 s); a loaded machine may delay one by some milliseconds.
    assert!(
        worst < Duration::from_millis(250),
        "a tick came {worst:?} after the previous one"
    );
    blocker.join().unwrap();
}

/// `GODEBUG=schedtrace=50` prints Go's scheduler line every 50 ms, and
/// `scheddetail=1` the per-P lines.
#[test]
fn schedtrace_prints_gos_line() {
    if !is_child() {
        let err = run_child(
            "schedtrace_prints_gos_line",
            &[
                ("GODEBUG", "schedtrace=50,scheddetail=1"),
                ("GOMAXPROCS", "2"),
            ],
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("SCHED ")).collect();
        assert!(lines.len() >= 2, "two periods or more: {err}");
        for key in [
            "gomaxprocs=2",
            "idleprocs=",
            "threads=",
            "spinningthreads=",
            "idlethreads=",
            "runqueue=",
            "mrunq=[",
        ] {
            assert!(lines[0].contains(key), "{key} in {:?}", lines[0]);
        }
        assert!(err.contains("  P0: status="), "scheddetail lines: {err}");
        assert!(err.contains("  P1: status="), "scheddetail lines: {err}");
        return;
    }
    gort::go(|| gort::time::sleep(Duration::from_millis(200)))
        .join()
        .unwrap();
}

/// A malformed GODEBUG value of ours stops the implicit runtime with a
/// message naming it (as an unusable GOMAXPROCS does).
#[test]
fn malformed_godebug_is_reported() {
    if !is_child() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "malformed_godebug_is_reported",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GORT_TEST_CHILD", "1")
            .env("GODEBUG", "schedtrace=often")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("invalid GODEBUG") && err.contains("schedtrace"),
            "{err}"
        );
        return;
    }
    gort::go(|| ()).join().unwrap();
}

/// A goroutine that loops on short blocking calls never switches by
/// itself; sysmon asks it to yield after 10 ms (its P's schedule tick does
/// not move, in or out of the calls) and it does when a call returns, so a
/// goroutine bound to the same M keeps running (Go preempts in `retake`
/// for a P in a system call too).
#[test]
fn a_loop_of_blocking_calls_lets_its_ms_goroutines_run() {
    if !is_child() {
        run_child(
            "a_loop_of_blocking_calls_lets_its_ms_goroutines_run",
            &[("GOMAXPROCS", "1")],
        );
        return;
    }
    gort::run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let me = std::thread::current().id();
        let (started_tx, started) = gort::chan::<()>(0);
        let sleeper = gort::go(move || {
            started_tx.send(()).unwrap();
            let here = std::thread::current().id();
            let mut last = Instant::now();
            let mut worst = Duration::ZERO;
            while !st.load(Ordering::SeqCst) {
                gort::time::sleep(Duration::from_millis(1));
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            (here, worst)
        });
        // This goroutine parks, so the sleeper starts on this M (one P).
        started.recv().unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(600) {
            gort::syscall(|| std::thread::sleep(Duration::from_millis(1)));
        }
        stop.store(true, Ordering::SeqCst);
        let (here, worst) = sleeper.join().unwrap();
        assert_eq!(here, me, "the sleeper shares this goroutine's M");
        assert!(
            worst < Duration::from_millis(250),
            "the sleeper on the looping goroutine's M waited {worst:?}"
        );
    });
}

/// With one P and its only M kept busy by a goroutine that yields at
/// preemption points (so it never runs dry, and no idle M blocks in the
/// poller), a goroutine waiting on a socket is still readied: sysmon polls
/// the network when nobody has for 10 ms.
#[test]
fn sysmon_polls_a_starving_netpoller() {
    if !is_child() {
        run_child("sysmon_polls_a_starving_netpoller", &[("GOMAXPROCS", "1")]);
        return;
    }
    use std::io::{Read, Write};
    gort::run(|| {
        let l = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let g2 = got.clone();
        let reader = gort::go(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            g2.store(true, Ordering::SeqCst);
        });
        gort::gosched(); // the reader parks in accept
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"x").unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        let t0 = Instant::now();
        while !got.load(Ordering::SeqCst) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the socket's goroutine was never readied"
            );
            gort::preempt_point();
        }
        reader.join().unwrap();
    });
}
