//! The HTTP workloads (issue 20): a "Hello, World!" HTTP/1.1 keep-alive
//! server on 127.0.0.1 loaded by wrk (one thread, N connections, 10 s),
//! a child process of the bench program. Each program brings its server
//! (gort: `gort/examples/http_hello.rs`, run as built; tokio: hyper 1.x;
//! Go: net/http in go/http.go) and this module drives wrk and reports.
//!
//! Workload names: `http_hello_c<N>` reports throughput as ns per request
//! (1e9 / wrk's Requests/sec), `http_hello_c<N>_p99` wrk's 99th-percentile
//! latency in µs; both lower-is-better. One wrk run yields both, so each
//! prints its row's `RESULT` line and the other's as an `ALSO` line, which
//! `cargo xtask bench` keeps for that row instead of running wrk again. An
//! optional count argument replaces the 10 s (seconds).
//!
//! Without wrk on `PATH` (CI has none) the programs exit
//! [`NOT_APPLICABLE`](crate::NOT_APPLICABLE), so the rows show "-".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// How long wrk runs, unless the count argument says otherwise.
const SECS: u64 = 10;

/// One HTTP workload: wrk's connection count and which number the row is.
pub struct Http {
    conns: u64,
    p99: bool,
    secs: u64,
    wrk: PathBuf,
}

/// What one wrk run measured.
pub struct Wrk {
    /// Requests per second over the run.
    pub req_per_sec: f64,
    /// The 99th-percentile latency in µs.
    pub p99_us: f64,
}

/// The HTTP workload a name asks for, `None` for other names. Exits
/// NOT_APPLICABLE when it is one but wrk is missing.
pub fn workload(w: &str, n: Option<u64>) -> Option<Http> {
    let rest = w.strip_prefix("http_hello_c")?;
    let (conns, p99) = match rest.strip_suffix("_p99") {
        Some(c) => (c, true),
        None => (rest, false),
    };
    let conns: u64 = conns.parse().ok().filter(|&c| c > 0)?;
    let Some(wrk) = find_wrk() else {
        eprintln!("no wrk on PATH: the HTTP workloads need it (apt-get install wrk)");
        std::process::exit(crate::NOT_APPLICABLE)
    };
    // 1000 connections need more than a 1024-descriptor limit, in the
    // server and in wrk (children inherit it): raised before either starts.
    crate::raise_nofile();
    Some(Http {
        conns,
        p99,
        secs: n.unwrap_or(SECS),
        wrk,
    })
}

fn find_wrk() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("wrk"))
        .find(|p| p.is_file())
}

impl Http {
    /// Loads the server at `addr` with wrk, then prints the result lines.
    /// wrk's own lines go to stderr for whoever looks.
    pub fn run(&self, addr: SocketAddr) {
        let r = self.wrk(addr);
        let ns = 1e9 / r.req_per_sec;
        let base = format!("http_hello_c{}", self.conns);
        if self.p99 {
            crate::report(r.p99_us, "us");
            println!("ALSO {base} {ns:.1} ns/req");
        } else {
            crate::report(ns, "ns/req");
            println!("ALSO {base}_p99 {:.1} us", r.p99_us);
        }
    }

    /// Runs wrk once against `addr`; its throughput and p99.
    pub fn wrk(&self, addr: SocketAddr) -> Wrk {
        let out = Command::new(&self.wrk)
            .args([
                "-t1".to_string(),
                format!("-c{}", self.conns),
                format!("-d{}s", self.secs),
                "--latency".to_string(),
                format!("http://{addr}/"),
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.wrk.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        eprint!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "wrk failed: {}", out.status);
        parse_wrk(&text).unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"))
    }
}

/// Requests/sec and the 99% line of wrk's `--latency` output.
fn parse_wrk(text: &str) -> Option<Wrk> {
    let mut req_per_sec = None;
    let mut p99_us = None;
    for l in text.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            req_per_sec = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("99%") {
            p99_us = duration_us(v.trim());
        }
    }
    Some(Wrk {
        req_per_sec: req_per_sec.filter(|&r: &f64| r > 0.0)?,
        p99_us: p99_us?,
    })
}

/// A wrk duration ("812.00us", "1.52ms", "2.01s", "1.00m") in µs.
fn duration_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(num * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.01ms  301.34us   9.97ms   90.12%
    Req/Sec    50.95k     2.01k   54.11k    71.00%
  Latency Distribution
     50%  956.00us
     75%    1.07ms
     90%    1.25ms
     99%    2.52ms
  507000 requests in 10.00s, 42.06MB read
Requests/sec:  50692.61
Transfer/sec:      4.21MB
";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.req_per_sec, 50692.61);
        assert!((r.p99_us - 2520.0).abs() < 1e-6);
        assert_eq!(duration_us("812.00us"), Some(812.0));
        assert_eq!(duration_us("2.00s"), Some(2e6));
        assert_eq!(duration_us("x"), None);
    }
}
