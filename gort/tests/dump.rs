//! Goroutine dumps through the facade: the wait states of gort-std's
//! blocking operations as Go names them, with the goroutine's own frames.

use gort::sync::{Mutex, RwLock, WaitGroup};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// The block of goroutine `id` in `dump`.
fn block_of(dump: &str, id: u64) -> &str {
    let head = format!("goroutine {id} ");
    let start = dump
        .find(&head)
        .unwrap_or_else(|| panic!("goroutine {id} not in the dump:\n{dump}"));
    let rest = &dump[start..];
    &rest[..rest.find("\n\n").map_or(rest.len(), |e| e + 1)]
}

/// Dumps until goroutine `id` shows `state` (it may not have parked yet).
fn wait_for_state(id: u64, state: &str) -> String {
    let t0 = Instant::now();
    loop {
        let d = gort::stack(true);
        if d.contains(&format!("goroutine {id} [{state}")) {
            return block_of(&d, id).to_string();
        }
        assert!(
            t0.elapsed() < LIMIT,
            "goroutine {id} never showed [{state}]:\n{d}"
        );
        gort::time::sleep(Duration::from_millis(5));
    }
}

#[inline(never)]
fn very_distinct_receiver(rx: gort::Receiver<u32>) -> Option<u32> {
    rx.recv().ok()
}

#[inline(never)]
fn very_distinct_locker(m: Arc<Mutex<u32>>) {
    *m.lock() += 1;
}

#[inline(never)]
fn very_distinct_reader(m: Arc<RwLock<u32>>) {
    let _ = *m.read();
}

#[inline(never)]
fn very_distinct_waiter(wg: Arc<WaitGroup>) {
    wg.wait();
}

#[inline(never)]
fn very_distinct_sleeper() {
    gort::time::sleep(Duration::from_secs(3600));
    // Not a tail call: a jump to `sleep` would leave no frame of this
    // function on the stack (as it does without LTO).
    std::hint::black_box(());
}

#[test]
fn each_wait_shows_gos_state_and_the_callers_frames() {
    gort::run(|| {
        let me = gort::sched::goid().unwrap();

        let (tx, rx) = gort::chan::<u32>(0);
        let r = gort::go(move || very_distinct_receiver(rx));
        let b = wait_for_state(r.id(), "chan receive");
        assert!(b.contains("dump::very_distinct_receiver(...)\n"), "{b}");
        assert!(b.contains("tests/dump.rs:"), "{b}");
        assert!(b.contains(&format!(" in goroutine {me}\n")), "{b}");
        // Channel internals are the runtime's, hidden as Go hides them.
        assert!(!b.contains("gort_std::chan"), "{b}");

        let m = Arc::new(Mutex::new(0));
        let guard = m.lock();
        let m2 = m.clone();
        let l = gort::go(move || very_distinct_locker(m2));
        let b = wait_for_state(l.id(), "sync.Mutex.Lock");
        assert!(b.contains("dump::very_distinct_locker(...)\n"), "{b}");

        let rw = Arc::new(RwLock::new(0));
        let wguard = rw.write();
        let rw2 = rw.clone();
        let rd = gort::go(move || very_distinct_reader(rw2));
        let b = wait_for_state(rd.id(), "sync.RWMutex.RLock");
        assert!(b.contains("dump::very_distinct_reader(...)\n"), "{b}");

        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let wg2 = wg.clone();
        let w = gort::go(move || very_distinct_waiter(wg2));
        let b = wait_for_state(w.id(), "sync.WaitGroup.Wait");
        assert!(b.contains("dump::very_distinct_waiter(...)\n"), "{b}");

        let s = gort::go(very_distinct_sleeper);
        let b = wait_for_state(s.id(), "sleep");
        assert!(b.contains("dump::very_distinct_sleeper(...)\n"), "{b}");

        // The caller is first, running.
        let d = gort::stack(true);
        assert!(
            d.starts_with(&format!("goroutine {me} \"main\" [running]:\n")),
            "{d}"
        );
        assert!(d.contains("dump::each_wait_shows_gos_state_and_the_callers_frames"));

        tx.send(7).unwrap();
        assert_eq!(r.join().unwrap(), Some(7));
        drop(guard);
        l.join().unwrap();
        drop(wguard);
        rd.join().unwrap();
        wg.done();
        w.join().unwrap();
        drop(s); // detached: sleeps on; the test process ends
    });
}

#[test]
fn write_stack_writes_what_stack_returns() {
    gort::run(|| {
        let mut v = Vec::new();
        gort::write_stack(false, &mut v).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("goroutine "), "{s}");
        assert!(s.contains("[running]"), "{s}");
        assert!(
            s.contains("dump::write_stack_writes_what_stack_returns"),
            "{s}"
        );
    });
}
