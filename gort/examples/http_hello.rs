//! A minimal HTTP/1.1 server on goroutines: keep-alive, pipelining, a
//! goroutine per connection. Load it with curl or wrk:
//!
//! ```text
//! cargo run --release --example http_hello [ADDR]   # default 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/hello
//! wrk -c 100 -d 10s http://127.0.0.1:8080/
//! ```
//!
//! `GET /` and `GET /hello` answer "Hello, World!\n"; `GET /goroutines`
//! answers the live goroutine count; other paths 404; requests with a body
//! (Content-Length) have it read and echoed back by `POST /echo`. An idle
//! connection is closed after 30 s (a read deadline renewed per request).
//! With `--port-file PATH`, the bound address is written to PATH once
//! listening (tests use port 0 and read it back).

use gort::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_secs(30);
const MAX_HEADER: usize = 16 * 1024;

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    body: Vec<u8>,
}

/// Parses one request from the front of `buf`; returns it and the bytes it
/// used, `Ok(None)` if more bytes are needed.
fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEADER {
            Err("header too large")
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "header not UTF-8")?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().ok_or("empty request")?.split(' ');
    let (method, path, version) = match (first.next(), first.next(), first.next()) {
        (Some(m), Some(p), Some(v)) => (m, p, v),
        _ => return Err("malformed request line"),
    };
    let mut keep_alive = version == "HTTP/1.1";
    let mut len = 0usize;
    for l in lines {
        let (k, v) = l.split_once(':').ok_or("malformed header")?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().map_err(|_| "bad Content-Length")?;
        } else if k.eq_ignore_ascii_case("connection") {
            keep_alive = if v.eq_ignore_ascii_case("close") {
                false
            } else {
                keep_alive || v.eq_ignore_ascii_case("keep-alive")
            };
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported");
        }
    }
    let total = end + 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let req = Request {
        method: method.to_string(),
        path: path.to_string(),
        keep_alive,
        body: buf[end + 4..total].to_vec(),
    };
    Ok(Some((req, total)))
}

fn respond(out: &mut Vec<u8>, status: &str, body: &[u8], keep_alive: bool) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
}

fn handle(req: &Request, out: &mut Vec<u8>) {
    let ka = req.keep_alive;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/hello") => respond(out, "200 OK", b"Hello, World!\n", ka),
        ("GET", "/goroutines") => {
            let n = format!("{}\n", gort::num_goroutine());
            respond(out, "200 OK", n.as_bytes(), ka)
        }
        ("POST", "/echo") => respond(out, "200 OK", &req.body, ka),
        _ => respond(out, "404 Not Found", b"not found\n", ka),
    }
}

fn serve(mut c: TcpStream) -> io::Result<()> {
    c.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    loop {
        // Answer every complete request in the buffer (pipelining), then
        // write all the answers at once.
        let mut close = false;
        loop {
            match parse(&buf) {
                Ok(Some((req, used))) => {
                    buf.drain(..used);
                    handle(&req, &mut out);
                    if !req.keep_alive {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(why) => {
                    respond(
                        &mut out,
                        "400 Bad Request",
                        format!("{why}\n").as_bytes(),
                        false,
                    );
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            c.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        c.set_read_deadline(Some(Instant::now() + IDLE));
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8080".to_string();
    let mut port_file = None;
    while let Some(a) = args.next() {
        if a == "--port-file" {
            port_file = args.next();
        } else {
            addr = a;
        }
    }
    gort::run(move || {
        let l = TcpListener::bind(&addr)?;
        let local = l.local_addr()?;
        eprintln!("http_hello: listening on http://{local}/");
        if let Some(p) = port_file {
            std::fs::write(p, local.to_string())?;
        }
        loop {
            match l.accept() {
                Ok((c, _)) => {
                    gort::go(move || {
                        let _ = serve(c);
                    });
                }
                Err(e) => {
                    eprintln!("http_hello: accept: {e}");
                    gort::timer::sleep(Duration::from_millis(10));
                }
            }
        }
    })
}
