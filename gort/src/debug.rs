//! A debug endpoint: net/http/pprof's paths and Prometheus' `/metrics`,
//! served by goroutines on gort's own netpoller.
//!
//! [`serve`] binds a listener and starts a goroutine accepting on it, one
//! goroutine per connection. The paths are Go's:
//!
//! | path | answer |
//! |------|--------|
//! | `/debug/pprof/` | an HTML index of the profiles with their counts |
//! | `/debug/pprof/cmdline` | the command line, arguments separated by NULs |
//! | `/debug/pprof/goroutine` | stacks of all goroutines; `?debug=2`: Go's full dump ([`gort_sched::stack`]) |
//! | `/debug/pprof/block`, `/debug/pprof/mutex` | contention profiles |
//! | `/debug/pprof/heap`, `/debug/pprof/allocs` | the `Gc` heap profile (`allocs` shows allocated space first) |
//! | `/debug/pprof/profile?seconds=N` | a CPU profile over N seconds (30 by default) |
//! | `/metrics` | [`crate::metrics::write_prometheus`] |
//!
//! Profiles are pprof's gzipped protobuf (`application/octet-stream`),
//! or with `?debug=1` Go's text ([`crate::pprof::write_text`]). So
//! `go tool pprof http://HOST/debug/pprof/goroutine` works as on a Go
//! program.
//!
//! The HTTP is small and strict: at most 64 connections at once (more are
//! closed on arrival), one `GET` per connection, answered with
//! `Connection: close`; a request header over 16 KiB is refused (431), a
//! request that is not whole within 10 s too (408); a body, another
//! method, a missing `Host` on HTTP/1.1 or another HTTP version are
//! refused; query values are taken as they are (no percent-decoding: the
//! parameters are numbers). A query parameter that is not a number where
//! one belongs (`seconds=abc`) is answered 400, where Go's handlers fall
//! back to the default; so is a CPU profile over an hour.
//!
//! Like net/http/pprof this tells a client a lot about the program and
//! lets it spend CPU (symbolising, profiling): serve it on loopback or an
//! internal port only.

use crate::pprof::{self, Profile, TextKind};
use gort_netpoll::{TcpListener, TcpStream, ToSocketAddrs};
use gort_std::WaitGroup;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest request header accepted (request line to blank line).
const MAX_HEADER: usize = 16 * 1024;
/// How long a request may take to arrive whole.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing an answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client's unread bytes are discarded before closing, so the
/// close sends no reset that could destroy the answer (Go's
/// `closeWriteAndWait`).
const LINGER: Duration = Duration::from_secs(1);
/// How long the accept loop backs off after an error such as EMFILE (Go's
/// http server starts at 5 ms and doubles; a debug port needs no more).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Connections served at once; more are closed on arrival.
const MAX_CONNS: usize = 64;
/// Go's default CPU profile length.
const DEFAULT_CPU_SECONDS: u64 = 30;
/// The longest CPU profile a request may ask for (Go refuses one longer
/// than its server's write timeout; the profile runs to its end even if
/// the client goes away, and `shutdown` waits for it).
const MAX_CPU_SECONDS: u64 = 3600;

/// A running debug endpoint. Dropping it stops it as
/// [`shutdown`](DebugServer::shutdown) does.
pub struct DebugServer {
    listener: Arc<TcpListener>,
    addr: SocketAddr,
    /// Set before the listener is closed, so the accept loop takes the
    /// error that follows for a stop, not a failure.
    stopping: Arc<AtomicBool>,
    accept: Option<gort_sched::JoinHandle<()>>,
    /// The connection goroutines still running.
    conns: Arc<WaitGroup>,
}

impl std::fmt::Debug for DebugServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Starts serving the debug endpoint on `addr` (`"127.0.0.1:0"` picks a
/// free port: see [`DebugServer::local_addr`]).
///
/// ```
/// gort::run(|| {
///     let srv = gort::debug::serve("127.0.0.1:0").unwrap();
///     // A flame graph of the goroutines, from a shell:
///     println!("go tool pprof -http=: http://{}/debug/pprof/goroutine", srv.local_addr());
///     srv.shutdown();
/// });
/// ```
pub fn serve(addr: impl ToSocketAddrs) -> io::Result<DebugServer> {
    let listener = Arc::new(TcpListener::bind(addr)?);
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(WaitGroup::new());
    let accept = {
        let (l, stopping, conns) = (listener.clone(), stopping.clone(), conns.clone());
        gort_sched::Builder::new()
            .name("debug server")
            .spawn(move || accept_loop(&l, &stopping, &conns))
    };
    Ok(DebugServer {
        listener,
        addr,
        stopping,
        accept: Some(accept),
        conns,
    })
}

impl DebugServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits for the requests being served to be
    /// answered (a CPU profile being taken runs to its end; a client that
    /// connected and sends nothing is dropped after the 10 s read
    /// timeout): afterwards none of the server's goroutines is left.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        // Release: pairs with the accept loop's Acquire load after the
        // accept the close below fails.
        self.stopping.store(true, Ordering::Release);
        self.listener.close();
        let _ = accept.join();
        self.conns.wait();
    }
}

impl Drop for DebugServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(l: &TcpListener, stopping: &AtomicBool, conns: &Arc<WaitGroup>) {
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        match l.accept() {
            // Beyond the limit a connection is closed at once: a debug port
            // must not let clients pile up goroutines and descriptors.
            Ok((c, _)) if live.load(Ordering::Relaxed) >= MAX_CONNS => drop(c),
            Ok((c, _)) => {
                live.fetch_add(1, Ordering::Relaxed);
                let live = live.clone();
                conns.go_arc(move || {
                    let _ = serve_conn(c);
                    live.fetch_sub(1, Ordering::Relaxed);
                })
            }
            // Acquire: pairs with stop's Release store.
            Err(_) if stopping.load(Ordering::Acquire) => return,
            Err(_) => gort_std::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// An answer of [`handle`]: what to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status line's code and reason, `"200 OK"`.
    pub status: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Extra header lines, each ending in CRLF (`Location`,
    /// `Content-Disposition`); empty for most answers.
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Content type of text answers (Go's, for `debug=1` profiles).
const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: "200 OK",
            content_type,
            headers: String::new(),
            body,
        }
    }

    fn error(status: &'static str, why: &str) -> Response {
        Response {
            status,
            content_type: TEXT,
            headers: String::new(),
            body: format!("{why}\n").into_bytes(),
        }
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             X-Content-Type-Options: nosniff\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers
        );
        w.write_all(head.as_bytes())?;
        w.write_all(&self.body)
    }
}

/// Serves the one request of a connection, then closes it gently.
fn serve_conn(mut c: TcpStream) -> io::Result<()> {
    c.set_read_deadline(Some(Instant::now() + READ_TIMEOUT));
    let answer = match read_head(&mut c) {
        Ok(Some(head)) => match parse_request(&head) {
            Ok(target) => route(&target),
            Err(refusal) => refusal,
        },
        Ok(None) => return Ok(()),
        Err(refusal) => refusal,
    };
    c.set_write_deadline(Some(Instant::now() + WRITE_TIMEOUT));
    answer.write_to(&mut c)?;
    c.shutdown(Shutdown::Write)?;
    c.set_read_deadline(Some(Instant::now() + LINGER));
    let mut sink = [0u8; 1024];
    while c.read(&mut sink)? > 0 {}
    Ok(())
}

/// Reads the request header, up to its blank line; `None` if the client
/// closed before sending anything whole.
fn read_head(c: &mut TcpStream) -> Result<Option<Vec<u8>>, Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        // Only the new bytes (and the 3 before them) can complete "\r\n\r\n".
        let from = buf.len().saturating_sub(3);
        let n = match c.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if gort_netpoll::is_timeout(&e) => {
                return Err(Response::error("408 Request Timeout", "request too slow"))
            }
            Err(_) => return Ok(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(from + i);
            return Ok(Some(buf));
        }
        if buf.len() >= MAX_HEADER {
            return Err(Response::error(
                "431 Request Header Fields Too Large",
                "request header too large",
            ));
        }
    }
}

fn bad_request(why: &str) -> Response {
    Response::error("400 Bad Request", why)
}

/// Checks a request header (without its blank line) and returns its
/// target (`/path?query`).
fn parse_request(head: &[u8]) -> Result<String, Response> {
    let head = std::str::from_utf8(head).map_err(|_| bad_request("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let parts: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad_request("malformed request line"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Response::error(
            "505 HTTP Version Not Supported",
            "unsupported HTTP version",
        ));
    }
    if method != "GET" {
        let mut r = Response::error("405 Method Not Allowed", "only GET is served");
        r.headers = "Allow: GET\r\n".into();
        return Err(r);
    }
    if !target.starts_with('/') {
        return Err(bad_request("malformed request target"));
    }
    let mut host = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_request("malformed header"))?;
        // A name with whitespace (or a folded line) is refused, as Go does.
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad_request("malformed header"));
        }
        let value = value.trim();
        host |= name.eq_ignore_ascii_case("host");
        let has_body = name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && value != "0");
        if has_body {
            return Err(bad_request("a GET request has no body"));
        }
    }
    if version == "HTTP/1.1" && !host {
        return Err(bad_request("missing required Host header"));
    }
    Ok(target.to_string())
}

/// A request's query parameters, as (name, value), undecoded.
struct Query<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Query<'a> {
    fn parse(q: &'a str) -> Query<'a> {
        let pairs = q.split('&').filter(|p| !p.is_empty());
        Query(
            pairs
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        )
    }

    /// The integer value of `name` (the first one, as Go's `FormValue`),
    /// `None` if absent or empty; 400 if it is not a number.
    fn int<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Response> {
        match self.0.iter().find(|(k, _)| *k == name) {
            None | Some((_, "")) => Ok(None),
            Some((_, v)) => v
                .parse()
                .map(Some)
                .map_err(|_| bad_request(&format!("{name}={v}: not a valid number"))),
        }
    }
}

/// A profile the endpoint serves by name.
struct Named {
    name: &'static str,
    /// What the index says of it (Go's descriptions).
    about: &'static str,
    collect: fn() -> Profile,
    /// What its `debug=1` text is made of (the heap's is unscaled).
    collect_text: fn() -> Profile,
    /// Its text layout for `debug=1`.
    text: fn() -> TextKind,
}

/// The named profiles, in the index's (alphabetical, as Go's) order.
const PROFILES: &[Named] = &[
    Named {
        name: "allocs",
        about: "A sampling of all past memory allocations",
        collect: allocs_profile,
        collect_text: allocs_profile_unscaled,
        text: || TextKind::Heap,
    },
    Named {
        name: "block",
        about: "Stack traces that led to blocking on synchronization primitives",
        collect: pprof::block_profile,
        collect_text: pprof::block_profile,
        text: || TextKind::Block,
    },
    Named {
        name: "goroutine",
        about: "Stack traces of all current goroutines. Use debug=2 as a query parameter \
                to export in the same format as an unrecovered panic.",
        collect: pprof::goroutine_profile,
        collect_text: pprof::goroutine_profile,
        text: || TextKind::Count,
    },
    Named {
        name: "heap",
        about: "A sampling of memory allocations of live objects.",
        collect: pprof::heap_profile,
        collect_text: pprof::heap_profile_unscaled,
        text: || TextKind::Heap,
    },
    Named {
        name: "mutex",
        about: "Stack traces of holders of contended mutexes",
        collect: pprof::mutex_profile,
        collect_text: pprof::mutex_profile,
        text: || TextKind::Mutex {
            sampling_period: pprof::mutex_profile_fraction(),
        },
    },
];

/// The heap profile showing allocated space first, as Go's `allocs`.
fn allocs_profile() -> Profile {
    let mut p = pprof::heap_profile();
    p.default_sample_type = Some("alloc_space".into());
    p
}

/// Its `debug=1` text's data (the same as the heap's).
fn allocs_profile_unscaled() -> Profile {
    pprof::heap_profile_unscaled()
}

/// Answers a `GET` of `target` (path and query, `/debug/pprof/heap?debug=1`)
/// as [`serve`]'s endpoint does: mount it in your own HTTP server, as Go
/// programs mount net/http/pprof's handlers in their mux. Paths outside the
/// table above answer 404. A CPU profile blocks the caller for its length
/// (a goroutine parks; its P serves others).
///
/// ```
/// let r = gort::debug::handle("/debug/pprof/goroutine?debug=1");
/// assert_eq!(r.status, "200 OK");
/// assert!(String::from_utf8(r.body).unwrap().starts_with("goroutine profile: total"));
/// ```
pub fn handle(target: &str) -> Response {
    route(target)
}

fn route(target: &str) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = Query::parse(query);
    let answer = match path {
        "/metrics" => Ok(metrics()),
        "/debug/pprof/" => Ok(index()),
        // Go's ServeMux sends a subtree's bare name to the subtree.
        "/debug/pprof" => Ok(redirect("/debug/pprof/")),
        "/debug/pprof/cmdline" => Ok(cmdline()),
        "/debug/pprof/profile" => cpu(&query),
        _ => match path.strip_prefix("/debug/pprof/") {
            Some(name) => named(name, &query),
            None => Err(Response::error("404 Not Found", "404 page not found")),
        },
    };
    answer.unwrap_or_else(|refusal| refusal)
}

fn redirect(to: &str) -> Response {
    let mut r = Response::error("301 Moved Permanently", &format!("Moved to {to}"));
    r.headers = format!("Location: {to}\r\n");
    r
}

/// The command line, arguments separated by NULs (Go's `Cmdline`).
fn cmdline() -> Response {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Response::ok(TEXT, args.join("\0").into_bytes())
}

fn metrics() -> Response {
    let mut body = Vec::new();
    match crate::metrics::write_prometheus(&mut body) {
        Ok(()) => Response::ok("text/plain; version=0.0.4; charset=utf-8", body),
        Err(e) => Response::error("500 Internal Server Error", &e.to_string()),
    }
}

/// A profile as pprof's file, offered for download under its name (Go's
/// `Content-Disposition`).
fn binary(name: &str, p: &Profile) -> Response {
    let mut r = Response::ok("application/octet-stream", pprof::encode(p));
    r.headers = format!("Content-Disposition: attachment; filename=\"{name}\"\r\n");
    r
}

fn named(name: &str, query: &Query) -> Result<Response, Response> {
    let named = PROFILES
        .iter()
        .find(|n| n.name == name)
        .ok_or_else(|| Response::error("404 Not Found", "Unknown profile"))?;
    let debug = query.int::<i64>("debug")?.unwrap_or(0);
    if name == "goroutine" && debug >= 2 {
        return Ok(Response::ok(TEXT, gort_sched::stack(true).into_bytes()));
    }
    if debug <= 0 {
        return Ok(binary(name, &(named.collect)()));
    }
    let p = (named.collect_text)();
    let mut body = Vec::new();
    pprof::write_text(&p, (named.text)(), &mut body)
        .map_err(|e| Response::error("500 Internal Server Error", &e.to_string()))?;
    Ok(Response::ok(TEXT, body))
}

fn cpu(query: &Query) -> Result<Response, Response> {
    let seconds = query.int::<u64>("seconds")?.unwrap_or(DEFAULT_CPU_SECONDS);
    if seconds == 0 || seconds > MAX_CPU_SECONDS {
        return Err(bad_request(&format!(
            "seconds must be in 1..={MAX_CPU_SECONDS}"
        )));
    }
    let p = pprof::cpu_profile(Duration::from_secs(seconds))
        .map_err(|e| Response::error("500 Internal Server Error", &e.to_string()))?;
    Ok(binary("profile", &p))
}

/// The index page: each profile with its count and a link to its text,
/// as net/http/pprof's.
fn index() -> Response {
    let mut rows = String::new();
    let mut about = String::new();
    for n in PROFILES {
        let count = match n.name {
            // Go counts goroutines, not distinct stacks.
            "goroutine" => gort_sched::num_goroutine(),
            _ => (n.collect)().samples.len(),
        };
        rows += &format!(
            "<tr><td>{count}</td><td><a href='{0}?debug=1'>{0}</a></td></tr>\n",
            n.name
        );
        about += &format!(
            "<li><div class=profile-name>{}: </div> {}</li>\n",
            n.name, n.about
        );
    }
    rows += "<tr><td>0</td><td><a href='cmdline?debug=1'>cmdline</a></td></tr>\n\
             <tr><td>0</td><td><a href='profile?debug=1'>profile</a></td></tr>\n";
    about += "<li><div class=profile-name>cmdline: </div> The command line invocation of \
              the current program</li>\n";
    about += "<li><div class=profile-name>profile: </div> CPU profile. You can specify the \
              duration in the seconds GET parameter. After you get the profile file, use \
              the go tool pprof command to investigate the profile.</li>\n";
    let page = format!(
        "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{{\n\t\
         display:inline-block;\n\twidth:6rem;\n}}\n</style>\n</head>\n<body>\n\
         /debug/pprof/\n<br>\n<p>Set debug=1 as a query parameter to export in legacy text \
         format</p>\n<br>\nTypes of profiles available:\n<table>\n\
         <thead><td>Count</td><td>Profile</td></thead>\n{rows}</table>\n\
         <a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n<br>\n<p>\n\
         Profile Descriptions:\n<ul>\n{about}</ul>\n</p>\n</body>\n</html>\n"
    );
    Response::ok("text/html; charset=utf-8", page.into_bytes())
}
