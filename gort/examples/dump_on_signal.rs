//! A long-running "service" that prints every goroutine's stack to stderr
//! when it receives SIGUSR1, and shuts down cleanly on SIGINT or SIGTERM:
//! the Unix way to ask a live server "what are you doing?" without
//! stopping it (SIGQUIT also dumps, but then exits with status 2).
//!
//! ```text
//! cargo run --release --example dump_on_signal
//! kill -USR1 <pid>        # the pid is printed at start: a dump on stderr
//! kill <pid>              # or ^C: workers stop, the process exits 0
//! ```
//!
//! The service is a small pipeline plus an idle listener, each goroutine a
//! named function under a [`Builder::name`], so a dump reads like this
//! (Go's format, with tabs where this shows four spaces; shortened):
//!
//! ```text
//! === SIGUSR1: goroutine dump 1 ===
//! goroutine 7 "signal-dumper" [running]:
//! dump_on_signal::dump_on_usr1(...)
//!     /src/gort/gort/examples/dump_on_signal.rs:148
//! dump_on_signal::main::{{closure}}::{{closure}}(...)
//!     /src/gort/gort/examples/dump_on_signal.rs:228
//! created by gort/examples/dump_on_signal.rs:228:14 in goroutine 1
//!
//! goroutine 1 "main" [select]:
//! dump_on_signal::main::{{closure}}(...)
//!     /src/gort/gort/examples/dump_on_signal.rs:241
//!
//! goroutine 4 "processor" [chan receive]:
//! dump_on_signal::process_orders(...)
//!     /src/gort/gort/examples/dump_on_signal.rs:94
//! dump_on_signal::main::{{closure}}::{{closure}}(...)
//!     /src/gort/gort/examples/dump_on_signal.rs:209
//! created by gort/examples/dump_on_signal.rs:209:14 in goroutine 1
//! ...
//! === end of goroutine dump 1 ===
//! ```
//!
//! - `producer` (`produce_orders`): a new order every 100 ms; waits in
//!   `[select]` on its ticker and the shutdown channel.
//! - `processor` (`process_orders`) and `recorder` (`record_results`):
//!   the pipeline's stages, waiting in `[chan receive]`.
//! - `health-listener` (`serve_health_checks`): a TCP listener on a free
//!   loopback port answering "ok\n"; idle in `[IO wait]`.
//! - `signal-dumper` (`dump_on_usr1`): selects on the SIGUSR1 channel and
//!   the shutdown channel; `[running]` in its own dump.
//! - `main`: waits for SIGINT/SIGTERM, then closes the shutdown channel
//!   and the listener and joins everyone.
//!
//! The signals arrive through [`gort::signal::notify`] (Go's os/signal) on
//! ordinary channels, so a goroutine waits for them in `select!` beside
//! anything else. A dump is [`gort::stack`]`(true)`: nothing is stopped;
//! a goroutine running on another thread at that moment prints as
//! `goroutine running on other thread; stack unavailable`. Taking one
//! costs about 10 ms the first time (the binary's debug info is parsed),
//! about a millisecond afterwards, for this example on a 2-core VM.
//!
//! Option: `--exit-after-dumps N` shuts down by itself after the N-th dump
//! (the test uses it, as a script could).
//!
//! [`Builder::name`]: gort::Builder::name

use gort::net::{is_closed, TcpListener};
use gort::signal::{self, Signal, SIGINT, SIGTERM, SIGUSR1};
use gort::time::Ticker;
use gort::{chan, select, Builder, JoinError, JoinHandle, Receiver, Sender};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// How often the producer makes an order.
const ORDER_EVERY: Duration = Duration::from_millis(100);

/// The pipeline's first stage: an order id per tick, until `shutdown`
/// closes. Dropping `out` on the way out ends the stages after it.
#[inline(never)]
fn produce_orders(out: Sender<u64>, shutdown: Receiver<()>) {
    let tick = Ticker::new(ORDER_EVERY);
    let mut id = 0;
    loop {
        select! {
            recv(tick.c()) -> _t => {
                id += 1;
                if out.send(id).is_err() {
                    return;
                }
            }
            recv(shutdown) -> _closed => return,
        }
    }
}

/// The middle stage: "processes" each order (its id times 10).
#[inline(never)]
fn process_orders(input: Receiver<u64>, out: Sender<u64>) {
    for id in input {
        if out.send(id * 10).is_err() {
            return;
        }
    }
}

/// The last stage: counts the results; returns the count when the
/// pipeline has drained.
#[inline(never)]
fn record_results(input: Receiver<u64>) -> u64 {
    input.into_iter().fold(0, |n, _result| n + 1)
}

/// An idle listener: answers "ok\n" to each connection, until another
/// goroutine closes the listener.
#[inline(never)]
fn serve_health_checks(l: Arc<TcpListener>) {
    loop {
        match l.accept() {
            Ok((mut c, _peer)) => {
                let _ = c.write_all(b"ok\n");
            }
            Err(e) if is_closed(&e) => return,
            Err(e) => {
                eprintln!("dump_on_signal: accept: {e}");
                gort::time::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Prints every goroutine to stderr for each SIGUSR1 on `usr1`, until
/// `shutdown` closes or, with `limit`, after that many dumps. Returning
/// drops `_done`, which tells `main` (see there).
#[inline(never)]
fn dump_on_usr1(
    usr1: Receiver<Signal>,
    shutdown: Receiver<()>,
    limit: Option<u64>,
    _done: Sender<()>,
) {
    let mut dumps = 0;
    while limit.is_none_or(|l| dumps < l) {
        select! {
            recv(usr1) -> _sig => {
                dumps += 1;
                // The dump is taken first and written in one piece under
                // stderr's lock. (`gort::write_stack(true, &mut
                // stderr.lock())` would hold std's lock while the dump is
                // taken: `stack` enters `gort::syscall`, whose return may
                // run another goroutine of this thread, and std's stderr
                // lock is re-entrant per *thread*, so that goroutine's
                // `eprintln!` would land inside the dump.)
                let dump = gort::stack(true);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "=== SIGUSR1: goroutine dump {dumps} ===\n{dump}=== end of goroutine dump {dumps} ===\n"
                );
            }
            recv(shutdown) -> _closed => return,
        }
    }
}

/// Joins a worker, reporting a panic or Goexit by name.
fn join<T>(name: &str, h: JoinHandle<T>) -> Option<T> {
    match h.join() {
        Ok(v) => Some(v),
        Err(JoinError::Panic(_)) => {
            eprintln!("dump_on_signal: {name} panicked");
            None
        }
        Err(JoinError::Goexit) => None,
    }
}

fn usage() -> ! {
    eprintln!("usage: dump_on_signal [--exit-after-dumps N]");
    std::process::exit(2)
}

fn main() {
    let mut limit = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--exit-after-dumps" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => limit = Some(n),
                None => usage(),
            },
            _ => usage(),
        }
    }
    let ok = gort::run(move || {
        // Signals first: until `notify`, SIGUSR1 would end the process.
        // A buffer of 1 holds a signal until its receiver gets to it.
        let (usr1_tx, usr1) = chan::<Signal>(1);
        signal::notify(&usr1_tx, &[SIGUSR1]);
        let (term_tx, term) = chan::<Signal>(1);
        signal::notify(&term_tx, &[SIGINT, SIGTERM]);

        // Closed (every Sender dropped) to shut everything down.
        let (shutdown_tx, shutdown) = chan::<()>(0);
        let (orders_tx, orders) = chan::<u64>(0);
        let (results_tx, results) = chan::<u64>(0);
        let (done_tx, dumper_done) = chan::<()>(0);

        let sd = shutdown.clone();
        let producer = Builder::new()
            .name("producer")
            .spawn(move || produce_orders(orders_tx, sd));
        let processor = Builder::new()
            .name("processor")
            .spawn(move || process_orders(orders, results_tx));
        let recorder = Builder::new()
            .name("recorder")
            .spawn(move || record_results(results));
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => Arc::new(l),
            Err(e) => {
                eprintln!("dump_on_signal: cannot listen: {e}");
                return false;
            }
        };
        let health_addr = listener.local_addr().map(|a| a.to_string());
        let l = listener.clone();
        let health = Builder::new()
            .name("health-listener")
            .spawn(move || serve_health_checks(l));
        let sd = shutdown.clone();
        let dumper = Builder::new()
            .name("signal-dumper")
            .spawn(move || dump_on_usr1(usr1, sd, limit, done_tx));
        drop(shutdown);

        let pid = std::process::id();
        println!(
            "dump_on_signal: pid {pid}, health checks on {}",
            health_addr.unwrap_or_else(|e| e.to_string())
        );
        println!("dump_on_signal: `kill -USR1 {pid}` dumps the goroutines to stderr; ^C or `kill {pid}` stops");

        // Wait for SIGINT/SIGTERM, or for the dumper to be done (it only
        // returns early with --exit-after-dumps; its return closes
        // `dumper_done`).
        select! {
            recv(term) -> sig => match sig {
                Ok(sig) => println!("dump_on_signal: {sig}, shutting down"),
                Err(_) => println!("dump_on_signal: signal channel closed, shutting down"),
            },
            recv(dumper_done) -> _closed => println!("dump_on_signal: dumps done, shutting down"),
        }
        drop(shutdown_tx);
        listener.close();
        let mut ok = join("producer", producer).is_some();
        ok &= join("processor", processor).is_some();
        let orders = join("recorder", recorder);
        ok &= orders.is_some();
        ok &= join("health-listener", health).is_some();
        ok &= join("signal-dumper", dumper).is_some();
        // A second ^C now ends the process the default way again.
        signal::stop(&term_tx);
        signal::stop(&usr1_tx);
        println!(
            "dump_on_signal: {} orders processed, clean exit",
            orders.unwrap_or(0)
        );
        ok
    });
    std::process::exit(if ok { 0 } else { 1 })
}
