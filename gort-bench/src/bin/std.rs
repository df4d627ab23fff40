//! The OS-thread peer of `cargo xtask bench`: std threads with std::sync
//! (futex-based Mutex/RwLock, thread park/unpark) and crossbeam-channel —
//! what a Rust program uses without a green-thread runtime.

use crossbeam_channel::{bounded, select};
use gort_bench::{args, per, report, unknown, TCP_ECHO_CLIENTS, TCP_MSG};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Instant;

fn main() {
    let (w, n) = args();
    match w.as_str() {
        "spawn_join" => {
            // Threads cost ~10 µs each: fewer of them.
            let n = n.unwrap_or(20_000);
            let t0 = Instant::now();
            for _ in 0..n {
                thread::spawn(|| {}).join().unwrap();
            }
            report(per(t0.elapsed(), n), "ns/task");
        }
        "park_pingpong" => {
            // thread::park/unpark with a turn flag: the OS-thread analogue of
            // park/ready.
            use std::sync::atomic::{AtomicU64, Ordering};
            let n = n.unwrap_or(20_000);
            let turn = Arc::new(AtomicU64::new(0));
            let main_t = thread::current();
            let t2 = turn.clone();
            let pong = thread::spawn(move || {
                for i in 0..n {
                    while t2.load(Ordering::Acquire) != 2 * i + 1 {
                        thread::park();
                    }
                    t2.store(2 * i + 2, Ordering::Release);
                    main_t.unpark();
                }
            });
            let pong_t = pong.thread().clone();
            let t0 = Instant::now();
            for i in 0..n {
                turn.store(2 * i + 1, Ordering::Release);
                pong_t.unpark();
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    thread::park();
                }
            }
            let el = t0.elapsed();
            pong.join().unwrap();
            report(per(el, n), "ns/rt");
        }
        // Both ends are OS threads already: locked_pingpong (one goroutine
        // locked to its thread) is the same program here.
        "chan_pingpong" | "locked_pingpong" => {
            let n = n.unwrap_or(20_000);
            let (atx, arx) = bounded::<u64>(0);
            let (btx, brx) = bounded::<u64>(0);
            let pong = thread::spawn(move || {
                for v in arx {
                    btx.send(v).unwrap();
                }
            });
            let t0 = Instant::now();
            for i in 0..n {
                atx.send(i).unwrap();
                brx.recv().unwrap();
            }
            let el = t0.elapsed();
            drop(atx);
            pong.join().unwrap();
            report(per(el, n), "ns/rt");
        }
        // The thread twin of gort-bench/src/sysmon.rs's workload (same
        // shape, parameters and timed region): every blocker and both ends
        // of the ping-pong are OS threads; the kernel schedules them, there
        // is no P to hand off (and so no raw twin: a thread's blocking call
        // is the same either way).
        "syscall_handoff" => {
            use gort_bench::sysmon::{self, WindowTimer, BATCH, BLOCKERS};
            use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
            let window = sysmon::window(n);
            let stop = Arc::new(AtomicBool::new(false));
            let calls = Arc::new(AtomicU64::new(0));
            let fired = sysmon::watchdog(window, &stop);
            let started = Arc::new(AtomicUsize::new(0));
            let blockers: Vec<_> = (0..BLOCKERS)
                .map(|_| {
                    let (stop, calls, started) = (stop.clone(), calls.clone(), started.clone());
                    thread::spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        while !stop.load(Ordering::Relaxed) {
                            sysmon::blocking_call();
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            while started.load(Ordering::SeqCst) < BLOCKERS {
                thread::sleep(std::time::Duration::from_millis(1));
            }
            let c = calls.clone();
            let ping = thread::spawn(move || {
                let (atx, arx) = bounded::<u64>(0);
                let (btx, brx) = bounded::<u64>(0);
                let pong = thread::spawn(move || {
                    for v in arx {
                        btx.send(v).unwrap();
                    }
                });
                atx.send(0).unwrap();
                brx.recv().unwrap();
                let mut t = WindowTimer::start(window, &c);
                loop {
                    for i in 0..BATCH {
                        atx.send(i).unwrap();
                        brx.recv().unwrap();
                    }
                    if t.batch_done() {
                        break;
                    }
                }
                let w = t.finish();
                drop(atx);
                pong.join().unwrap();
                w
            });
            let w = ping.join().unwrap();
            stop.store(true, Ordering::SeqCst);
            for b in blockers {
                b.join().unwrap();
            }
            sysmon::report_window("syscall_handoff", &w, fired.load(Ordering::SeqCst));
        }
        "mutex_uncontended" => {
            let n = n.unwrap_or(10_000_000);
            let m = Mutex::new(0u64);
            let t0 = Instant::now();
            for _ in 0..n {
                *m.lock().unwrap() += 1;
            }
            std::hint::black_box(&m);
            report(per(t0.elapsed(), n), "ns/op");
        }
        "mutex_contended" => {
            let per_t = n.unwrap_or(100_000);
            let m = Arc::new(Mutex::new(0u64));
            let t0 = Instant::now();
            let hs: Vec<_> = (0..64)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        for _ in 0..per_t {
                            *m.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(*m.lock().unwrap(), 64 * per_t);
            report(per(t0.elapsed(), 64 * per_t), "ns/op");
        }
        "rwmutex_read" => {
            let per_t = n.unwrap_or(1_000_000);
            let l = Arc::new(RwLock::new(0u64));
            let t0 = Instant::now();
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let l = l.clone();
                    thread::spawn(move || {
                        let mut sum = 0u64;
                        for i in 0..per_t {
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
            report(per(t0.elapsed(), 8 * per_t), "ns/op");
        }
        "chan_buffered" => {
            let n = n.unwrap_or(10_000_000);
            let (tx, rx) = bounded::<u64>(1024);
            let t0 = Instant::now();
            thread::spawn(move || (0..n).for_each(|i| tx.send(i).unwrap()));
            let s: u64 = rx.iter().sum();
            assert_eq!(s, n * (n - 1) / 2);
            report(per(t0.elapsed(), n), "ns/msg");
        }
        "chan_mpmc" => {
            let n = n.unwrap_or(10_000_000);
            let (tx, rx) = bounded::<u64>(1024);
            let t0 = Instant::now();
            for _ in 0..4 {
                let tx = tx.clone();
                thread::spawn(move || (0..n / 4).for_each(|i| tx.send(i).unwrap()));
            }
            drop(tx);
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    thread::spawn(move || rx.iter().count() as u64)
                })
                .collect();
            let got: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(got, n / 4 * 4);
            report(per(t0.elapsed(), n), "ns/msg");
        }
        "select2" => {
            let n = n.unwrap_or(10_000_000);
            let (atx, arx) = bounded::<u64>(1024);
            let (btx, brx) = bounded::<u64>(1024);
            // Senders kept open, as in Go (a disconnected channel is ready).
            let _keep = (atx.clone(), btx.clone());
            let t0 = Instant::now();
            for tx in [atx, btx] {
                thread::spawn(move || (0..n / 2).for_each(|i| tx.send(i).unwrap()));
            }
            let mut s = 0u64;
            for _ in 0..n / 2 * 2 {
                s += select! {
                    recv(arx) -> v => v.unwrap(),
                    recv(brx) -> v => v.unwrap(),
                };
            }
            std::hint::black_box(s);
            report(per(t0.elapsed(), n), "ns/msg");
        }
        // Thread per connection (200 threads): the classic blocking server.
        "tcp_echo" => {
            let msgs = n.unwrap_or(10_000);
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            thread::spawn(move || loop {
                let (mut c, _) = l.accept().unwrap();
                thread::spawn(move || {
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
                });
            });
            let t0 = Instant::now();
            let hs: Vec<_> = (0..TCP_ECHO_CLIENTS)
                .map(|i| {
                    thread::spawn(move || {
                        let mut c = std::net::TcpStream::connect(addr).unwrap();
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
        _ => unknown(&w),
    }
}
