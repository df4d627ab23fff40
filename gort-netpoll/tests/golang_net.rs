//! Ports of Go's net deadline and close tests (net/timeout_test.go,
//! net/net_test.go), each citing the Go test it follows.

use gort_netpoll::{is_closed, is_timeout, TcpListener, TcpStream, UdpSocket};
use gort_sched::{go, run};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Go: TestReadTimeout — a past deadline fails at once, again and again,
/// even when data is available.
#[test]
fn read_timeout_past_deadline_fails_at_once() {
    run(|| {
        let (mut c, mut s) = pair();
        s.write_all(b"data").unwrap();
        for _ in 0..3 {
            c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)));
            let t0 = Instant::now();
            let e = c.read(&mut [0u8; 4]).unwrap_err();
            assert!(is_timeout(&e), "{e}");
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert_eq!(e.to_string(), "i/o timeout");
            assert!(t0.elapsed() < Duration::from_secs(1));
        }
        // Clearing the deadline makes the data readable again.
        c.set_read_deadline(None);
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"data");
    });
}

/// Go: TestReadTimeout (the future-deadline cases) and
/// TestReadTimeoutFluctuation — a blocked read fails after the deadline,
/// not much before or after.
#[test]
fn read_deadline_wakes_blocked_read() {
    run(|| {
        let (mut c, _s) = pair();
        let d = Duration::from_millis(50);
        let t0 = Instant::now();
        c.set_read_deadline(Some(t0 + d));
        let e = c.read(&mut [0u8; 1]).unwrap_err();
        let el = t0.elapsed();
        assert!(is_timeout(&e), "{e}");
        assert!(el >= d, "woke after {el:?}, before the deadline");
        assert!(el < d + Duration::from_secs(2), "woke after {el:?}");
    });
}

/// Go: TestReadTimeoutMustNotReturn's counterpart — extending a deadline
/// while a read is blocked keeps it blocked; data then completes it.
#[test]
fn extending_a_deadline_keeps_the_read_blocked() {
    run(|| {
        let (c, mut s) = pair();
        let c = Arc::new(c);
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(30)));
        let r = {
            let c = c.clone();
            go(move || {
                let mut b = [0u8; 1];
                (&*c).read(&mut b).map(|_| b[0])
            })
        };
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)));
        gort_timer::sleep(Duration::from_millis(100));
        s.write_all(&[9]).unwrap();
        assert_eq!(r.join().unwrap().unwrap(), 9);
    });
}

/// Go: TestWriteTimeout — writes into a peer that never reads fill the
/// buffers, then fail with a timeout at the deadline.
#[test]
fn write_deadline_on_full_buffer() {
    run(|| {
        let (mut c, _s) = pair();
        c.set_write_deadline(Some(Instant::now() + Duration::from_millis(100)));
        let chunk = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let e = loop {
            match c.write(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert!(is_timeout(&e), "{e}");
        assert!(total > 0);
        // A past write deadline fails at once.
        c.set_write_deadline(Some(Instant::now()));
        assert!(is_timeout(&c.write(b"x").unwrap_err()));
    });
}

/// Go: TestAcceptTimeout.
#[test]
fn accept_timeout() {
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_deadline(Some(Instant::now() + Duration::from_millis(20)));
        let e = l.accept().unwrap_err();
        assert!(is_timeout(&e), "{e}");
        // A new deadline in the future lets accept succeed.
        l.set_deadline(Some(Instant::now() + Duration::from_secs(60)));
        let addr = l.local_addr().unwrap();
        let h = go(move || TcpStream::connect(addr).unwrap());
        l.accept().unwrap();
        drop(h.join().unwrap());
    });
}

/// Go: TestCloseUnblocksRead (net/net_test.go) — Close from another
/// goroutine wakes a blocked Read with ErrClosed.
#[test]
fn close_unblocks_read() {
    run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        let r = {
            let c = c.clone();
            go(move || (&*c).read(&mut [0u8; 8]))
        };
        gort_timer::sleep(Duration::from_millis(20));
        c.close();
        let e = r.join().unwrap().unwrap_err();
        assert!(is_closed(&e), "{e}");
        assert_eq!(e.to_string(), "use of closed network connection");
        assert_eq!(e.kind(), ErrorKind::NotConnected);
        // Later operations fail the same way.
        assert!(is_closed(&(&*c).write(b"x").unwrap_err()));
        assert!(is_closed(&(&*c).read(&mut [0u8; 1]).unwrap_err()));
    });
}

/// Go: TestCloseUnblocksReadUDP.
#[test]
fn close_unblocks_read_udp() {
    run(|| {
        let u = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let r = {
            let u = u.clone();
            go(move || u.recv_from(&mut [0u8; 8]).map(|(n, _)| n))
        };
        gort_timer::sleep(Duration::from_millis(20));
        u.close();
        assert!(is_closed(&r.join().unwrap().unwrap_err()));
    });
}

/// Go: TestAcceptIgnoreAbortedConnRequest's sibling in practice — closing a
/// listener from another goroutine stops its accept loop.
#[test]
fn close_unblocks_accept() {
    run(|| {
        let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let a = {
            let l = l.clone();
            go(move || l.accept().map(|_| ()))
        };
        gort_timer::sleep(Duration::from_millis(20));
        l.close();
        assert!(is_closed(&a.join().unwrap().unwrap_err()));
    });
}

/// Go: TestCloseRead-like — a closed stream's peer sees the end.
#[test]
fn close_ends_the_peer_stream() {
    run(|| {
        let (c, mut s) = pair();
        c.close();
        let mut v = Vec::new();
        assert_eq!(s.read_to_end(&mut v).unwrap(), 0);
    });
}

/// Go: TestVariousDeadlines (reduced) — many goroutines with different
/// deadlines all time out, none early.
#[test]
fn various_deadlines() {
    run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut hs = Vec::new();
        let mut servers = Vec::new();
        for i in 1..=20u64 {
            let c = TcpStream::connect(addr).unwrap();
            servers.push(l.accept().unwrap().0);
            hs.push(go(move || {
                let d = Duration::from_millis(i * 5);
                let t0 = Instant::now();
                c.set_read_deadline(Some(t0 + d));
                let e = (&c).read(&mut [0u8; 1]).unwrap_err();
                assert!(is_timeout(&e), "{e}");
                assert!(t0.elapsed() >= d);
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// Deadlines work from plain threads too.
#[test]
fn deadline_from_a_plain_thread() {
    let (mut c, _s) = pair();
    let t0 = Instant::now();
    c.set_read_deadline(Some(t0 + Duration::from_millis(30)));
    let e = c.read(&mut [0u8; 1]).unwrap_err();
    assert!(is_timeout(&e), "{e}");
    assert!(t0.elapsed() >= Duration::from_millis(30));
}

/// Two goroutines reading one stream take turns (Go's fdMutex): each byte
/// goes to exactly one of them.
#[test]
fn concurrent_readers_share_a_stream() {
    run(|| {
        let (c, mut s) = pair();
        let c = Arc::new(c);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                go(move || {
                    let mut got = Vec::new();
                    let mut b = [0u8; 1];
                    while let Ok(1) = (&*c).read(&mut b) {
                        got.push(b[0]);
                    }
                    got
                })
            })
            .collect();
        for i in 0..200u8 {
            s.write_all(&[i]).unwrap();
        }
        drop(s);
        let mut all: Vec<u8> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (0..200u8).collect::<Vec<_>>());
    });
}
