//! A tour of what gort can do so far. Run it with
//! `cargo run --release --example tour`.

use gort::sched::{park, WaitReason, Waiter};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn main() {
    println!(
        "gort tour — GOMAXPROCS={}, NumCPU={}",
        gort::gomaxprocs(0),
        gort::num_cpu()
    );

    // 1. run() runs the main goroutine and returns its value.
    let answer = gort::run(|| 6 * 7);
    println!("1. run(|| 6 * 7) = {answer}");

    // 2. A hundred thousand goroutines, spawned and joined.
    let t0 = Instant::now();
    let n = 100_000u64;
    let sum = gort::run(move || {
        let hs: Vec<_> = (0..n).map(|i| gort::go(move || i)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    println!(
        "2. {n} goroutines summed their ids to {sum} in {:?}",
        t0.elapsed()
    );

    // 3. Panics and Goexit come back through join, as with std::thread.
    let e = gort::go(|| -> () { panic!("a goroutine panicked (this message is expected)") })
        .join()
        .unwrap_err();
    println!("3. join -> Err({e})");
    let e = gort::go(|| -> () { gort::goexit() }).join().unwrap_err();
    println!("   join -> Err({e}), after running every drop on its stack");

    // 4. park/ready: the primitive every blocking type is built from. Two
    //    goroutines hand a token back and forth.
    let rounds = 100_000;
    let slots: Arc<[Mutex<Option<Waiter>>; 2]> = Arc::new([Mutex::new(None), Mutex::new(None)]);
    let turn = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let players: Vec<_> = (0..2)
        .map(|me| {
            let (slots, turn) = (slots.clone(), turn.clone());
            gort::go(move || {
                for _ in 0..rounds {
                    // Wait for my turn.
                    loop {
                        let mut slot = slots[me].lock().unwrap();
                        if turn.load(Ordering::Acquire) % 2 == me {
                            break;
                        }
                        *slot = Some(Waiter::current());
                        park(WaitReason::Other("ping-pong"), move || {
                            drop(slot);
                            true
                        });
                    }
                    // Pass the token.
                    let mut other = slots[1 - me].lock().unwrap();
                    turn.fetch_add(1, Ordering::AcqRel);
                    if let Some(w) = other.take() {
                        drop(other);
                        w.ready();
                    }
                }
            })
        })
        .collect();
    for p in players {
        p.join().unwrap();
    }
    let per = t0.elapsed() / (rounds as u32);
    println!("4. ping-pong through park/ready: {rounds} round trips, {per:?} each");

    // 5. GOMAXPROCS changes at run time.
    let old = gort::gomaxprocs(1);
    let hs: Vec<_> = (0..1000).map(|i| gort::go(move || i)).collect();
    let s: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    gort::gomaxprocs(old);
    println!("5. gomaxprocs({old} -> 1 -> {old}); 1000 goroutines on one P summed to {s}");

    // 6. Goroutines keep their OS thread once started (sound thread-locals).
    let same = gort::run(|| {
        let before = std::thread::current().id();
        for _ in 0..100 {
            gort::gosched();
        }
        before == std::thread::current().id()
    });
    println!("6. same OS thread across 100 gosched calls: {same}");
    println!("   live goroutines now: {}", gort::num_goroutine());

    // 7. Go's sync package: a Mutex and a WaitGroup shared by 1000
    //    goroutines, waited for from main (a plain thread).
    let counter = Arc::new(gort::sync::Mutex::new(0u64));
    let wg = Arc::new(gort::sync::WaitGroup::new());
    for _ in 0..1000 {
        let c = counter.clone();
        wg.go_arc(move || {
            for _ in 0..100 {
                *c.lock() += 1;
            }
        });
    }
    wg.wait();
    println!(
        "7. 1000 goroutines x 100 increments under a gort Mutex = {}",
        *counter.lock()
    );

    // 8. Cond: a broadcast wakes every waiter; Once runs once.
    let state = Arc::new((gort::sync::Mutex::new(false), gort::sync::Cond::new()));
    let once = Arc::new(gort::sync::Once::new());
    let ran = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (st, once, ran) = (state.clone(), once.clone(), ran.clone());
            gort::go(move || {
                let (m, c) = &*st;
                drop(c.wait_while(m.lock(), |go| !*go));
                once.call_once(|| {
                    ran.fetch_add(1, Ordering::SeqCst);
                });
            })
        })
        .collect();
    {
        let (m, c) = &*state;
        *m.lock() = true;
        c.broadcast();
    }
    for w in waiters {
        w.join().unwrap();
    }
    println!(
        "8. broadcast woke 10 waiters; their Once ran {} time(s)",
        ran.load(Ordering::SeqCst)
    );

    // 9. Channels: Go's concurrent prime sieve — a chain of goroutines, one
    //    per prime, each filtering the unbuffered channel before it.
    let primes = gort::run(|| {
        let (tx, mut rx) = gort::chan::<u32>(0);
        gort::go(move || {
            for i in 2.. {
                if tx.send(i).is_err() {
                    return; // the sieve is done: nobody receives any more
                }
            }
        });
        let mut primes = Vec::new();
        for _ in 0..20 {
            let p = rx.recv().unwrap();
            primes.push(p);
            let (next_tx, next_rx) = gort::chan::<u32>(0);
            gort::go(move || {
                for v in rx {
                    if v % p != 0 && next_tx.send(v).is_err() {
                        return;
                    }
                }
            });
            rx = next_rx;
        }
        primes
    });
    println!("9. prime sieve over 20 chained goroutines: {primes:?}");

    // 10. select: fan-in from two producers until both channels close; a
    //     default case makes it non-blocking.
    let (a_tx, a_rx) = gort::chan::<&'static str>(4);
    let (b_tx, b_rx) = gort::chan::<u64>(4);
    gort::go(move || {
        ["ping", "pong", "ping"]
            .into_iter()
            .for_each(|s| a_tx.send(s).unwrap())
    });
    gort::go(move || (1..=5).for_each(|n| b_tx.send(n).unwrap()));
    let (mut words, mut total) = (0, 0);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        // A closed channel is always ready; the loop ends once both are.
        gort::select! {
            recv(a_rx) -> s => match s { Ok(_) => words += 1, Err(_) => a_open = false },
            recv(b_rx) -> n => match n { Ok(n) => total += n, Err(_) => b_open = false },
        }
    }
    let (_keep, empty) = gort::chan::<u8>(1);
    let idle = gort::select! { recv(empty) -> _v => "ready", default => "default" };
    println!("10. select fan-in: {words} words and numbers summing to {total}; then select took {idle:?}");

    // 11. Timers: sleep parks the goroutine; a Ticker and a timeout in one
    //     select; Stop leaves nothing behind (Go 1.23 semantics).
    let (ticks, slept) = gort::run(|| {
        let t0 = Instant::now();
        gort::time::sleep(std::time::Duration::from_millis(2));
        let slept = t0.elapsed();
        let ticker = gort::time::Ticker::new(std::time::Duration::from_millis(1));
        let timeout = gort::time::after(std::time::Duration::from_millis(20));
        let mut ticks = 0;
        loop {
            gort::select! {
                recv(ticker.c()) -> _t => ticks += 1,
                recv(timeout) -> _t => break,
            }
        }
        ticker.stop();
        (ticks, slept)
    });
    let t = gort::time::Timer::new(std::time::Duration::from_secs(60));
    let stopped = t.stop();
    println!("11. sleep(2ms) took {slept:?}; {ticks} ticks of 1ms before a 20ms timeout; Timer::stop -> {stopped}");

    // 12. The netpoller: a TCP echo server with a goroutine per connection,
    //     500 client goroutines; every blocked read parks a goroutine, not
    //     a thread. A read deadline fails a read that waits too long.
    let (echoed, timed_out) = gort::run(|| {
        use gort::net::{TcpListener, TcpStream};
        use std::io::{Read, Write};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        gort::go(move || {
            while let Ok((mut c, _)) = l.accept() {
                gort::go(move || {
                    let mut buf = [0u8; 512];
                    while let Ok(n @ 1..) = c.read(&mut buf) {
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let clients: Vec<_> = (0..500u32)
            .map(|i| {
                gort::go(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(&i.to_le_bytes()).unwrap();
                    let mut b = [0u8; 4];
                    c.read_exact(&mut b).unwrap();
                    u32::from_le_bytes(b) == i
                })
            })
            .collect();
        let echoed = clients
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|ok| *ok)
            .count();
        let idle = TcpStream::connect(addr).unwrap();
        idle.set_read_deadline(Some(Instant::now() + std::time::Duration::from_millis(5)));
        let timed_out = gort::net::is_timeout(&(&idle).read(&mut [0u8; 1]).unwrap_err());
        (echoed, timed_out)
    });
    println!("12. TCP echo: {echoed}/500 client goroutines got their bytes back; a 5ms read deadline timed out: {timed_out}");

    // 13. The garbage collector: Gc<T> counts references, and a concurrent
    //     cycle collector finds garbage cycles without scanning stacks or
    //     registering roots. Finalizers run on one finalizer goroutine.
    let (freed_cycle, finalized) = gort::run(|| {
        use gort::gc::{gc, set_finalizer, Gc, Trace};

        #[derive(Trace)]
        #[gc(crate = "gort::gc")]
        struct Node {
            next: Mutex<Option<Gc<Node>>>,
        }
        let a = Gc::new(Node {
            next: Mutex::new(None),
        });
        let b = Gc::new(Node {
            next: Mutex::new(Some(a.clone())),
        });
        *a.next.lock().unwrap() = Some(b.clone()); // a -> b -> a
        let weak = Gc::downgrade(&a);
        drop((a, b));
        gc(); // the cycle is unreachable: collected
        let freed_cycle = weak.upgrade().is_none();

        let done = Arc::new(AtomicBool::new(false));
        let obj = Gc::new(Node {
            next: Mutex::new(None),
        });
        let d = done.clone();
        set_finalizer(&obj, move |_resurrected| d.store(true, Ordering::SeqCst));
        drop(obj);
        let t0 = Instant::now();
        while !done.load(Ordering::SeqCst) && t0.elapsed() < std::time::Duration::from_secs(5) {
            gc();
            gort::gosched();
        }
        (freed_cycle, done.load(Ordering::SeqCst))
    });
    let ms = gort::gc::read_mem_stats();
    println!(
        "13. GC: an unreachable 2-node cycle was collected: {freed_cycle}; a finalizer ran: {finalized}; {} collections so far",
        ms.num_gc
    );

    // 14. Blocking calls and sysmon: a goroutine blocked in `syscall` hands
    //     its P on (fresh goroutines keep running meanwhile), `blocking` runs
    //     a call on a pool thread while the goroutine parks, and `gort::fs`
    //     is std::fs on that pool.
    // (From this plain thread: a goroutine spawned by the blocked one's
    // own thread would share its M and wait for the call.)
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    let sleeper = gort::go(move || {
        gort::syscall(|| {
            s2.store(true, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
        })
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let n = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let n = n.clone();
            gort::go(move || {
                n.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let ran_meanwhile = !sleeper.is_finished();
    sleeper.join().unwrap();
    let wrote = gort::run(|| {
        let path = std::env::temp_dir().join(format!("gort-tour-{}", std::process::id()));
        let ok = gort::fs::write(&path, b"hello").is_ok()
            && gort::fs::read_to_string(&path).is_ok_and(|t| t == "hello");
        let _ = gort::fs::remove_file(&path);
        ok
    });
    println!(
        "14. 100 goroutines ran while another sat 50ms in gort::syscall: {ran_meanwhile}; gort::fs round trip: {wrote}"
    );

    // 15. Goroutine dumps (Go's runtime.Stack): every goroutine's state and
    //     real frames, without stopping the world; SIGQUIT prints the same.
    let dump = gort::run(|| {
        let (tx, rx) = gort::chan::<()>(0);
        let waiter = gort::Builder::new()
            .name("tour-waiter")
            .spawn(move || tour_waits_on_a_channel(rx));
        while !gort::stack(true).contains("\"tour-waiter\" [chan receive]") {
            gort::time::sleep(std::time::Duration::from_millis(1));
        }
        let d = gort::stack(true);
        drop(tx);
        waiter.join().unwrap();
        d
    });
    let block = dump
        .split("\n\n")
        .find(|b| b.contains("tour-waiter"))
        .unwrap_or("");
    println!("15. a goroutine dump (gort::stack(true)), one goroutine of it:");
    for line in block.lines() {
        println!("      {line}");
    }

    // 16. LockOSThread: a goroutine with an OS thread of its own (for
    //     thread-affine C libraries, per-thread kernel state); it parks
    //     many times and always resumes there; when it ends locked, the
    //     thread exits with it.
    let tid = || std::fs::read_link("/proc/thread-self").ok();
    let (same, parks) = gort::run(move || {
        let (tx, rx) = gort::chan::<u32>(0);
        let locked = gort::Builder::new().lock_os_thread().spawn(move || {
            let home = tid();
            let mut parks = 0;
            while rx.recv().is_ok() {
                parks += 1;
                assert_eq!(tid(), home);
            }
            (tid() == home, parks)
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        locked.join().unwrap()
    });
    println!("16. a locked goroutine parked {parks} times, always on its own thread: {same}");
}

#[inline(never)]
fn tour_waits_on_a_channel(rx: gort::Receiver<()>) {
    let _ = rx.recv();
}
