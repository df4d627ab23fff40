//! Drives `examples/http_hello.rs` as a separate process with real HTTP
//! clients: curl (or Python's http.client where curl is missing), and a
//! crowd of keep-alive, pipelining connections from plain threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The example binary next to this test's (target/<profile>/examples),
/// built once per test run into this test's target directory: `cargo test
/// --test http_example` does not build examples, and a stale binary would
/// test old code.
fn example_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.args(["build", "-p", "gort", "--example", "http_hello"])
                .arg("--target-dir")
                .arg(profile_dir.parent().unwrap());
            if release {
                cmd.arg("--release");
            }
            assert!(
                cmd.status().unwrap().success(),
                "building the example failed"
            );
            profile_dir.join("examples").join("http_hello")
        })
        .clone()
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(tag: &str) -> Server {
    let port_file =
        std::env::temp_dir().join(format!("gort-http-{}-{tag}.port", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new(example_binary())
        .args(["127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        addr: String::new(),
    };
    let t0 = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(&port_file) {
            if !a.is_empty() {
                server.addr = a;
                break;
            }
        }
        if let Some(st) = server.child.try_wait().unwrap() {
            panic!("http_hello exited early: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "http_hello did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&port_file);
    server
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn real_client_process() {
    let s = start("client");
    if have("curl") {
        // One curl process, two requests on one kept-alive connection.
        let out = Command::new("curl")
            .args(["-s", "--fail", "-o", "-"])
            .arg(format!("http://{}/hello", s.addr))
            .arg(format!("http://{}/", s.addr))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl failed: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Hello, World!\nHello, World!\n"
        );
        let out = Command::new("curl")
            .args(["-s", "--fail", "-d", "posted body"])
            .arg(format!("http://{}/echo", s.addr))
            .output()
            .unwrap();
        assert!(out.status.success(), "curl failed: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "posted body");
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{}/nope", s.addr))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    } else if have("python3") {
        let script = format!(
            "import http.client\n\
             c = http.client.HTTPConnection('{}')\n\
             for _ in range(3):\n    c.request('GET', '/hello'); r = c.getresponse()\n    \
             assert r.status == 200 and r.read() == b'Hello, World!\\n'\n\
             c.request('POST', '/echo', body=b'posted body'); r = c.getresponse()\n\
             assert r.read() == b'posted body'\n\
             c.request('GET', '/nope'); r = c.getresponse(); r.read()\n\
             assert r.status == 404\nprint('ok')\n",
            s.addr
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{out:?}");
    } else {
        panic!("neither curl nor python3 found: install one to run this test");
    }
}

/// Reads one response (status line, headers, Content-Length body).
fn read_response(r: &mut impl BufRead) -> (String, String) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut len = 0;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (status.trim().to_string(), String::from_utf8(body).unwrap())
}

#[test]
fn many_keepalive_pipelining_connections() {
    let s = start("crowd");
    let ts: Vec<_> = (0..64)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || {
                let c = TcpStream::connect(&addr).unwrap();
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                for _ in 0..20 {
                    // Two pipelined requests per write.
                    w.write_all(
                        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\
                          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                    )
                    .unwrap();
                    let ok = "HTTP/1.1 200 OK".to_string();
                    assert_eq!(
                        read_response(&mut r),
                        (ok.clone(), "Hello, World!\n".into())
                    );
                    assert_eq!(read_response(&mut r), (ok, "abc".into()));
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    // A malformed request gets a 400 and the connection closes.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 400"), "{all}");
}
