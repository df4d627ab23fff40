//! The real profiles, end to end: a workload runs, its profile is encoded
//! as Go writes it, read back by the crate's decoder (always) and by
//! `go tool pprof -top` (when a Go toolchain is present), and the function
//! that did the thing dominates: blocking on a channel (block), holding a
//! contended Mutex (mutex), spinning (CPU, with `pprof.Do`-style labels),
//! allocating (heap); parked goroutines are counted (goroutine).

use gort::pprof::decode::decode;
use gort::pprof::{encode, Profile};
use gort::sched::prof;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{go_pprof, go_tool};

/// The share of sample value `index` whose stack contains `function`.
fn share(p: &Profile, index: usize, function: &str) -> (f64, Vec<Vec<String>>) {
    let d = decode(&encode(p)).expect("decodes");
    let total: i64 = d.profile.samples.iter().map(|s| s.values[index]).sum();
    let mine: i64 = d
        .profile
        .samples
        .iter()
        .zip(&d.stacks)
        .filter(|(_, st)| st.iter().any(|f| f.contains(function)))
        .map(|(s, _)| s.values[index])
        .sum();
    (mine as f64 / total.max(1) as f64, d.stacks)
}

/// Writes the profile and checks that `go tool pprof -top` names
/// `function` (skipped without Go).
fn go_top_names(p: &Profile, name: &str, function: &str) {
    let Some(go) = go_tool() else {
        eprintln!("skipping go tool pprof: no Go toolchain ($GO or go on PATH)");
        return;
    };
    let path = std::env::temp_dir().join(format!("gort-{name}-{}.pb.gz", std::process::id()));
    std::fs::write(&path, encode(p)).unwrap();
    let top = go_pprof(&go, &["-top", "-cum"], path.as_os_str());
    let _ = std::fs::remove_file(&path);
    assert!(
        top.contains(function),
        "go tool pprof -top lacks {function}:\n{top}"
    );
}

#[inline(never)]
fn blocks_on_a_channel(rx: &gort::Receiver<u32>) -> u32 {
    let v = rx.recv().unwrap();
    std::hint::black_box(v)
}

#[test]
fn a_function_blocked_on_a_channel_dominates_the_block_profile() {
    prof::set_block_profile_rate(1);
    gort::run(|| {
        let (tx, rx) = gort::chan::<u32>(0);
        let h = gort::go(move || {
            for i in 0..5 {
                gort::time::sleep(Duration::from_millis(15));
                tx.send(i).unwrap();
            }
        });
        for _ in 0..5 {
            blocks_on_a_channel(&rx);
        }
        h.join().unwrap();
    });
    let p = gort::pprof::block_profile();
    let (s, stacks) = share(&p, 1, "blocks_on_a_channel");
    assert!(
        s > 0.5,
        "blocks_on_a_channel has {s:.2} of the delay: {stacks:#?}"
    );
    // The leaf is the channel operation (runtime frames trimmed).
    let leaf = stacks
        .iter()
        .find(|st| st.iter().any(|f| f.contains("blocks_on_a_channel")))
        .and_then(|st| st.first().cloned())
        .unwrap();
    assert!(leaf.starts_with("gort_std::chan"), "leaf {leaf}");
    go_top_names(&p, "block", "blocks_on_a_channel");
}

#[inline(never)]
fn holds_the_lock_too_long(m: &gort::sync::Mutex<u64>) {
    let mut g = m.lock();
    gort::blocking(|| std::thread::sleep(Duration::from_millis(5)));
    *g += 1;
    drop(g);
    std::hint::black_box(m);
}

#[test]
fn the_lock_holder_dominates_the_mutex_profile() {
    prof::set_mutex_profile_fraction(1);
    gort::run(|| {
        let m = Arc::new(gort::sync::Mutex::new(0u64));
        let wg = Arc::new(gort::sync::WaitGroup::new());
        for _ in 0..4 {
            let (m, wg) = (m.clone(), wg.clone());
            wg.add(1);
            gort::go(move || {
                for _ in 0..5 {
                    holds_the_lock_too_long(&m);
                }
                wg.done();
            });
        }
        wg.wait();
    });
    let p = gort::pprof::mutex_profile();
    let (s, stacks) = share(&p, 1, "holds_the_lock_too_long");
    assert!(
        s > 0.5,
        "holds_the_lock_too_long has {s:.2} of the delay: {stacks:#?}"
    );
    go_top_names(&p, "mutex", "holds_the_lock_too_long");
}

#[inline(never)]
fn spins_hot(until: std::time::Instant) -> u64 {
    let mut x = 1u64;
    while std::time::Instant::now() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

/// The spinner relabels itself every 50 ms (each `with_labels` installs a
/// new set and retires the old one mid-profile), and a second profile is
/// refused while the first runs -- without costing the first its retired
/// labels (a refused start once ended the first one's label window).
#[test]
fn a_spinning_function_dominates_the_cpu_profile_with_its_labels() {
    let p = gort::run(|| {
        let until = std::time::Instant::now() + Duration::from_millis(700);
        let h = gort::go(move || {
            let mut x = 0;
            while std::time::Instant::now() < until {
                let slice = (std::time::Instant::now() + Duration::from_millis(50)).min(until);
                x ^= prof::with_labels(&[("job", "spin")], || spins_hot(slice));
            }
            x
        });
        let second = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            gort::pprof::cpu_profile(Duration::from_millis(10))
        });
        let p = gort::pprof::cpu_profile(Duration::from_millis(600)).unwrap();
        let refused = second.join().unwrap();
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("already in use")),
            "a second profile at once: {:?}",
            refused.map(|p| p.samples.len())
        );
        h.join().unwrap();
        p
    });
    assert!(p.duration_nanos >= 600_000_000);
    let (s, stacks) = share(&p, 0, "spins_hot");
    assert!(s > 0.5, "spins_hot has {s:.2} of the samples: {stacks:#?}");
    let d = decode(&encode(&p)).unwrap();
    let (mut labelled, mut spinning) = (0, 0);
    for (s, st) in d.profile.samples.iter().zip(&d.stacks) {
        if st.iter().any(|f| f.contains("spins_hot")) {
            spinning += s.values[0];
            if s.labels.iter().any(|(k, v)| k == "job" && v == "spin") {
                labelled += s.values[0];
            }
        }
    }
    assert_eq!(
        labelled, spinning,
        "every spinner sample carries its labels"
    );
    go_top_names(&p, "cpu", "spins_hot");
}

#[test]
fn cpu_profile_arguments_are_checked() {
    let refused = gort::sched::prof::cpu_profile(Duration::from_millis(50), 0);
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let forever = gort::sched::prof::cpu_profile(Duration::MAX, 100);
    assert_eq!(
        forever.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[derive(gort::gc::Trace)]
struct Blob {
    _bytes: [u64; 64],
}

#[inline(never)]
fn allocates_blobs(n: usize) -> Vec<gort::gc::Gc<Blob>> {
    (0..n)
        .map(|_| gort::gc::Gc::new(Blob { _bytes: [1; 64] }))
        .collect()
}

#[test]
fn an_allocating_function_shows_in_the_heap_profile() {
    gort::gc::set_mem_profile_rate(1);
    let kept = gort::run(|| {
        let kept = allocates_blobs(200);
        drop(allocates_blobs(100)); // allocated, then freed
        kept
    });
    let p = gort::pprof::heap_profile();
    let d = decode(&encode(&p)).unwrap();
    let mut alloc = 0;
    let mut inuse = 0;
    for (s, st) in d.profile.samples.iter().zip(&d.stacks) {
        if st.iter().any(|f| f.contains("allocates_blobs")) {
            alloc += s.values[0];
            inuse += s.values[2];
        }
    }
    assert!(alloc >= 300, "alloc_objects {alloc}");
    assert!((200..300).contains(&inuse), "inuse_objects {inuse}");
    go_top_names(&p, "heap", "allocates_blobs");
    // Go's debug=1 text holds the counts as sampled (pprof scales them by
    // the header's rate); with rate 1 that is every object.
    let mut text = Vec::new();
    gort::pprof::write_text(
        &gort::pprof::heap_profile_unscaled(),
        gort::pprof::TextKind::Heap,
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    let head = text.lines().next().unwrap();
    assert!(
        head.starts_with("heap profile: ") && head.ends_with("@ heap/2"),
        "{head}"
    );
    let entry = text
        .lines()
        .position(|l| l.contains("allocates_blobs"))
        .and_then(|i| text.lines().take(i).filter(|l| l.contains(" @ 0x")).last())
        .unwrap_or_else(|| panic!("no allocates_blobs record:\n{text}"));
    let allocated: i64 = entry
        .split('[')
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{entry}"));
    assert!((1..=300).contains(&allocated), "{entry}");
    drop(kept);
}

#[inline(never)]
fn waits_for_the_end(rx: gort::Receiver<()>) {
    let _ = rx.recv();
}

#[test]
fn the_goroutine_profile_counts_parked_goroutines() {
    gort::run(|| {
        let (tx, rx) = gort::chan::<()>(0);
        let hs: Vec<_> = (0..10)
            .map(|_| {
                let rx = rx.clone();
                gort::go(move || waits_for_the_end(rx))
            })
            .collect();
        // (Other tests' goroutines come and go: wait for ours to park.)
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (p, n) = loop {
            let p = gort::pprof::goroutine_profile();
            let d = decode(&encode(&p)).unwrap();
            let n: i64 = d
                .profile
                .samples
                .iter()
                .zip(&d.stacks)
                .filter(|(_, st)| st.iter().any(|f| f.contains("waits_for_the_end")))
                .map(|(s, _)| s.values[0])
                .sum();
            if n >= 10 || std::time::Instant::now() > deadline {
                break (p, n);
            }
            gort::time::sleep(Duration::from_millis(5));
        };
        assert_eq!(n, 10);
        go_top_names(&p, "goroutine", "waits_for_the_end");
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
    });
}
