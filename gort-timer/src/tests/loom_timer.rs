//! loom model of the timer state machine: stop and reset racing with the
//! heap being run. A stop that reports "was armed" means the callback never
//! runs; one that reports "not armed" means it already ran, exactly once.

use crate::heap::{Entry, Heap};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn counting_entry(heap: usize) -> (std::sync::Arc<Entry>, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let e = Entry::new(
        heap,
        false,
        Box::new(move |_periodic| {
            n2.fetch_add(1, Ordering::SeqCst);
        }),
    );
    (e, n)
}

#[test]
fn stop_racing_run() {
    loom::model(|| {
        let h = Arc::new(Heap::new());
        let (e, fired) = counting_entry(0);
        h.reset(&e, 10, 0);
        let h2 = h.clone();
        let runner = thread::spawn(move || h2.run(100, &mut Vec::new()));
        let stopped = h.stop(&e);
        runner.join().unwrap();
        let n = fired.load(Ordering::SeqCst);
        assert_eq!(n, usize::from(!stopped), "stop={stopped} fired={n}");
        assert_eq!(h.min(), i64::MAX);
    });
}

#[test]
fn reset_racing_run() {
    loom::model(|| {
        let h = Arc::new(Heap::new());
        let (e, fired) = counting_entry(0);
        h.reset(&e, 10, 0);
        let h2 = h.clone();
        let runner = thread::spawn(move || h2.run(100, &mut Vec::new()));
        // Re-arm for later than the runner's "now": it fires at most once
        // for the old deadline, and the new one stays armed.
        let (was, _) = h.reset(&e, 1000, 0);
        runner.join().unwrap();
        let n = fired.load(Ordering::SeqCst);
        assert_eq!(n, usize::from(!was));
        assert_eq!(h.min(), 1000);
        assert!(h.stop(&e));
    });
}

#[test]
fn periodic_rearms_and_two_runners_fire_once() {
    loom::model(|| {
        let h = Arc::new(Heap::new());
        let (e, fired) = counting_entry(0);
        h.reset(&e, 10, 50);
        let h2 = h.clone();
        let r = thread::spawn(move || h2.run(20, &mut Vec::new()));
        h.run(20, &mut Vec::new());
        r.join().unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(h.min(), 60);
        assert!(h.stop(&e));
    });
}
