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
/// stack, valued by how many goroutines have it.
pub fn goroutine_profile() -> Profile {
    let mut p = Profile::new(&[("goroutine", "count")], ("goroutine", "count"), 1);
    p.trim_runtime = true;
    // LEAD: fill from gort-sched records (one sample per distinct stack).
    // Until then, one stackless sample counts every goroutine.
    p.samples.push(ProfileSample {
        values: vec![gort_sched::num_goroutine() as i64],
        ..ProfileSample::default()
    });
    p
}

/// Go's sample types of the block and mutex profiles.
const CONTENTION_TYPES: [(&str, &str); 2] = [("contentions", "count"), ("delay", "nanoseconds")];

/// The block profile (Go's `block`): time goroutines spent blocked in
/// channel operations, select and sync waits, per stack.
pub fn block_profile() -> Profile {
    let mut p = Profile::new(&CONTENTION_TYPES, ("contentions", "count"), 1);
    p.trim_runtime = true;
    // LEAD: fill from gort-sched records.
    p
}

/// The mutex profile (Go's `mutex`): contention delay charged to the
/// stack that held the lock.
pub fn mutex_profile() -> Profile {
    let mut p = Profile::new(&CONTENTION_TYPES, ("contentions", "count"), 1);
    p.trim_runtime = true;
    // LEAD: fill from gort-sched records.
    p
}

/// The mutex profile's sampling fraction (Go's
/// `runtime.SetMutexProfileFraction(-1)`), printed in its text form.
pub fn mutex_profile_fraction() -> i64 {
    // LEAD: fill from gort-sched records (the current fraction).
    0
}

/// The heap profile (Go's `heap` and `allocs`): sampled `Gc` allocations,
/// allocated and in use, per allocating stack.
pub fn heap_profile() -> Profile {
    /// Go's default `MemProfileRate`: a sample per 512 KiB allocated.
    const MEM_PROFILE_RATE: i64 = 512 * 1024;
    let mut p = Profile::new(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes"),
        MEM_PROFILE_RATE,
    );
    p.trim_runtime = true;
    // LEAD: fill from gort-gc records.
    p
}

/// A CPU profile of the next `d` (Go's `profile?seconds=N`): samples of
/// the running goroutines at 100 Hz. Blocks the caller for `d`.
pub fn cpu_profile(d: Duration) -> std::io::Result<Profile> {
    /// Go's default sampling rate, 100 Hz, as a period in nanoseconds.
    const PERIOD_NANOS: i64 = 10_000_000;
    let mut p = Profile::new(
        &[("samples", "count"), ("cpu", "nanoseconds")],
        ("cpu", "nanoseconds"),
        PERIOD_NANOS,
    );
    p.leaf_exact = true;
    // LEAD: fill from gort-sched records (SIGPROF samples over `d`).
    gort_std::sleep(d);
    p.duration_nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    Ok(p)
}
