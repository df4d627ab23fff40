//! The source hook: a minimal timer source registered from outside the
//! scheduler readies sleeping goroutines on time, an idle M sleeps exactly
//! until the next deadline (no polling loop), and an earlier deadline added
//! later wakes it.

use gort_os::clock::nanotime;
use gort_sched::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct TestTimers {
    heap: Mutex<BinaryHeap<Reverse<(i64, u64)>>>,
    waiters: Mutex<Vec<(u64, Waiter)>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Source for TestTimers {
    fn poll(&self, now: i64) -> Option<i64> {
        let mut heap = self.heap.lock().unwrap();
        let mut due = Vec::new();
        while let Some(Reverse((when, id))) = heap.peek().copied() {
            if when > now {
                break;
            }
            heap.pop();
            due.push(id);
        }
        let next = heap.peek().map(|Reverse((w, _))| *w);
        drop(heap);
        let mut ws = self.waiters.lock().unwrap();
        for id in due {
            if let Some(i) = ws.iter().position(|(x, _)| *x == id) {
                ws.swap_remove(i).1.ready();
            }
        }
        next
    }
}

fn timers() -> &'static Arc<TestTimers> {
    static T: OnceLock<Arc<TestTimers>> = OnceLock::new();
    T.get_or_init(|| {
        let t = Arc::new(TestTimers::default());
        // SAFETY: the test source only readies waiters under a short std
        // lock; it never blocks, panics or re-registers.
        unsafe { register_source(t.clone()) };
        t
    })
}

fn sleep(d: Duration) {
    sleep_until(nanotime() + d.as_nanos() as i64);
}

/// Parks until the source finds `when` (nanotime) due.
fn sleep_until(when: i64) {
    let t = timers();
    let id = t.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ws = t.waiters.lock().unwrap();
    let mut ws = ws;
    ws.push((id, Waiter::current()));
    t.heap.lock().unwrap().push(Reverse((when, id)));
    park(WaitReason::Sleep, move || {
        drop(ws);
        note_deadline(when);
        true
    });
}

fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid, writable struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime))
}

/// Waits (polling, bounded) until `n` goroutines are parked on the source.
fn wait_for_sleepers(n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while timers().waiters.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{n} sleepers never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sources_ready_goroutines_on_time_and_idle_ms_sleep() {
    // Goroutines sleeping on the source never wake before their deadlines,
    // and wake in deadline order. The deadlines are fixed before the
    // goroutines start, 20 ms x scale apart; a stall of the machine longer
    // than the spacing can make two due at once (then their order is the
    // run queues'), so the spacing grows on a retry, as Go's time tests do.
    let mut orders = Vec::new();
    for scale in [1i64, 2, 4, 8, 16] {
        let order = Arc::new(Mutex::new(Vec::new()));
        let base = nanotime();
        let hs: Vec<_> = [60i64, 20, 40]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                let when = base + ms * scale * 1_000_000;
                go(move || {
                    sleep_until(when);
                    let woke = nanotime();
                    assert!(woke >= when, "woke {} ns early", when - woke);
                    order.lock().unwrap().push(ms);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let order = order.lock().unwrap().clone();
        if order == [20, 40, 60] {
            orders.clear();
            break;
        }
        orders.push((scale, order));
    }
    assert!(
        orders.is_empty(),
        "out of deadline order at every scale: {orders:?}"
    );

    // An idle runtime with one long sleeper burns (almost) no CPU: the idle
    // M sleeps until the deadline instead of polling.
    let c0 = cpu_time();
    let w0 = Instant::now();
    go(|| sleep(Duration::from_millis(300))).join().unwrap();
    let (cpu, wall) = (cpu_time() - c0, w0.elapsed());
    assert!(wall >= Duration::from_millis(300));
    assert!(
        cpu < Duration::from_millis(100),
        "idle runtime used {cpu:?} CPU in {wall:?}"
    );

    // A long sleeper first, then a short one: the earlier deadline must wake
    // the idle M that was sleeping until the later one.
    // A missed wake-up makes the short sleep last until the long deadline;
    // a loaded machine can delay it too, so a slow try is retried (a missed
    // wake-up is slow every time).
    let mut slow = Vec::new();
    for _ in 0..3 {
        let long = go(|| sleep(Duration::from_millis(1000)));
        wait_for_sleepers(1);
        // Let the idle M settle into its sleep until the long deadline.
        std::thread::sleep(Duration::from_millis(20));
        let t1 = Instant::now();
        go(|| sleep(Duration::from_millis(30))).join().unwrap();
        let el = t1.elapsed();
        long.join().unwrap();
        if el < Duration::from_millis(500) {
            slow.clear();
            break;
        }
        slow.push(el);
    }
    assert!(
        slow.is_empty(),
        "short sleeps behind a long one took {slow:?}"
    );
}
