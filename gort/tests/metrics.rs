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
