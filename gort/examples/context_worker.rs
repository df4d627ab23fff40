//! The guide's context examples: a worker that waits on `ctx.done()` and
//! tears down, and a context-cancelled fan-out with errgroup.
//!
//! `cargo run --release --example context_worker`

use gort::{context, errgroup, select};
use std::time::Duration;

/// Works until its context is done, then releases what it holds and says
/// why it stopped.
fn worker(ctx: context::Context, id: u32) -> String {
    let tick = gort::time::tick(Duration::from_millis(2));
    let mut beats = 0u32;
    loop {
        select! {
            recv(ctx.done()) -> _ => {
                // Tear down: here, the ticker (dropping it stops it).
                drop(tick);
                let why = ctx.err().expect("done means an error");
                return format!("worker {id}: stopped after {beats}+ beats: {why}");
            }
            recv(tick) -> _ => beats += 1,
        }
    }
}

fn main() {
    gort::run(|| {
        // A worker under a deadline, and one cancelled by hand.
        let (timed, _stop) =
            context::with_timeout(&context::background(), Duration::from_millis(30));
        let (manual, cancel) = context::with_cancel(&context::background());
        let a = gort::go(move || worker(timed, 1));
        let b = gort::go(move || worker(manual, 2));
        gort::time::sleep(Duration::from_millis(10));
        cancel.cancel();
        println!("{}", b.join().unwrap());
        println!("{}", a.join().unwrap());

        // Fan-out: the first failure cancels the others' context.
        let (g, ctx) = errgroup::with_context::<String>(&context::background());
        for shard in 0..8 {
            let ctx = ctx.clone();
            g.go(move || loop {
                select! {
                    recv(ctx.done()) -> _ => return Ok(()),
                    default => if shard == 5 { return Err(format!("shard {shard} failed")) },
                }
                gort::gosched();
            });
        }
        match g.wait() {
            Err(e) => println!("fan-out: {e}; every shard stopped"),
            Ok(()) => println!("fan-out: all shards done"),
        }
        assert_eq!(
            context::cause(&ctx).map(|c| c.to_string()).as_deref(),
            Some("shard 5 failed")
        );
    });
}
