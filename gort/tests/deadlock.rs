//! sysmon's deadlock detection, end to end. Each case runs in a fresh
//! process of this binary whose main thread is its only plain thread (no
//! test harness: libtest's own threads would count as threads that might
//! still act, and rightly keep the detector quiet). Cases that deadlock must
//! end with Go's message and status 2; cases that can still make progress
//! (a plain thread that will send, a pending timer, a blocking call) must
//! finish normally. Every child has a time limit: a detector that never
//! fires fails the run, it does not hang it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FATAL: &str = "fatal error: all goroutines are asleep - deadlock!";
const LIMIT: Duration = Duration::from_secs(30);

/// (case, whether it deadlocks, text its stderr must contain).
const CASES: &[(&str, bool, &str)] = &[
    ("chan_recv_forever", true, "[chan receive]"),
    ("two_goroutines_wait_on_each_other", true, "[chan receive]"),
    ("waitgroup_never_done", true, "[sync.WaitGroup.Wait]"),
    ("select_no_cases", true, "[select (no cases)]"),
    ("plain_thread_parks_after_goroutines_ended", true, FATAL),
    ("plain_thread_sends_later", false, ""),
    ("timer_pending", false, ""),
    ("blocking_call_in_flight", false, ""),
    ("finishes_normally", false, ""),
    ("timer_fires_then_block", true, "[chan receive]"),
    ("timer_stopped_then_block", true, "[chan receive]"),
    ("pool_call_in_flight", false, ""),
    ("pool_call_done_then_block", true, "[chan receive]"),
    ("woken_thread_then_timed_park", false, ""),
    ("timer_readies_into_an_idle_ms_queue", false, ""),
    // Go's TestLockedDeadlock and TestLockedDeadlock2: locked goroutines
    // sleep on Ms of their own (not on the idle list); still a deadlock.
    ("locked_deadlock", true, "[chan receive, locked to thread]"),
    ("locked_deadlock2", true, "locked to thread]"),
    (
        "main_thread_deadlock",
        true,
        "[chan receive, locked to thread]",
    ),
    // A locked goroutine that ended took its thread (and M) with it: the
    // thread accounting must not wait for it.
    ("locked_exit_then_deadlock", true, "[chan receive]"),
    ("locked_goroutine_finishes", false, ""),
];

fn main() {
    if let Ok(case) = std::env::var("GORT_DEADLOCK_CASE") {
        run_case(&case);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return; // no libtest-style tests to list
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    for &(case, dead, needle) in CASES {
        if filter.is_some_and(|f| !case.contains(f.as_str())) {
            continue;
        }
        match check(case, dead, needle) {
            Ok(()) => println!("test {case} ... ok"),
            Err(e) => {
                println!("test {case} ... FAILED\n{e}");
                failed.push(case);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("deadlock cases failed: {failed:?}");
        std::process::exit(1);
    }
    println!("test result: ok");
}

/// Runs `case` in a child process and checks how it ended.
fn check(case: &str, dead: bool, needle: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env("GORT_DEADLOCK_CASE", case)
        .env("GOMAXPROCS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "still running after {LIMIT:?} (expected {})",
                if dead {
                    "a deadlock report"
                } else {
                    "a normal exit"
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    if dead {
        if status.code() != Some(2) || !err.contains(FATAL) || !err.contains(needle) {
            return Err(format!(
                "expected status 2 with {FATAL:?} and {needle:?}; got {status}, stderr:\n{err}"
            ));
        }
    } else if !status.success() || err.contains(FATAL) {
        return Err(format!(
            "expected a normal exit; got {status}, stderr:\n{err}"
        ));
    }
    Ok(())
}

fn run_case(case: &str) {
    match case {
        "chan_recv_forever" => gort::run(|| {
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "two_goroutines_wait_on_each_other" => gort::run(|| {
            let (tx1, rx1) = gort::chan::<i32>(0);
            let (tx2, rx2) = gort::chan::<i32>(0);
            let a = gort::go(move || {
                let v = rx1.recv().unwrap();
                tx2.send(v).unwrap();
            });
            let b = gort::go(move || {
                let v = rx2.recv().unwrap();
                tx1.send(v).unwrap();
            });
            a.join().unwrap();
            b.join().unwrap();
        }),
        "waitgroup_never_done" => gort::run(|| {
            let wg = gort::sync::WaitGroup::new();
            wg.add(1);
            wg.wait();
        }),
        "select_no_cases" => gort::run(|| {
            gort::Select::new().select();
        }),
        "plain_thread_parks_after_goroutines_ended" => {
            // The runtime ran a goroutine (a program that never starts it
            // has no sysmon), then the main thread waits on a channel whose
            // sender it keeps itself.
            gort::go(|| ()).join().unwrap();
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }
        "plain_thread_sends_later" => gort::run(|| {
            let (tx, rx) = gort::chan::<i32>(0);
            // A plain thread in std's sleep may still act: no deadlock.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                tx.send(7).unwrap();
            });
            assert_eq!(rx.recv(), Ok(7));
        }),
        "timer_pending" => gort::run(|| {
            gort::time::sleep(Duration::from_millis(300));
        }),
        "blocking_call_in_flight" => gort::run(|| {
            gort::syscall(|| std::thread::sleep(Duration::from_millis(300)));
        }),
        "finishes_normally" => gort::run(|| {
            let (tx, rx) = gort::chan::<i32>(1);
            tx.send(1).unwrap();
            assert_eq!(rx.recv(), Ok(1));
        }),
        // (The cases below come from the hostile review of sysmon.)
        "timer_fires_then_block" => gort::run(|| {
            // Go: the timer fires (readying nobody), then checkdead reports.
            let _c = gort::time::after(Duration::from_millis(200));
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "timer_stopped_then_block" => gort::run(|| {
            let t = gort::time::Timer::new(Duration::from_secs(3600));
            gort::time::sleep(Duration::from_millis(50));
            t.stop();
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "pool_call_in_flight" => gort::run(|| {
            gort::blocking(|| std::thread::sleep(Duration::from_millis(300)));
        }),
        "pool_call_done_then_block" => gort::run(|| {
            gort::blocking(|| ());
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "woken_thread_then_timed_park" => {
            // An untimed park woken, then at once a timed park nobody wakes:
            // the thread must not stay counted as parked (it would hide a
            // running thread from the check below).
            let (tx, rx) = gort::chan::<i32>(0);
            let h = gort::go(move || {
                gort::time::sleep(Duration::from_millis(2));
                tx.send(1).unwrap();
            });
            assert_eq!(rx.recv(), Ok(1));
            let _ = gort::sched::park_thread_timeout(
                gort::sched::WaitReason::Other("test"),
                Duration::from_millis(50),
                || true,
            );
            h.join().unwrap();
            // Not a deadlock: a plain thread sends after 500 ms.
            gort::run(|| {
                let (tx3, rx3) = gort::chan::<i32>(0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(500));
                    tx3.send(7).unwrap();
                });
                assert_eq!(rx3.recv(), Ok(7));
            });
        }
        "timer_readies_into_an_idle_ms_queue" => gort::run(|| {
            let (tx, rx) = gort::chan::<i32>(0);
            // A plain thread that parks just after the timer below fired.
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(55));
                assert_eq!(rx.recv(), Ok(1));
            });
            gort::time::sleep(Duration::from_millis(50));
            tx.send(1).unwrap();
            gort::blocking(|| t.join().unwrap());
        }),
        "locked_deadlock" => gort::run(|| {
            gort::lock_os_thread();
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "locked_deadlock2" => gort::run(|| {
            let (_tx, rx) = gort::chan::<i32>(0);
            let rx2 = rx.clone();
            gort::go(move || {
                gort::lock_os_thread();
                let _ = rx2.recv();
            });
            gort::time::sleep(Duration::from_millis(1));
            let _ = rx.recv();
        }),
        "main_thread_deadlock" => gort::run_on_this_thread(|| {
            gort::lock_os_thread();
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "locked_exit_then_deadlock" => gort::run(|| {
            let h = gort::Builder::new().lock_os_thread().spawn(|| 1);
            assert_eq!(h.join().unwrap(), 1);
            let (_tx, rx) = gort::chan::<i32>(0);
            let _ = rx.recv();
        }),
        "locked_goroutine_finishes" => gort::run_on_this_thread(|| {
            let (tx, rx) = gort::chan::<i32>(0);
            let h = gort::Builder::new().lock_os_thread().spawn(move || {
                gort::time::sleep(Duration::from_millis(30));
                tx.send(5).unwrap();
            });
            assert_eq!(rx.recv(), Ok(5));
            h.join().unwrap();
        }),
        other => panic!("unknown case {other}"),
    }
}
