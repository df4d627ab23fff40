//! Pacing: GOGC and the memory limit start background collections without
//! anyone calling `gc()`. (Its own test binary: it changes global
//! settings.)

use gort_gc::{read_mem_stats, set_gc_percent, set_memory_limit, Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct D(Arc<AtomicUsize>);
impl Drop for D {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}
// SAFETY: no handles.
unsafe impl Trace for D {
    fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
}

#[derive(Trace)]
struct Cyc {
    d: D,
    pad: [u64; 16],
    me: Mutex<Option<Gc<Cyc>>>,
}

/// Makes `n` self-cycles (garbage only the cycle collector can free).
fn garbage(n: usize, c: &Arc<AtomicUsize>) {
    for _ in 0..n {
        let x = Gc::new(Cyc {
            d: D(c.clone()),
            pad: [0; 16],
            me: Mutex::new(None),
        });
        *x.me.lock().unwrap() = Some(x.clone());
    }
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}

#[test]
fn pacing() {
    // GOGC=100 (the default): garbage past the 4 MiB minimum starts a
    // background cycle that frees it.
    assert_eq!(set_gc_percent(100), 100);
    let c = Arc::new(AtomicUsize::new(0));
    let before = read_mem_stats();
    garbage(if cfg!(miri) { 100 } else { 100_000 }, &c);
    assert!(
        wait(|| read_mem_stats().num_gc > before.num_gc && c.load(SeqCst) > 0),
        "no automatic collection"
    );
    assert_eq!(read_mem_stats().num_forced_gc, before.num_forced_gc);
    assert!(read_mem_stats().next_gc > 0);

    // GOGC=off: no automatic cycles, however much garbage.
    assert_eq!(set_gc_percent(-1), 100);
    assert_eq!(read_mem_stats().gc_percent, -1);
    // The goal is out of reach: no allocation can trigger a cycle (checked
    // here because "no cycle ran" below can only be checked so far).
    assert_eq!(
        read_mem_stats().next_gc,
        i64::MAX as u64,
        "GOGC=off left a goal"
    );
    // A forced cycle waits for a background one in progress; a stale
    // trigger re-checks the (now infinite) goal and does nothing.
    gort_gc::gc();
    let off = read_mem_stats().num_gc;
    let c2 = Arc::new(AtomicUsize::new(0));
    garbage(if cfg!(miri) { 100 } else { 100_000 }, &c2);
    assert_eq!(read_mem_stats().num_gc, off, "collected with GOGC=off");
    assert_eq!(c2.load(SeqCst), 0);

    // The memory limit still applies with GOGC off: a limit below the
    // current heap starts a cycle at once.
    assert_eq!(set_memory_limit(-1), i64::MAX);
    assert_eq!(set_memory_limit(1 << 20), i64::MAX);
    assert_eq!(read_mem_stats().memory_limit, 1 << 20);
    assert!(wait(|| c2.load(SeqCst) > 0), "memory limit did not collect");
    assert_eq!(set_memory_limit(i64::MAX), 1 << 20);
    set_gc_percent(100);
}
