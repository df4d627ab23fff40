//! A TCP echo server: one goroutine per connection, blocking-style code.
//!
//! ```text
//! cargo run --release --example echo [ADDR]      # default 127.0.0.1:7007
//! nc 127.0.0.1 7007
//! ```
//!
//! Each connection's goroutine reads and writes as if it owned a thread;
//! while it waits for data it is parked and its thread runs others.

use gort::net::{TcpListener, TcpStream};
use std::io::{Read, Write};

fn serve(mut c: TcpStream) -> std::io::Result<()> {
    c.set_nodelay(true)?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // the client closed
        }
        c.write_all(&buf[..n])?;
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7007".into());
    gort::run(move || {
        let l = TcpListener::bind(&addr)?;
        eprintln!("echo: listening on {}", l.local_addr()?);
        loop {
            match l.accept() {
                Ok((c, peer)) => {
                    gort::go(move || {
                        if let Err(e) = serve(c) {
                            eprintln!("echo: {peer}: {e}");
                        }
                    });
                }
                // Out of descriptors and the like: report, back off, go on
                // (as Go's http.Server does).
                Err(e) => {
                    eprintln!("echo: accept: {e}");
                    gort::timer::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    })
}
