//! Unix domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`],
//! mirroring `std::os::unix::net`.

use crate::fd::{socket, NetFd};
use crate::tcp::{common_socket_methods, owned_halves, stream_io};
use std::io;
use std::net::Shutdown;
use std::os::unix::net::{self as unet, SocketAddr};
use std::path::Path;

/// A Unix stream socket server (`accept` parks the goroutine).
pub struct UnixListener {
    fd: NetFd,
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener")
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

common_socket_methods!(UnixListener);

impl UnixListener {
    /// Binds to `path` and listens with the system's maximum backlog.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let l = unet::UnixListener::bind(path)?;
        crate::fd::listen_max_backlog(std::os::fd::AsRawFd::as_raw_fd(&l))?;
        UnixListener::from_std(l)
    }

    /// Takes over a std listener (switching it to non-blocking mode).
    pub fn from_std(l: unet::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            fd: NetFd::from_std(l)?,
        })
    }

    /// Accepts a connection, parking until one arrives; errors such as
    /// `EMFILE` are returned, not retried.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let l = self.fd.view::<unet::UnixListener>();
        let (s, a) = self.fd.read_with(|| l.accept())?;
        Ok((UnixStream::from_std(s)?, a))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<unet::UnixListener>().local_addr()
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.view::<unet::UnixListener>().take_error()
    }
}

/// A Unix stream connection; `Read`/`Write` for `UnixStream` and
/// `&UnixStream` park the goroutine, not the thread.
pub struct UnixStream {
    fd: NetFd,
}

impl std::fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

common_socket_methods!(UnixStream);
stream_io!(UnixStream, unet::UnixStream);
owned_halves!(UnixStream, UnixOwnedReadHalf, UnixOwnedWriteHalf);

impl UnixStream {
    /// Connects to the socket at `path`. A listener whose backlog is full
    /// fails with `WouldBlock` (as Go's Dial does with EAGAIN).
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let (sun, len) = crate::addr::unix_addr_to_raw(path.as_ref())?;
        let fd = NetFd::new(socket(libc::AF_UNIX, libc::SOCK_STREAM)?);
        fd.connect_raw(&sun as *const _ as *const libc::sockaddr, len)?;
        Ok(UnixStream { fd })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = unet::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Takes over a std stream (switching it to non-blocking mode).
    pub fn from_std(s: unet::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            fd: NetFd::from_std(s)?,
        })
    }

    /// Shuts down the read, write or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.view::<unet::UnixStream>().shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<unet::UnixStream>().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.view::<unet::UnixStream>().peer_addr()
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.view::<unet::UnixStream>().take_error()
    }
}

/// A Unix datagram socket; receives park the goroutine, not the thread.
pub struct UnixDatagram {
    fd: NetFd,
}

impl std::fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

common_socket_methods!(UnixDatagram);

impl UnixDatagram {
    fn std(&self) -> std::mem::ManuallyDrop<unet::UnixDatagram> {
        self.fd.view()
    }

    /// Binds to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(unet::UnixDatagram::bind(path)?)
    }

    /// An unbound socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(unet::UnixDatagram::unbound()?)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = unet::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Takes over a std socket (switching it to non-blocking mode).
    pub fn from_std(s: unet::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: NetFd::from_std(s)?,
        })
    }

    /// Sets the default peer.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.std().connect(path)
    }

    /// Receives one datagram, parking until one arrives.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let s = self.std();
        self.fd.read_with(|| s.recv_from(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.std();
        self.fd.read_with(|| s.recv(buf))
    }

    /// Sends one datagram to `path`.
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let s = self.std();
        let p = path.as_ref();
        self.fd.write_with(|| s.send_to(buf, p))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let s = self.std();
        self.fd.write_with(|| s.send(buf))
    }

    /// Shuts down the read, write or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.std().shutdown(how)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.std().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.std().peer_addr()
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.std().take_error()
    }
}
