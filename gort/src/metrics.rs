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
    /// A histogram of floats ([`Float64Histogram`]).
    Float64Histogram,
}

pub use gort_sched::prof::Float64Histogram;

/// A metric's value (Go's `metrics.Value`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// The sample named no supported metric.
    Bad,
    /// An unsigned integer value.
    Uint64(u64),
    /// A float value.
    Float64(f64),
    /// A distribution (Go's `*metrics.Float64Histogram`).
    Float64Histogram(Float64Histogram),
}

impl Value {
    /// The value's kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Bad => ValueKind::Bad,
            Value::Uint64(_) => ValueKind::Uint64,
            Value::Float64(_) => ValueKind::Float64,
            Value::Float64Histogram(_) => ValueKind::Float64Histogram,
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
    states: Option<gort_sched::GoroutineStates>,
    gc: Option<gort_gc::MemStats>,
}

impl Snap {
    fn sched(&mut self) -> &gort_sched::SchedStats {
        self.sched.get_or_insert_with(gort_sched::sched_stats)
    }
    fn states(&mut self) -> &gort_sched::GoroutineStates {
        self.states.get_or_insert_with(gort_sched::goroutine_states)
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
    of_kind(ValueKind::Uint64, name, description, cumulative, read)
}

const fn of_kind(
    kind: ValueKind,
    name: &'static str,
    description: &'static str,
    cumulative: bool,
    read: fn(&mut Snap) -> Value,
) -> Metric {
    Metric {
        desc: Description {
            name,
            description,
            kind,
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
    of_kind(
        ValueKind::Float64Histogram,
        "/gc/pauses:seconds",
        "Distribution of individual GC pauses. gort-gc never stops the world: a pause is the \
         longest time one registry shard was locked during a cycle, the longest any mutator \
         could have waited on the collector.",
        true,
        |_| Value::Float64Histogram(gort_gc::gc_pauses()),
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
        "/gort/memory/goroutine-descriptors:bytes",
        "Memory held by goroutine descriptors (never freed; exited ones are reused).",
        false,
        |s| {
            let st = s.sched();
            u(st.descriptors * st.descriptor_size)
        },
    ),
    scalar(
        "/gort/memory/stacks-reserved:bytes",
        "Address space reserved for goroutine stacks, in use or pooled (never returned; a page \
         is committed only when first touched, so this overstates memory use: Go's \
         /memory/classes/heap/stacks counts committed memory, which gort does not track).",
        false,
        |_| u(gort_os::stack::stack_stats().bytes),
    ),
    scalar(
        "/gort/netpoll/waiters:goroutines",
        "Goroutines and threads blocked on a network descriptor (Go's netpollWaiters).",
        false,
        |_| u(gort_netpoll::netpoll_waiters()),
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
        "/gort/sched/runnable-bound:goroutines",
        "Approximate count of runnable goroutines bound to their M (a started goroutine never \
         changes thread, so only its M can run it); the rest of the runnable ones can go to \
         any P. One pass over every goroutine descriptor.",
        false,
        |s| u(s.states().runnable_bound),
    ),
    scalar(
        "/gort/sched/threads-waiting-for-p:threads",
        "Ms with runnable goroutines bound to them (a started goroutine never changes thread) \
         waiting for a P.",
        false,
        |s| u(s.sched().threads_waiting_for_p),
    ),
    scalar(
        "/gort/stacks/guarded-mapped:stacks",
        "Goroutine stacks made with a guard mapping of their own (stacks are pooled, never \
         unmapped).",
        false,
        |_| u(gort_os::stack::stack_stats().guarded_mapped),
    ),
    scalar(
        "/gort/stacks/guarded-slab:stacks",
        "Goroutine stacks carved from slabs, each with a guard page installed in place.",
        false,
        |_| u(gort_os::stack::stack_stats().guarded_slab),
    ),
    scalar(
        "/gort/stacks/unguarded:stacks",
        "Goroutine stacks without a guard page (canary-checked; only when allowed).",
        false,
        |_| u(gort_os::stack::stack_stats().unguarded),
    ),
    scalar(
        "/gort/timers/pending:timers",
        "Timers armed now, in every P's heap.",
        false,
        |_| u(gort_timer::timers_pending()),
    ),
    scalar(
        "/memory/classes/heap/objects:bytes",
        "Memory occupied by live Gc objects and dead ones not yet freed (headers included).",
        false,
        |s| u(s.gc().heap_alloc),
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
        "/sched/goroutines/not-in-go:goroutines",
        "Approximate count of goroutines inside gort::syscall (Go: running in a system call \
         or cgo). One pass over every goroutine descriptor.",
        false,
        |s| u(s.states().syscall),
    ),
    scalar(
        "/sched/goroutines/runnable:goroutines",
        "Approximate count of goroutines ready to run but not running (queued, or not started \
         yet). One pass over every goroutine descriptor.",
        false,
        |s| u(s.states().runnable),
    ),
    scalar(
        "/sched/goroutines/running:goroutines",
        "Approximate count of goroutines running on an M. One pass over every goroutine \
         descriptor.",
        false,
        |s| u(s.states().running),
    ),
    scalar(
        "/sched/goroutines/waiting:goroutines",
        "Approximate count of parked goroutines (channels, locks, sleeps, I/O, joins). One \
         pass over every goroutine descriptor.",
        false,
        |s| u(s.states().waiting),
    ),
    scalar(
        "/sched/goroutines:goroutines",
        "Count of live goroutines (runtime helpers excluded, as num_goroutine counts).",
        false,
        |s| u(s.sched().goroutines),
    ),
    of_kind(
        ValueKind::Float64Histogram,
        "/sched/latencies:seconds",
        "Distribution of the time goroutines have spent in the scheduler in a runnable state \
         before actually running (sampled: one park, yield or spawn in 64 per goroutine; Go \
         samples one in 8).",
        true,
        |_| Value::Float64Histogram(gort_sched::prof::sched_latencies()),
    ),
    scalar(
        "/sched/threads/total:threads",
        "The current count of live threads that are owned by the runtime: its Ms, sysmon and \
         the blocking pool's threads.",
        false,
        |s| u(s.sched().threads),
    ),
    of_kind(
        ValueKind::Float64,
        "/sync/mutex/wait/total:seconds",
        "Approximate cumulative time goroutines have spent blocked on a gort::sync::Mutex or \
         RwLock (sampled as /sched/latencies, scaled up).",
        true,
        |_| Value::Float64(gort_sched::prof::mutex_wait_total_ns() as f64 / 1e9),
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

/// Writes the metrics in Prometheus' text exposition format (version
/// 0.0.4), under the names Go's Prometheus client (client_golang's Go
/// collector) uses where gort has the concept -- `go_goroutines`,
/// `go_threads`, `go_info`, `go_sched_gomaxprocs_threads`,
/// `go_gc_duration_seconds` (a summary whose quantiles come from the pause
/// histogram: each is the upper bound of the bucket it falls in),
/// `go_sched_latencies_seconds` (a histogram, one bucket per power of two),
/// `go_sync_mutex_wait_total_seconds_total`, `go_gc_gogc_percent`,
/// `go_gc_gomemlimit_bytes`, `go_memstats_*` for the `Gc` heap -- so
/// dashboards built for Go programs read a gort program unchanged; and
/// every `/gort/` metric as `gort_<path>` (`/gort/sched/idle-procs:procs`
/// becomes `gort_sched_idle_procs`). Serve it at `/metrics`.
pub fn write_prometheus(w: &mut impl std::io::Write) -> std::io::Result<()> {
    let sched = gort_sched::sched_stats();
    let gc = gort_gc::read_mem_stats();
    family(
        w,
        "go_gc_duration_seconds",
        "summary",
        "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
    )?;
    let pauses = gort_gc::gc_pauses();
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let v = quantile(&pauses, q);
        writeln!(w, "go_gc_duration_seconds{{quantile=\"{q}\"}} {v}")?;
    }
    writeln!(
        w,
        "go_gc_duration_seconds_sum {}",
        gc.pause_total_ns as f64 / 1e9
    )?;
    writeln!(w, "go_gc_duration_seconds_count {}", gc.num_gc)?;
    family(
        w,
        "go_info",
        "gauge",
        "Information about the Go environment.",
    )?;
    writeln!(
        w,
        "go_info{{version=\"gort {}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )?;
    let gauges: [(&str, &str, f64); 10] = [
        ("go_goroutines", "Number of goroutines that currently exist.", sched.goroutines as f64),
        ("go_threads", "Number of OS threads created.", sched.threads as f64),
        ("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level goroutines simultaneously.", sched.gomaxprocs as f64),
        ("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", gc.heap_alloc as f64),
        ("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", gc.heap_alloc as f64),
        ("go_memstats_heap_objects", "Number of currently allocated objects.", gc.heap_objects as f64),
        ("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", gc.next_gc as f64),
        ("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", gc.last_gc as f64 / 1e9),
        ("go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100.", gc.gc_percent as f64),
        ("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64.", gc.memory_limit as f64),
    ];
    for (name, help, v) in gauges {
        family(w, name, "gauge", help)?;
        writeln!(w, "{name} {v}")?;
    }
    let counters: [(&str, &str, f64); 3] = [
        (
            "go_memstats_mallocs_total",
            "Total number of heap objects allocated, both live and gc-ed.",
            gc.mallocs as f64,
        ),
        (
            "go_memstats_frees_total",
            "Total number of heap objects frees.",
            gc.frees as f64,
        ),
        (
            "go_sync_mutex_wait_total_seconds_total",
            "Approximate cumulative time goroutines have spent blocked on a sync.Mutex or sync.RWMutex.",
            gort_sched::prof::mutex_wait_total_ns() as f64 / 1e9,
        ),
    ];
    for (name, help, v) in counters {
        family(w, name, "counter", help)?;
        writeln!(w, "{name} {v}")?;
    }
    family(
        w,
        "go_sched_latencies_seconds",
        "histogram",
        "Distribution of the time goroutines have spent in the scheduler in a runnable state before actually running.",
    )?;
    histogram(
        w,
        "go_sched_latencies_seconds",
        &gort_sched::prof::sched_latencies(),
    )?;
    // gort's own, from the table (one read for all of them).
    let own: Vec<&Metric> = METRICS
        .iter()
        .filter(|m| m.desc.name.starts_with("/gort/"))
        .collect();
    let mut samples: Vec<Sample> = own.iter().map(|m| Sample::new(m.desc.name)).collect();
    read(&mut samples);
    for (m, s) in own.iter().zip(&samples) {
        let name = prometheus_name(m.desc.name);
        let kind = match (&s.value, m.desc.cumulative) {
            (Value::Float64Histogram(_), _) => "histogram",
            (_, true) => "counter",
            (_, false) => "gauge",
        };
        let name = if kind == "counter" {
            format!("{name}_total")
        } else {
            name
        };
        family(w, &name, kind, m.desc.description)?;
        match &s.value {
            Value::Uint64(v) => writeln!(w, "{name} {v}")?,
            Value::Float64(v) => writeln!(w, "{name} {v}")?,
            Value::Float64Histogram(h) => histogram(w, &name, h)?,
            Value::Bad => {}
        }
    }
    Ok(())
}

/// `# HELP` and `# TYPE` lines of a metric family.
fn family(w: &mut impl std::io::Write, name: &str, kind: &str, help: &str) -> std::io::Result<()> {
    // Escaping in HELP: backslash and newline.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    writeln!(w, "# HELP {name} {help}")?;
    writeln!(w, "# TYPE {name} {kind}")
}

/// A histogram's `_bucket` (cumulative, at every power of two of the
/// source's boundaries, then `+Inf`), `_sum` (estimated from bucket lower
/// bounds) and `_count` lines.
fn histogram(w: &mut impl std::io::Write, name: &str, h: &Float64Histogram) -> std::io::Result<()> {
    let mut cum = 0u64;
    let mut sum = 0.0;
    for (i, &c) in h.counts.iter().enumerate() {
        cum += c;
        let lo = h.buckets[i];
        if lo.is_finite() {
            sum += lo * c as f64;
        }
        let hi = h.buckets[i + 1];
        // Powers of two only: a few dozen lines instead of every bucket.
        if hi.is_finite() && is_power_of_two_ns(hi) {
            writeln!(w, "{name}_bucket{{le=\"{hi:e}\"}} {cum}")?;
        }
    }
    writeln!(w, "{name}_bucket{{le=\"+Inf\"}} {cum}")?;
    writeln!(w, "{name}_sum {sum}")?;
    writeln!(w, "{name}_count {cum}")
}

/// Whether `secs` is a whole power of two of nanoseconds.
fn is_power_of_two_ns(secs: f64) -> bool {
    let ns = (secs * 1e9).round();
    ns >= 1.0 && (ns as u64).is_power_of_two()
}

/// The upper bound of the bucket holding quantile `q` (0 when empty; the
/// last finite bound for the overflow bucket).
fn quantile(h: &Float64Histogram, q: f64) -> f64 {
    let total: u64 = h.counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut cum = 0;
    for (i, &c) in h.counts.iter().enumerate() {
        cum += c;
        if cum >= rank {
            let hi = h.buckets[i + 1];
            return if hi.is_finite() { hi } else { h.buckets[i] };
        }
    }
    h.buckets[h.counts.len() - 1]
}

/// `/gort/sched/idle-procs:procs` -> `gort_sched_idle_procs`: the path
/// without its unit, every other character an underscore.
fn prometheus_name(metric: &str) -> String {
    let path = metric.split(':').next().unwrap_or(metric);
    path.trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
