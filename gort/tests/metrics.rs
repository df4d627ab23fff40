//! gort::metrics (issue 18, first part): Go's runtime/metrics API shape,
//! Go's names, values that move as the program does.

use gort::metrics::{all, read, Sample, Value, ValueKind};
use std::collections::HashSet;

fn read_one(name: &'static str) -> u64 {
    let mut s = [Sample::new(name)];
    read(&mut s);
    match s[0].value {
        Value::Uint64(v) => v,
        v => panic!("{name}: {v:?}"),
    }
}

#[test]
fn every_metric_is_described_once_sorted_and_readable() {
    let ds = all();
    assert!(
        ds.windows(2).all(|w| w[0].name < w[1].name),
        "not sorted by name"
    );
    let names: HashSet<_> = ds.iter().map(|d| d.name).collect();
    assert_eq!(names.len(), ds.len());
    for d in &ds {
        // Go's name grammar: /path:unit.
        assert!(
            d.name.starts_with('/') && d.name.contains(':'),
            "{}",
            d.name
        );
        assert!(!d.description.is_empty());
    }
    for name in [
        "/sched/goroutines:goroutines",
        "/sched/goroutines-created:goroutines",
        "/sched/gomaxprocs:threads",
        "/sched/threads/total:threads",
        "/gc/cycles/total:gc-cycles",
        "/gc/heap/objects:objects",
        "/gc/heap/allocs:objects",
        "/gc/heap/goal:bytes",
        "/gc/gogc:percent",
        "/gc/gomemlimit:bytes",
    ] {
        assert!(names.contains(name), "Go's {name} is missing");
    }
    let mut samples: Vec<Sample> = ds.iter().map(|d| Sample::new(d.name)).collect();
    read(&mut samples);
    for (s, d) in samples.iter().zip(&ds) {
        assert_eq!(s.value.kind(), d.kind, "{}", d.name);
    }
}

#[test]
fn an_unknown_name_reads_as_bad() {
    let mut s = [
        Sample::new("/no/such:metric"),
        Sample::new(String::from("/sched/gomaxprocs:threads")),
    ];
    read(&mut s);
    assert_eq!(s[0].value, Value::Bad);
    assert_eq!(s[0].value.kind(), ValueKind::Bad);
    assert_eq!(s[1].value, Value::Uint64(gort::gomaxprocs(0) as u64));
}

#[test]
fn scheduler_metrics_follow_the_program() {
    let created0 = read_one("/sched/goroutines-created:goroutines");
    let (tx, rx) = gort::chan::<()>(0);
    let hs: Vec<_> = (0..20)
        .map(|_| {
            let rx = rx.clone();
            gort::go(move || {
                let _ = rx.recv();
            })
        })
        .collect();
    assert!(read_one("/sched/goroutines-created:goroutines") >= created0 + 20);
    // 20 parked goroutines are live (other tests may add their own).
    assert!(read_one("/sched/goroutines:goroutines") >= 20);
    assert!(read_one("/sched/threads/total:threads") >= 2); // an M and sysmon
                                                            // They are parked once they reach the receive: the split says so.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_one("/sched/goroutines/waiting:goroutines") < 20 {
        assert!(
            std::time::Instant::now() < end,
            "20 parked goroutines never read as waiting"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The caller is a plain thread: a goroutine reads itself as running.
    let running = gort::go(|| read_one("/sched/goroutines/running:goroutines"));
    assert!(running.join().unwrap() >= 1);
    drop(tx);
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
fn gc_metrics_follow_the_collector() {
    let cycles0 = read_one("/gc/cycles/total:gc-cycles");
    let forced0 = read_one("/gc/cycles/forced:gc-cycles");
    let allocs0 = read_one("/gc/heap/allocs:objects");
    let objs: Vec<_> = (0..100).map(gort::gc::Gc::new).collect();
    assert!(read_one("/gc/heap/allocs:objects") >= allocs0 + 100);
    assert!(read_one("/gc/heap/objects:objects") >= 100);
    drop(objs);
    gort::gc::gc();
    assert!(read_one("/gc/cycles/total:gc-cycles") > cycles0);
    assert!(read_one("/gc/cycles/forced:gc-cycles") > forced0);
    assert!(read_one("/gc/heap/frees:objects") >= 100);
}

/// The Prometheus text parses by the exposition format's rules (names,
/// one HELP and TYPE per family before its samples, float values), has Go
/// client's names, and its goroutine count tracks num_goroutine.
#[test]
fn prometheus_text_is_well_formed_and_uses_go_names() {
    let hs: Vec<_> = (0..5)
        .map(|_| gort::go(|| gort::time::sleep(std::time::Duration::from_millis(200))))
        .collect();
    let mut out = Vec::new();
    gort::metrics::write_prometheus(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let valid_name = |n: &str| {
        let mut cs = n.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: std::collections::HashMap<String, String> = Default::default();
    let mut samples: std::collections::HashMap<String, f64> = Default::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "family twice: {name}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, value) = line.split_once(' ').expect("name value");
        assert!(valid_name(name), "{line}");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a float: {line}"));
        let family = name.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(
            typed.contains_key(name) || typed.contains_key(family),
            "sample before its TYPE: {line}"
        );
        samples.insert(name.to_string(), v);
    }
    for go_name in [
        "go_goroutines",
        "go_threads",
        "go_sched_gomaxprocs_threads",
        "go_gc_duration_seconds_count",
        "go_memstats_heap_objects",
        "go_memstats_mallocs_total",
    ] {
        assert!(samples.contains_key(go_name), "{go_name} missing:\n{text}");
    }
    assert!(samples["go_goroutines"] >= 5.0);
    assert_eq!(
        samples["go_sched_gomaxprocs_threads"],
        gort::gomaxprocs(0) as f64
    );
    assert!(samples.contains_key("gort_sched_idle_procs"), "{text}");
    assert!(
        samples.contains_key("gort_gc_finalizers_run_total"),
        "{text}"
    );
    for h in hs {
        h.join().unwrap();
    }
}
