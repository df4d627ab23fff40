//! gort's side of the goroutine-dump workloads (issue 16), called from the
//! `gort` bench binary's dispatch. Go's twin is `go/dump.go`; both do the
//! same work with the same parameters and the same timed region.
//!
//! * `stack_dump [n]`: `n` (default [`GOROUTINES`]) goroutines parked in a
//!   channel receive at the bottom of [`CHAINS`] distinct call chains, each
//!   [`DEPTH`] non-inlined functions deep (goroutine `i` takes chain
//!   `i % CHAINS`); the time of **one** [`gort::stack`]`(true)` (Go:
//!   `runtime.Stack(buf, true)`), the first of the process (`ms`). gort's
//!   first dump parses the binary's debug info; Go's symbol tables are in
//!   memory from the start.
//! * `stack_dump_warm [n]`: the same, but one untimed dump first; the time
//!   of the second (`ms`), in gort with the symboliser's tables built.
//!
//! The shape, the same in both languages:
//! 1. the main goroutine (gort: [`gort::run`]'s) spawns the goroutines;
//!    each calls its chain, whose last function receives from one shared
//!    unbuffered channel nobody sends on;
//! 2. it waits until every one is parked: gort until the channel has `n`
//!    blocked receivers, Go until the `/sched/goroutines/waiting` metric
//!    has grown by `n`; then 20 ms more, so the last to queue have
//!    finished parking (the check below confirms it: a goroutine that is
//!    not parked prints without its state and frames);
//! 3. (warm only) one dump, untimed and checked;
//! 4. the timed dump: the clock is read just before and just after the
//!    call. Go's 64 MiB buffer is allocated and touched before (a full
//!    buffer is a failure, not a retry); gort's call builds its `String`;
//! 5. the dump is checked ([`check`]): at least `n` goroutine headers, `n`
//!    of them in `[chan receive]`, and every parked goroutine's chain
//!    frames symbolised (`n * DEPTH` lines naming a chain function: frames
//!    that print as bare addresses fail here). A failed check ends the
//!    process with status 1 and the reason on stderr's last line;
//! 6. the channel is closed (gort: its only sender dropped) and every
//!    goroutine joined.
//!
//! Go's dump stops the world for the whole call; gort's stops nothing
//! (each parked goroutine is pinned in its park while its stack is walked)
//! and symbolises on a helper thread.

use crate::report;
use gort::Receiver;
use std::time::{Duration, Instant};

/// Goroutines parked during the dump (default).
pub const GOROUTINES: u64 = 10_000;
/// Distinct call chains the goroutines park in.
pub const CHAINS: usize = 4;
/// Non-inlined functions per chain (the last one receives).
pub const DEPTH: usize = 4;
/// What names a chain function in a symbolised frame line.
pub const CHAIN_FN: &str = "dump::chain_";
/// The longest wait for the goroutines to park before the run fails.
pub const PARK_LIMIT: Duration = Duration::from_secs(60);
/// The settling time after the last goroutine has queued its receive.
pub const SETTLE: Duration = Duration::from_millis(20);

/// Defines a call chain, outermost function first: each function calls
/// the next and adds its own constant to the result (a call in tail
/// position could become a jump, and identical bodies could be merged into
/// one symbol: either would take a frame out of the dump); the last
/// receives.
macro_rules! chain {
    ($f:ident + $k:literal => $next:ident + $nk:literal $(=> $rest:ident + $rk:literal)*) => {
        #[inline(never)]
        fn $f(rx: &Receiver<()>) -> u64 {
            $next(rx).wrapping_add($k)
        }
        chain!($next + $nk $(=> $rest + $rk)*);
    };
    ($leaf:ident + $k:literal) => {
        #[inline(never)]
        fn $leaf(rx: &Receiver<()>) -> u64 {
            // Nobody sends: this returns Err once the sender is dropped.
            u64::from(rx.recv().is_err()).wrapping_add($k)
        }
    };
}

chain!(chain_a1 + 11 => chain_a2 + 12 => chain_a3 + 13 => chain_a4 + 14);
chain!(chain_b1 + 21 => chain_b2 + 22 => chain_b3 + 23 => chain_b4 + 24);
chain!(chain_c1 + 31 => chain_c2 + 32 => chain_c3 + 33 => chain_c4 + 34);
chain!(chain_d1 + 41 => chain_d2 + 42 => chain_d3 + 43 => chain_d4 + 44);

/// The chains' entries; goroutine `i` calls `CHAIN_ENTRY[i % CHAINS]`.
const CHAIN_ENTRY: [fn(&Receiver<()>) -> u64; CHAINS] = [chain_a1, chain_b1, chain_c1, chain_d1];

/// What a dump was found to hold.
#[derive(Debug, Clone, Copy)]
pub struct DumpCheck {
    /// Lines starting with `goroutine ` (one per goroutine).
    pub headers: u64,
    /// Of them, those in `[chan receive...]`.
    pub parked: u64,
    /// Lines naming a chain function (`chain_fn`).
    pub chain_frames: u64,
    /// Length of the text.
    pub bytes: usize,
}

/// Checks a dump of `n` parked goroutines whose chain frames name
/// `chain_fn`; the reason if it falls short.
pub fn check(dump: &str, n: u64, chain_fn: &str) -> Result<DumpCheck, String> {
    let mut c = DumpCheck {
        headers: 0,
        parked: 0,
        chain_frames: 0,
        bytes: dump.len(),
    };
    for l in dump.lines() {
        if l.starts_with("goroutine ") {
            c.headers += 1;
            c.parked += u64::from(l.contains(" [chan receive"));
        } else if l.contains(chain_fn) {
            c.chain_frames += 1;
        }
    }
    let depth = DEPTH as u64;
    if c.headers < n {
        Err(format!("{} goroutine headers, expected >= {n}", c.headers))
    } else if c.parked < n {
        Err(format!(
            "{} goroutines in [chan receive], expected >= {n} (not all parked?)",
            c.parked
        ))
    } else if c.chain_frames < n * depth {
        Err(format!(
            "{} frames name a chain function ({chain_fn}), expected >= {} ({n} x {depth}): frames not symbolised?",
            c.chain_frames,
            n * depth
        ))
    } else {
        Ok(c)
    }
}

/// Ends the process (status 1) if `dump` fails [`check`], printing its
/// start and then the reason (stderr's last line, which xtask shows).
fn check_or_exit(what: &str, dump: &str, n: u64) -> DumpCheck {
    check(dump, n, CHAIN_FN).unwrap_or_else(|why| {
        let head: String = dump.chars().take(3000).collect();
        eprintln!("{what}: the dump starts:\n{head}\n...");
        eprintln!("{what}: bad dump: {why}");
        std::process::exit(1)
    })
}

/// One dump, timed.
fn timed_dump() -> (String, Duration) {
    let t0 = Instant::now();
    let d = gort::stack(true);
    (d, t0.elapsed())
}

fn stack_dump(name: &'static str, warm: bool, n: u64) {
    let el = gort::run(move || {
        let (tx, rx) = gort::chan::<()>(0);
        let hs: Vec<_> = (0..n as usize)
            .map(|i| {
                let rx = rx.clone();
                gort::go(move || CHAIN_ENTRY[i % CHAINS](&rx))
            })
            .collect();
        // Every goroutine parked before the clock starts.
        let t0 = Instant::now();
        while (rx.blocked_receivers() as u64) < n {
            if t0.elapsed() > PARK_LIMIT {
                eprintln!(
                    "{name}: only {} of {n} goroutines blocked in {PARK_LIMIT:?}",
                    rx.blocked_receivers()
                );
                std::process::exit(1);
            }
            gort::time::sleep(Duration::from_millis(1));
        }
        gort::time::sleep(SETTLE);
        if warm {
            let (d, first) = timed_dump();
            check_or_exit(name, &d, n);
            eprintln!("{name}: first dump (untimed) {first:?}");
        }
        let (d, el) = timed_dump();
        let c = check_or_exit(name, &d, n);
        drop(d);
        eprintln!(
            "{name}: {} goroutines ({} in chan receive), {} chain frames, {} bytes; dump {el:?}",
            c.headers, c.parked, c.chain_frames, c.bytes
        );
        // Release them all and join.
        drop(tx);
        let sum: u64 = hs.into_iter().map(|h| h.join().expect("goroutine")).sum();
        assert!(sum >= n, "every receive returned");
        el
    });
    report(el.as_secs_f64() * 1e3, "ms");
}

/// Runs a dump workload; false if `w` is not one of them.
pub fn run(w: &str, n: Option<u64>) -> bool {
    let n = n.unwrap_or(GOROUTINES);
    match w {
        "stack_dump" => stack_dump("stack_dump", false, n),
        "stack_dump_warm" => stack_dump("stack_dump_warm", true, n),
        _ => return false,
    }
    true
}
