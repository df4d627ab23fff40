//! Calling a tokio-based async library from goroutines.
//!
//! gort has no tokio reactor, so a future that needs one (`tokio::net`,
//! `tokio::time`, anything that calls `tokio::spawn`) cannot be polled by a
//! goroutine directly. The recipe: keep a tokio runtime on its own worker
//! threads, `spawn` the future there, and block the goroutine on the
//! `JoinHandle` with `gort::sync::block_on` — the handle is an ordinary,
//! runtime-agnostic future. The goroutine parks (its M runs the other
//! goroutines meanwhile) until the task finishes and wakes it.
//!
//! Here a tokio TCP echo server runs on the runtime, and eight goroutines
//! each open a tokio `TcpStream` to it, send a line, read the echo, and
//! sleep with `tokio::time::sleep` — all through `spawn` + `block_on`.
//!
//! ```text
//! cargo run --release -p gort-examples --example async_tokio
//! ```

use gort::sync::block_on;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A tokio-based "client library": connect, send one line, read the echo.
async fn echo_once(addr: std::net::SocketAddr, line: String) -> std::io::Result<String> {
    let mut stream = BufReader::new(TcpStream::connect(addr).await?);
    stream
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await?;
    let mut back = String::new();
    stream.read_line(&mut back).await?;
    Ok(back.trim_end().to_string())
}

/// The echo server: one tokio task per connection.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    // Without a runtime, a reactor-bound future panics (tokio's message):
    // this is what the recipe below avoids.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let err = std::panic::catch_unwind(|| block_on(tokio::time::sleep(Duration::from_millis(1))))
        .unwrap_err();
    std::panic::set_hook(hook);
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    println!("without a tokio runtime: {msg}");

    // The runtime, on worker threads of its own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let handle = rt.handle().clone();

    gort::run(move || {
        // Even binding the listener needs the reactor: spawn it too.
        let listener = block_on(handle.spawn(TcpListener::bind("127.0.0.1:0")))
            .expect("task")
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        handle.spawn(serve(listener));
        println!("tokio echo server on {addr}");

        // While the clients wait, a goroutine keeps running: their
        // block_on parks goroutines, not threads.
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, s2) = (ticks.clone(), stop.clone());
        let ticker = gort::go(move || {
            while !s2.load(Ordering::Relaxed) {
                t2.fetch_add(1, Ordering::Relaxed);
                gort::time::sleep(Duration::from_millis(1));
            }
        });

        let clients: Vec<_> = (0..8)
            .map(|i| {
                let handle = handle.clone();
                gort::go(move || {
                    let line = format!("hello from goroutine {i}");
                    let echoed = block_on(handle.spawn(echo_once(addr, line.clone())))
                        .expect("task")
                        .expect("echo");
                    assert_eq!(echoed, line);
                    // tokio's timer, from a goroutine: on the runtime too,
                    // and *created* there — `spawn(tokio::time::sleep(d))`
                    // would build the Sleep here, outside the runtime, and
                    // panic. An async block (like an async fn) builds it
                    // when the task first runs.
                    let d = Duration::from_millis(10);
                    block_on(handle.spawn(async move { tokio::time::sleep(d).await }))
                        .expect("task");
                    echoed
                })
            })
            .collect();
        let mut echoes: Vec<String> = clients.into_iter().map(|h| h.join().unwrap()).collect();
        echoes.sort();
        for e in &echoes {
            println!("echoed: {e}");
        }
        println!("{} goroutines got their echo", echoes.len());
        stop.store(true, Ordering::Relaxed);
        ticker.join().unwrap();
        println!(
            "ticker goroutine ran meanwhile: {}",
            ticks.load(Ordering::Relaxed) > 0
        );
    });
    rt.shutdown_timeout(Duration::from_secs(5));
}
