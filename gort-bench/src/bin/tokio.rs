//! tokio's side of `cargo xtask bench` (multi-thread runtime, GOMAXPROCS
//! workers). Tasks are stackless, so these are the async analogues.

use gort_bench::{
    args, peak_rss, per, procs, raise_nofile, report, rss, unknown, TCP_CONNS, TCP_ECHO_CLIENTS,
    TCP_MSG,
};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// The echo servers' per-connection task.
async fn echo_conn(mut c: TcpStream) {
    let _ = c.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// An echo server on 127.0.0.1 (a task per connection); its address.
async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            tokio::spawn(echo_conn(c));
        }
    });
    addr
}

/// The HTTP workloads' server: hyper 1.x's HTTP/1.1 connection (keep-alive
/// on by default) on a task per connection, answering every request as
/// gort's example answers `GET /`.
async fn hello_server() -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response};
    async fn hello(
        _: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Hello, World!\n")));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain"),
        );
        Ok(r)
    }
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            let _ = c.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(c),
                        hyper::service::service_fn(hello),
                    )
                    .await;
            });
        }
    });
    addr
}

fn main() {
    let (w, n) = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procs())
        .enable_all()
        .build()
        .unwrap();
    if let Some(h) = gort_bench::http::workload(&w, n) {
        // wrk runs from this thread while the runtime's workers serve.
        h.run(rt.block_on(hello_server()));
        return;
    }
    match w.as_str() {
        "spawn_join" => {
            let n = n.unwrap_or(1_000_000);
            let el = rt.block_on(async move {
                let left = Arc::new(AtomicUsize::new(n as usize));
                let done = Arc::new(Notify::new());
                let t0 = Instant::now();
                for _ in 0..n {
                    let (l, d) = (left.clone(), done.clone());
                    tokio::spawn(async move {
                        if l.fetch_sub(1, Ordering::AcqRel) == 1 {
                            d.notify_one();
                        }
                    });
                }
                done.notified().await;
                t0.elapsed()
            });
            report(per(el, n), "ns/task");
        }
        // tokio has no rendezvous channel: capacity 1 is the closest.
        "park_pingpong" | "chan_pingpong" => {
            let n = n.unwrap_or(1_000_000);
            let el = rt.block_on(async move {
                let (atx, mut arx) = mpsc::channel::<u64>(1);
                let (btx, mut brx) = mpsc::channel::<u64>(1);
                let pong = tokio::spawn(async move {
                    while let Some(v) = arx.recv().await {
                        btx.send(v).await.unwrap();
                    }
                });
                let ping = tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..n {
                        atx.send(i).await.unwrap();
                        brx.recv().await.unwrap();
                    }
                    t0.elapsed()
                });
                let el = ping.await.unwrap();
                pong.await.unwrap();
                el
            });
            report(per(el, n), "ns/roundtrip");
        }
        // The tokio twin of gort-bench/src/sysmon.rs's workload (same
        // shape, parameters and timed region): the blocking call goes
        // through `block_in_place`, tokio's way to block a worker thread
        // without stalling the other tasks: the worker's core moves to
        // another thread at once, on every call (Go and gort hand the P
        // off only once a call outlasts a sysmon tick). The ping-pong uses
        // capacity-1 channels, as chan_pingpong here. No raw twin (see
        // sysmon.rs): tokio cannot preempt a task.
        "syscall_handoff" => {
            use gort_bench::sysmon::{self, WindowTimer, BATCH, BLOCKERS};
            use std::sync::atomic::{AtomicBool, AtomicU64};
            let window = sysmon::window(n);
            let stop = Arc::new(AtomicBool::new(false));
            let calls = Arc::new(AtomicU64::new(0));
            let fired = sysmon::watchdog(window, &stop);
            let w = rt.block_on(async move {
                let started = Arc::new(AtomicUsize::new(0));
                let blockers: Vec<_> = (0..BLOCKERS)
                    .map(|_| {
                        let (stop, calls, started) = (stop.clone(), calls.clone(), started.clone());
                        tokio::spawn(async move {
                            started.fetch_add(1, Ordering::SeqCst);
                            while !stop.load(Ordering::Relaxed) {
                                tokio::task::block_in_place(sysmon::blocking_call);
                                calls.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                while started.load(Ordering::SeqCst) < BLOCKERS {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                let c = calls.clone();
                let ping = tokio::spawn(async move {
                    let (atx, mut arx) = mpsc::channel::<u64>(1);
                    let (btx, mut brx) = mpsc::channel::<u64>(1);
                    let pong = tokio::spawn(async move {
                        while let Some(v) = arx.recv().await {
                            btx.send(v).await.unwrap();
                        }
                    });
                    atx.send(0).await.unwrap();
                    brx.recv().await.unwrap();
                    let mut t = WindowTimer::start(window, &c);
                    loop {
                        for i in 0..BATCH {
                            atx.send(i).await.unwrap();
                            brx.recv().await.unwrap();
                        }
                        if t.batch_done() {
                            break;
                        }
                    }
                    let w = t.finish();
                    drop(atx);
                    pong.await.unwrap();
                    w
                });
                let w = ping.await.unwrap();
                stop.store(true, Ordering::SeqCst);
                for b in blockers {
                    b.await.unwrap();
                }
                w
            });
            sysmon::report_window("syscall_handoff", &w, fired.load(Ordering::SeqCst));
        }
        "parked_mem" => {
            let n = n.unwrap_or(100_000);
            let v = rt.block_on(async move {
                let rss0 = rss();
                let gate = Arc::new(Notify::new());
                let parked = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..n)
                    .map(|_| {
                        let (g, p) = (gate.clone(), parked.clone());
                        tokio::spawn(async move {
                            let f = g.notified();
                            p.fetch_add(1, Ordering::Release);
                            f.await;
                        })
                    })
                    .collect();
                while parked.load(Ordering::Acquire) < n as usize {
                    tokio::task::yield_now().await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let rss1 = rss();
                gate.notify_waiters();
                for h in hs {
                    let _ = h.await;
                }
                rss1.saturating_sub(rss0) as f64 / n as f64
            });
            report(v, "bytes/goroutine");
        }
        "mutex_uncontended" => {
            let n = n.unwrap_or(10_000_000);
            let el = rt.block_on(async move {
                let m = tokio::sync::Mutex::new(0u64);
                let t0 = Instant::now();
                for _ in 0..n {
                    *m.lock().await += 1;
                }
                t0.elapsed()
            });
            report(per(el, n), "ns/op");
        }
        "mutex_contended" => {
            let per_t = n.unwrap_or(100_000);
            let el = rt.block_on(async move {
                let m = Arc::new(tokio::sync::Mutex::new(0u64));
                let t0 = Instant::now();
                let hs: Vec<_> = (0..64)
                    .map(|_| {
                        let m = m.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_t {
                                *m.lock().await += 1;
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
                t0.elapsed()
            });
            report(per(el, 64 * per_t), "ns/op");
        }
        "rwmutex_read" => {
            let per_t = n.unwrap_or(1_000_000);
            let el = rt.block_on(async move {
                let l = Arc::new(tokio::sync::RwLock::new(0u64));
                let t0 = Instant::now();
                let hs: Vec<_> = (0..8)
                    .map(|_| {
                        let l = l.clone();
                        tokio::spawn(async move {
                            let mut sum = 0u64;
                            for i in 0..per_t {
                                if i % 1000 == 0 {
                                    *l.write().await += 1;
                                } else {
                                    sum += *l.read().await;
                                }
                            }
                            std::hint::black_box(sum);
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
                t0.elapsed()
            });
            report(per(el, 8 * per_t), "ns/op");
        }
        "chan_buffered" => {
            let n = n.unwrap_or(10_000_000);
            let el = rt.block_on(async move {
                let (tx, mut rx) = mpsc::channel::<u64>(1024);
                let t0 = Instant::now();
                tokio::spawn(async move {
                    for i in 0..n {
                        tx.send(i).await.unwrap();
                    }
                });
                let mut s = 0u64;
                while let Some(v) = rx.recv().await {
                    s += v;
                }
                assert_eq!(s, n * (n - 1) / 2);
                t0.elapsed()
            });
            report(per(el, n), "ns/msg");
        }
        "select2" => {
            let n = n.unwrap_or(10_000_000);
            let el = rt.block_on(async move {
                let (atx, mut arx) = mpsc::channel::<u64>(1024);
                let (btx, mut brx) = mpsc::channel::<u64>(1024);
                let t0 = Instant::now();
                for tx in [atx, btx] {
                    tokio::spawn(async move {
                        for i in 0..n / 2 {
                            tx.send(i).await.unwrap();
                        }
                    });
                }
                let mut s = 0u64;
                for _ in 0..n / 2 * 2 {
                    s += tokio::select! {
                        Some(v) = arx.recv() => v,
                        Some(v) = brx.recv() => v,
                    };
                }
                std::hint::black_box(s);
                t0.elapsed()
            });
            report(per(el, n), "ns/msg");
        }
        "timer_churn" => {
            // A tokio timer exists once its Sleep is polled (registered in
            // the wheel); dropping it cancels.
            let n = n.unwrap_or(1_000_000);
            let el = rt.block_on(async move {
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                let t0 = Instant::now();
                let mut ts: Vec<_> = (0..n)
                    .map(|_| Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))))
                    .collect();
                for t in &mut ts {
                    assert!(t.as_mut().poll(&mut cx).is_pending());
                }
                drop(ts);
                t0.elapsed()
            });
            report(per(el, n), "ns/timer");
        }
        "sleep_many" => {
            let n = n.unwrap_or(100_000);
            let el = rt.block_on(async move {
                let t0 = Instant::now();
                let hs: Vec<_> = (0..n)
                    .map(|_| tokio::spawn(tokio::time::sleep(std::time::Duration::from_millis(10))))
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
                t0.elapsed()
            });
            report(el.as_secs_f64() * 1e3, "ms");
        }
        "sleep_accuracy" => {
            let n = n.unwrap_or(1000);
            let mut over = rt.block_on(async move {
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let t0 = Instant::now();
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    v.push(t0.elapsed().as_secs_f64() * 1e6 - 1000.0);
                }
                v
            });
            over.sort_by(f64::total_cmp);
            report(over[over.len() / 2], "us");
        }
        "blocking_roundtrip" => {
            let n = n.unwrap_or(100_000);
            let el = rt.block_on(async move {
                tokio::task::spawn_blocking(|| ()).await.unwrap();
                let t0 = Instant::now();
                for _ in 0..n {
                    tokio::task::spawn_blocking(|| ()).await.unwrap();
                }
                t0.elapsed()
            });
            report(per(el, n), "ns/call");
        }
        "tcp_echo" => {
            let msgs = n.unwrap_or(10_000);
            let el = rt.block_on(async move {
                let addr = echo_server().await;
                let t0 = Instant::now();
                let hs: Vec<_> = (0..TCP_ECHO_CLIENTS)
                    .map(|i| {
                        tokio::spawn(async move {
                            let mut c = TcpStream::connect(addr).await.unwrap();
                            c.set_nodelay(true).unwrap();
                            let mut msg = [i as u8; TCP_MSG];
                            for _ in 0..msgs {
                                c.write_all(&msg).await.unwrap();
                                c.read_exact(&mut msg).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
                t0.elapsed()
            });
            report(per(el, TCP_ECHO_CLIENTS * msgs), "ns/rt");
        }
        "tcp_conns" | "tcp_conns_ms" => {
            raise_nofile();
            let el = rt.block_on(async move {
                let addr = echo_server().await;
                let t0 = Instant::now();
                let mut conns = Vec::with_capacity(TCP_CONNS);
                for _ in 0..TCP_CONNS {
                    conns.push(TcpStream::connect(addr).await.unwrap());
                }
                let mut msg = [7u8; TCP_MSG];
                for c in &mut conns {
                    c.set_nodelay(true).unwrap();
                    c.write_all(&msg).await.unwrap();
                    c.read_exact(&mut msg).await.unwrap();
                }
                t0.elapsed()
            });
            if w == "tcp_conns" {
                report(peak_rss() as f64 / 1e6, "MB");
            } else {
                report(el.as_secs_f64() * 1e3, "ms");
            }
        }
        _ => unknown(&w),
    }
}
