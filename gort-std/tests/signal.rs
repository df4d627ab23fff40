//! `gort_std::signal` (Go's os/signal) with real signals.
//!
//! Dispositions and the dispatcher are process-wide, so every test that
//! notifies, ignores or resets runs its body in a fresh child process of
//! this binary (`--exact <test>`, with `GORT_SIGNAL_CHILD` naming it), and
//! the parent checks how the child ended: normally, or killed by the signal
//! whose default action the test restored. Only the tests that touch no
//! disposition (names, invalid numbers) run in the parent. Every wait in a
//! child has a deadline and fails by name; the parent kills a child that
//! outlives [`CHILD_LIMIT`].
#![cfg(target_os = "linux")]

use gort_std::signal::{
    self, Signal, SignalError, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1,
    SIGUSR2, SIGWINCH,
};
use gort_std::{chan, select, Receiver, RecvTimeoutError};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a child waits for a signal to arrive before it fails.
const WAIT: Duration = Duration::from_secs(5);
/// How long a child waits to be sure nothing arrives.
const QUIET: Duration = Duration::from_millis(200);
/// How long the parent lets a child run.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

const CHILD_ENV: &str = "GORT_SIGNAL_CHILD";

/// How a child must end.
#[derive(Clone, Copy, Debug)]
enum End {
    /// Exit status 0 (the test passed).
    Passes,
    /// Killed by this signal, after printing [`FINAL_KILL`].
    KilledBy(i32),
}

/// Printed by a child right before the kill that must end it, so a child
/// that dies of the signal earlier (a disposition restored too soon) fails.
const FINAL_KILL: &str = "signal-test: sending the final signal";

/// Runs `body` in a child process running only the test `name`, and checks
/// that the child ended as `end` says. In the child, runs `body`.
fn in_child(name: &str, end: End, body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        eprintln!("signal-test: child {name} started");
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name}: the child did not finish within {CHILD_LIMIT:?}; its stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    let report = format!("{name}: child ended with {status:?}\nstdout:\n{out}\nstderr:\n{err}");
    // A renamed or misspelt test would run nothing and "pass".
    assert!(
        err.contains(&format!("signal-test: child {name} started")),
        "the child did not run the test body; {report}"
    );
    match end {
        End::Passes => assert!(status.success(), "{report}"),
        End::KilledBy(sig) => {
            assert_eq!(status.signal(), Some(sig), "{report}");
            assert!(err.contains(FINAL_KILL), "killed too early; {report}");
        }
    }
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Sends `sig` to this process (`kill(getpid(), sig)`).
fn kill(sig: Signal) {
    // SAFETY: kill(2) with our own pid and a valid signal number.
    let r = unsafe { libc::kill(libc::getpid(), sig.number()) };
    assert_eq!(r, 0, "kill({sig:?}): {}", std::io::Error::last_os_error());
}

/// The handler now installed for `sig` (`SIG_DFL`, `SIG_IGN`, or an
/// address).
fn handler(sig: Signal) -> libc::sighandler_t {
    // SAFETY: a null `act` only queries; `old` is a valid out-buffer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig.number(), std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Receives a signal within [`WAIT`], or fails naming `what`.
fn expect_signal(rx: &Receiver<Signal>, want: Signal, what: &str) {
    match rx.recv_timeout(WAIT) {
        Ok(got) => assert_eq!(got, want, "{what}: wrong signal"),
        Err(e) => panic!("{what}: no {want:?} within {WAIT:?} ({e:?})"),
    }
}

/// Checks that nothing arrives on `rx` for [`QUIET`].
fn expect_nothing(rx: &Receiver<Signal>, what: &str) {
    match rx.recv_timeout(QUIET) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("{what}: expected nothing, got {other:?}"),
    }
}

/// Polls `cond` until it holds, failing by name after [`WAIT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < WAIT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends the final signal, which must end the child.
fn final_kill(sig: Signal) -> ! {
    eprintln!("{FINAL_KILL} {sig:?}");
    kill(sig);
    std::thread::sleep(WAIT);
    panic!("still alive {WAIT:?} after {sig:?}: its default action was not restored");
}

// ---------------------------------------------------------------------------
// Delivery.

#[test]
fn notify_delivers_a_real_signal() {
    in_child("notify_delivers_a_real_signal", End::Passes, || {
        let (tx, rx) = chan(1);
        signal::notify(&tx, &[SIGUSR1]);
        kill(SIGUSR1);
        expect_signal(&rx, SIGUSR1, "the notified channel");
        // Again: the handler stays installed while someone listens.
        kill(SIGUSR1);
        expect_signal(&rx, SIGUSR1, "the second signal");
    });
}

#[test]
fn notify_from_a_goroutine_and_the_dispatcher_is_a_system_goroutine() {
    in_child(
        "notify_from_a_goroutine_and_the_dispatcher_is_a_system_goroutine",
        End::Passes,
        || {
            gort_sched::run(|| {
                let before = gort_sched::num_goroutine();
                let (tx, rx) = chan(1);
                signal::notify(&tx, &[SIGUSR2]);
                kill(SIGUSR2);
                expect_signal(&rx, SIGUSR2, "the goroutine's channel");
                assert_eq!(
                    gort_sched::num_goroutine(),
                    before,
                    "the dispatcher must not count as a user goroutine"
                );
            });
        },
    );
}

#[test]
fn two_channels_both_receive() {
    in_child("two_channels_both_receive", End::Passes, || {
        let (tx1, rx1) = chan(1);
        let (tx2, rx2) = chan(1);
        signal::notify(&tx1, &[SIGUSR1]);
        signal::notify(&tx2, &[SIGUSR1, SIGUSR2]);
        kill(SIGUSR1);
        expect_signal(&rx1, SIGUSR1, "the first channel");
        expect_signal(&rx2, SIGUSR1, "the second channel");
        kill(SIGUSR2);
        expect_signal(&rx2, SIGUSR2, "the second channel, its second signal");
        expect_nothing(&rx1, "the first channel, not notified of SIGUSR2");
    });
}

#[test]
fn notify_again_adds_signals_to_the_channel() {
    in_child(
        "notify_again_adds_signals_to_the_channel",
        End::Passes,
        || {
            let (tx, rx) = chan(2);
            signal::notify(&tx, &[SIGUSR1]);
            signal::notify(&tx.clone(), &[SIGUSR2]); // any Sender of the channel
            kill(SIGUSR2);
            expect_signal(&rx, SIGUSR2, "the added signal");
            kill(SIGUSR1);
            expect_signal(&rx, SIGUSR1, "the first signal");
        },
    );
}

#[test]
fn an_empty_list_means_every_signal_and_stop_restores_them_all() {
    in_child(
        "an_empty_list_means_every_signal_and_stop_restores_them_all",
        End::Passes,
        || {
            // Rust programs start with SIGPIPE ignored.
            assert!(signal::ignored(SIGPIPE));
            let (tx, rx) = chan(4);
            signal::notify(&tx, &[]);
            assert!(!signal::ignored(SIGPIPE), "notify un-ignores");
            for sig in [SIGUSR2, SIGWINCH, SIGHUP] {
                kill(sig);
                expect_signal(&rx, sig, "a channel notified of everything");
            }
            assert_ne!(handler(SIGINT), libc::SIG_DFL);
            signal::stop(&tx);
            assert_eq!(handler(SIGINT), libc::SIG_DFL, "SIGINT restored");
            assert_eq!(handler(SIGTERM), libc::SIG_DFL, "SIGTERM restored");
            assert_eq!(handler(SIGPIPE), libc::SIG_IGN, "SIGPIPE restored exactly");
            assert!(signal::ignored(SIGPIPE));
        },
    );
}

// ---------------------------------------------------------------------------
// Stop, ignore, reset.

#[test]
fn stop_ends_delivery_and_the_last_stop_restores_the_default() {
    in_child(
        "stop_ends_delivery_and_the_last_stop_restores_the_default",
        End::KilledBy(libc::SIGUSR1),
        || {
            assert_eq!(handler(SIGUSR1), libc::SIG_DFL);
            let (tx_a, rx_a) = chan(1);
            let (tx_b, rx_b) = chan(1);
            signal::notify(&tx_a, &[SIGUSR1]);
            signal::notify(&tx_b, &[SIGUSR1]);
            signal::stop(&tx_a);
            // b still listens, so the handler stays: b gets it, a does not.
            assert_ne!(handler(SIGUSR1), libc::SIG_DFL);
            kill(SIGUSR1);
            expect_signal(&rx_b, SIGUSR1, "the channel still notified");
            expect_nothing(&rx_a, "the stopped channel");
            signal::stop(&tx_b);
            assert_eq!(handler(SIGUSR1), libc::SIG_DFL, "default restored");
            signal::stop(&tx_b); // stopping twice is harmless
            final_kill(SIGUSR1);
        },
    );
}

#[test]
fn ignore_makes_the_process_survive_and_ignored_reports_it() {
    in_child(
        "ignore_makes_the_process_survive_and_ignored_reports_it",
        End::Passes,
        || {
            assert!(!signal::ignored(SIGUSR2));
            let (tx, rx) = chan(1);
            signal::notify(&tx, &[SIGUSR2]);
            signal::ignore(&[SIGUSR2]);
            assert!(signal::ignored(SIGUSR2));
            assert_eq!(handler(SIGUSR2), libc::SIG_IGN);
            kill(SIGUSR2); // would end the process if not ignored
            expect_nothing(&rx, "a channel whose signal was then ignored");
            // Notify un-ignores.
            signal::notify(&tx, &[SIGUSR2]);
            assert!(!signal::ignored(SIGUSR2));
            kill(SIGUSR2);
            expect_signal(&rx, SIGUSR2, "notify after ignore");
            // Reset goes back to what was there before the first touch.
            signal::reset(&[SIGUSR2]);
            assert!(!signal::ignored(SIGUSR2));
            assert_eq!(handler(SIGUSR2), libc::SIG_DFL);
        },
    );
}

#[test]
fn reset_restores_the_default_action() {
    in_child(
        "reset_restores_the_default_action",
        End::KilledBy(libc::SIGUSR1),
        || {
            let (tx, rx) = chan(1);
            signal::notify(&tx, &[SIGUSR1, SIGUSR2]);
            kill(SIGUSR1);
            expect_signal(&rx, SIGUSR1, "before the reset");
            signal::reset(&[SIGUSR1]);
            assert_eq!(handler(SIGUSR1), libc::SIG_DFL);
            // The channel keeps its other signal.
            kill(SIGUSR2);
            expect_signal(&rx, SIGUSR2, "the signal not reset");
            final_kill(SIGUSR1);
        },
    );
}

#[test]
fn reset_with_no_signals_resets_everything() {
    in_child(
        "reset_with_no_signals_resets_everything",
        End::KilledBy(libc::SIGTERM),
        || {
            let (tx, _rx) = chan(1);
            signal::notify(&tx, &[SIGTERM, SIGUSR1]);
            signal::ignore(&[SIGHUP]);
            signal::reset(&[]);
            assert_eq!(handler(SIGUSR1), libc::SIG_DFL);
            assert_eq!(handler(SIGHUP), libc::SIG_DFL);
            assert!(!signal::ignored(SIGHUP));
            final_kill(SIGTERM);
        },
    );
}

static CUSTOM_HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn custom_handler(_sig: libc::c_int) {
    CUSTOM_HITS.fetch_add(1, Ordering::SeqCst);
}

/// A handler someone installed before gort touched the signal (here
/// SIGQUIT, as a runtime's goroutine-dump handler would be) comes back
/// exactly after `reset` and after the last `stop`.
#[test]
fn a_previous_handler_comes_back_exactly() {
    in_child("a_previous_handler_comes_back_exactly", End::Passes, || {
        // Start the runtime first: a handler it installs at start-up (a
        // SIGQUIT dump handler) must not replace ours behind the test.
        gort_sched::go(|| ()).join().unwrap();
        let custom = custom_handler as *const () as libc::sighandler_t;
        // SAFETY: installing a handler that only bumps an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = custom;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaddset(&mut sa.sa_mask, libc::SIGUSR2);
            assert_eq!(libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut()), 0);
        }
        let (tx, rx) = chan(1);
        signal::notify(&tx, &[SIGQUIT]);
        kill(SIGQUIT);
        expect_signal(&rx, SIGQUIT, "while notified");
        assert_eq!(CUSTOM_HITS.load(Ordering::SeqCst), 0);

        signal::reset(&[SIGQUIT]);
        assert_eq!(handler(SIGQUIT), custom, "reset puts the old handler back");
        kill(SIGQUIT);
        wait_until("the old handler ran", || {
            CUSTOM_HITS.load(Ordering::SeqCst) == 1
        });
        expect_nothing(&rx, "the channel after reset");

        signal::notify(&tx, &[SIGQUIT]);
        signal::stop(&tx);
        // SAFETY: query only.
        let restored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGQUIT, std::ptr::null(), &mut old);
            old
        };
        assert_eq!(
            restored.sa_sigaction, custom,
            "stop puts the old handler back"
        );
        assert_eq!(restored.sa_flags & libc::SA_SIGINFO, 0, "flags restored");
        // SAFETY: sa_mask is a valid sigset_t.
        let masked = unsafe { libc::sigismember(&restored.sa_mask, libc::SIGUSR2) };
        assert_eq!(masked, 1, "mask restored");
        kill(SIGQUIT);
        wait_until("the old handler ran again", || {
            CUSTOM_HITS.load(Ordering::SeqCst) == 2
        });
    });
}

#[test]
fn ignoring_sigchld_does_not_reap_children() {
    in_child(
        "ignoring_sigchld_does_not_reap_children",
        End::Passes,
        || {
            signal::ignore(&[SIGCHLD]);
            assert!(signal::ignored(SIGCHLD));
            assert_ne!(handler(SIGCHLD), libc::SIG_IGN, "SIG_IGN would auto-reap");
            let st = Command::new("true").status().expect("wait for a child");
            assert!(st.success());
            signal::reset(&[SIGCHLD]);
            assert!(!signal::ignored(SIGCHLD));
        },
    );
}

#[test]
fn a_channel_whose_receivers_are_gone_is_unregistered() {
    in_child(
        "a_channel_whose_receivers_are_gone_is_unregistered",
        End::Passes,
        || {
            let (tx, rx) = chan(1);
            signal::notify(&tx, &[SIGUSR1]);
            drop(rx);
            kill(SIGUSR1); // caught: the handler is still installed
            wait_until("the dispatcher restored SIGUSR1's default", || {
                handler(SIGUSR1) == libc::SIG_DFL
            });
        },
    );
}

// ---------------------------------------------------------------------------
// Never blocking: full channels drop, unbuffered ones need a receiver.

#[test]
fn a_full_channel_drops_signals_and_the_dispatcher_goes_on() {
    in_child(
        "a_full_channel_drops_signals_and_the_dispatcher_goes_on",
        End::Passes,
        || {
            let (tx, rx) = chan(1);
            // A roomy witness channel tells when each signal was dispatched.
            let (wtx, witness) = chan(8);
            signal::notify(&tx, &[SIGUSR1]);
            signal::notify(&wtx, &[SIGUSR1]);
            for i in 0..3 {
                kill(SIGUSR1);
                expect_signal(&witness, SIGUSR1, &format!("dispatch of signal {i}"));
            }
            // When stop returns, the pass that fed the witness is over.
            signal::stop(&wtx);
            assert_eq!(rx.try_recv(), Ok(SIGUSR1), "the first signal was kept");
            assert!(rx.try_recv().is_err(), "the other two were dropped");
            // Not stuck: the next signal arrives.
            kill(SIGUSR1);
            expect_signal(&rx, SIGUSR1, "a signal after draining");
        },
    );
}

#[test]
fn an_unbuffered_channel_gets_the_signal_when_a_receiver_waits() {
    in_child(
        "an_unbuffered_channel_gets_the_signal_when_a_receiver_waits",
        End::Passes,
        || {
            gort_sched::run(|| {
                let (tx, rx) = chan(0);
                signal::notify(&tx, &[SIGUSR2]);
                let rx2 = rx.clone();
                let h = gort_sched::go(move || rx2.recv_timeout(WAIT));
                let t0 = Instant::now();
                while rx.blocked_receivers() == 0 {
                    assert!(t0.elapsed() < WAIT, "the receiver never blocked");
                    gort_sched::gosched();
                }
                kill(SIGUSR2);
                assert_eq!(h.join().unwrap(), Ok(SIGUSR2));
            });
        },
    );
}

// ---------------------------------------------------------------------------
// select!

#[test]
fn select_over_a_signal_channel_and_another() {
    in_child(
        "select_over_a_signal_channel_and_another",
        End::Passes,
        || {
            gort_sched::run(|| {
                let (sig_tx, sigs) = chan(1);
                signal::notify(&sig_tx, &[SIGUSR1]);
                let (work_tx, work) = chan::<u32>(1);
                let deadline = gort_std::after(WAIT);

                work_tx.send(7).unwrap();
                select! {
                    recv(sigs) -> s => panic!("no signal was sent, got {s:?}"),
                    recv(work) -> v => assert_eq!(v, Ok(7)),
                    recv(deadline) -> _t => panic!("select: the work value did not arrive"),
                }

                gort_sched::go(|| kill(SIGUSR1));
                select! {
                    recv(sigs) -> s => assert_eq!(s, Ok(SIGUSR1)),
                    recv(work) -> v => panic!("nothing was sent on work, got {v:?}"),
                    recv(deadline) -> _t => panic!("select: no SIGUSR1 within {WAIT:?}"),
                }
                signal::stop(&sig_tx);
            });
        },
    );
}

// ---------------------------------------------------------------------------
// The Signal type (no process state: these run in the parent).

#[test]
fn invalid_signals_are_rejected_with_clear_errors() {
    let cases = [
        (0, SignalError::OutOfRange(0), "0 is not a signal number"),
        (-3, SignalError::OutOfRange(-3), "-3 is not a signal number"),
        (65, SignalError::OutOfRange(65), "65 is not a signal number"),
        (
            libc::SIGKILL,
            SignalError::Uncatchable(libc::SIGKILL),
            "SIGKILL (9) cannot be caught or ignored",
        ),
        (
            libc::SIGSTOP,
            SignalError::Uncatchable(libc::SIGSTOP),
            "SIGSTOP (19) cannot be caught or ignored",
        ),
        (
            libc::SIGSEGV,
            SignalError::Synchronous(libc::SIGSEGV),
            "SIGSEGV (11) is a synchronous fault signal",
        ),
        (
            libc::SIGBUS,
            SignalError::Synchronous(libc::SIGBUS),
            "gort-os handles SIGSEGV and SIGBUS",
        ),
        (
            libc::SIGFPE,
            SignalError::Synchronous(libc::SIGFPE),
            "SIGFPE (8)",
        ),
        (
            libc::SIGILL,
            SignalError::Synchronous(libc::SIGILL),
            "SIGILL (4)",
        ),
        (32, SignalError::Reserved(32), "reserved by the C library"),
    ];
    for (n, want, text) in cases {
        let err = Signal::new(n).expect_err(&format!("signal {n} must be refused"));
        assert_eq!(err, want);
        assert_eq!(Signal::try_from(n), Err(want));
        let msg = err.to_string();
        assert!(
            msg.contains(text),
            "message for {n}: {msg:?} lacks {text:?}"
        );
        assert!(msg.starts_with("gort::signal: "), "{msg:?}");
    }
    assert_eq!(Signal::new(libc::SIGINT), Ok(SIGINT));
    assert_eq!(i32::from(SIGTERM), libc::SIGTERM);
    let rt = Signal::new(libc::SIGRTMIN() + 2).expect("a real-time signal");
    assert_eq!(rt.number(), libc::SIGRTMIN() + 2);
    assert!(Signal::new(libc::SIGRTMAX()).is_ok());
}

#[test]
fn signals_print_go_names() {
    let names = [
        (SIGINT, "interrupt", "SIGINT"),
        (SIGTERM, "terminated", "SIGTERM"),
        (SIGHUP, "hangup", "SIGHUP"),
        (SIGUSR1, "user defined signal 1", "SIGUSR1"),
        (SIGUSR2, "user defined signal 2", "SIGUSR2"),
        (SIGQUIT, "quit", "SIGQUIT"),
        (SIGWINCH, "window changed", "SIGWINCH"),
        (SIGCHLD, "child exited", "SIGCHLD"),
        (SIGPIPE, "broken pipe", "SIGPIPE"),
        (signal::SIGALRM, "alarm clock", "SIGALRM"),
    ];
    for (sig, display, debug) in names {
        assert_eq!(sig.to_string(), display);
        assert_eq!(format!("{sig:?}"), debug);
    }
    let rt = Signal::new(libc::SIGRTMIN() + 3).unwrap();
    assert_eq!(rt.to_string(), format!("signal {}", libc::SIGRTMIN() + 3));
    assert_eq!(format!("{rt:?}"), "SIGRTMIN+3");
}

#[test]
#[should_panic(expected = "gort::signal::notify: the channel is closed")]
fn notify_with_a_closed_channel_panics() {
    // notify checks before it touches any disposition: safe in the parent.
    let (tx, _rx) = chan::<Signal>(1);
    tx.close();
    signal::notify(&tx, &[SIGUSR1]);
}
