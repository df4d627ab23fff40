//! UdpSocket, UnixListener/UnixStream and UnixDatagram from goroutines.

use gort_netpoll::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gort_sched::{go, run};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tmp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("gort-netpoll-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn udp_request_reply() {
    run(|| {
        let srv = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = srv.local_addr().unwrap();
        let s = srv.clone();
        let server = go(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..100 {
                let (n, from) = s.recv_from(&mut buf).unwrap();
                s.send_to(&buf[..n], from).unwrap();
            }
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(addr).unwrap();
        // A lost datagram fails the test instead of hanging it.
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
        assert_eq!(c.peer_addr().unwrap(), addr);
        for i in 0..100u32 {
            c.send(&i.to_le_bytes()).unwrap();
            let mut b = [0u8; 16];
            let n = c.recv(&mut b).unwrap();
            assert_eq!(&b[..n], &i.to_le_bytes());
        }
        server.join().unwrap();
    });
}

#[test]
fn udp_peek_and_deadline() {
    run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)));
        assert!(gort_netpoll::is_timeout(
            &a.recv_from(&mut [0u8; 4]).unwrap_err()
        ));
        a.set_read_deadline(None);
        b.send_to(b"ping", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = a.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], b.local_addr().unwrap()));
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
    });
}

#[test]
fn unix_stream_echo() {
    run(|| {
        let path = tmp_path("echo.sock");
        let l = UnixListener::bind(&path).unwrap();
        // The server joins its handlers: a failed write in one fails the
        // test instead of vanishing with a detached goroutine.
        let server = go(move || {
            let handlers: Vec<_> = (0..3)
                .map(|_| {
                    let (mut c, _) = l.accept().unwrap();
                    go(move || {
                        let mut buf = [0u8; 256];
                        loop {
                            match c.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => c.write_all(&buf[..n]).unwrap(),
                                Err(e) => panic!("echo read: {e}"),
                            }
                        }
                    })
                })
                .collect();
            for h in handlers {
                h.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..3u8)
            .map(|i| {
                let path = path.clone();
                go(move || {
                    let mut c = UnixStream::connect(&path).unwrap();
                    for j in 0..50u8 {
                        c.write_all(&[i, j]).unwrap();
                        let mut b = [0u8; 2];
                        c.read_exact(&mut b).unwrap();
                        assert_eq!(b, [i, j]);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn unix_stream_pair_and_halves() {
    run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut ar, mut aw) = a.into_split();
        let t = go(move || {
            let mut b = b;
            let mut s = String::new();
            b.read_to_string(&mut s).unwrap(); // ends when aw drops
            b.write_all(s.as_bytes()).unwrap();
        });
        aw.write_all(b"halves").unwrap();
        drop(aw);
        let mut s = String::new();
        ar.read_to_string(&mut s).unwrap();
        assert_eq!(s, "halves");
        t.join().unwrap();
    });
}

#[test]
fn unix_connect_to_missing_path_fails() {
    let e = UnixStream::connect(tmp_path("missing.sock")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
}

#[test]
fn unix_datagram() {
    run(|| {
        let pa = tmp_path("a.dgram");
        let pb = tmp_path("b.dgram");
        let a = Arc::new(UnixDatagram::bind(&pa).unwrap());
        let b = UnixDatagram::bind(&pb).unwrap();
        let a2 = a.clone();
        let r = go(move || {
            let mut buf = [0u8; 64];
            let (n, from) = a2.recv_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
        });
        b.send_to(b"dgram", &pa).unwrap();
        let (data, from) = r.join().unwrap();
        assert_eq!(data, b"dgram");
        assert_eq!(from.as_deref(), Some(pb.as_path()));
        let (x, y) = UnixDatagram::pair().unwrap();
        x.send(b"p").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(y.recv(&mut buf).unwrap(), 1);
        let _ = std::fs::remove_file(&pa);
        let _ = std::fs::remove_file(&pb);
    });
}

/// Host names resolve on the blocking pool; both sockets bind to the first
/// address of "localhost", so they share its family whichever it is.
#[test]
fn udp_by_host_name() {
    run(|| {
        let srv = UdpSocket::bind("localhost:0").unwrap();
        let port = srv.local_addr().unwrap().port();
        let c = UdpSocket::bind(("localhost", 0)).unwrap();
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
        srv.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
        c.send_to(b"ping", ("localhost", port)).unwrap();
        let mut b = [0u8; 8];
        let (n, from) = srv.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
        c.connect(format!("localhost:{port}")).unwrap();
        c.send(b"pong").unwrap();
        let (n, from2) = srv.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"pong");
        assert_eq!(from, from2);
    });
}
