//! Shared helpers for the benchmark binaries: argument parsing, the result
//! line `cargo xtask bench` reads, and RSS measurement.

use std::time::Duration;

pub mod dump;
pub mod gc;
pub mod http;
pub mod kit;
pub mod pause;
pub mod sysmon;

/// The workload name and its numeric parameters from the command line:
/// `<bin> <workload> [n]`.
pub fn args() -> (String, Option<u64>) {
    let mut a = std::env::args().skip(1);
    let w = a.next().unwrap_or_else(|| {
        eprintln!("usage: <bench> <workload> [n]");
        std::process::exit(2)
    });
    let n = a.next().map(|s| {
        s.parse().unwrap_or_else(|_| {
            eprintln!("bad count {s:?}");
            std::process::exit(2)
        })
    });
    (w, n)
}

/// Worker count for peers: GOMAXPROCS if set, else the CPU count.
pub fn procs() -> usize {
    std::env::var("GOMAXPROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Prints the result line: `RESULT <value> <unit>`.
pub fn report(value: f64, unit: &str) {
    println!("RESULT {value:.1} {unit}");
}

/// Nanoseconds per item.
pub fn per(el: Duration, n: u64) -> f64 {
    el.as_nanos() as f64 / n as f64
}

/// Resident set size of this process in bytes.
pub fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Exit status meaning "this peer has no counterpart for the workload";
/// `cargo xtask bench` shows "-" for it.
pub const NOT_APPLICABLE: i32 = 3;

/// Reports a workload this program does not implement.
pub fn unknown(w: &str) -> ! {
    eprintln!("no counterpart for workload {w:?} here");
    std::process::exit(NOT_APPLICABLE)
}

/// Peak resident set size of this process in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Raises the descriptor limit to the hard limit, as Go's runtime does at
/// start (tcp_conns needs ~20,000 descriptors).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Messages per tcp_echo client, and clients.
pub const TCP_ECHO_CLIENTS: u64 = 100;
/// Bytes per tcp_echo message.
pub const TCP_MSG: usize = 64;
/// Connections held open by tcp_conns.
pub const TCP_CONNS: usize = 9_900;
