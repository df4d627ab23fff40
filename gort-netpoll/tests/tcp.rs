//! TcpListener / TcpStream: echo between goroutines and plain threads,
//! split halves, shutdown, addresses, options, and that a blocked read
//! parks the goroutine rather than its thread.

use gort_netpoll::{TcpListener, TcpStream};
use gort_sched::{go, run};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(go(move || loop {
        let (mut c, _) = match l.accept() {
            Ok(x) => x,
            Err(_) => return,
        };
        drop(go(move || {
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
        }));
    }));
    addr
}

#[test]
fn echo_many_goroutines() {
    run(|| {
        let addr = echo_server();
        let hs: Vec<_> = (0..50)
            .map(|i| {
                go(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    for j in 0..100u32 {
                        let msg = [(i as u8) ^ (j as u8); 64];
                        c.write_all(&msg).unwrap();
                        let mut got = [0u8; 64];
                        c.read_exact(&mut got).unwrap();
                        assert_eq!(got, msg);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn plain_threads_use_the_poller_too() {
    // No goroutine at all on the client side: the thread parks, the
    // runtime's Ms deliver the readiness.
    let addr = echo_server();
    let ts: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                for j in 0..50u8 {
                    c.write_all(&[i ^ j; 100]).unwrap();
                    let mut got = [0u8; 100];
                    c.read_exact(&mut got).unwrap();
                    assert_eq!(got, [i ^ j; 100]);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
}

#[test]
fn large_transfer_both_directions() {
    // 8 MiB each way through one connection: writes block on a full socket
    // buffer and resume on writability.
    run(|| {
        let addr = echo_server();
        let c = Arc::new(TcpStream::connect(addr).unwrap());
        let n = 8 << 20;
        let w = {
            let c = c.clone();
            go(move || {
                let chunk: Vec<u8> = (0..65536).map(|i| (i % 251) as u8).collect();
                let mut sent = 0;
                while sent < n {
                    (&*c).write_all(&chunk).unwrap();
                    sent += chunk.len();
                }
            })
        };
        let mut buf = vec![0u8; 65536];
        let mut got = 0usize;
        while got < n {
            let k = (&*c).read(&mut buf).unwrap();
            assert!(k > 0);
            for (i, b) in buf[..k].iter().enumerate() {
                assert_eq!(*b, ((got + i) % 65536 % 251) as u8);
            }
            got += k;
        }
        w.join().unwrap();
    });
}

/// Both directions of each of 16 connections wait at once, from two
/// goroutines spawned in one burst (so spread over the Ms): a descriptor
/// waited on from two Ms settles in the main instance, and a wait alone on
/// a descriptor already in its M's instance takes no lock (`rehome`). No
/// wait's readiness may be lost to a move: every transfer completes, byte
/// for byte.
#[test]
fn both_directions_wait_from_two_goroutines_on_many_connections() {
    run(|| {
        let addr = echo_server();
        let n = 512 << 10;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let hs: Vec<_> = (0..16)
            .flat_map(|k| {
                let c = Arc::new(TcpStream::connect(addr).unwrap());
                c.set_read_deadline(Some(deadline));
                c.set_write_deadline(Some(deadline));
                let w = {
                    let c = c.clone();
                    go(move || {
                        let chunk: Vec<u8> = (0..8192).map(|i| ((i % 251) ^ k) as u8).collect();
                        let mut sent = 0;
                        while sent < n {
                            (&*c).write_all(&chunk).expect("a write stalled");
                            sent += chunk.len();
                        }
                    })
                };
                let r = go(move || {
                    let mut buf = vec![0u8; 8192];
                    let mut got = 0usize;
                    while got < n {
                        let m = (&*c).read(&mut buf).expect("a read stalled");
                        assert!(m > 0);
                        for (i, b) in buf[..m].iter().enumerate() {
                            assert_eq!(*b, (((got + i) % 8192 % 251) ^ k) as u8);
                        }
                        got += m;
                    }
                });
                [w, r]
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn owned_halves_in_two_goroutines() {
    run(|| {
        let addr = echo_server();
        let (mut r, mut w) = TcpStream::connect(addr).unwrap().into_split();
        let writer = go(move || {
            for i in 0..1000u32 {
                w.write_all(&i.to_le_bytes()).unwrap();
            }
            // Dropping the write half shuts down writing: the echo server
            // sees EOF and closes, so the reader ends.
        });
        let reader = go(move || {
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            all
        });
        writer.join().unwrap();
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 4000);
        for (i, c) in all.chunks(4).enumerate() {
            assert_eq!(u32::from_le_bytes(c.try_into().unwrap()), i as u32);
        }
    });
}

#[test]
fn shutdown_write_gives_peer_eof() {
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let srv = go(move || {
            let (mut c, peer) = l.accept().unwrap();
            assert_eq!(c.peer_addr().unwrap(), peer);
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            c.write_all(s.to_uppercase().as_bytes()).unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(c.local_addr().unwrap().ip(), addr.ip());
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert_eq!(s, "HELLO");
        srv.join().unwrap();
    });
}

#[test]
fn options_roundtrip() {
    run(|| {
        let addr = echo_server();
        let c = TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        c.set_ttl(42).unwrap();
        assert_eq!(c.ttl().unwrap(), 42);
        assert!(c.take_error().unwrap().is_none());
        let mut p = [0u8; 1];
        (&c).write_all(b"x").unwrap();
        assert_eq!(c.peek(&mut p).unwrap(), 1);
        assert_eq!(&p, b"x");
        assert_eq!((&c).read(&mut p).unwrap(), 1);
    });
}

#[test]
fn connect_refused_is_an_error() {
    run(|| {
        // Bind then drop: nothing listens on that port now.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        let e = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    });
}

#[test]
fn blocked_reads_do_not_hold_threads() {
    // Far more goroutines blocked in read than there are threads; another
    // goroutine still runs and then releases them all.
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = 200;
        let done = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        let mut readers = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..n {
            let c = TcpStream::connect(addr).unwrap();
            let s = Arc::new(l.accept().unwrap().0);
            let done = done.clone();
            servers.push(s.clone());
            readers.push(go(move || {
                let mut b = [0u8; 1];
                (&*s).read_exact(&mut b).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                b[0]
            }));
            clients.push(c);
        }
        // Wait until every reader is parked in its read (seen in its
        // descriptor's state, not guessed from a sleep).
        let t0 = std::time::Instant::now();
        while !servers.iter().all(|s| s.read_parked()) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the readers never all parked"
            );
            gort_timer::sleep(Duration::from_millis(1));
        }
        // 200 goroutines are parked in read at once, far more than there
        // are Ms; this goroutine and a new one still run.
        let other = go(|| 7).join().unwrap();
        assert_eq!(other, 7);
        assert_eq!(done.load(Ordering::SeqCst), 0);
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&[i as u8]).unwrap();
        }
        for (i, r) in readers.into_iter().enumerate() {
            assert_eq!(r.join().unwrap(), i as u8);
        }
    });
}

#[test]
fn from_std_and_incoming() {
    run(|| {
        let l = TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let h = go(move || {
            let mut c = TcpStream::from_std(std::net::TcpStream::connect(addr).unwrap()).unwrap();
            c.write_all(b"std").unwrap();
        });
        let mut s = l.incoming().next().unwrap().unwrap();
        let mut b = Vec::new();
        s.read_to_end(&mut b).unwrap();
        assert_eq!(b, b"std");
        h.join().unwrap();
    });
}

#[test]
fn readiness_arrives_while_an_m_waits_for_a_timer() {
    // Regression: the M blocked in the poller with a timer deadline got the
    // event and then spun out the rest of that (30 s) deadline instead of
    // running the readied goroutine.
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Joined at the end: its assertions fail the test, not a detached
        // goroutine's dropped panic.
        let server = go(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            loop {
                c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(30)));
                if c.read(&mut b).unwrap() == 0 {
                    return;
                }
                c.write_all(&b).unwrap();
            }
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let t0 = std::time::Instant::now();
        for i in 0..5u8 {
            c.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i);
            gort_timer::sleep(Duration::from_millis(10));
        }
        // Generous: the bug spun out the 30 s deadline at each round trip.
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        drop(c);
        server.join().unwrap();
    });
}

/// Host names resolve on the blocking pool (the goroutine parks); the
/// connection then works as with an address. "localhost" may resolve to
/// ::1 first: connect tries each address in turn, as std's does.
#[test]
fn connect_and_bind_by_host_name_from_a_goroutine() {
    run(|| {
        let addr = echo_server();
        let port = addr.port();
        let by_str = format!("localhost:{port}");
        for mut c in [
            TcpStream::connect(by_str.as_str()).unwrap(),
            TcpStream::connect(&by_str).unwrap(),
            TcpStream::connect(("localhost", port)).unwrap(),
            TcpStream::connect((String::from("localhost"), port)).unwrap(),
        ] {
            assert_eq!(c.peer_addr().unwrap().port(), port);
            c.write_all(b"named").unwrap();
            let mut got = [0u8; 5];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"named");
        }
        // An IP literal and a slice of addresses take the inline path.
        TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        TcpStream::connect(&[addr][..]).unwrap();

        let l = TcpListener::bind("localhost:0").unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
        let e = TcpStream::connect("localhost").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    });
}

/// A read that returned short emptied the socket, so the next read waits
/// for readiness instead of trying (and failing with EAGAIN): bytes that
/// arrive in between, in any pattern of chunk sizes and pauses, must still
/// reach it. A lost readiness shows as the read deadline's error.
#[test]
fn short_reads_never_strand_bytes() {
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let total: usize = (0..3000).map(|i| 1 + (i * 7919) % 300).sum();
        let writer = go(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            let mut k = 0u8;
            for i in 0..3000usize {
                let len = 1 + (i * 7919) % 300;
                let chunk: Vec<u8> = (0..len)
                    .map(|_| {
                        k = k.wrapping_add(1);
                        k
                    })
                    .collect();
                c.write_all(&chunk).unwrap();
                match i % 5 {
                    0 => gort_sched::gosched(),
                    1 if i % 100 == 1 => gort_timer::sleep(Duration::from_micros(200)),
                    _ => {}
                }
            }
            c
        });
        let (mut c, _) = l.accept().unwrap();
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(10)));
        let mut buf = [0u8; 512];
        let (mut got, mut k) = (0usize, 0u8);
        while got < total {
            let n = c.read(&mut buf).expect("bytes stranded after a short read");
            assert!(n > 0, "early EOF after {got} of {total} bytes");
            for &b in &buf[..n] {
                k = k.wrapping_add(1);
                assert_eq!(b, k, "byte {got}");
                got += 1;
            }
        }
        drop(writer.join().unwrap());
        assert_eq!(c.read(&mut buf).unwrap(), 0, "EOF after the writer closed");
    });
}

/// A TCP read stops short at an urgent mark with bytes still queued
/// behind it, and no new readiness comes for them: the poller's urgent
/// report (EPOLLPRI) turns the short-read hint off for the descriptor.
#[test]
fn an_urgent_mark_does_not_strand_the_bytes_behind_it() {
    use std::os::fd::AsRawFd;
    run(|| {
        let (mut peer, mut c) = std_peer_and_stream();
        peer.write_all(b"ab").unwrap();
        // SAFETY: a one-byte send(2) on an open socket.
        let r = unsafe { libc::send(peer.as_raw_fd(), b"U".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(r, 1, "{}", std::io::Error::last_os_error());
        peer.write_all(b"cd").unwrap();
        gort_timer::sleep(Duration::from_millis(50));
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 4 {
            let n = c
                .read(&mut buf)
                .expect("bytes behind the urgent mark stranded");
            got.extend_from_slice(&buf[..n]);
        }
        // The urgent byte is out of band (SO_OOBINLINE is off).
        assert_eq!(got, b"abcd");
    });
}

/// Bytes followed by the peer's reset: the read that returns the bytes is
/// short with the error still to report, and no new readiness comes for
/// it (the poller reported the reset with the bytes: the hint is off).
#[test]
fn a_reset_behind_bytes_is_reported_after_them() {
    run(|| {
        let (peer, mut c) = std_peer_and_stream();
        (&peer).write_all(b"abc").unwrap();
        // SO_LINGER 0: close sends a reset.
        linger_zero(&peer);
        drop(peer);
        gort_timer::sleep(Duration::from_millis(50));
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let e = c.read(&mut buf).expect_err("the reset");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    });
}

/// Bytes and then the peer's FIN, both queued before the first read: that
/// read returns the bytes short, and end-of-stream comes next at once.
#[test]
fn a_fin_behind_bytes_ends_the_stream_after_them() {
    run(|| {
        let (peer, mut c) = std_peer_and_stream();
        (&peer).write_all(b"abc").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        gort_timer::sleep(Duration::from_millis(50));
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).unwrap(), 3);
        assert_eq!(c.read(&mut buf).expect("end-of-stream, not a timeout"), 0);
    });
}

/// An empty read returns at once (as Go's), also right after a short read,
/// and leaves the next read to get what arrives.
#[test]
fn an_empty_read_after_a_short_one_returns_at_once() {
    run(|| {
        let (peer, mut c) = std_peer_and_stream();
        (&peer).write_all(b"abc").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).unwrap(), 3);
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(5)));
        let t = std::time::Instant::now();
        assert_eq!(c.read(&mut []).expect("no wait for an empty read"), 0);
        assert!(t.elapsed() < Duration::from_secs(4));
        (&peer).write_all(b"de").unwrap();
        assert_eq!(c.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"de");
    });
}

/// A connected pair: a std socket (the peer, on a plain thread's terms)
/// and the gort stream accepted from it.
fn std_peer_and_stream() -> (std::net::TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (c, _) = l.accept().unwrap();
    (peer, c)
}

/// Sets SO_LINGER {on, 0} on a std socket (its close then resets).
fn linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) with a valid linger struct on an open socket.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lg as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

/// A goroutine's descriptor lives in its M's own poller, which only that M
/// polls: it does so every so often while busy, so readiness reaches a
/// reader whose M never runs dry (here every M is kept busy by goroutines
/// that only yield).
#[test]
fn readiness_reaches_a_goroutine_whose_m_stays_busy() {
    run(|| {
        let stop = Arc::new(AtomicUsize::new(0));
        let spinners: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                go(move || {
                    while stop.load(Ordering::Relaxed) == 0 {
                        gort_sched::gosched();
                    }
                })
            })
            .collect();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // The peer: a plain thread echoing 50 one-byte messages.
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let mut b = [0u8; 1];
            for _ in 0..50 {
                s.read_exact(&mut b).unwrap();
                s.write_all(&b).unwrap();
            }
        });
        let (mut c, _) = l.accept().unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_deadline(Some(std::time::Instant::now() + Duration::from_secs(20)));
        for i in 0..50u8 {
            c.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).expect("an echo while every M is busy");
            assert_eq!(b[0], i);
        }
        stop.store(1, Ordering::Relaxed);
        for s in spinners {
            s.join().unwrap();
        }
        peer.join().unwrap();
    });
}
