//! TCP: [`TcpListener`] and [`TcpStream`], mirroring `std::net`.

use crate::fd::{socket, NetFd};
use crate::resolve::{each_addr, ToSocketAddrs};
use std::io;
use std::net::{self, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// Implements the methods every socket type shares: deadlines, `close`,
/// and descriptor access (`$t` has a `fd: NetFd` field).
macro_rules! common_socket_methods {
    ($t:ty) => {
        impl $t {
            /// Sets the deadline for reads (and accepts): operations that
            /// block past `t` fail with [`NetError::Timeout`](crate::NetError)
            /// (`ErrorKind::TimedOut`), including operations already blocked;
            /// a deadline not in the future fails them at once. `None` clears
            /// it. Like Go's `SetReadDeadline`, it is absolute: extend it
            /// before each operation for an idle timeout.
            pub fn set_read_deadline(&self, t: Option<std::time::Instant>) {
                self.fd.set_deadline(true, false, t)
            }

            /// Sets the deadline for writes (see [`Self::set_read_deadline`]).
            pub fn set_write_deadline(&self, t: Option<std::time::Instant>) {
                self.fd.set_deadline(false, true, t)
            }

            /// Sets both deadlines (Go's `SetDeadline`).
            pub fn set_deadline(&self, t: Option<std::time::Instant>) {
                self.fd.set_deadline(true, true, t)
            }

            /// Closes the socket as far as every handle can see (Go's
            /// `Close`): goroutines blocked on it wake with
            /// [`NetError::Closed`](crate::NetError) (`ErrorKind::NotConnected`),
            /// later operations fail the same way, and the connection is shut
            /// down. The descriptor number is released when the value drops.
            pub fn close(&self) {
                self.fd.close()
            }

            /// Whether an operation on this socket is parked right now
            /// waiting for read readiness — a read, a receive or an accept
            /// (Go: the pollDesc's `rg` holds a goroutine). True from the
            /// moment the waiter has committed to park until readiness, a
            /// deadline or [`close`](Self::close) wakes it. A snapshot, for
            /// tests and diagnostics: it lets a test act only once an
            /// operation is really blocked, instead of sleeping and hoping.
            pub fn read_parked(&self) -> bool {
                self.fd.is_parked(false)
            }

            /// As [`read_parked`](Self::read_parked), for write readiness (a
            /// write or send into a full buffer, a connect in progress).
            pub fn write_parked(&self) -> bool {
                self.fd.is_parked(true)
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.fd)
            }
        }
    };
}
pub(crate) use common_socket_methods;

/// Implements `Read` and `Write` for `$t` and `&$t` (a stream type with a
/// `fd: NetFd` field) with std's `$std` doing the system calls.
macro_rules! stream_io {
    ($t:ty, $std:ty) => {
        impl $t {
            fn read_buf(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.fd.stream_read::<$std>(buf)
            }
            fn read_vectored_buf(
                &self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.fd.stream_read_vectored::<$std>(bufs)
            }
            fn write_buf(&self, buf: &[u8]) -> std::io::Result<usize> {
                self.fd.stream_write::<$std>(buf)
            }
            fn write_vectored_buf(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.fd.stream_write_vectored::<$std>(bufs)
            }
        }
        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                <$t>::read_buf(self, buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                <$t>::read_vectored_buf(self, bufs)
            }
        }
        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                <$t>::read_buf(self, buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                <$t>::read_vectored_buf(self, bufs)
            }
        }
        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                <$t>::write_buf(self, buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                <$t>::write_vectored_buf(self, bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                <$t>::write_buf(self, buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                <$t>::write_vectored_buf(self, bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use stream_io;

/// Owned read and write halves of a stream type over an `Arc` of it.
macro_rules! owned_halves {
    ($t:ident, $rh:ident, $wh:ident) => {
        /// The read half of a stream split with `into_split`; usable from
        /// another goroutine than the write half.
        #[derive(Debug)]
        pub struct $rh(std::sync::Arc<$t>);

        /// The write half of a stream split with `into_split`. Dropping it
        /// shuts down the write direction (the peer reads end-of-stream),
        /// as tokio's owned write half does.
        #[derive(Debug)]
        pub struct $wh(std::sync::Arc<$t>);

        impl $rh {
            /// The whole stream (for addresses, options, deadlines).
            pub fn stream(&self) -> &$t {
                &self.0
            }
        }

        impl $wh {
            /// The whole stream (for addresses, options, deadlines).
            pub fn stream(&self) -> &$t {
                &self.0
            }
        }

        impl Drop for $wh {
            fn drop(&mut self) {
                let _ = self.0.shutdown(std::net::Shutdown::Write);
            }
        }

        impl std::io::Read for $rh {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0.read_buf(buf)
            }
        }

        impl std::io::Write for $wh {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.write_buf(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl $t {
            /// Splits the stream into halves that can move to different
            /// goroutines (one reading, one writing). `&stream` also
            /// implements `Read` and `Write`, for borrowed use.
            pub fn into_split(self) -> ($rh, $wh) {
                let a = std::sync::Arc::new(self);
                ($rh(a.clone()), $wh(a))
            }
        }
    };
}
pub(crate) use owned_halves;

/// A TCP socket server, listening for connections (`std::net::TcpListener`
/// whose `accept` parks the goroutine, not the thread).
pub struct TcpListener {
    fd: NetFd,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

common_socket_methods!(TcpListener);

impl TcpListener {
    /// Binds and listens with the system's maximum backlog (as Go does;
    /// std uses 128), on the first address of `addr` that works. A host
    /// name is resolved on the blocking pool ([`ToSocketAddrs`]).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let l = each_addr(addr, |a| net::TcpListener::bind(a))?;
        crate::fd::listen_max_backlog(std::os::fd::AsRawFd::as_raw_fd(&l))?;
        TcpListener::from_std(l)
    }

    /// Takes over a std listener (switching it to non-blocking mode).
    pub fn from_std(l: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            fd: NetFd::from_std(l)?,
        })
    }

    /// Accepts a connection, parking until one arrives. Errors such as
    /// `EMFILE` (out of descriptors) are returned, not retried: the caller
    /// decides how to back off (Go's http server sleeps and retries).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let l = self.fd.view::<net::TcpListener>();
        let (s, a) = self.fd.read_with(|| l.accept())?;
        Ok((TcpStream::from_std(s)?, a))
    }

    /// An iterator over accepted connections (never `None`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { l: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<net::TcpListener>().local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.view::<net::TcpListener>().set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.view::<net::TcpListener>().ttl()
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.view::<net::TcpListener>().take_error()
    }
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    l: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.l.accept().map(|(s, _)| s))
    }
}

/// A TCP connection (`std::net::TcpStream` whose reads and writes park the
/// goroutine, not the thread). `Read` and `Write` are implemented for
/// `TcpStream` and `&TcpStream`.
pub struct TcpStream {
    fd: NetFd,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

common_socket_methods!(TcpStream);
stream_io!(TcpStream, net::TcpStream);
owned_halves!(TcpStream, OwnedReadHalf, OwnedWriteHalf);

impl TcpStream {
    /// Connects to the first address of `addr` that accepts, parking while
    /// the handshake runs. A host name is resolved on the blocking pool,
    /// the goroutine parked meanwhile; addresses and IP literals resolve
    /// inline ([`ToSocketAddrs`]).
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_deadline(a, None))
    }

    /// Connects with a timeout: fails with `ErrorKind::TimedOut` if the
    /// handshake has not finished after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        TcpStream::connect_deadline(addr, Some(Instant::now() + timeout))
    }

    fn connect_deadline(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let fd = NetFd::new(socket(domain, libc::SOCK_STREAM)?);
        if deadline.is_some() {
            fd.set_deadline(false, true, deadline);
        }
        let (sa, len) = crate::addr::socket_addr_to_raw(addr);
        fd.connect_raw(&sa as *const _ as *const libc::sockaddr, len)?;
        if deadline.is_some() {
            fd.set_deadline(false, true, None);
        }
        Ok(TcpStream { fd })
    }

    /// Takes over a connected std stream (switching it to non-blocking).
    pub fn from_std(s: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            fd: NetFd::from_std(s)?,
        })
    }

    /// Receives data without removing it from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.fd.view::<net::TcpStream>();
        self.fd.read_with(|| s.peek(buf))
    }

    /// Shuts down the read, write or both halves (`shutdown(2)`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.view::<net::TcpStream>().shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<net::TcpStream>().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<net::TcpStream>().local_addr()
    }

    /// Sets `TCP_NODELAY`. Go sets it on every TCP connection; like std,
    /// gort-netpoll leaves the OS default (Nagle on) until you set it.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.fd.view::<net::TcpStream>().set_nodelay(nodelay)
    }

    /// Gets `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.fd.view::<net::TcpStream>().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.view::<net::TcpStream>().set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.view::<net::TcpStream>().ttl()
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.view::<net::TcpStream>().take_error()
    }
}
