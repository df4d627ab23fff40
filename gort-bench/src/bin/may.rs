//! may's side of `cargo xtask bench` (stackful coroutines; spawning is
//! `unsafe` in may, which is what gort's thread-binding rule avoids).

use gort_bench::{
    args, peak_rss, per, procs, raise_nofile, report, rss, unknown, TCP_CONNS, TCP_ECHO_CLIENTS,
    TCP_MSG,
};
use may::net::{TcpListener, TcpStream};
use may::sync::mpsc;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The echo servers' per-connection coroutine.
fn echo_conn(mut c: TcpStream) {
    let _ = c.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// An echo server on 127.0.0.1 (a coroutine per connection); its address.
fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    may::go!(move || loop {
        let (c, _) = l.accept().unwrap();
        may::go!(move || echo_conn(c));
    });
    addr
}

fn main() {
    let (w, n) = args();
    may::config().set_workers(procs());
    match w.as_str() {
        "spawn_join" => {
            let n = n.unwrap_or(1_000_000);
            let left = Arc::new(AtomicUsize::new(n as usize));
            let (tx, rx) = mpsc::channel::<()>();
            let t0 = Instant::now();
            for _ in 0..n {
                let (l, tx) = (left.clone(), tx.clone());
                may::go!(move || {
                    if l.fetch_sub(1, Ordering::AcqRel) == 1 {
                        tx.send(()).unwrap();
                    }
                });
            }
            rx.recv().unwrap();
            report(per(t0.elapsed(), n), "ns/task");
        }
        // may has no rendezvous channel; a ping-pong never queues more than one.
        "park_pingpong" | "chan_pingpong" => {
            let n = n.unwrap_or(1_000_000);
            let (atx, arx) = mpsc::channel::<u64>();
            let (btx, brx) = mpsc::channel::<u64>();
            let pong = may::go!(move || {
                for _ in 0..n {
                    let v = arx.recv().unwrap();
                    btx.send(v).unwrap();
                }
            });
            let ping = may::go!(move || {
                let t0 = Instant::now();
                for i in 0..n {
                    atx.send(i).unwrap();
                    brx.recv().unwrap();
                }
                t0.elapsed()
            });
            let el = ping.join().unwrap();
            pong.join().unwrap();
            report(per(el, n), "ns/roundtrip");
        }
        "parked_mem" => {
            let n = n.unwrap_or(100_000);
            let rss0 = rss();
            let parked = Arc::new(AtomicUsize::new(0));
            let mut gates = Vec::with_capacity(n as usize);
            let hs: Vec<_> = (0..n)
                .map(|_| {
                    let (tx, rx) = mpsc::channel::<()>();
                    gates.push(tx);
                    let p = parked.clone();
                    may::go!(move || {
                        p.fetch_add(1, Ordering::Release);
                        rx.recv().unwrap();
                    })
                })
                .collect();
            while parked.load(Ordering::Acquire) < n as usize {
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let rss1 = rss();
            for g in gates {
                g.send(()).unwrap();
            }
            for h in hs {
                h.join().unwrap();
            }
            report(
                rss1.saturating_sub(rss0) as f64 / n as f64,
                "bytes/goroutine",
            );
        }
        "mutex_uncontended" => {
            let n = n.unwrap_or(10_000_000);
            let h = may::go!(move || {
                let m = may::sync::Mutex::new(0u64);
                let t0 = Instant::now();
                for _ in 0..n {
                    *m.lock().unwrap() += 1;
                }
                t0.elapsed()
            });
            report(per(h.join().unwrap(), n), "ns/op");
        }
        "mutex_contended" => {
            let per_c = n.unwrap_or(100_000);
            let m = Arc::new(may::sync::Mutex::new(0u64));
            let t0 = Instant::now();
            let hs: Vec<_> = (0..64)
                .map(|_| {
                    let m = m.clone();
                    may::go!(move || {
                        for _ in 0..per_c {
                            *m.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            report(per(t0.elapsed(), 64 * per_c), "ns/op");
        }
        "rwmutex_read" => {
            let per_c = n.unwrap_or(1_000_000);
            let l = Arc::new(may::sync::RwLock::new(0u64));
            let t0 = Instant::now();
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let l = l.clone();
                    may::go!(move || {
                        let mut sum = 0u64;
                        for i in 0..per_c {
                            if i % 1000 == 0 {
                                *l.write().unwrap() += 1;
                            } else {
                                sum += *l.read().unwrap();
                            }
                        }
                        std::hint::black_box(sum);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            report(per(t0.elapsed(), 8 * per_c), "ns/op");
        }
        "tcp_echo" => {
            let msgs = n.unwrap_or(10_000);
            let addr = echo_server();
            let t0 = Instant::now();
            let hs: Vec<_> = (0..TCP_ECHO_CLIENTS)
                .map(|i| {
                    may::go!(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.set_nodelay(true).unwrap();
                        let mut msg = [i as u8; TCP_MSG];
                        for _ in 0..msgs {
                            c.write_all(&msg).unwrap();
                            c.read_exact(&mut msg).unwrap();
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            report(per(t0.elapsed(), TCP_ECHO_CLIENTS * msgs), "ns/rt");
        }
        "tcp_conns" | "tcp_conns_ms" => {
            raise_nofile();
            let addr = echo_server();
            let el = may::go!(move || {
                let t0 = Instant::now();
                let mut conns: Vec<TcpStream> = (0..TCP_CONNS)
                    .map(|_| TcpStream::connect(addr).unwrap())
                    .collect();
                let mut msg = [7u8; TCP_MSG];
                for c in &mut conns {
                    c.set_nodelay(true).unwrap();
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut msg).unwrap();
                }
                t0.elapsed()
            })
            .join()
            .unwrap();
            if w == "tcp_conns" {
                report(peak_rss() as f64 / 1e6, "MB");
            } else {
                report(el.as_secs_f64() * 1e3, "ms");
            }
        }
        _ => unknown(&w),
    }
}
