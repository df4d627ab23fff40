//! Driving runtime-agnostic futures directly with `gort::sync::block_on`.
//!
//! A future that needs no reactor — one woken by whatever completes it —
//! runs on a goroutine as it is: `block_on` polls it, parks the goroutine
//! (not its thread) while it is pending, and its waker readies the
//! goroutine again. Here:
//! * a hand-written `Promise` completed by another goroutine (which uses
//!   gort's own timers), awaited through a chain of `async fn`s;
//! * a `tokio::sync::oneshot` (tokio's sync types need no runtime)
//!   completed by a plain OS thread;
//! * the same `block_on` on the process's main thread, which is not a
//!   goroutine: it parks the thread.
//!
//! ```text
//! cargo run --release -p gort-examples --example async_agnostic
//! ```

use gort::sync::block_on;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A value some goroutine or thread will produce, as a future.
struct Promise<T>(Arc<Mutex<Slot<T>>>);

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// The producing side of a [`Promise`].
struct Resolver<T>(Arc<Mutex<Slot<T>>>);

fn promise<T>() -> (Resolver<T>, Promise<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    (Resolver(slot.clone()), Promise(slot))
}

impl<T> Resolver<T> {
    fn resolve(self, v: T) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.value = Some(v);
            s.waker.take()
        };
        // Wake outside the lock: the poller takes it to read the value.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Promise<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// An "async API" whose work runs on a goroutine: squares `x` after a
/// gort timer's delay.
fn square_later(x: u64) -> Promise<u64> {
    let (resolver, p) = promise();
    gort::go(move || {
        gort::time::sleep(Duration::from_millis(5));
        resolver.resolve(x * x);
    });
    p
}

/// An async fn that awaits only agnostic futures is agnostic too.
async fn sum_of_squares(a: u64, b: u64) -> u64 {
    let x = square_later(a).await;
    let y = square_later(b).await;
    x + y
}

fn main() {
    gort::run(|| {
        // Goroutines, each parked in block_on until its chain completes.
        let hs: Vec<_> = (1..=10u64)
            .map(|i| gort::go(move || block_on(sum_of_squares(i, i + 1))))
            .collect();
        let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        println!("sum over 10 goroutines: {total}");
        assert_eq!(total, (1..=10u64).map(|i| i * i + (i + 1) * (i + 1)).sum());

        // A tokio oneshot, sent from a plain OS thread; no runtime anywhere.
        let (tx, rx) = tokio::sync::oneshot::channel::<&str>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.send("sent from an OS thread").unwrap();
        });
        println!("goroutine received: {}", block_on(rx).unwrap());
        t.join().unwrap();
    });

    // The main thread is not a goroutine: block_on parks the thread, and
    // goroutines (started by the runtime above) still complete the promise.
    println!(
        "main thread: 3^2 + 4^2 = {}",
        block_on(sum_of_squares(3, 4))
    );
}
