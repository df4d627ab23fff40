//! `gort::leak`, both ways: clean runs pass, goroutines left behind are
//! reported with their state, frames and creation site; ignore rules each
//! excuse exactly what they name; the guard fails a test at its end; the
//! checking goroutine and system goroutines are never leaks.
//!
//! A check sees every goroutine of the process, so the tests take turns
//! (`serial`), and each releases what it leaked and waits until it is gone
//! before the next one runs.

use gort::leak::{self, Leaks, Options};
use gort::Receiver;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    let g = M.lock().unwrap_or_else(|e| e.into_inner());
    // What an earlier test released may still be on its way out.
    clean();
    g
}

/// Waits (generously) until no user goroutine is left.
fn clean() {
    let patient = Options::new()
        .max_retries(200)
        .max_sleep(Duration::from_millis(100));
    if let Err(l) = leak::find(&patient) {
        panic!("goroutines left over from an earlier test:\n{l}");
    }
}

/// Waits until goroutine `id` is parked with `state`.
fn wait_parked(id: u64, state: &str) {
    let t0 = Instant::now();
    loop {
        let recs = gort::sched::prof::goroutine_profile();
        if recs.iter().any(|g| g.goid == id && g.state == state) {
            return;
        }
        assert!(
            t0.elapsed() < LIMIT,
            "goroutine {id} never parked in {state}"
        );
        // (On a goroutine, sleep without blocking its thread.)
        gort::time::sleep(Duration::from_millis(2));
    }
}

/// One look, no retries.
fn quick() -> Options {
    Options::new().max_retries(0)
}

fn ids(l: &Leaks) -> Vec<u64> {
    l.goroutines().iter().map(|g| g.id()).collect()
}

#[inline(never)]
fn parked_receiver(rx: Receiver<()>) {
    let _ = rx.recv();
    // Not a tail call: a jump would leave no frame of this function. (And
    // a body of its own: the linker folds identical functions into one.)
    std::hint::black_box(1);
}

#[inline(never)]
fn ignored_at_top(rx: Receiver<()>) {
    let _ = rx.recv();
    std::hint::black_box(2);
}

#[inline(never)]
fn outer_frame(rx: Receiver<()>) {
    inner_frame(rx);
    std::hint::black_box(3);
}

#[inline(never)]
fn inner_frame(rx: Receiver<()>) {
    let _ = rx.recv();
    std::hint::black_box(4);
}

#[test]
fn a_clean_run_passes_from_a_goroutine_and_from_the_thread() {
    let _s = serial();
    gort::run(|| {
        let (tx, rx) = gort::chan::<u32>(0);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                gort::go(move || rx.iter().sum::<u32>())
            })
            .collect();
        drop(rx);
        (1..=100).for_each(|i| tx.send(i).unwrap());
        drop(tx);
        let sum: u32 = workers.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 5050);
        // The main goroutine itself (the caller) is no leak.
        leak::find(&Options::new()).unwrap();
        leak::verify_none(&Options::new());
    });
    leak::find(&Options::new()).unwrap();
}

#[test]
fn a_goroutine_parked_forever_is_reported_with_state_site_and_frames() {
    let _s = serial();
    let (tx, rx) = gort::chan::<()>(0);
    let (id, me, line, report) = gort::run(move || {
        let me = gort::sched::goid().unwrap();
        let line = line!() + 1;
        let id = gort::go(move || parked_receiver(rx)).id();
        wait_parked(id, "chan receive");
        let leaks = leak::find(&Options::new().max_retries(2)).unwrap_err();
        assert_eq!(ids(&leaks), [id], "{leaks}");
        let g = &leaks.goroutines()[0];
        assert_eq!(g.state(), "chan receive");
        assert_eq!(g.creator(), me);
        let at = g.created_at().expect("a creation site");
        assert!(at.file().ends_with("tests/leak.rs"), "{at}");
        assert_eq!(at.line(), line);
        assert_eq!(g.top_function(), Some("leak::parked_receiver"), "{leaks}");
        assert!(
            g.frames()
                .iter()
                .all(|f| !f.function.starts_with("gort_std::chan")),
            "runtime frames are hidden:\n{leaks}"
        );
        (id, me, line, leaks.to_string())
    });
    assert!(
        report.starts_with("found unexpected goroutines:\n"),
        "{report}"
    );
    assert!(
        report.contains(&format!("goroutine {id} [chan receive]:\n")),
        "{report}"
    );
    assert!(report.contains("leak::parked_receiver(...)\n"), "{report}");
    assert!(report.contains("tests/leak.rs:"), "{report}");
    assert!(
        report.contains(&format!("tests/leak.rs:{line}:"))
            && report.contains(&format!(" in goroutine {me}\n")),
        "{report}"
    );

    // After run returned, from the test's thread: still a leak. (With the
    // default retries: the main goroutine may still be on its way out.)
    let leaks = leak::find(&Options::new()).unwrap_err();
    assert_eq!(ids(&leaks), [id], "{leaks}");
    drop(tx);
    clean();
}

#[test]
fn a_goroutine_finishing_within_the_retries_is_no_leak() {
    let _s = serial();
    gort::run(|| {
        let h = gort::go(|| gort::time::sleep(Duration::from_millis(50)));
        leak::find(&Options::new()).unwrap();
        h.join().unwrap();
    });
    // From a plain thread too, spawned from it.
    gort::go(|| gort::time::sleep(Duration::from_millis(50)));
    leak::find(&Options::new()).unwrap();
    // With no retries it is still there.
    let h = gort::go(|| gort::time::sleep(Duration::from_millis(300)));
    assert_eq!(ids(&leak::find(&quick()).unwrap_err()), [h.id()]);
    h.join().unwrap();
}

#[test]
fn each_ignore_rule_excuses_exactly_what_it_names() {
    let _s = serial();
    let (tx, rx) = gort::chan::<()>(0);
    let (top, any, site, plain) = (rx.clone(), rx.clone(), rx.clone(), rx);
    let a = gort::go(move || ignored_at_top(top)).id();
    let b = gort::go(move || outer_frame(any)).id();
    let site_line = line!() + 1;
    let c = gort::go(move || parked_receiver(site)).id();
    let d = gort::go(move || parked_receiver(plain)).id();
    for id in [a, b, c, d] {
        wait_parked(id, "chan receive");
    }
    let found = |o: Options| ids(&leak::find(&o).unwrap_err());
    assert_eq!(found(quick()), [a, b, c, d]);

    // Top function: only the goroutine whose innermost frame it is.
    assert_eq!(
        found(quick().ignore_top_function("leak::ignored_at_top")),
        [b, c, d]
    );
    assert_eq!(
        found(quick().ignore_top_function("leak::outer_frame")),
        [a, b, c, d],
        "outer_frame is on b's stack, not at its top"
    );
    assert_eq!(
        found(quick().ignore_top_function("leak::inner_frame")),
        [a, c, d]
    );
    // A prefix at a path boundary matches; one inside a name does not.
    assert_eq!(
        found(quick().ignore_top_function("leak::ignored")),
        [a, b, c, d]
    );

    // Any function: anywhere on the stack.
    assert_eq!(
        found(quick().ignore_any_function("leak::outer_frame")),
        [a, c, d]
    );
    assert_eq!(
        found(quick().ignore_any_function("leak::parked_receiver")),
        [a, b]
    );

    // Created by: the spawn's location, at several precisions.
    let at = format!("tests/leak.rs:{site_line}");
    assert_eq!(found(quick().ignore_created_by(at.as_str())), [a, b, d]);
    assert_eq!(
        found(quick().ignore_created_by(format!("tests/leak.rs:{}", site_line + 5))),
        [a, b, c, d]
    );
    assert!(leak::find(&quick().ignore_created_by("tests/leak.rs")).is_ok());

    // Current: everything alive now, not what comes later.
    let now = quick().ignore_current();
    assert!(now.find().is_ok());
    let (tx2, rx2) = gort::chan::<()>(0);
    let e = gort::go(move || parked_receiver(rx2)).id();
    wait_parked(e, "chan receive");
    assert_eq!(ids(&now.find().unwrap_err()), [e]);

    // Rules add up.
    let all = quick()
        .ignore_top_function("leak::ignored_at_top")
        .ignore_any_function("leak::outer_frame")
        .ignore_created_by(at);
    assert_eq!(found(all), [d, e]);

    drop((tx, tx2));
    clean();
}

#[test]
fn the_guard_panics_at_drop_on_a_leak_and_is_quiet_when_clean() {
    let _s = serial();
    // Clean: nothing happens.
    {
        let _g = leak::guard();
        gort::run(|| gort::go(|| 1 + 1).join().unwrap());
    }
    {
        let g = quick().guard();
        g.disarm();
    }

    let (tx, rx) = gort::chan::<()>(0);
    let r = std::panic::catch_unwind(move || {
        let _g = Options::new().max_retries(3).guard();
        let id = gort::go(move || parked_receiver(rx)).id();
        wait_parked(id, "chan receive");
        id
    });
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().expect("a formatted panic");
    assert!(msg.starts_with("found unexpected goroutines:\n"), "{msg}");
    assert!(msg.contains("leak::parked_receiver(...)"), "{msg}");

    // Already panicking (the test failed): the guard does not panic again
    // (that would abort); the test's own panic is what is reported.
    let r = std::panic::catch_unwind(|| {
        let _g = quick().guard();
        panic!("the test's own failure");
    });
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"the test's own failure"));

    drop(tx);
    clean();
}

#[test]
fn the_checker_and_system_goroutines_are_never_reported() {
    let _s = serial();
    let (tx, rx) = gort::chan::<()>(0);
    let sys = gort::Builder::new()
        .system(true)
        .name("runtime-helper")
        .spawn(move || parked_receiver(rx));
    let sys_id = sys.id();
    // A checker on a goroutine other than main, main waiting for it.
    gort::run(move || {
        let main = gort::sched::goid().unwrap();
        let checker = gort::go(move || {
            // The checker itself, and the system goroutine parked on a
            // channel: neither is reported.
            let me = gort::sched::goid().unwrap();
            let r = leak::find(&quick());
            (me, r)
        });
        let (me, r) = checker.join().unwrap();
        // main (waiting in join) is a goroutine like any other to it.
        let l = r.unwrap_err();
        assert!(!ids(&l).contains(&me), "{l}");
        assert!(!ids(&l).contains(&sys_id), "{l}");
        assert_eq!(ids(&l), [main], "only main: {l}");
    });
    leak::find(&Options::new()).unwrap();
    drop(tx);
    sys.join().unwrap();
}

// Review: a check inside `syscall` or inside a `blocking` call does not
// count its own goroutine (the caller, in the wide sense).
#[test]
fn a_check_inside_syscall_or_blocking_skips_its_caller() {
    let _s = serial();
    gort::run(|| {
        gort::syscall(|| leak::find(&quick())).unwrap_or_else(|l| panic!("inside syscall:\n{l}"));
        gort::blocking(|| leak::find(&quick())).unwrap_or_else(|l| panic!("inside blocking:\n{l}"));
    });
}

// Review: a goroutine that returned but is still being torn down is no
// leak, even to a check with no retries (the joined worker, and the main
// goroutine of a `run` that just returned).
#[test]
fn returned_goroutines_are_never_reported() {
    let _s = serial();
    for _ in 0..200 {
        gort::run(|| {
            gort::go(|| 1).join().unwrap();
            leak::find(&quick()).unwrap_or_else(|l| panic!("a joined worker:\n{l}"));
        });
        leak::find(&quick()).unwrap_or_else(|l| panic!("run's main goroutine:\n{l}"));
    }
}
