//! Profiles in the formats Go's tools read: pprof's gzipped protobuf and
//! Go's legacy `debug=1` text.
//!
//! A [`Profile`] is a neutral model — sample types, and samples each
//! holding values, a stack of program counters and labels — that the
//! collectors fill without caring how it is written. This module turns
//! it into:
//!
//! - [`encode`]: profile.proto (github.com/google/pprof), gzipped, which
//!   `go tool pprof` and every pprof viewer read. Like Go's
//!   runtime/pprof it builds one `Location` per distinct address with all
//!   of the address's inlined frames as `Line`s (innermost first), one
//!   `Function` per (name, file), a `Mapping` per executable region of
//!   `/proc/self/maps` (the main executable first), marked as symbolised
//!   so that pprof trusts the names instead of looking for the binary;
//!   and it gzips at Go's `BestSpeed`. Return addresses are symbolised
//!   one byte back, inside their call, as Go's `CallersFrames` does; the
//!   `Location.address` keeps the recorded value.
//! - [`write_text`]: the `debug=1` text of net/http/pprof
//!   (`goroutine profile: total N`, `--- contention:`, `heap profile:`),
//!   with `#` lines naming each frame.
//!
//! With [`Profile::trim_runtime`] the leading frames of gort's machinery
//! and the standard library (`gort_sched::`, `gort_os::`, `corosensei::`,
//! `core::`, `std::`, `alloc::`) are dropped from each stack, so a block
//! sample's leaf is the gort-std call that blocked, as Go's is
//! `runtime.chanrecv1`.
//!
//! Symbolising needs a lot of stack the first time (the debug info is
//! parsed), more than a goroutine has: [`encode`] and [`write_text`] do
//! that work on a helper OS thread with an 8 MiB stack, and a goroutine
//! calling them waits inside [`gort_sched::syscall`], so its P serves
//! other goroutines meanwhile.
//!
//! The providers ([`goroutine_profile`], [`block_profile`],
//! [`mutex_profile`], [`heap_profile`], [`cpu_profile`]) give each profile
//! with Go's sample types; [`crate::debug`] serves them over HTTP.

mod build;
#[doc(hidden)]
pub mod decode;
mod gzip;
mod proto;
mod symbols;
mod text;

pub use text::{write_text, TextKind};

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A profile, before encoding: what was measured and the samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// What each sample value measures, as (type, unit): Go's
    /// `("contentions", "count"), ("delay", "nanoseconds")` for the block
    /// profile. Every sample has one value per entry.
    pub sample_types: Vec<(String, String)>,
    /// The sample type a viewer shows first (its type name), if not the
    /// last one: Go's `allocs` profile says `alloc_space`.
    pub default_sample_type: Option<String>,
    /// What one sampling period measures, as (type, unit).
    pub period_type: Option<(String, String)>,
    /// The sampling period, in `period_type`'s unit.
    pub period: i64,
    /// When the profile was taken, in nanoseconds since the Unix epoch.
    pub time_nanos: i64,
    /// How long the profile covers, in nanoseconds (CPU profiles).
    pub duration_nanos: i64,
    /// The samples.
    pub samples: Vec<ProfileSample>,
    /// Free-form comments, shown by `go tool pprof -comments`.
    pub comments: Vec<String>,
    /// Whether each sample's `pcs[0]` is the exact address of an
    /// instruction (a CPU profile's interrupted PC) rather than a return
    /// address like all the others; it is then symbolised as it is.
    pub leaf_exact: bool,
    /// Whether to drop each stack's leading runtime frames (see the
    /// module docs). An address goes only if all its frames are runtime
    /// ones, and a stack of nothing else is kept whole.
    pub trim_runtime: bool,
}

/// One sample: its values and where it was taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileSample {
    /// One value per [`Profile::sample_types`] entry.
    pub values: Vec<i64>,
    /// The stack, innermost first: return addresses, except that `pcs[0]`
    /// is an exact PC when [`Profile::leaf_exact`] says so.
    pub pcs: Vec<usize>,
    /// String labels (Go's `pprof.Do` labels), as (key, value).
    pub labels: Vec<(String, String)>,
    /// Numeric labels, as (key, value, unit) (Go's heap profile gives
    /// `bytes`).
    pub num_labels: Vec<(String, i64, String)>,
}

impl Profile {
    /// An empty profile of the given sample types and period, stamped
    /// with the current time.
    pub fn new(sample_types: &[(&str, &str)], period_type: (&str, &str), period: i64) -> Profile {
        let owned = |(t, u): (&str, &str)| (t.to_string(), u.to_string());
        Profile {
            sample_types: sample_types.iter().copied().map(owned).collect(),
            period_type: Some(owned(period_type)),
            period,
            time_nanos: now_nanos(),
            ..Profile::default()
        }
    }
}

fn now_nanos() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `p` in pprof's format: profile.proto, gzipped, as Go's
/// `pprof.Profile.WriteTo(w, 0)` writes it. Symbolises every address on
/// a helper thread (see the module docs).
///
/// ```
/// use gort::pprof::{encode, Profile};
///
/// let p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
/// let file = encode(&p);
/// assert_eq!(&file[..2], [0x1f, 0x8b]); // gzip
/// std::fs::write(std::env::temp_dir().join("empty.pb.gz"), file).unwrap();
/// // then: go tool pprof -raw /tmp/empty.pb.gz
/// ```
pub fn encode(p: &Profile) -> Vec<u8> {
    on_big_stack(|| gzip::gzip(&build::build(p)))
}

/// Runs `f` on a scoped OS thread with a large stack, from a goroutine
/// inside [`gort_sched::syscall`] (the thread blocks in the join; the P
/// is free for others). Symbolisation's first use parses DWARF deeply
/// recursively: a goroutine's stack is too small, and a plain caller's
/// may be too.
pub(crate) fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // As much as gort's goroutine dumps give their symboliser.
    const STACK: usize = 8 << 20;
    let run = || {
        std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name("gort-pprof".into())
                .stack_size(STACK)
                .spawn_scoped(s, f)
                .expect("gort::pprof: cannot start the symbolising thread");
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    };
    if gort_sched::goid().is_some() {
        gort_sched::syscall(run)
    } else {
        run()
    }
}

/// The goroutine profile (Go's `goroutine`): one sample per distinct
/// stack and label set, valued by how many goroutines have it. Taken
/// without stopping the world (see [`gort_sched::prof::goroutine_profile`]):
/// a goroutine running on another thread has no stack here, only a
/// `state` label saying so.
pub fn goroutine_profile() -> Profile {
    let mut p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
    p.trim_runtime = true;
    type StackAndLabels = (Vec<usize>, Vec<(String, String)>);
    let mut by_stack: HashMap<StackAndLabels, i64> = HashMap::new();
    for g in gort_sched::prof::goroutine_profile() {
        let mut labels = labels_vec(g.labels.as_ref());
        if g.stack.is_empty() {
            labels.push(("state".into(), g.state.clone()));
        }
        *by_stack.entry((g.stack, labels)).or_default() += 1;
    }
    p.samples = by_stack
        .into_iter()
        .map(|((pcs, labels), n)| ProfileSample {
            values: vec![n],
            pcs,
            labels,
            ..ProfileSample::default()
        })
        .collect();
    sort_samples(&mut p);
    p
}

fn labels_vec(l: Option<&gort_sched::prof::Labels>) -> Vec<(String, String)> {
    l.map(|l| l.to_vec()).unwrap_or_default()
}

/// Biggest first, so text forms list what matters at the top (Go sorts
/// its count profiles the same way).
fn sort_samples(p: &mut Profile) {
    p.samples.sort_by(|a, b| {
        b.values
            .last()
            .cmp(&a.values.last())
            .then(a.pcs.cmp(&b.pcs))
    });
}

/// Go's sample types of the block and mutex profiles.
const CONTENTION_TYPES: [(&str, &str); 2] = [("contentions", "count"), ("delay", "nanoseconds")];

fn contention_profile(records: Vec<gort_sched::prof::BlockRecord>) -> Profile {
    let mut p = Profile::new(&CONTENTION_TYPES, ("contentions", "count"), 1);
    p.trim_runtime = true;
    p.samples = records
        .into_iter()
        .map(|r| ProfileSample {
            values: vec![r.count, r.delay_ns],
            pcs: r.stack,
            ..ProfileSample::default()
        })
        .collect();
    sort_samples(&mut p);
    p
}

/// The block profile (Go's `block`): time goroutines spent blocked in
/// channel operations, select and sync waits, per stack. Empty until
/// [`gort_sched::prof::set_block_profile_rate`] turns it on.
pub fn block_profile() -> Profile {
    contention_profile(gort_sched::prof::block_profile())
}

/// The mutex profile (Go's `mutex`): contention delay charged to the
/// stack that held the lock, scaled by the sampling fraction in force when
/// each event was recorded. Empty until [`gort_sched::prof::set_mutex_profile_fraction`] turns
/// it on.
pub fn mutex_profile() -> Profile {
    // (Scaled when recorded, as Go 1.27 does.)
    contention_profile(gort_sched::prof::mutex_profile())
}

/// The mutex profile's sampling fraction (Go's
/// `runtime.SetMutexProfileFraction(-1)`), printed in its text form.
pub fn mutex_profile_fraction() -> i64 {
    gort_sched::prof::set_mutex_profile_fraction(-1)
}

/// The heap profile (Go's `heap` and `allocs`): sampled `Gc` allocations,
/// allocated and in use, per allocating stack, scaled up for the sampling
/// as Go's `scaleHeapSample` does (an allocation of `size` bytes is
/// sampled with probability `1 - exp(-size/rate)`).
pub fn heap_profile() -> Profile {
    heap(true)
}

/// The heap profile with the sampled counts as recorded, not scaled up:
/// what Go's `debug=1` heap text holds (`pprof` scales it itself, by the
/// `heap/<2*rate>` of its header). For [`write_text`] with
/// [`TextKind::Heap`].
pub fn heap_profile_unscaled() -> Profile {
    heap(false)
}

fn heap(scaled: bool) -> Profile {
    let rate = gort_gc::mem_profile_rate();
    let mut p = Profile::new(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes"),
        rate,
    );
    p.trim_runtime = true;
    let scale = |count, size| {
        if scaled {
            scale_heap(count, size, rate)
        } else {
            (count, size)
        }
    };
    for r in gort_gc::mem_profile() {
        let (ao, ab) = scale(r.alloc_objects, r.alloc_bytes);
        let (io, ib) = scale(
            r.alloc_objects - r.free_objects,
            r.alloc_bytes - r.free_bytes,
        );
        let size = if r.alloc_objects > 0 {
            r.alloc_bytes / r.alloc_objects
        } else {
            0
        };
        p.samples.push(ProfileSample {
            values: vec![ao, ab, io, ib],
            pcs: r.stack,
            num_labels: vec![("bytes".into(), size, "bytes".into())],
            ..ProfileSample::default()
        });
    }
    sort_samples(&mut p);
    p
}

/// Go's `scaleHeapSample`: estimates of the objects and bytes that
/// `count` samples totalling `size` bytes stand for.
fn scale_heap(count: i64, size: i64, rate: i64) -> (i64, i64) {
    if count <= 0 || size <= 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count, size);
    }
    let avg = size as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * scale) as i64, (size as f64 * scale) as i64)
}

/// A CPU profile of the next `d` (Go's `profile?seconds=N`): samples of
/// every running thread at 100 Hz, with the running goroutines' labels.
/// Blocks the caller for `d`; fails if a CPU profile is already running.
pub fn cpu_profile(d: Duration) -> std::io::Result<Profile> {
    const HZ: u32 = 100;
    let period = 1_000_000_000 / i64::from(HZ);
    let mut p = Profile::new(
        &[("samples", "count"), ("cpu", "nanoseconds")],
        ("cpu", "nanoseconds"),
        period,
    );
    let started = std::time::Instant::now();
    let prof = gort_sched::prof::cpu_profile(d, HZ)?;
    p.duration_nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    p.samples = prof
        .records
        .into_iter()
        .map(|r| ProfileSample {
            values: vec![r.count, r.count * period],
            pcs: r.stack,
            labels: labels_vec(r.labels.as_ref()),
            ..ProfileSample::default()
        })
        .collect();
    if prof.lost > 0 {
        p.comments.push(format!(
            "{} samples lost: the sample buffer was full",
            prof.lost
        ));
    }
    sort_samples(&mut p);
    Ok(p)
}
