//! A top-level panic handler that prints every goroutine, as Go does for
//! an unrecovered panic under `GOTRACEBACK=all`, then lets the panic end
//! the process as it would have anyway.
//!
//! ```text
//! cargo run --release --example panic_dump    # exits 101, dump on stderr
//! ```
//!
//! Two pieces:
//!
//! 1. A panic hook (`std::panic::set_hook`) that first runs the hook it
//!    replaces (std's default prints `thread '…' panicked at …` and the
//!    message, and a backtrace under `RUST_BACKTRACE`), then writes
//!    [`gort::stack`]`(true)` to stderr.
//! 2. The goroutine's panic comes back to whoever joins it (`join()`
//!    returns `Err(JoinError::Panic(payload))`, as `std::thread` does);
//!    the main goroutine re-raises it with `std::panic::resume_unwind`,
//!    [`gort::run`] resumes it on the main thread, and the process exits
//!    with status 101 like any Rust program whose `main` panicked.
//!    `resume_unwind` does not run the hook again, so the dump is printed
//!    once.
//!
//! The hook runs for *every* panic, including ones a program expects and
//! handles through `join` (or `catch_unwind`); a program that panics as a
//! matter of course pays for a dump each time (see `dump_hook` for the
//! cost). Go prints only the panicking goroutine by default
//! (`GOTRACEBACK=single`); this example chooses all of them.

use gort::{chan, Builder, JoinError};
use std::io::Write;
use std::time::Duration;

/// Installs the dumping hook in front of the current one.
fn install_dump_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        dump_hook();
    }));
}

/// The dumping half of the hook.
///
/// Where it runs: on the *panicking goroutine*, on its M's OS thread,
/// before any unwinding (so the dump shows the panicking goroutine
/// `[running]` at the `panic!`, its frames intact, and every other
/// goroutine where it waits). It must not park: std's panic state is per
/// thread, so another goroutine of this thread that ran now would see
/// `std::thread::panicking()` and, if it panicked too, abort the process
/// (see the README's "Goroutines share their thread"). `gort::stack` does
/// not park: it walks the stacks inside `gort::syscall`, which blocks this
/// thread (if that lasts, sysmon hands its P to another M; goroutines
/// bound to this M wait).
///
/// What `stack(true)` costs: the first dump of a process parses the
/// binary's debug info (about 10 ms for this 6.6 MB example on a 2-core
/// VM; more time and memory for a large binary), later ones only resolve
/// addresses not seen before; each dump starts a helper thread (8 MiB of
/// virtual stack), holds each parked goroutine in its park for the moment
/// its stack is walked (a wake meanwhile is delayed, never lost) and
/// builds the whole text in memory: a few hundred bytes per goroutine, so
/// a million parked goroutines make a dump of hundreds of megabytes. No
/// goroutine is stopped; one running on another thread shows as `stack
/// unavailable`.
fn dump_hook() {
    let dump = gort::stack(true);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\n{dump}");
}

/// Stands for real work that finds an impossible value.
#[inline(never)]
fn validate_order(id: u64, quantity: i64) -> u64 {
    if quantity < 0 {
        panic!("order {id} has a negative quantity ({quantity})");
    }
    quantity as u64
}

/// A goroutine that would otherwise wait for work forever: it shows up in
/// the dump as `[chan receive]`.
#[inline(never)]
fn wait_for_orders(orders: gort::Receiver<u64>) -> usize {
    orders.into_iter().count()
}

fn main() {
    install_dump_hook();
    gort::run(|| {
        let (_orders_tx, orders) = chan::<u64>(0);
        let _idle = Builder::new()
            .name("order-queue")
            .spawn(move || wait_for_orders(orders));
        let worker = Builder::new().name("validator").spawn(|| {
            // Give `main` a moment to park in `join`, so that the dump
            // shows it there (not needed for anything else).
            gort::time::sleep(Duration::from_millis(20));
            validate_order(42, -3)
        });
        match worker.join() {
            Ok(n) => println!("validated {n}"),
            // Re-raise: the panic continues on this goroutine, then on the
            // main thread (gort::run resumes it), and ends the process.
            Err(JoinError::Panic(payload)) => std::panic::resume_unwind(payload),
            Err(JoinError::Goexit) => println!("the validator called goexit"),
        }
    })
}
