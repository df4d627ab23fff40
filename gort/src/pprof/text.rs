//! Go's legacy text profiles (net/http/pprof's `?debug=1`), after
//! runtime/pprof's `printCountProfile`, `writeProfileInternal` and
//! `writeHeapInternal`.
//!
//! Each record is a header line ending in `@` and the stack's addresses,
//! then a `#` line per source frame (the address looked up, the function,
//! `file:line`) and a blank line. Two departures from Go: the function is
//! not followed by `+0x<offset>` (the symboliser gives no function entry
//! address), and columns are separated by one tab where Go's tabwriter
//! may pad with more. pprof's legacy parsers read only the header lines.

use super::symbols::{self, Pc};
use super::{on_big_stack, Profile};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

/// Which of Go's text layouts to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// A count profile (`goroutine`): `<type> profile: total N`, then
    /// `count @ addresses` per distinct stack and labels, most first.
    /// Counts are each sample's first value.
    Count,
    /// The block profile: `--- contention:`, then `delay count @
    /// addresses` per sample, longest delay first. Values are
    /// (contentions, delay in ns); `cycles/second` is given as 10^9, so
    /// Go's "cycles" are the nanoseconds.
    Block,
    /// The mutex profile: as [`TextKind::Block`] under `--- mutex:`, with
    /// `sampling period=` the mutex profile fraction.
    Mutex {
        /// The fraction in force (Go's `SetMutexProfileFraction(-1)`).
        sampling_period: i64,
    },
    /// The heap profile: `heap profile: inuse_objects: inuse_bytes
    /// [alloc_objects: alloc_bytes] @ heap/<2*period>`, then one such
    /// line per sample, most bytes in use first. Values are in the heap
    /// profile's order: alloc_objects, alloc_space, inuse_objects,
    /// inuse_space.
    Heap,
}

/// Writes `p` as Go's `debug=1` text of the given kind. Symbolises on a
/// helper thread (see [`encode`](super::encode)).
pub fn write_text(p: &Profile, kind: TextKind, w: &mut impl io::Write) -> io::Result<()> {
    let text = on_big_stack(|| render(p, kind));
    w.write_all(text.as_bytes())
}

fn render(p: &Profile, kind: TextKind) -> String {
    let mut out = String::new();
    match kind {
        TextKind::Count => count_text(p, &mut out),
        TextKind::Block => contention_text(p, "contention", None, &mut out),
        TextKind::Mutex { sampling_period } => {
            contention_text(p, "mutex", Some(sampling_period), &mut out)
        }
        TextKind::Heap => heap_text(p, &mut out),
    }
    out
}

/// A sample's value `i`, 0 if it has fewer.
fn value(values: &[i64], i: usize) -> i64 {
    values.get(i).copied().unwrap_or(0)
}

/// `@ 0x... 0x...`: the addresses as recorded.
fn at_addresses(pcs: &[Pc]) -> String {
    let mut s = String::from("@");
    for pc in pcs {
        let _ = write!(s, " {:#x}", pc.addr);
    }
    s
}

/// One `#` line per source frame, then the blank line ending a record
/// (Go's `printStackRecord`).
fn frame_lines(pcs: &[Pc], out: &mut String) {
    for &pc in pcs {
        for f in pc.frames().iter() {
            let _ = match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    writeln!(out, "#\t{:#x}\t{}\t{file}:{line}", pc.lookup(), f.function)
                }
                _ => writeln!(out, "#\t{:#x}\t{}", pc.lookup(), f.function),
            };
        }
    }
    out.push('\n');
}

/// Go's `labelMap.String`: `{"k":"v", ...}`, keys sorted.
fn labels_text(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = labels.iter().collect();
    sorted.sort();
    let pairs: Vec<String> = sorted.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn count_text(p: &Profile, out: &mut String) {
    let name = p.sample_types.first().map_or("", |(t, _)| t.as_str());
    // Samples with the same stack and labels count together: the key is
    // the header line's text, as in Go.
    let mut counts: HashMap<String, (i64, Vec<Pc>)> = HashMap::new();
    let mut total = 0;
    for s in &p.samples {
        let pcs = symbols::stack(p, s);
        let mut key = at_addresses(&pcs);
        if !s.labels.is_empty() {
            let _ = write!(key, "\n# labels: {}", labels_text(&s.labels));
        }
        let n = value(&s.values, 0);
        total += n;
        counts.entry(key).or_insert((0, pcs)).0 += n;
    }
    let mut records: Vec<_> = counts.into_iter().collect();
    // Go's keysByCount: most first, then by key.
    records.sort_by(|(ka, (a, _)), (kb, (b, _))| b.cmp(a).then_with(|| ka.cmp(kb)));
    let _ = writeln!(out, "{name} profile: total {total}");
    for (key, (n, pcs)) in records {
        let _ = writeln!(out, "{n} {key}");
        frame_lines(&pcs, out);
    }
}

fn contention_text(p: &Profile, name: &str, sampling_period: Option<i64>, out: &mut String) {
    let _ = writeln!(out, "--- {name}:\ncycles/second=1000000000");
    if let Some(n) = sampling_period {
        let _ = writeln!(out, "sampling period={n}");
    }
    let mut samples: Vec<_> = p.samples.iter().collect();
    samples.sort_by_key(|s| std::cmp::Reverse(value(&s.values, 1)));
    for s in samples {
        let pcs = symbols::stack(p, s);
        let (count, delay) = (value(&s.values, 0), value(&s.values, 1));
        let _ = writeln!(out, "{delay} {count} {}", at_addresses(&pcs));
        frame_lines(&pcs, out);
    }
}

fn heap_text(p: &Profile, out: &mut String) {
    // inuse_objects: inuse_space [alloc_objects: alloc_space], Go's order.
    let line = |v: &[i64]| {
        format!(
            "{}: {} [{}: {}]",
            value(v, 2),
            value(v, 3),
            value(v, 0),
            value(v, 1)
        )
    };
    let mut totals = [0i64; 4];
    for s in &p.samples {
        for (t, v) in totals.iter_mut().zip(&s.values) {
            *t += v;
        }
    }
    // Go's writeHeapInternal: pprof reads a header with in-use bytes equal
    // to allocated bytes as a 2-column profile, so they never are.
    if totals[3] == totals[1] {
        totals[1] += 1;
    }
    let _ = writeln!(
        out,
        "heap profile: {} @ heap/{}",
        line(&totals),
        2 * p.period
    );
    let mut samples: Vec<_> = p.samples.iter().collect();
    samples.sort_by_key(|s| std::cmp::Reverse(value(&s.values, 3)));
    for s in samples {
        let pcs = symbols::stack(p, s);
        let _ = writeln!(out, "{} {}", line(&s.values), at_addresses(&pcs));
        frame_lines(&pcs, out);
    }
}
