//! Ports of Go's net deadline and close tests (net/timeout_test.go,
//! net/net_test.go), each citing the Go test it follows.

use gort_netpoll::{is_closed, is_timeout, TcpListener, TcpStream, UdpSocket};
use gort_sched::{go, run, JoinHandle};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Waits (parking 1 ms at a time) until `cond` holds; fails after 30 s
/// instead of hanging. Tests wait on what the netpoller reports
/// (`read_parked`), where Go's sleep a while and hope the read is blocked.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        gort_timer::sleep(Duration::from_millis(1));
    }
}

/// Joins `h` once it has finished, failing after 30 s: a wake-up that never
/// comes fails the test instead of hanging it.
fn join_within<T>(what: &str, h: JoinHandle<T>) -> T {
    wait_until(what, || h.is_finished());
    h.join().unwrap()
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
            // Data is there, so a read that tried the system call would
            // return it: the timeout proves the deadline is checked first.
            let e = c.read(&mut [0u8; 4]).unwrap_err();
            assert!(is_timeout(&e), "{e}");
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert_eq!(e.to_string(), "i/o timeout");
        }
        // A deadline of exactly now is past too (Go: `time.Until(t) <= 0`),
        // however soon the read follows (the deadline's conversion to the
        // runtime's clock may err late by up to a microsecond).
        for _ in 0..1000 {
            c.set_read_deadline(Some(Instant::now()));
            let e = c.read(&mut [0u8; 4]).unwrap_err();
            assert!(is_timeout(&e), "{e}");
        }
        // Clearing the deadline makes the data (all of it) readable again.
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
        // Generous: only a read that never woke on its own deadline (woken
        // by something else much later) fails this on a loaded machine.
        assert!(el < d + Duration::from_secs(10), "woke after {el:?}");
    });
}

/// Go: TestReadTimeoutMustNotReturn (net/timeout_test.go) — both
/// deadlines set in the past, the write deadline again, then the read
/// deadline cleared: the read must block (no expiry survives the clear), and
/// returns only when the connection is closed, with the close's error, not
/// a timeout. Go gives the read 100 ms to misbehave without knowing it has
/// blocked; here the window starts once the read is seen parked.
#[test]
fn read_timeout_must_not_return() {
    run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        let r = {
            let c = c.clone();
            go(move || {
                let past = Instant::now() - Duration::from_secs(5);
                c.set_deadline(Some(past));
                c.set_write_deadline(Some(past));
                c.set_read_deadline(None);
                (&*c).read(&mut [0u8; 1])
            })
        };
        wait_until("the read is parked (or returned)", || {
            c.read_parked() || r.is_finished()
        });
        if r.is_finished() {
            panic!(
                "expected Read to not return, but it returned {:?}",
                r.join().unwrap()
            );
        }
        // The write deadline is still in the past: writes fail at once,
        // while the read stays parked (the directions are independent).
        assert!(is_timeout(&(&*c).write(b"x").unwrap_err()));
        gort_timer::sleep(Duration::from_millis(100));
        assert!(
            c.read_parked() && !r.is_finished(),
            "expected Read to not return within 100 ms"
        );
        c.close();
        let e = join_within("the close wakes the read", r).unwrap_err();
        assert!(is_closed(&e), "want the close's error, got {e}");
        assert!(!is_timeout(&e), "{e}");
    });
}

/// Go: TestReadTimeoutUnblocksRead (net/net_test.go, CL 30164, which
/// net/http depends on) — a deadline moved into the past while a read is
/// blocked wakes it with a timeout. Go sleeps 100 ms hoping the read has
/// blocked ("Sleep is lame"); here the read is seen parked first.
#[test]
fn read_timeout_unblocks_read() {
    run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        let r = {
            let c = c.clone();
            go(move || (&*c).read(&mut [0u8; 1]))
        };
        wait_until("the read is parked", || c.read_parked());
        c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)));
        let e = join_within("the past deadline wakes the read", r).unwrap_err();
        assert!(is_timeout(&e), "want a timeout, got {e}");
        // The connection itself is fine: clear the deadline and read.
        c.set_read_deadline(None);
        assert!(!c.read_parked());
    });
}

/// Changes the read deadline of a parked read with `change`, which must
/// leave it blocked past the old deadline; data then completes the read.
/// The old deadline is `x` after the read starts; if `change` had not
/// returned before it (a stall on a loaded machine), the old timer may
/// legitimately have fired: retry with a longer `x`, as Go's timer tests
/// do. A timeout after `change` returned in time is a bug.
fn changed_deadline_keeps_the_read_blocked(what: &'static str, change: fn(&TcpStream)) {
    run(move || {
        for ms in [50u64, 200, 1000, 5000] {
            let x = Duration::from_millis(ms);
            let (c, mut s) = pair();
            let c = Arc::new(c);
            let old = Instant::now() + x;
            c.set_read_deadline(Some(old));
            let r = {
                let c = c.clone();
                go(move || {
                    let mut b = [0u8; 1];
                    (&*c).read(&mut b).map(|n| (n, b[0]))
                })
            };
            wait_until("the read is parked (or returned)", || {
                c.read_parked() || r.is_finished()
            });
            change(&c);
            // 1 ms of margin for the Instant -> nanotime conversion.
            if Instant::now() + Duration::from_millis(1) >= old {
                c.close();
                let _ = r.join();
                continue;
            }
            // The change returned before the old deadline: the old timer
            // was stopped before it fired. Wait past it; the read must
            // still be parked.
            gort_timer::sleep_until(old + Duration::from_millis(50));
            if r.is_finished() {
                panic!("{what}: the read returned {:?}", r.join().unwrap());
            }
            assert!(c.read_parked(), "{what}: the read is not parked");
            s.write_all(&[9]).unwrap();
            let got = join_within("the data wakes the read", r).unwrap();
            assert_eq!(got, (1, 9), "{what}");
            return;
        }
        panic!("{what}: the deadline passed before it could be changed, even at 5 s");
    });
}

/// Extending a read deadline while a read is blocked keeps it blocked past
/// the old deadline (Go: SetReadDeadline applies to pending reads).
#[test]
fn extending_a_deadline_keeps_the_read_blocked() {
    changed_deadline_keeps_the_read_blocked("extend", |c| {
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)))
    });
}

/// Clearing a read deadline while a read is blocked keeps it blocked past
/// the old deadline (Go: a zero deadline means none, for pending reads too).
#[test]
fn clearing_a_deadline_keeps_the_read_blocked() {
    changed_deadline_keeps_the_read_blocked("clear", |c| c.set_read_deadline(None));
}

/// Go: TestWriteTimeout — writes into a peer that never reads fill the
/// buffers, then a blocked write fails with a timeout at the deadline; a
/// past deadline fails at once. If the first write came after the deadline
/// (a stall on a loaded machine), nothing blocked: retry with a longer one.
#[test]
fn write_deadline_on_full_buffer() {
    run(|| {
        for ms in [100u64, 500, 2000, 10_000] {
            let (mut c, _s) = pair();
            let d = Duration::from_millis(ms);
            let t0 = Instant::now();
            c.set_write_deadline(Some(t0 + d));
            let chunk = vec![0u8; 1 << 16];
            let mut total = 0usize;
            let e = loop {
                match c.write(&chunk) {
                    Ok(n) => total += n,
                    Err(e) => break e,
                }
            };
            assert!(is_timeout(&e), "{e}");
            assert!(t0.elapsed() >= d, "timed out before the deadline");
            if total == 0 {
                continue;
            }
            // A past write deadline fails at once.
            c.set_write_deadline(Some(Instant::now()));
            assert!(is_timeout(&c.write(b"x").unwrap_err()));
            return;
        }
        panic!("every first write came after its deadline, even at 10 s");
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

/// Go: TestCloseUnblocksRead (net/net_test.go, issue 17695) — the *peer's*
/// Close makes a Read blocked on the other end return (0, EOF) (Rust's EOF
/// is `Ok(0)`). Go sleeps 20 ms to let the read block; here the read is seen
/// parked before the peer closes, so the wake-up of a parked read is what
/// is tested. Both ways a peer ends: `close()` (Go's Close) and dropping it.
#[test]
fn close_unblocks_read() {
    for by_drop in [false, true] {
        run(move || {
            let (c, s) = pair();
            let c = Arc::new(c);
            let r = {
                let c = c.clone();
                go(move || (&*c).read(&mut [0u8; 1]))
            };
            wait_until("the read is parked", || c.read_parked());
            if by_drop {
                drop(s);
            } else {
                s.close();
            }
            let n = join_within("the peer's close wakes the read", r).expect("want (0, EOF)");
            assert_eq!(n, 0, "want (0, EOF), by_drop = {by_drop}");
        });
    }
}

/// Close from another goroutine wakes a read blocked on the *same*
/// connection with "use of closed network connection" (Go's pollUnblock and
/// net.ErrClosed); later operations fail the same way.
#[test]
fn own_close_unblocks_read() {
    run(|| {
        let (c, _s) = pair();
        let c = Arc::new(c);
        let r = {
            let c = c.clone();
            go(move || (&*c).read(&mut [0u8; 8]))
        };
        wait_until("the read is parked", || c.read_parked());
        c.close();
        let e = join_within("the close wakes the read", r).unwrap_err();
        assert!(is_closed(&e), "{e}");
        assert_eq!(e.to_string(), "use of closed network connection");
        assert_eq!(e.kind(), ErrorKind::NotConnected);
        // Later operations fail the same way.
        assert!(is_closed(&(&*c).write(b"x").unwrap_err()));
        assert!(is_closed(&(&*c).read(&mut [0u8; 1]).unwrap_err()));
    });
}

/// Go: TestCloseUnblocksReadUDP (net/net_test.go, issue 72770) — Close
/// wakes a UDP read blocked with an empty buffer; it must not succeed.
#[test]
fn close_unblocks_read_udp() {
    run(|| {
        let u = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let r = {
            let u = u.clone();
            go(move || u.recv_from(&mut []).map(|(n, _)| n))
        };
        wait_until("the receive is parked", || u.read_parked());
        u.close();
        let e = join_within("the close wakes the receive", r).unwrap_err();
        assert!(is_closed(&e), "{e}");
    });
}

/// Go: TestAcceptIgnoreAbortedConnRequest's sibling in practice — closing a
/// listener from another goroutine wakes its blocked accept.
#[test]
fn close_unblocks_accept() {
    run(|| {
        let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let a = {
            let l = l.clone();
            go(move || l.accept().map(|_| ()))
        };
        wait_until("the accept is parked", || l.read_parked());
        l.close();
        let e = join_within("the close wakes the accept", a).unwrap_err();
        assert!(is_closed(&e), "{e}");
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
