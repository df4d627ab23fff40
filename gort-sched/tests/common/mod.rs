//! Test helpers built only on the public park/ready API.
#![allow(dead_code)]

use gort_sched::{park, WaitReason, Waiter};
use std::collections::VecDeque;
use std::sync::Mutex;

/// A counting semaphore with direct hand-off, for tests.
#[derive(Default)]
pub(crate) struct Sema {
    inner: Mutex<(usize, VecDeque<Waiter>)>,
}

impl Sema {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn acquire(&self) {
        let mut g = self.inner.lock().unwrap();
        if g.0 > 0 {
            g.0 -= 1;
            return;
        }
        g.1.push_back(Waiter::current());
        park(WaitReason::SemAcquire, move || {
            drop(g);
            true
        });
    }

    pub(crate) fn release(&self) {
        let mut g = self.inner.lock().unwrap();
        match g.1.pop_front() {
            Some(w) => {
                drop(g);
                w.ready();
            }
            None => g.0 += 1,
        }
    }

    pub(crate) fn waiters(&self) -> usize {
        self.inner.lock().unwrap().1.len()
    }
}

/// Re-runs this test binary for one test with extra environment; returns
/// (success, stderr).
pub(crate) fn run_child(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd.env("GORT_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A renamed or misspelt test would run nothing and "pass": the child
    // must have started exactly the test meant (libtest prints the name
    // before running it when --test-threads=1).
    assert!(
        stdout.contains("running 1 test") && stdout.contains(&format!("test {test} ...")),
        "the child process did not run test {test:?}; its stdout:\n{stdout}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn is_child() -> bool {
    std::env::var_os("GORT_TEST_CHILD").is_some()
}

/// Aborts the process with a message naming `what` if the returned guard is
/// not dropped within `limit`: a test whose goroutines deadlock (a lost
/// wake-up leaves a join or park waiting forever, where no deadline check
/// of the test itself can run) fails by name instead of hanging the run.
pub(crate) fn watchdog(what: &str, limit: std::time::Duration) -> Watchdog {
    let done = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let d = done.clone();
    let what = what.to_string();
    std::thread::spawn(move || {
        let (lock, cv) = &*d;
        let g = lock.lock().unwrap();
        let (g, _) = cv.wait_timeout_while(g, limit, |done| !*done).unwrap();
        if !*g {
            eprintln!(
                "watchdog: {what} did not finish within {limit:?}; aborting the test process"
            );
            std::process::abort();
        }
    });
    Watchdog(done)
}

/// Disarms its [`watchdog`] when dropped.
pub(crate) struct Watchdog(std::sync::Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

/// Like [`run_child`], but the child also runs the test if it is
/// `#[ignore]`d (so that `cargo test -- --ignored` runs ignored tests' child
/// halves too), and it must have reported the test as run, not ignored.
pub(crate) fn run_child_including_ignored(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ]);
    cmd.env("GORT_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ignored = format!("test {test} ... ignored");
    assert!(
        stdout.contains("running 1 test")
            && stdout.contains(&format!("test {test} ..."))
            && !stdout.contains(&ignored),
        "the child process did not run test {test:?}; its stdout:\n{stdout}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
