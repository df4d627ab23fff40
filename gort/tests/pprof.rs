//! gort::pprof: profiles encoded as pprof's gzipped protobuf, read back
//! by the crate's own decoder always and by `go tool pprof` when a Go
//! toolchain is present, and Go's `debug=1` text.

use gort::pprof::decode::{decode, gunzip};
use gort::pprof::{encode, write_text, Profile, ProfileSample, TextKind};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{go_pprof, go_tool};

/// A stack of real return addresses: `pcs[0]` returns into
/// `leaf_frame`, `pcs[1]` into `middle_frame`, then the test's callers.
#[inline(never)]
fn leaf_frame() -> Vec<usize> {
    let mut pcs = Vec::new();
    gort::os::unwind::backtrace_here(&mut pcs, 32);
    std::hint::black_box(pcs)
}

#[inline(never)]
fn middle_frame() -> Vec<usize> {
    let pcs = leaf_frame();
    // Used after the call, so the call is no tail call (a jump leaves no
    // return address in this function).
    std::hint::black_box(&pcs);
    pcs
}

/// As `leaf_frame`, with a body of its own: identical functions may be
/// folded into one by the optimiser.
#[inline(never)]
fn other_leaf() -> Vec<usize> {
    let mut pcs = Vec::new();
    gort::os::unwind::backtrace_here(&mut pcs, 33);
    std::hint::black_box(pcs)
}

fn sample(values: Vec<i64>, pcs: Vec<usize>) -> ProfileSample {
    ProfileSample {
        values,
        pcs,
        ..ProfileSample::default()
    }
}

/// A block-profile-shaped profile of two stacks from this binary.
fn synthetic() -> Profile {
    let mut p = Profile::new(
        &[("contentions", "count"), ("delay", "nanoseconds")],
        ("contentions", "count"),
        1,
    );
    let mut a = sample(vec![3, 3_000_000], middle_frame());
    a.labels.push(("worker".into(), "a".into()));
    a.num_labels.push(("bytes".into(), 4096, "bytes".into()));
    p.samples.push(a);
    p.samples.push(sample(vec![1, 500], other_leaf()));
    p.comments.push("synthetic".into());
    p.default_sample_type = Some("delay".into());
    p
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("gort-pprof-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn round_trip_keeps_values_labels_and_function_names() {
    let p = synthetic();
    let d = decode(&encode(&p)).unwrap();
    let (stacks, d) = (&d.stacks, &d.profile);
    let types = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        d.sample_types,
        types(&[("contentions", "count"), ("delay", "nanoseconds")])
    );
    assert_eq!(d.period_type, Some(("contentions".into(), "count".into())));
    assert_eq!((d.period, d.time_nanos), (1, p.time_nanos));
    assert_eq!(d.default_sample_type.as_deref(), Some("delay"));
    assert_eq!(d.comments, ["synthetic"]);
    assert_eq!(d.samples.len(), 2);
    let (a, b) = (&d.samples[0], &d.samples[1]);
    let (a_functions, b_functions) = (&stacks[0], &stacks[1]);
    assert_eq!(a.values, [3, 3_000_000]);
    assert_eq!(b.values, [1, 500]);
    assert_eq!(a.labels, [("worker".to_string(), "a".to_string())]);
    assert_eq!(
        a.num_labels,
        [("bytes".to_string(), 4096, "bytes".to_string())]
    );
    // Locations keep the recorded (return) addresses, but for the zero an
    // unwinder may leave at the end...
    let pcs = p.samples[0].pcs.iter().filter(|&&a| a != 0);
    assert!(a.pcs.iter().eq(pcs));
    // ...and name the calls' functions, innermost first.
    assert!(a_functions[0].ends_with("leaf_frame"), "{:?}", a_functions);
    let middle = a_functions.iter().position(|f| f.ends_with("middle_frame"));
    assert_eq!(middle, Some(1), "{:?}", a_functions);
    assert!(b_functions[0].ends_with("other_leaf"), "{:?}", b_functions);
    let test_fn = "round_trip_keeps_values_labels_and_function_names";
    assert!(a_functions.iter().any(|f| f.ends_with(test_fn)));
}

#[test]
fn string_table_and_mappings_follow_profile_proto() {
    let d = decode(&encode(&synthetic())).unwrap();
    assert_eq!(d.strings[0], "");
    let mut seen = std::collections::HashSet::new();
    assert!(
        d.strings.iter().all(|s| seen.insert(s)),
        "duplicate strings"
    );
    // The main executable's mapping comes first, marked symbolised.
    let exe = std::env::current_exe().unwrap().display().to_string();
    assert_eq!(d.mappings[0].file, exe);
    assert!(d
        .mappings
        .iter()
        .all(|m| m.has_functions && m.start < m.limit));
    let leaf = d.profile.samples[0].pcs[0] as u64;
    assert!((d.mappings[0].start..d.mappings[0].limit).contains(&leaf));
}

#[test]
fn output_is_gzip_with_a_valid_trailer() {
    let gz = encode(&synthetic());
    assert_eq!(&gz[..3], [0x1f, 0x8b, 8]);
    assert!(!gunzip(&gz).unwrap().is_empty());
    if !Path::new("/usr/bin/gzip").exists() && !Path::new("/bin/gzip").exists() {
        eprintln!("skipping `gzip -t`: no gzip binary");
        return;
    }
    let path = temp_file("gzip-t.pb.gz", &gz);
    let status = Command::new("gzip").arg("-t").arg(&path).status().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(status.success(), "gzip -t rejected the profile");
}

#[test]
fn empty_profile_encodes() {
    let p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
    let d = decode(&encode(&p)).unwrap();
    assert!(d.profile.samples.is_empty());
    assert_eq!(d.profile.sample_types, p.sample_types);
}

/// Runs `f` on a thread with a big stack: symbolising wants one the
/// first time.
fn on_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let t = std::thread::Builder::new().stack_size(8 << 20);
    t.spawn(f).unwrap().join().unwrap()
}

/// A return address whose frames are all gort's scheduler or
/// corosensei's (trim_runtime drops it from a stack's top): the outer
/// frames of a goroutine's stack are theirs, in any build.
fn runtime_pc() -> usize {
    let pcs = gort::run(|| {
        let big = gort::sched::Builder::new().stack_size(4 << 20);
        big.spawn(|| {
            let mut pcs = Vec::new();
            gort::os::unwind::backtrace_here(&mut pcs, 64);
            pcs
        })
        .join()
        .unwrap()
    });
    let runtime = |f: &gort::os::unwind::Frame| {
        ["gort_sched::", "<gort_sched", "corosensei::", "<corosensei"]
            .iter()
            .any(|p| f.function.starts_with(p))
    };
    on_big_stack(move || {
        let all_runtime =
            |&&pc: &&usize| pc != 0 && gort::os::unwind::symbolize(pc - 1).iter().all(runtime);
        *pcs.iter().find(all_runtime).expect("no runtime frame")
    })
}

#[test]
fn trim_runtime_drops_only_leading_runtime_addresses() {
    let runtime = runtime_pc();
    let user = middle_frame();
    let mut pcs = vec![runtime];
    pcs.extend(&user);
    let mut p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
    p.samples.push(sample(vec![1], pcs));
    p.samples.push(sample(vec![1], vec![runtime]));
    let untrimmed = decode(&encode(&p)).unwrap();
    assert_eq!(untrimmed.profile.samples[0].pcs[0], runtime);
    p.trim_runtime = true;
    let d = decode(&encode(&p)).unwrap();
    assert!(d.stacks[0][0].ends_with("leaf_frame"), "{:?}", d.stacks[0]);
    assert_eq!(d.profile.samples[0].pcs[0], user[0]);
    // A stack of runtime frames only stays whole.
    assert_eq!(d.profile.samples[1].pcs, [runtime]);
}

#[test]
fn encodes_from_a_goroutine() {
    let p = synthetic();
    let gz = gort::run(move || gort::go(move || encode(&p)).join().unwrap());
    assert!(decode(&gz).unwrap().stacks[0][0].ends_with("leaf_frame"));
}

fn text(p: &Profile, kind: TextKind) -> String {
    let mut out = Vec::new();
    write_text(p, kind, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn count_text_groups_stacks_most_first() {
    let stack = middle_frame();
    let mut p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
    p.samples.push(sample(vec![1], other_leaf()));
    p.samples.push(sample(vec![2], stack.clone()));
    p.samples.push(sample(vec![1], stack.clone()));
    let t = text(&p, TextKind::Count);
    let mut lines = t.lines();
    assert_eq!(lines.next(), Some("goroutine profile: total 4"));
    let head = format!("3 @ {:#x} {:#x}", stack[0], stack[1]);
    assert!(lines.next().unwrap().starts_with(&head), "{t}");
    let frame = lines.next().unwrap();
    assert!(
        frame.starts_with(&format!("#\t{:#x}\t", stack[0] - 1)),
        "{frame}"
    );
    assert!(
        frame.contains("leaf_frame\t") && frame.contains("pprof.rs:"),
        "{frame}"
    );
    assert!(t.contains("\n\n1 @ "), "{t}");
}

#[test]
fn contention_and_heap_text_headers() {
    let p = synthetic();
    let block = text(&p, TextKind::Block);
    assert!(block.starts_with("--- contention:\ncycles/second=1000000000\n3000000 3 @ 0x"));
    assert!(block.contains("\n500 1 @ 0x"), "{block}");
    let mutex = text(&p, TextKind::Mutex { sampling_period: 5 });
    assert!(mutex.starts_with("--- mutex:\ncycles/second=1000000000\nsampling period=5\n"));
    let mut heap = Profile::new(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes"),
        524288,
    );
    heap.samples
        .push(sample(vec![4, 400, 1, 100], middle_frame()));
    let t = text(&heap, TextKind::Heap);
    assert!(
        t.starts_with("heap profile: 1: 100 [4: 400] @ heap/1048576\n1: 100 [4: 400] @ 0x"),
        "{t}"
    );
}

#[test]
fn go_tool_pprof_reads_the_profile() {
    let Some(go) = go_tool() else {
        eprintln!("skipping: no Go toolchain ($GO unset and no `go` on PATH)");
        return;
    };
    let path = temp_file("go-tool.pb.gz", &encode(&synthetic()));
    let raw = go_pprof(&go, &["-raw"], path.as_os_str());
    let top = go_pprof(&go, &["-top", "-sample_index=delay"], path.as_os_str());
    let _ = std::fs::remove_file(&path);
    assert!(raw.contains("contentions/count delay/nanoseconds"), "{raw}");
    assert!(
        raw.contains("leaf_frame") && raw.contains("other_leaf"),
        "{raw}"
    );
    assert!(raw.contains("worker:[a]"), "{raw}");
    assert!(
        !raw.contains(" 0x0 "),
        "a zero address made a location: {raw}"
    );
    // The heavier stack's leaf leads the flat column.
    let first_row = top
        .lines()
        .find(|l| l.contains("leaf_frame") || l.contains("other_leaf"));
    assert!(first_row.is_some_and(|l| l.contains("leaf_frame")), "{top}");
}
