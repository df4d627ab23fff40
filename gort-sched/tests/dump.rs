//! Goroutine dumps (`stack`): a parked goroutine's real frames, its state
//! and `created by` line; a running one on another thread; only the caller
//! with `all == false`; a wake that comes while a dump holds a goroutine is
//! not lost.

mod common;
use common::Sema;
use gort_sched::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

#[inline(never)]
fn very_distinct_name(sema: &Sema) {
    sema.acquire();
    std::hint::black_box(());
}

/// The goroutine's block in `stack(true)`, found by its id.
fn block_of(dump: &str, id: u64) -> String {
    let head = format!("goroutine {id} ");
    let start = dump
        .find(&head)
        .unwrap_or_else(|| panic!("goroutine {id} not in the dump:\n{dump}"));
    let rest = &dump[start..];
    let end = rest.find("\n\n").map_or(rest.len(), |e| e + 1);
    rest[..end].to_string()
}

#[test]
fn a_parked_goroutine_shows_its_frames_state_and_creator() {
    run(|| {
        let sema = Arc::new(Sema::new());
        let s2 = sema.clone();
        let spawner = goid().unwrap();
        let line = line!() + 1;
        let h = Builder::new()
            .name("distinct-worker")
            .spawn(move || very_distinct_name(&s2));
        let t0 = Instant::now();
        // Queued on the semaphore first, parked a moment later.
        let (dump, b) = loop {
            let dump = stack(true);
            let b = block_of(&dump, h.id());
            if b.contains("[semacquire]") {
                break (dump, b);
            }
            assert!(t0.elapsed() < LIMIT, "{b}");
            gosched();
        };
        assert!(
            b.starts_with(&format!(
                "goroutine {} \"distinct-worker\" [semacquire]:\n",
                h.id()
            )),
            "{b}"
        );
        assert!(b.contains("dump::very_distinct_name(...)\n"), "{b}");
        // Its file:line is the acquire call's.
        assert!(b.contains("tests/dump.rs:17\n"), "{b}");
        // The spawn call's line (rustfmt may split the call over lines).
        let created = format!("created by {}:", file!());
        let at = b.find(&created).unwrap_or_else(|| panic!("{b}")) + created.len();
        let got: u32 = b[at..].split(':').next().unwrap().parse().unwrap();
        assert!(
            (line..line + 3).contains(&got),
            "spawned near line {line}: {b}"
        );
        assert!(b.contains(&format!(" in goroutine {spawner}\n")), "{b}");
        // Runtime frames are trimmed.
        assert!(!b.contains("gort_sched::"), "{b}");
        assert!(!b.contains("gort_os::"), "{b}");
        // The caller comes first, running.
        assert!(
            dump.starts_with(&format!("goroutine {spawner} \"main\" [running]:\n")),
            "{dump}"
        );
        sema.release();
        h.join().unwrap();
    });
}

#[test]
fn stack_false_shows_only_the_caller() {
    run(|| {
        let sema = Arc::new(Sema::new());
        let s2 = sema.clone();
        let h = go(move || very_distinct_name(&s2));
        while sema.waiters() == 0 {
            gosched();
        }
        let mine = stack(false);
        assert_eq!(mine.matches("goroutine ").count(), 1, "{mine}");
        assert!(mine.contains("[running]"), "{mine}");
        assert!(
            mine.contains("dump::stack_false_shows_only_the_caller"),
            "{mine}"
        );
        sema.release();
        h.join().unwrap();
    });
    // A plain thread is no goroutine.
    assert_eq!(stack(false), "");
}

#[test]
fn a_goroutine_running_on_another_thread_is_reported_as_such() {
    run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (st, s2) = (stop.clone(), started.clone());
        let h = go(move || {
            s2.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while !st.load(Ordering::SeqCst) && t0.elapsed() < LIMIT {
                std::hint::spin_loop();
            }
        });
        // Wait without yielding: the spinner can then only start on
        // another M (an idle one steals it), never behind us on ours.
        let t0 = Instant::now();
        while !started.load(Ordering::SeqCst) {
            assert!(t0.elapsed() < LIMIT);
            std::hint::spin_loop();
        }
        let dump = stack(true);
        stop.store(true, Ordering::SeqCst);
        let b = block_of(&dump, h.id());
        assert!(
            b.contains("[running]:\n\tgoroutine running on other thread; stack unavailable\n"),
            "{b}"
        );
        h.join().unwrap();
    });
}

/// Wakes racing dumps: every release reaches its goroutine (a wake that
/// comes while the dump holds the goroutine is finished by the dump).
#[test]
fn wakes_racing_dumps_are_never_lost() {
    run(|| {
        const N: u64 = 8;
        const ROUNDS: u64 = 200;
        let done = Arc::new(AtomicU64::new(0));
        let semas: Vec<Arc<Sema>> = (0..N).map(|_| Arc::new(Sema::new())).collect();
        let hs: Vec<_> = semas
            .iter()
            .map(|s| {
                let (s, done) = (s.clone(), done.clone());
                go(move || {
                    for _ in 0..ROUNDS {
                        s.acquire();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let warm = Arc::new(AtomicBool::new(false));
        let w2 = warm.clone();
        let dumper = std::thread::spawn(move || {
            let _ = stack(true); // symbols loaded: later dumps are quick
            w2.store(true, Ordering::SeqCst);
            let mut n = 0;
            while !st.load(Ordering::SeqCst) {
                let _ = stack(true);
                n += 1;
            }
            n
        });
        let t0 = Instant::now();
        while !warm.load(Ordering::SeqCst) {
            assert!(t0.elapsed() < LIMIT);
            gosched();
        }
        for _ in 0..ROUNDS {
            for s in &semas {
                s.release();
            }
            gosched();
        }
        while done.load(Ordering::SeqCst) < N * ROUNDS {
            assert!(
                t0.elapsed() < LIMIT,
                "a wake was lost: {} of {} acquires done",
                done.load(Ordering::SeqCst),
                N * ROUNDS
            );
            gosched();
        }
        stop.store(true, Ordering::SeqCst);
        assert!(dumper.join().unwrap() > 0);
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// Dumps running at the same time (each pins goroutines in turn) still
/// report every parked goroutine as parked, with its frames.
#[test]
fn concurrent_dumps_all_see_every_parked_goroutine() {
    run(|| {
        const N: usize = 200;
        let sema = Arc::new(Sema::new());
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let s = sema.clone();
                go(move || very_distinct_name(&s))
            })
            .collect();
        let t0 = Instant::now();
        while sema.waiters() < N {
            assert!(t0.elapsed() < LIMIT);
            gosched();
        }
        let ids: Vec<u64> = hs.iter().map(|h| h.id()).collect();
        // Queued is not yet parked: wait until one dump sees them all parked.
        while !{
            let d = stack(true);
            ids.iter()
                .all(|id| block_of(&d, *id).contains("[semacquire]"))
        } {
            assert!(t0.elapsed() < LIMIT);
            gosched();
        }
        let dumpers: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let d = stack(true);
                        for id in &ids {
                            let b = block_of(&d, *id);
                            assert!(
                                b.contains("[semacquire]") && b.contains("very_distinct_name"),
                                "{b}"
                            );
                        }
                    }
                })
            })
            .collect();
        for d in dumpers {
            d.join().unwrap();
        }
        for _ in 0..N {
            sema.release();
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// The smallest goroutine stack is enough to dump oneself: the caller's
/// walk reads its own frames, the symbols are resolved on another thread.
#[test]
fn a_goroutine_on_the_smallest_stack_can_dump_itself() {
    let s = Builder::new()
        .stack_size(gort_os::stack::MIN_STACK_SIZE)
        .spawn(|| stack(false))
        .join()
        .unwrap();
    assert!(s.contains("[running]:"), "{s}");
    assert!(
        s.contains("dump::a_goroutine_on_the_smallest_stack_can_dump_itself"),
        "{s}"
    );
}
