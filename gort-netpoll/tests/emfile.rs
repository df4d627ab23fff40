//! Running out of descriptors on accept reports EMFILE at once (no spin,
//! no hang), and accepting works again once descriptors are free. Its own
//! test binary: it lowers this process's RLIMIT_NOFILE.

use gort_netpoll::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[test]
fn accept_reports_emfile_and_recovers() {
    gort_sched::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // A connection waits in the backlog.
        let _c = std::net::TcpStream::connect(addr).unwrap();
        // Use up the descriptor table.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let old = lim;
        lim.rlim_cur = 256.min(lim.rlim_max);
        // SAFETY: valid pointer.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let mut hogs = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hogs.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                    break;
                }
            }
        }
        let t0 = Instant::now();
        let e = l.accept().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Again: still an error, still at once (edge-triggered readiness is
        // not consumed by a failed accept, nothing spins).
        assert_eq!(l.accept().unwrap_err().raw_os_error(), Some(libc::EMFILE));
        hogs.truncate(hogs.len() - 8);
        let (s, _) = l.accept().unwrap();
        drop(s);
        drop(hogs);
        // SAFETY: valid pointer.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
        // The listener still works for new connections.
        let h = gort_sched::go(move || TcpStream::connect(addr).map(|_| ()));
        l.accept().unwrap();
        h.join().unwrap().unwrap();
    });
}
