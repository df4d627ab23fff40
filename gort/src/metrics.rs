//! Runtime metrics, after Go's runtime/metrics: [`all`] describes every
//! supported metric, [`read`] fills samples by name. Names are Go's wherever
//! gort has the concept (so dashboards written for Go read them unchanged);
//! gort's own live under `/gort/`.
//!
//! ```
//! let mut samples = [
//!     gort::metrics::Sample::new("/sched/goroutines:goroutines"),
//!     gort::metrics::Sample::new("/gc/cycles/total:gc-cycles"),
//!     gort::metrics::Sample::new("/no/such:metric"),
//! ];
//! gort::metrics::read(&mut samples);
//! assert!(matches!(samples[0].value, gort::metrics::Value::Uint64(_)));
//! assert_eq!(samples[2].value, gort::metrics::Value::Bad); // unknown: Go's KindBad
//! ```
//!
//! Each value is read on its own (no stop-the-world), so values of one
//! [`read`] need not add up exactly. Reading does not allocate for scalar
//! metrics; it takes one scheduler snapshot and one GC snapshot per call,
//! and only if a sample asks for one.

use std::borrow::Cow;

/// The kind of a metric's value (Go's `metrics.ValueKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// Not a supported metric (the sample's name is unknown).
    Bad,
    /// An unsigned integer.
    Uint64,
    /// A float.
    Float64,
}

/// A metric's value (Go's `metrics.Value`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// The sample named no supported metric.
    Bad,
    /// An unsigned integer value.
    Uint64(u64),
    /// A float value.
    Float64(f64),
}

impl Value {
    /// The value's kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Bad => ValueKind::Bad,
            Value::Uint64(_) => ValueKind::Uint64,
            Value::Float64(_) => ValueKind::Float64,
        }
    }
}

/// One supported metric (Go's `metrics.Description`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Description {
    /// The full name, `/path/name:unit`.
    pub name: &'static str,
    /// What it measures, in a sentence or two.
    pub description: &'static str,
    /// Its value's kind.
    pub kind: ValueKind,
    /// Whether it only ever grows (a count since start).
    pub cumulative: bool,
}

/// A metric to read: a name in, a value out (Go's `metrics.Sample`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric's full name.
    pub name: Cow<'static, str>,
    /// Filled by [`read`]; [`Value::Bad`] for an unknown name.
    pub value: Value,
}

impl Sample {
    /// A sample of the metric `name`, not read yet.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Sample {
        Sample {
            name: name.into(),
            value: Value::Bad,
        }
    }
}

/// The snapshots one [`read`] takes, each at most once.
#[derive(Default)]
struct Snap {
    sched: Option<gort_sched::SchedStats>,
    gc: Option<gort_gc::MemStats>,
}

impl Snap {
    fn sched(&mut self) -> &gort_sched::SchedStats {
        self.sched.get_or_insert_with(gort_sched::sched_stats)
    }
    fn gc(&mut self) -> &gort_gc::MemStats {
        self.gc.get_or_insert_with(gort_gc::read_mem_stats)
    }
}

/// One row of the table: its description and how to read it.
struct Metric {
    desc: Description,
    read: fn(&mut Snap) -> Value,
}

const fn scalar(
    name: &'static str,
    description: &'static str,
    cumulative: bool,
    read: fn(&mut Snap) -> Value,
) -> Metric {
    Metric {
        desc: Description {
            name,
            description,
            kind: ValueKind::Uint64,
            cumulative,
        },
        read,
    }
}

fn u(v: impl TryInto<u64>) -> Value {
    Value::Uint64(v.try_into().unwrap_or(u64::MAX))
}

/// Every supported metric, sorted by name (as Go's `metrics.All`).
static METRICS: &[Metric] = &[
    scalar(
        "/gc/cycles/forced:gc-cycles",
        "Count of completed GC cycles forced by the application (gc()).",
        true,
        |s| u(s.gc().num_forced_gc),
    ),
    scalar(
        "/gc/cycles/total:gc-cycles",
        "Count of all completed GC cycles.",
        true,
        |s| u(s.gc().num_gc),
    ),
    scalar(
        "/gc/gogc:percent",
        "Heap size target percentage configured by the user, otherwise 100. Set by the GOGC \
         environment variable and gort::gc::set_gc_percent. As in Go, GOGC=off (-1) reads as \
         the two's complement, 18446744073709551615.",
        false,
        |s| Value::Uint64(s.gc().gc_percent as u64),
    ),
    scalar(
        "/gc/gomemlimit:bytes",
        "Go runtime memory limit configured by the user, otherwise math.MaxInt64. Set by the \
         GOMEMLIMIT environment variable and gort::gc::set_memory_limit.",
        false,
        |s| u(s.gc().memory_limit),
    ),
    scalar(
        "/gc/heap/allocs:objects",
        "Cumulative count of Gc allocations.",
        true,
        |s| u(s.gc().mallocs),
    ),
    scalar(
        "/gc/heap/frees:objects",
        "Cumulative count of Gc objects freed (by reference counts or the cycle collector).",
        true,
        |s| u(s.gc().frees),
    ),
    scalar(
        "/gc/heap/goal:bytes",
        "Heap size target for the end of the GC cycle.",
        false,
        |s| u(s.gc().next_gc),
    ),
    scalar(
        "/gc/heap/objects:objects",
        "Number of Gc objects live or not yet swept.",
        false,
        |s| u(s.gc().heap_objects),
    ),
    scalar(
        "/gort/gc/cleanups-run:cleanups",
        "Cumulative count of cleanup functions (add_cleanup) run.",
        true,
        |s| u(s.gc().cleanups_run),
    ),
    scalar(
        "/gort/gc/finalizers-run:finalizers",
        "Cumulative count of finalizers run.",
        true,
        |s| u(s.gc().finalizers_run),
    ),
    scalar(
        "/gort/sched/blocking-calls:calls",
        "gort::blocking calls queued or running on the blocking pool.",
        false,
        |s| u(s.sched().blocking_calls),
    ),
    scalar(
        "/gort/sched/blocking-pool:threads",
        "Threads of the blocking pool.",
        false,
        |s| u(s.sched().blocking_pool_threads),
    ),
    scalar(
        "/gort/sched/global-runq:goroutines",
        "Goroutines in the global run queue.",
        false,
        |s| u(s.sched().global_runq),
    ),
    scalar(
        "/gort/sched/idle-procs:procs",
        "Ps with nothing to run.",
        false,
        |s| u(s.sched().idle_procs),
    ),
    scalar(
        "/gort/sched/threads-waiting-for-p:threads",
        "Ms with runnable goroutines bound to them (a started goroutine never changes thread) \
         waiting for a P.",
        false,
        |s| u(s.sched().threads_waiting_for_p),
    ),
    scalar(
        "/sched/gomaxprocs:threads",
        "The current runtime.GOMAXPROCS setting, or the number of operating system threads \
         that can execute user-level goroutines simultaneously.",
        false,
        |s| u(s.sched().gomaxprocs),
    ),
    scalar(
        "/sched/goroutines-created:goroutines",
        "Count of goroutines created since program start.",
        true,
        |s| u(s.sched().goroutines_created),
    ),
    scalar(
        "/sched/goroutines:goroutines",
        "Count of live goroutines (runtime helpers excluded, as num_goroutine counts).",
        false,
        |s| u(s.sched().goroutines),
    ),
    scalar(
        "/sched/threads/total:threads",
        "The current count of live threads that are owned by the runtime: its Ms, sysmon and \
         the blocking pool's threads.",
        false,
        |s| u(s.sched().threads),
    ),
];

/// Every supported metric, sorted by name (Go's `metrics.All`).
pub fn all() -> Vec<Description> {
    METRICS.iter().map(|m| m.desc).collect()
}

/// Fills each sample's value by its name (Go's `metrics.Read`); an unknown
/// name gets [`Value::Bad`]. Starts the runtime if it has not started.
pub fn read(samples: &mut [Sample]) {
    let mut snap = Snap::default();
    for s in samples {
        s.value = match METRICS.binary_search_by(|m| m.desc.name.cmp(&s.name)) {
            Ok(i) => (METRICS[i].read)(&mut snap),
            Err(_) => Value::Bad,
        };
    }
}
