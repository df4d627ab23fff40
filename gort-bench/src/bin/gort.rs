//! gort's side of `cargo xtask bench`.

use gort::net::{TcpListener, TcpStream};
use gort::sched::{park, WaitReason, Waiter};
use gort::sema::{semacquire, semrelease};
use gort::sync::WaitGroup;
use gort_bench::{
    args, peak_rss, per, raise_nofile, report, rss, unknown, TCP_CONNS, TCP_ECHO_CLIENTS, TCP_MSG,
};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// park_pingpong measures the scheduler's park/ready itself (issue 2), so
/// its token hand-off is built directly on them: one waiter slot and a
/// token flag per side. (gort-sema's semaphores add their wait-queue
/// machinery on top; they are used for the other workloads.)
#[derive(Default)]
struct Baton {
    slot: Mutex<(bool, Option<Waiter>)>,
}

impl Baton {
    fn take(&self) {
        let mut g = self.slot.lock().unwrap();
        while !g.0 {
            g.1 = Some(Waiter::current());
            park(WaitReason::Other("baton"), move || {
                drop(g);
                true
            });
            g = self.slot.lock().unwrap();
        }
        g.0 = false;
    }

    fn give(&self) {
        let mut g = self.slot.lock().unwrap();
        g.0 = true;
        let w = g.1.take();
        drop(g);
        if let Some(w) = w {
            w.ready();
        }
    }
}

/// The echo servers' per-connection loop.
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

/// An echo server on 127.0.0.1 (a goroutine per connection); its address.
fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    gort::go(move || loop {
        let (c, _) = l.accept().unwrap();
        gort::go(move || echo_conn(c));
    });
    addr
}

/// A CPU profile at 100 Hz running until dropped (the twin of Go's
/// `pprof.StartCPUProfile(io.Discard)` ... `pprof.StopCPUProfile()`).
/// A plain thread drains the samples every 100 ms, as Go's profile reader
/// does, unwinding each and counting it by stack; the pprof encoding is
/// left out (Go's runs in `StopCPUProfile`, after the timed region).
struct CpuProfiling {
    stop: Arc<AtomicBool>,
    drainer: Option<std::thread::JoinHandle<()>>,
}

impl CpuProfiling {
    fn start() -> CpuProfiling {
        gort::os::cpuprof::start(100).expect("start the CPU profile");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let drainer = std::thread::spawn(move || {
            let mut by_stack: HashMap<Vec<usize>, u64> = HashMap::new();
            let (mut samples, mut lost) = (0, 0);
            let mut take = |by_stack: &mut HashMap<Vec<usize>, u64>| {
                let d =
                    gort::os::cpuprof::drain(|s| *by_stack.entry(s.pcs.to_vec()).or_default() += 1);
                samples += d.samples;
                lost += d.lost;
            };
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(100));
                take(&mut by_stack);
            }
            gort::os::cpuprof::stop();
            take(&mut by_stack);
            eprintln!(
                "cpu profile: {samples} samples ({} stacks), {lost} lost",
                by_stack.len()
            );
        });
        CpuProfiling {
            stop,
            drainer: Some(drainer),
        }
    }
}

impl Drop for CpuProfiling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.drainer.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Issue 18's profiling-overhead variants: a workload name with one of
/// these suffixes runs the base workload with that profile on, set before
/// the runtime starts (as Go's twin sets it first thing in `main`). The
/// base workload's name, and the CPU profile to stop once it reported.
fn profiled(w: String) -> (String, Option<CpuProfiling>) {
    if let Some(base) = w.strip_suffix("_mprof") {
        gort::sched::prof::set_mutex_profile_fraction(1);
        (base.to_string(), None)
    } else if let Some(base) = w.strip_suffix("_bprof") {
        gort::sched::prof::set_block_profile_rate(1);
        (base.to_string(), None)
    } else if let Some(base) = w.strip_suffix("_cpuprof") {
        (base.to_string(), Some(CpuProfiling::start()))
    } else {
        (w, None)
    }
}

/// The HTTP workloads' server is the example `gort/examples/http_hello.rs`
/// itself, built beside this binary (`cargo xtask bench` builds it; its
/// path can be given in `GORT_HTTP_HELLO`), run as a child with the same
/// GOMAXPROCS, as gort's tests run it: the row measures that server and
/// no copy of it. (Its request handling is private to the example, and
/// neither gort nor the example can depend on gort-bench.) This process
/// only waits meanwhile.
fn http_hello(h: &gort_bench::http::Http) {
    let exe = std::env::var_os("GORT_HTTP_HELLO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().expect("current_exe");
            me.with_file_name("examples").join("http_hello")
        });
    let port_file =
        std::env::temp_dir().join(format!("gort-bench-http-{}.port", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let mut server = std::process::Command::new(&exe)
        .args(["127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): cargo build --release -p gort --example http_hello",
                exe.display()
            )
        });
    let t0 = Instant::now();
    let addr = loop {
        if let Some(a) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|a| a.parse().ok())
        {
            break a;
        }
        if let Some(st) = server.try_wait().unwrap() {
            panic!("http_hello exited early: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "http_hello did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&port_file);
    h.run(addr);
    let _ = server.kill();
    let _ = server.wait();
}

fn main() {
    let (w, n) = args();
    let (w, _cpu_profile) = profiled(w);
    // The garbage collector's workloads live in gort_bench::gc.
    if gort_bench::gc::run(&w, n) {
        return;
    }
    // The sysmon workloads (syscall hand-off, preempt_point) likewise.
    if gort_bench::sysmon::run(&w, n) {
        return;
    }
    // The goroutine-dump workloads (stack_dump, stack_dump_warm) likewise.
    if gort_bench::dump::run(&w, n) {
        return;
    }
    // The gort-kit workloads (context_cancel, errgroup_fanout) likewise.
    if gort_bench::kit::run(&w, n) {
        return;
    }
    if let Some(h) = gort_bench::http::workload(&w, n) {
        http_hello(&h);
        return;
    }
    match w.as_str() {
        "spawn_join" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let wg = Arc::new(WaitGroup::new());
                wg.add(n as i32);
                let t0 = Instant::now();
                for _ in 0..n {
                    let wg = wg.clone();
                    drop(gort::go(move || wg.done()));
                }
                wg.wait();
                t0.elapsed()
            });
            report(per(el, n), "ns/task");
        }
        "park_pingpong" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let (a, b) = (Arc::new(Baton::default()), Arc::new(Baton::default()));
                let (a2, b2) = (a.clone(), b.clone());
                let pong = gort::go(move || {
                    for _ in 0..n {
                        a2.take();
                        b2.give();
                    }
                });
                let t0 = Instant::now();
                for _ in 0..n {
                    a.give();
                    b.take();
                }
                let el = t0.elapsed();
                pong.join().unwrap();
                el
            });
            report(per(el, n), "ns/roundtrip");
        }
        "parked_mem" | "parked_mem_compact" => {
            let n = n.unwrap_or(100_000);
            let compact = w == "parked_mem_compact";
            let per_g = gort::run(move || {
                // Warm the runtime (threads, pools) before the baseline.
                gort::go(|| ()).join().unwrap();
                let rss0 = rss();
                let parked = Arc::new(WaitGroup::new());
                parked.add(n as i32);
                let gate = Arc::new(AtomicU32::new(0));
                let hs: Vec<_> = (0..n)
                    .map(|_| {
                        let (p, g) = (parked.clone(), gate.clone());
                        // SAFETY: nothing outside these goroutines touches
                        // their stacks while they are parked.
                        let b = unsafe { gort::Builder::new().compact_when_parked(compact) };
                        b.spawn(move || {
                            p.done();
                            semacquire(&g);
                        })
                    })
                    .collect();
                parked.wait();
                // Parks, as Go's time.Sleep does (a std sleep would block
                // this M, and with it the compaction of the goroutines
                // bound to it). Compaction is lazy: a goroutine's stack is
                // compacted at the second pass (10 ms apart) after it
                // parked, and a pass over 100,000 stacks takes tens of ms:
                // the compacting variant is measured after 200 ms, when the
                // passes are done (at 50 ms the figure caught them half way,
                // anywhere from 1.4 to 4 KB, depending on how fast the
                // goroutines had started).
                let window = if compact { 200 } else { 50 };
                gort::time::sleep(std::time::Duration::from_millis(window));
                let rss1 = rss();
                for _ in 0..n {
                    semrelease(&gate, false);
                }
                for h in hs {
                    h.join().unwrap();
                }
                (rss1.saturating_sub(rss0)) as f64 / n as f64
            });
            report(per_g, "bytes/goroutine");
        }
        "mutex_uncontended" => {
            let n = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let m = gort::sync::Mutex::new(0u64);
                let t0 = Instant::now();
                for _ in 0..n {
                    *m.lock() += 1;
                }
                assert_eq!(*m.lock(), n);
                t0.elapsed()
            });
            report(per(el, n), "ns/op");
        }
        "mutex_contended" => {
            let per_g = n.unwrap_or(100_000);
            let el = gort::run(move || {
                let m = Arc::new(gort::sync::Mutex::new(0u64));
                let t0 = Instant::now();
                let hs: Vec<_> = (0..64)
                    .map(|_| {
                        let m = m.clone();
                        gort::go(move || {
                            for _ in 0..per_g {
                                *m.lock() += 1;
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                assert_eq!(*m.lock(), 64 * per_g);
                t0.elapsed()
            });
            report(per(el, 64 * per_g), "ns/op");
        }
        "rwmutex_read" => {
            let per_g = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let l = Arc::new(gort::sync::RwLock::new(0u64));
                let t0 = Instant::now();
                let hs: Vec<_> = (0..8)
                    .map(|_| {
                        let l = l.clone();
                        gort::go(move || {
                            let mut sum = 0u64;
                            for i in 0..per_g {
                                if i % 1000 == 0 {
                                    *l.write() += 1;
                                } else {
                                    sum += *l.read();
                                }
                            }
                            std::hint::black_box(sum);
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                t0.elapsed()
            });
            report(per(el, 8 * per_g), "ns/op");
        }
        "waitgroup" => {
            let n = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let wg = gort::sync::WaitGroup::new();
                let t0 = Instant::now();
                for _ in 0..n {
                    wg.add(1);
                    wg.done();
                }
                wg.wait();
                t0.elapsed()
            });
            report(per(el, n), "ns/op");
        }
        "cond_broadcast" => {
            let rounds = n.unwrap_or(1000);
            const WAITERS: u64 = 1000;
            let el = gort::run(move || {
                // (round, arrived)
                let st = Arc::new((
                    gort::sync::Mutex::new((0u64, 0u64)),
                    gort::sync::Cond::new(),
                    gort::sync::Cond::new(),
                ));
                let hs: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let st = st.clone();
                        gort::go(move || {
                            let (m, go_cond, done_cond) = &*st;
                            for r in 1..=rounds {
                                let mut g = go_cond.wait_while(m.lock(), |s| s.0 < r);
                                g.1 += 1;
                                if g.1 == WAITERS {
                                    done_cond.signal();
                                }
                            }
                        })
                    })
                    .collect();
                let (m, go_cond, done_cond) = &*st;
                let t0 = Instant::now();
                for r in 1..=rounds {
                    let mut g = m.lock();
                    g.0 = r;
                    g.1 = 0;
                    go_cond.broadcast();
                    drop(done_cond.wait_while(g, |s| s.1 < WAITERS));
                }
                let el = t0.elapsed();
                for h in hs {
                    h.join().unwrap();
                }
                el
            });
            report(per(el, rounds), "ns/round");
        }
        "pool" => {
            let per_g = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let p = Arc::new(gort::sync::Pool::new(|| 0u64));
                let t0 = Instant::now();
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        let p = p.clone();
                        gort::go(move || {
                            for i in 0..per_g {
                                p.put(i);
                                std::hint::black_box(p.get());
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                t0.elapsed()
            });
            report(per(el, 2 * per_g), "ns/op");
        }
        "chan_buffered" => {
            let n = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let (tx, rx) = gort::chan::<u64>(1024);
                let t0 = Instant::now();
                gort::go(move || (0..n).for_each(|i| tx.send(i).unwrap()));
                let s: u64 = rx.iter().sum();
                assert_eq!(s, n * (n - 1) / 2);
                t0.elapsed()
            });
            report(per(el, n), "ns/msg");
        }
        "chan_mpmc" => {
            let n = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let (tx, rx) = gort::chan::<u64>(1024);
                let t0 = Instant::now();
                for _ in 0..4 {
                    let tx = tx.clone();
                    gort::go(move || (0..n / 4).for_each(|i| tx.send(i).unwrap()));
                }
                drop(tx);
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        let rx = rx.clone();
                        gort::go(move || rx.iter().count() as u64)
                    })
                    .collect();
                let got: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(got, n / 4 * 4);
                t0.elapsed()
            });
            report(per(el, n), "ns/msg");
        }
        "chan_pingpong" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let (atx, arx) = gort::chan::<u64>(0);
                let (btx, brx) = gort::chan::<u64>(0);
                gort::go(move || {
                    for v in arx {
                        btx.send(v).unwrap();
                    }
                });
                let t0 = Instant::now();
                for i in 0..n {
                    atx.send(i).unwrap();
                    brx.recv().unwrap();
                }
                t0.elapsed()
            });
            report(per(el, n), "ns/rt");
        }
        // chan_pingpong with the echoing side locked to its own OS thread
        // (Go: a goroutine that calls runtime.LockOSThread() first): every
        // hop crosses threads, and at 1 P the P moves with it (the locked
        // M hands it off when its goroutine parks).
        "locked_pingpong" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let (atx, arx) = gort::chan::<u64>(0);
                let (btx, brx) = gort::chan::<u64>(0);
                gort::Builder::new().lock_os_thread().spawn(move || {
                    for v in arx {
                        btx.send(v).unwrap();
                    }
                });
                let t0 = Instant::now();
                for i in 0..n {
                    atx.send(i).unwrap();
                    brx.recv().unwrap();
                }
                t0.elapsed()
            });
            report(per(el, n), "ns/rt");
        }
        "select2" => {
            let n = n.unwrap_or(10_000_000);
            let el = gort::run(move || {
                let (atx, arx) = gort::chan::<u64>(1024);
                let (btx, brx) = gort::chan::<u64>(1024);
                // Senders kept open, as in Go (a closed channel is always ready).
                let _keep = (atx.clone(), btx.clone());
                let t0 = Instant::now();
                gort::go(move || (0..n / 2).for_each(|i| atx.send(i).unwrap()));
                gort::go(move || (0..n / 2).for_each(|i| btx.send(i).unwrap()));
                let mut s = 0u64;
                for _ in 0..n / 2 * 2 {
                    s += gort::select! {
                        recv(arx) -> v => v.unwrap(),
                        recv(brx) -> v => v.unwrap(),
                    };
                }
                std::hint::black_box(s);
                t0.elapsed()
            });
            report(per(el, n), "ns/msg");
        }
        "timer_churn" => {
            let n = n.unwrap_or(1_000_000);
            let el = gort::run(move || {
                let t0 = Instant::now();
                let ts: Vec<_> = (0..n)
                    .map(|_| gort::time::after_func(Duration::from_secs(3600), || {}))
                    .collect();
                for t in &ts {
                    assert!(t.stop());
                }
                let el = t0.elapsed();
                drop(ts);
                el
            });
            report(per(el, n), "ns/timer");
        }
        "sleep_many" => {
            let n = n.unwrap_or(100_000);
            let el = gort::run(move || {
                let wg = Arc::new(WaitGroup::new());
                let t0 = Instant::now();
                for _ in 0..n {
                    wg.go_arc(|| gort::time::sleep(Duration::from_millis(10)));
                }
                wg.wait();
                t0.elapsed()
            });
            report(el.as_secs_f64() * 1e3, "ms");
        }
        "sleep_accuracy" => {
            let n = n.unwrap_or(1000);
            let mut over = gort::run(move || {
                (0..n)
                    .map(|_| {
                        let t0 = Instant::now();
                        gort::time::sleep(Duration::from_millis(1));
                        t0.elapsed().as_secs_f64() * 1e6 - 1000.0
                    })
                    .collect::<Vec<f64>>()
            });
            over.sort_by(f64::total_cmp);
            report(over[over.len() / 2], "us");
        }
        "blocking_roundtrip" => {
            // One goroutine hands n empty calls to the blocking pool, one
            // after another: the cost of the hand-off itself.
            let n = n.unwrap_or(100_000);
            let el = gort::run(move || {
                gort::sched::blocking(|| ()); // start the pool thread
                let t0 = Instant::now();
                for _ in 0..n {
                    gort::sched::blocking(|| ());
                }
                t0.elapsed()
            });
            report(per(el, n), "ns/call");
        }
        "tcp_echo" => {
            let msgs = n.unwrap_or(10_000);
            let el = gort::run(move || {
                let addr = echo_server();
                let wg = Arc::new(WaitGroup::new());
                let t0 = Instant::now();
                for i in 0..TCP_ECHO_CLIENTS {
                    wg.go_arc(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.set_nodelay(true).unwrap();
                        let mut msg = [i as u8; TCP_MSG];
                        for _ in 0..msgs {
                            c.write_all(&msg).unwrap();
                            c.read_exact(&mut msg).unwrap();
                        }
                    });
                }
                wg.wait();
                t0.elapsed()
            });
            report(per(el, TCP_ECHO_CLIENTS * msgs), "ns/rt");
        }
        "tcp_conns" | "tcp_conns_ms" => {
            raise_nofile();
            let el = gort::run(move || {
                let addr = echo_server();
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
