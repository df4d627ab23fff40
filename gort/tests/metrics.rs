//! gort::metrics (issue 18, first part): Go's runtime/metrics API shape,
//! Go's names, values that move as the program does.

use gort::metrics::{all, read, Sample, Value, ValueKind};
use std::collections::HashSet;

fn read_one(name: &'static str) -> u64 {
    let mut s = [Sample::new(name)];
    read(&mut s);
    match &s[0].value {
        Value::Uint64(v) => *v,
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

/// One sample line of Prometheus' text format: name, labels, value.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let valid_name = |n: &str| {
        let mut cs = n.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let (head, value) = line.rsplit_once(' ').expect("name value");
    let (name, labels) = match head.split_once('{') {
        None => (head, Vec::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let labels = body
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label=value");
                    assert!(valid_name(k) && !k.contains(':'), "label name: {line}");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value: {line}"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            (name, labels)
        }
    };
    assert!(valid_name(name), "{line}");
    let v = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("not a float: {line}")),
    };
    (name.to_string(), labels, v)
}

/// The Prometheus text parses by the exposition format's rules (names and
/// labels, one HELP and TYPE per family before its samples, float values;
/// histograms' buckets cumulative with increasing `le`, ending at `+Inf`
/// equal to `_count`; summaries' quantiles), has Go client's names, and
/// its goroutine count tracks num_goroutine.
#[test]
fn prometheus_text_is_well_formed_and_uses_go_names() {
    let hs: Vec<_> = (0..5)
        .map(|_| gort::go(|| gort::time::sleep(std::time::Duration::from_millis(200))))
        .collect();
    let mut out = Vec::new();
    gort::metrics::write_prometheus(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut typed: std::collections::HashMap<String, String> = Default::default();
    let mut samples: std::collections::HashMap<String, f64> = Default::default();
    // Per histogram: (last le, last cumulative count).
    let mut buckets: std::collections::HashMap<String, (f64, f64)> = Default::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "summary", "histogram"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "family twice: {name}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (name, labels, v) = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|f| typed.contains_key(*f))
            .unwrap_or(&name)
            .to_string();
        let kind = typed
            .get(&family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if name.ends_with("_bucket") && kind == "histogram" {
            let le = labels.iter().find(|(k, _)| k == "le").expect("le label");
            let le: f64 = if le.1 == "+Inf" {
                f64::INFINITY
            } else {
                le.1.parse().unwrap()
            };
            let (last_le, last) = buckets
                .get(&family)
                .copied()
                .unwrap_or((f64::NEG_INFINITY, 0.0));
            assert!(le > last_le && v >= last, "buckets not cumulative: {line}");
            buckets.insert(family.clone(), (le, v));
        }
        if kind == "summary" && name == family {
            let q = labels
                .iter()
                .find(|(k, _)| k == "quantile")
                .expect("quantile label");
            assert!((0.0..=1.0).contains(&q.1.parse::<f64>().unwrap()), "{line}");
        }
        if name.ends_with("_count") && kind == "histogram" {
            let (le, last) = buckets[&family];
            assert!(
                le.is_infinite() && last == v,
                "+Inf bucket != count: {line}"
            );
        }
        if labels.is_empty() {
            samples.insert(name, v);
        }
    }
    for go_name in [
        "go_goroutines",
        "go_threads",
        "go_sched_gomaxprocs_threads",
        "go_gc_duration_seconds_count",
        "go_memstats_heap_objects",
        "go_memstats_mallocs_total",
        "go_sched_latencies_seconds_count",
        "go_sync_mutex_wait_total_seconds_total",
        "go_gc_gomemlimit_bytes",
    ] {
        assert!(samples.contains_key(go_name), "{go_name} missing:\n{text}");
    }
    assert_eq!(typed["go_sched_latencies_seconds"], "histogram");
    assert_eq!(typed["go_gc_duration_seconds"], "summary");
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

fn read_value(name: &'static str) -> Value {
    let mut s = [Sample::new(name)];
    read(&mut s);
    s[0].value.clone()
}

fn histogram_total(name: &'static str) -> u64 {
    match read_value(name) {
        Value::Float64Histogram(h) => {
            assert_eq!(h.buckets.len(), h.counts.len() + 1, "{name}");
            assert!(h.buckets.windows(2).all(|w| w[0] < w[1]), "{name}");
            h.counts.iter().sum()
        }
        v => panic!("{name}: {v:?}"),
    }
}

/// Latencies fill under a ping-pong, mutex wait grows under contention,
/// GC pauses count cycles, timers and netpoll waiters are seen.
#[test]
fn histograms_and_gort_gauges_move() {
    let lat0 = histogram_total("/sched/latencies:seconds");
    let wait0 = match read_value("/sync/mutex/wait/total:seconds") {
        Value::Float64(v) => v,
        v => panic!("{v:?}"),
    };
    let inside = gort::run(|| {
        let (tx, rx) = gort::chan::<u32>(0);
        let h = gort::go(move || {
            for i in 0..2000 {
                tx.send(i).unwrap();
            }
        });
        for _ in 0..2000 {
            rx.recv().unwrap();
        }
        h.join().unwrap();
        let m = std::sync::Arc::new(gort::sync::Mutex::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                gort::go(move || {
                    for _ in 0..200 {
                        let mut g = m.lock();
                        gort::blocking(|| std::thread::sleep(std::time::Duration::from_micros(50)));
                        *g += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // A pending timer and a netpoll waiter while we look.
        let t = gort::time::after_func(std::time::Duration::from_secs(60), || {});
        assert!(read_one("/gort/timers/pending:timers") >= 1);
        t.stop();
        let l = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let a = gort::go(move || {
            let _ = l.accept();
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while read_one("/gort/netpoll/waiters:goroutines") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no netpoll waiter seen"
            );
            gort::time::sleep(std::time::Duration::from_millis(1));
        }
        let c = gort::net::TcpStream::connect(addr).unwrap();
        a.join().unwrap();
        drop(c);
        histogram_total("/sched/latencies:seconds")
    });
    // The thread that ran `gort::run` was an M and has left: its counts
    // must stay (a cumulative metric never goes backwards).
    let after = histogram_total("/sched/latencies:seconds");
    assert!(
        after >= inside,
        "latencies went back from {inside} to {after}"
    );
    assert!(after > lat0, "no latency sampled");
    match read_value("/sync/mutex/wait/total:seconds") {
        Value::Float64(v) => assert!(v > wait0, "mutex wait {v} <= {wait0}"),
        v => panic!("{v:?}"),
    }
    let pauses0 = histogram_total("/gc/pauses:seconds");
    gort::gc::gc();
    assert!(histogram_total("/gc/pauses:seconds") > pauses0);
    assert!(read_one("/gort/memory/stacks-reserved:bytes") > 0);
    assert!(read_one("/gort/memory/goroutine-descriptors:bytes") > 0);
    assert!(
        read_one("/gort/stacks/guarded-slab:stacks")
            + read_one("/gort/stacks/guarded-mapped:stacks")
            + read_one("/gort/stacks/unguarded:stacks")
            > 0
    );
}
