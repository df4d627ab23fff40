//! loom model of the timer state machine: stop and reset racing with the
//! heap being run. A stop that reports "was armed" means the callback never
//! runs; one that reports "not armed" means it already ran, exactly once.

use crate::heap::{Callback, Entry, Heap};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn counting_entry(heap: usize) -> (std::sync::Arc<Entry>, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let e = Entry::new(
        heap,
        Callback::Raw(Box::new(move |_periodic| {
            n2.fetch_add(1, Ordering::SeqCst);
        })),
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

/// A handle dropped (`remove`, with its lock-free fast path) while another
/// M runs the heap (`try_run`): "was armed" means the callback never runs,
/// "not armed" that it ran, once.
#[test]
fn remove_racing_try_run() {
    loom::model(|| {
        let h = Arc::new(Heap::new());
        let (e, fired) = counting_entry(0);
        h.reset(&e, 10, 0);
        let h2 = h.clone();
        let runner = thread::spawn(move || {
            let mut done = Vec::new();
            h2.try_run(100, &mut done);
        });
        let was = h.remove(&e);
        runner.join().unwrap();
        let n = fired.load(Ordering::SeqCst);
        assert_eq!(n, usize::from(!was), "remove={was} fired={n}");
        assert_eq!(h.min(), i64::MAX);
    });
}

/// Zombies (lazy stop) in a heap big enough to keep them: a stop racing
/// the run; a stopped entry never fires, is revived by reset (which says
/// it was not armed) and taken out by remove.
#[test]
fn zombies_never_fire_and_revive() {
    loom::model(|| {
        let h = Arc::new(Heap::new());
        let es: Vec<_> = (0..5).map(|_| counting_entry(0)).collect();
        for (i, (e, _)) in es.iter().enumerate() {
            h.reset(e, 10 * (i as i64 + 1), 0);
        }
        // A zombie before the race (one of five: below the bulk threshold).
        assert!(h.stop(&es[2].0));
        let h2 = h.clone();
        let runner = thread::spawn(move || {
            let mut done = Vec::new();
            h2.try_run(25, &mut done); // due: the entries at 10 and 20
        });
        let stopped = h.stop(&es[1].0);
        runner.join().unwrap();
        let n1 = es[1].1.load(Ordering::SeqCst);
        assert_eq!(n1, usize::from(!stopped), "stop={stopped} fired={n1}");
        assert_eq!(es[0].1.load(Ordering::SeqCst), 1);
        assert_eq!(es[2].1.load(Ordering::SeqCst), 0, "a zombie fired");
        let (was, _) = h.reset(&es[2].0, 1000, 0);
        assert!(!was, "a stopped timer reported armed");
        assert!(h.remove(&es[2].0));
        assert!(!h.remove(&es[2].0));
    });
}
