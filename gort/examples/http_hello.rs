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
//! answers the live goroutine count; `GET /metrics` answers Prometheus
//! text with Go's metric names and `GET /debug/pprof/...` net/http/pprof's
//! profiles (both through [`gort::debug::handle`]: `go tool pprof -http=:
//! http://127.0.0.1:8080/debug/pprof/profile?seconds=10` shows a flame
//! graph); `GET /debug/goroutines` answers a
//! dump of every goroutine as text (see below); `POST /echo` answers the
//! request's body; other paths 404.
//!
//! `/debug/goroutines` is net/http/pprof's `/debug/pprof/goroutine?debug=2`:
//! [`gort::stack`]`(true)`, each goroutine's state, frames and creator in
//! Go's format, idle connections' goroutines `[IO wait]` in `serve`.
//! Taking it stops no goroutine, but it is not free: the first one parses
//! the binary's debug info; each one blocks the requesting goroutine's
//! thread, and the goroutines bound to that thread, while the stacks are
//! walked and symbolised (inside `gort::syscall`, so the thread's P goes on
//! with others); and the answer grows with goroutines × frames. Like
//! pprof's handlers it tells a client a lot about the program: serve it on
//! loopback or an internal port only (this server binds 127.0.0.1 unless
//! told otherwise).
//!
//! A server faces clients it does not trust, so this one bounds what each
//! request may cost, as Go's net/http does:
//!
//! - **Size.** A request header (request line, fields and the blank line)
//!   over 16 KiB (`MAX_HEADER`) is answered 431 Request Header Fields Too
//!   Large. A Content-Length that is not plain decimal digits below 2^63
//!   (Go's rule), or a repeated one, is answered 400 Bad Request; one over
//!   1 MiB (`MAX_BODY`) is answered 413 Payload Too Large as soon as the
//!   header is in, before any of the body is read. Numbers from the client
//!   only meet checked arithmetic. Transfer-Encoding (chunked bodies) is
//!   answered 501 Not Implemented.
//! - **Time.** Each deadline is set once, when a wait begins; bytes that
//!   arrive do not extend it, so a client sending one byte at a time gains
//!   nothing. A kept-alive connection is closed quietly if the next
//!   request's first byte does not come within 30 s (`IDLE_TIMEOUT`, Go's
//!   `IdleTimeout`). From that first byte, the whole request, header and
//!   body, must arrive within 10 s (`READ_TIMEOUT`, Go's `ReadHeaderTimeout`
//!   and `ReadTimeout` in one) or it is answered 408 Request Timeout (Go
//!   closes without a word). Each write of answers must finish within 10 s
//!   (`WRITE_TIMEOUT`), so a client that never reads is dropped too.
//! - **Closing gently.** A 4xx/5xx answer closes the connection, as does a
//!   request asking to. The server then stops writing and discards what the
//!   client still sends (say, requests it pipelined) until it closes, for
//!   at most 1 s (`LINGER`, Go's `closeWriteAndWait`): closing with unread
//!   bytes would send a reset, which can destroy the answer before the
//!   client reads it.
//!
//! Options: `--read-timeout SECS` replaces `READ_TIMEOUT` (the test uses a
//! short one); `--port-file PATH` writes the bound address to PATH once
//! listening (the test uses port 0 and reads it back).

use gort::net::{is_timeout, TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::ops::Range;
use std::time::{Duration, Instant};

/// The largest request header accepted, request line to blank line
/// included (Node.js's default).
const MAX_HEADER: usize = 16 * 1024;
/// The largest request body accepted (nginx's default `client_max_body_size`).
const MAX_BODY: usize = 1024 * 1024;
/// How long a kept-alive connection waits for the next request's first byte.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take to arrive whole, from its first byte
/// (`MAX_BODY` in this time needs about 100 KiB/s).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write of answers may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client's bytes are discarded before closing.
const LINGER: Duration = Duration::from_secs(1);

const BAD_REQUEST: &str = "400 Bad Request";
const PAYLOAD_TOO_LARGE: &str = "413 Payload Too Large";

/// Why a request is refused: the answer's status and a one-line reason.
type Refusal = (&'static str, &'static str);

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    body: Vec<u8>,
}

/// One request's parse, kept across reads so that each byte is looked at
/// about once however the request trickles in: the search for the header's
/// end resumes where it stopped, the header is parsed once, and then only
/// the buffer's length is checked. (Parsing the buffer afresh after every
/// read would rescan up to `MAX_HEADER` bytes and re-split the header for
/// each body byte a client drips: quadratic work a single connection could
/// keep a core busy with.)
#[derive(Default)]
struct Parser {
    /// Bytes at the front of the buffer searched for the header's end.
    scanned: usize,
    /// The parsed header (its `body` still empty) and where its body lies.
    head: Option<(Request, Range<usize>)>,
}

impl Parser {
    /// Continues parsing the request at the front of `buf`, which only
    /// grows between calls; returns the request and the bytes it used,
    /// `Ok(None)` if more bytes are needed. A request is refused as soon as
    /// its header shows it must be.
    fn parse(&mut self, buf: &[u8]) -> Result<Option<(Request, usize)>, Refusal> {
        let (mut req, body) = match self.head.take() {
            Some(head) => head,
            None => match self.header_end(buf)? {
                Some(end) => parse_head(&buf[..end])?,
                None => return Ok(None),
            },
        };
        if buf.len() < body.end {
            self.head = Some((req, body));
            return Ok(None);
        }
        req.body = buf[body.clone()].to_vec();
        Ok(Some((req, body.end)))
    }

    /// Where the header's blank line starts, looking within the limit and
    /// only at bytes not searched before (and the 3 before them, where a
    /// "\r\n\r\n" split between reads begins).
    fn header_end(&mut self, buf: &[u8]) -> Result<Option<usize>, Refusal> {
        let head_room = &buf[..buf.len().min(MAX_HEADER)];
        let from = self.scanned.saturating_sub(3);
        self.scanned = head_room.len();
        match head_room[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => Ok(Some(from + i)),
            None if buf.len() >= MAX_HEADER => {
                Err(("431 Request Header Fields Too Large", "header too large"))
            }
            None => Ok(None),
        }
    }
}

/// Parses a complete header, blank line excluded; returns the request
/// without its body and where the body lies after the header.
fn parse_head(head: &[u8]) -> Result<(Request, Range<usize>), Refusal> {
    let end = head.len();
    let head = std::str::from_utf8(head).map_err(|_| (BAD_REQUEST, "header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path, version) = match (first.next(), first.next(), first.next()) {
        (Some(m), Some(p), Some(v)) => (m, p, v),
        _ => return Err((BAD_REQUEST, "malformed request line")),
    };
    let mut keep_alive = version == "HTTP/1.1";
    let mut len = None;
    for l in lines {
        let (k, v) = l.split_once(':').ok_or((BAD_REQUEST, "malformed header"))?;
        // "Content-Length :" or a folded line must not slip past the checks
        // below (request smuggling), so names with whitespace are refused.
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err((BAD_REQUEST, "malformed header"));
        }
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            if len.is_some() {
                return Err((BAD_REQUEST, "repeated Content-Length"));
            }
            len = Some(body_len(v)?);
        } else if k.eq_ignore_ascii_case("connection") {
            keep_alive = if v.eq_ignore_ascii_case("close") {
                false
            } else {
                keep_alive || v.eq_ignore_ascii_case("keep-alive")
            };
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err(("501 Not Implemented", "Transfer-Encoding not supported"));
        }
    }
    // `len` is the client's number: added checked, though within the limit.
    let body_start = end + 4;
    let total = body_start
        .checked_add(len.unwrap_or(0))
        .ok_or((PAYLOAD_TOO_LARGE, "body too large"))?;
    let req = Request {
        method: method.to_string(),
        path: path.to_string(),
        keep_alive,
        body: Vec::new(),
    };
    Ok((req, body_start..total))
}

/// The body length a Content-Length value announces: decimal digits below
/// 2^63, as Go's net/http accepts, else 400; over `MAX_BODY`, 413.
fn body_len(v: &str) -> Result<usize, Refusal> {
    // Digits only: Rust's parse would also take a sign.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err((BAD_REQUEST, "bad Content-Length"));
    }
    let n: i64 = v.parse().map_err(|_| (BAD_REQUEST, "bad Content-Length"))?;
    match usize::try_from(n) {
        Ok(n) if n <= MAX_BODY => Ok(n),
        _ => Err((PAYLOAD_TOO_LARGE, "body too large")),
    }
}

fn respond(out: &mut Vec<u8>, status: &str, body: &[u8], keep_alive: bool) {
    respond_with(out, status, "text/plain", "", body, keep_alive)
}

/// An answer with its content type and extra header lines (each ending in
/// CRLF).
fn respond_with(
    out: &mut Vec<u8>,
    status: &str,
    content_type: &str,
    headers: &str,
    body: &[u8],
    keep_alive: bool,
) {
    // Formatted straight into `out`, no String per answer (writing to a
    // Vec cannot fail).
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{headers}Connection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    out.extend_from_slice(body);
}

/// Whether a request target (path and query) is one of gort::debug's:
/// `/metrics` or under `/debug/pprof`.
fn is_debug(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path == "/metrics" || path == "/debug/pprof" || path.starts_with("/debug/pprof/")
}

fn handle(req: &Request, out: &mut Vec<u8>) {
    let ka = req.keep_alive;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/hello") => respond(out, "200 OK", b"Hello, World!\n", ka),
        ("GET", "/goroutines") => {
            let n = format!("{}\n", gort::num_goroutine());
            respond(out, "200 OK", n.as_bytes(), ka)
        }
        ("GET", "/debug/goroutines") => respond(out, "200 OK", gort::stack(true).as_bytes(), ka),
        // net/http/pprof's paths and Prometheus text, mounted as a Go
        // server mounts its pprof handlers.
        ("GET", target) if is_debug(target) => {
            let r = gort::debug::handle(target);
            respond_with(out, r.status, r.content_type, &r.headers, &r.body, ka)
        }
        ("POST", "/echo") => respond(out, "200 OK", &req.body, ka),
        _ => respond(out, "404 Not Found", b"not found\n", ka),
    }
}

/// Writes the answers gathered so far (several, when requests came
/// pipelined) in one go.
fn flush(c: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        c.set_write_deadline(Some(Instant::now() + WRITE_TIMEOUT));
        c.write_all(out)?;
        out.clear();
    }
    Ok(())
}

/// Reads what the client sent next onto `buf`, through `chunk` (the
/// connection's, zeroed once rather than at every read); 0 at end of
/// stream.
fn read_more(c: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8; 4096]) -> io::Result<usize> {
    let n = c.read(chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Serves one connection until the client closes it, a request asks to
/// close, a wait times out or a request is refused.
fn serve(mut c: TcpStream, read_timeout: Duration) -> io::Result<()> {
    c.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Idle: wait for the next request's first byte, unless pipelining
        // brought it already. Timing out here closes quietly.
        if buf.is_empty() {
            flush(&mut c, &mut out)?;
            c.set_read_deadline(Some(Instant::now() + IDLE_TIMEOUT));
            if read_more(&mut c, &mut buf, &mut chunk)? == 0 {
                return Ok(());
            }
        }
        // The request: one deadline for all of it, however it trickles in,
        // set when it is first waited for (one that came whole, the usual
        // case, needs no timer).
        let mut parser = Parser::default();
        let mut waited = false;
        let req = loop {
            let refusal = match parser.parse(&buf) {
                Ok(Some((req, used))) => {
                    buf.drain(..used);
                    break req;
                }
                Ok(None) => {
                    if !waited {
                        c.set_read_deadline(Some(Instant::now() + read_timeout));
                        waited = true;
                    }
                    flush(&mut c, &mut out)?;
                    match read_more(&mut c, &mut buf, &mut chunk) {
                        Ok(0) => return Ok(()),
                        Ok(_) => continue,
                        Err(e) if is_timeout(&e) => ("408 Request Timeout", "request too slow"),
                        Err(e) => return Err(e),
                    }
                }
                Err(refusal) => refusal,
            };
            return refuse(c, out, refusal);
        };
        handle(&req, &mut out);
        if !req.keep_alive {
            return close(c, out);
        }
    }
}

/// Answers a refused request after any answers still pending, then
/// closes.
fn refuse(c: TcpStream, mut out: Vec<u8>, (status, why): Refusal) -> io::Result<()> {
    respond(&mut out, status, format!("{why}\n").as_bytes(), false);
    close(c, out)
}

/// Writes the answers still pending, then closes so that the client reads
/// them: stop writing, discard what the client still sends (requests it
/// pipelined, a refused body) until it closes or `LINGER` passes, then
/// drop. Dropping with unread bytes at once would send a reset, which can
/// destroy the answers before the client reads them.
fn close(mut c: TcpStream, mut out: Vec<u8>) -> io::Result<()> {
    flush(&mut c, &mut out)?;
    c.shutdown(Shutdown::Write)?;
    c.set_read_deadline(Some(Instant::now() + LINGER));
    let mut sink = [0u8; 4096];
    while c.read(&mut sink)? > 0 {}
    Ok(())
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8080".to_string();
    let mut port_file = None;
    let mut read_timeout = READ_TIMEOUT;
    while let Some(a) = args.next() {
        if a == "--port-file" {
            port_file = args.next();
        } else if a == "--read-timeout" {
            let secs = args.next().and_then(|s| s.parse().ok());
            read_timeout = secs
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "--read-timeout takes seconds",
                ))?;
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
                        let _ = serve(c, read_timeout);
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
