//! gort::debug::serve: net/http/pprof's paths and /metrics over HTTP,
//! fetched with a plain std client.

use gort::pprof::decode::decode;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod common;
use common::{go_pprof, go_tool};

/// An answer: status code, header block, body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as it is and reads the answer to the end (the server
/// closes after each).
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(request).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8(all[..end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    Answer {
        status,
        head,
        body: all[end + 4..].to_vec(),
    }
}

/// GETs `target` from a blocking-pool thread (the std client blocks).
fn get(addr: SocketAddr, target: &str) -> Answer {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    gort::blocking(move || exchange(addr, req.as_bytes()))
}

const OCTET: &str = "application/octet-stream";
const TEXT: &str = "text/plain; charset=utf-8";

fn check_profiles(addr: SocketAddr, parked: usize) {
    let index = get(addr, "/debug/pprof/");
    assert_eq!(
        (index.status, index.content_type()),
        (200, "text/html; charset=utf-8")
    );
    for name in ["allocs", "block", "goroutine", "heap", "mutex", "profile"] {
        assert!(
            index.text().contains(&format!("href='{name}?debug=1'")),
            "{name}"
        );
    }

    let g = get(addr, "/debug/pprof/goroutine");
    assert_eq!((g.status, g.content_type()), (200, OCTET));
    assert!(g
        .head
        .contains("Content-Disposition: attachment; filename=\"goroutine\""));
    let d = decode(&g.body).unwrap().profile;
    assert_eq!(d.sample_types, [("goroutine".into(), "count".into())]);
    let total: i64 = d.samples.iter().map(|s| s.values[0]).sum();
    assert!(
        total >= parked as i64,
        "{total} goroutines counted, {parked} parked"
    );

    let g1 = get(addr, "/debug/pprof/goroutine?debug=1");
    assert_eq!((g1.status, g1.content_type()), (200, TEXT));
    assert!(
        g1.text().starts_with("goroutine profile: total "),
        "{}",
        g1.text()
    );
    let g2 = get(addr, "/debug/pprof/goroutine?debug=2");
    assert_eq!((g2.status, g2.content_type()), (200, TEXT));
    let parked_text = g2.text().matches("[chan receive").count();
    assert!(parked_text >= parked, "{}", g2.text());

    for (name, types, text_start) in [
        ("block", 2, "--- contention:\n"),
        ("mutex", 2, "--- mutex:\n"),
        ("heap", 4, "heap profile: "),
        ("allocs", 4, "heap profile: "),
    ] {
        let p = get(addr, &format!("/debug/pprof/{name}"));
        assert_eq!((p.status, p.content_type()), (200, OCTET), "{name}");
        let d = decode(&p.body).unwrap().profile;
        assert_eq!(d.sample_types.len(), types, "{name}");
        let t = get(addr, &format!("/debug/pprof/{name}?debug=1"));
        assert_eq!((t.status, t.content_type()), (200, TEXT), "{name}");
        assert!(t.text().starts_with(text_start), "{name}: {}", t.text());
    }
    let allocs = decode(&get(addr, "/debug/pprof/allocs").body)
        .unwrap()
        .profile;
    assert_eq!(allocs.default_sample_type.as_deref(), Some("alloc_space"));

    let cpu = get(addr, "/debug/pprof/profile?seconds=1");
    assert_eq!((cpu.status, cpu.content_type()), (200, OCTET));
    let d = decode(&cpu.body).unwrap().profile;
    assert_eq!(d.period_type, Some(("cpu".into(), "nanoseconds".into())));
    assert!((1_000_000_000..5_000_000_000).contains(&d.duration_nanos));
}

fn check_metrics_and_refusals(addr: SocketAddr) {
    let m = get(addr, "/metrics");
    assert_eq!(
        (m.status, m.content_type()),
        (200, "text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(m.text().contains("\ngo_goroutines "), "{}", m.text());

    let bad = get(addr, "/debug/pprof/profile?seconds=abc");
    assert_eq!((bad.status, bad.content_type()), (400, TEXT));
    assert!(bad.text().contains("seconds"), "{}", bad.text());
    assert_eq!(get(addr, "/debug/pprof/goroutine?debug=x").status, 400);
    assert_eq!(get(addr, "/debug/pprof/profile?seconds=0").status, 400);
    assert_eq!(get(addr, "/debug/pprof/nope").status, 404);
    assert_eq!(get(addr, "/nope").status, 404);
    let bare = get(addr, "/debug/pprof");
    assert_eq!(bare.status, 301);
    assert!(bare.head.contains("\r\nLocation: /debug/pprof/\r\n"));
    let cmdline = get(addr, "/debug/pprof/cmdline");
    let exe = std::env::args().next().unwrap();
    assert!(cmdline.text().starts_with(&exe), "{}", cmdline.text());

    let raw = |req: &'static str| gort::blocking(move || exchange(addr, req.as_bytes())).status;
    assert_eq!(raw("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_eq!(raw("GET /metrics HTTP/1.1\r\n\r\n"), 400, "no Host");
    assert_eq!(raw("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    assert_eq!(raw("GET /metrics\r\nHost: x\r\n\r\n"), 400);
    assert_eq!(raw("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
    let huge: &'static str = Box::leak(
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .into_boxed_str(),
    );
    assert_eq!(raw(huge), 431);
}

/// `go tool pprof` fetches profiles over HTTP as from a Go program.
fn check_go_tool_fetches(addr: SocketAddr) {
    let Some(go) = go_tool() else {
        eprintln!("skipping go tool pprof: no Go toolchain ($GO unset and no `go` on PATH)");
        return;
    };
    for (path, want) in [
        ("goroutine", "goroutine/count"),
        ("heap", "inuse_space/bytes"),
    ] {
        let url = format!("http://{addr}/debug/pprof/{path}");
        let go = go.clone();
        let raw = gort::blocking(move || go_pprof(&go, &["-raw"], url.as_ref()));
        assert!(raw.contains(want), "{raw}");
    }
}

#[test]
fn serves_profiles_and_metrics_then_shuts_down_cleanly() {
    const PARKED: usize = 8;
    gort::run(|| {
        let before = gort::num_goroutine();
        let srv = gort::debug::serve("127.0.0.1:0").unwrap();
        let addr = srv.local_addr();
        let (tx, rx) = gort::chan::<()>(0);
        let parked: Vec<_> = (0..PARKED)
            .map(|_| {
                let rx = rx.clone();
                gort::go(move || {
                    let _ = rx.recv();
                })
            })
            .collect();
        check_profiles(addr, PARKED);
        check_metrics_and_refusals(addr);
        check_go_tool_fetches(addr);
        drop(tx);
        parked.into_iter().for_each(|h| h.join().unwrap());
        srv.shutdown();
        // Its goroutines are gone (a finished goroutine may take a moment
        // to leave the count after its last action).
        let deadline = Instant::now() + Duration::from_secs(5);
        while gort::num_goroutine() > before && Instant::now() < deadline {
            gort::time::sleep(Duration::from_millis(5));
        }
        assert_eq!(gort::num_goroutine(), before);
        let refused = gort::blocking(move || TcpStream::connect(addr));
        assert!(refused.is_err(), "still listening after shutdown");
    });
}
