//! UDP: [`UdpSocket`], mirroring `std::net::UdpSocket`.

use crate::fd::NetFd;
use crate::resolve::{each_addr, first_addr, ToSocketAddrs};
use crate::tcp::common_socket_methods;
use std::io;
use std::net::{self, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A UDP socket whose receives (and sends, when the buffer is full) park
/// the goroutine, not the thread. Share it between goroutines by reference
/// or `Arc`: every method takes `&self`.
pub struct UdpSocket {
    fd: NetFd,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

common_socket_methods!(UdpSocket);

impl UdpSocket {
    fn std(&self) -> std::mem::ManuallyDrop<net::UdpSocket> {
        self.fd.view()
    }

    /// Binds a socket to the first address of `addr` that works (a host
    /// name is resolved on the blocking pool: [`ToSocketAddrs`]).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        UdpSocket::from_std(each_addr(addr, |a| net::UdpSocket::bind(a))?)
    }

    /// Takes over a std socket (switching it to non-blocking mode).
    pub fn from_std(s: net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            fd: NetFd::from_std(s)?,
        })
    }

    /// Receives one datagram, parking until one arrives.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let s = self.std();
        self.fd.read_with(|| s.recv_from(buf))
    }

    /// Like `recv_from`, leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let s = self.std();
        self.fd.read_with(|| s.peek_from(buf))
    }

    /// Sends one datagram to the first address of `addr` (a host name is
    /// resolved on the blocking pool, once per call: resolve it once and
    /// pass the `SocketAddr` when sending many).
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = first_addr(addr)?;
        let s = self.std();
        self.fd.write_with(|| s.send_to(buf, addr))
    }

    /// Sets the default peer to the first address of `addr` that works
    /// (`connect(2)` on UDP does not block; a host name is resolved on the
    /// blocking pool).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let s = self.std();
        each_addr(addr, |a| s.connect(a))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.std();
        self.fd.read_with(|| s.recv(buf))
    }

    /// Like `recv`, leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.std();
        self.fd.read_with(|| s.peek(buf))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let s = self.std();
        self.fd.write_with(|| s.send(buf))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.std().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.std().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.std().set_broadcast(on)
    }

    /// Gets `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.std().broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.std().set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.std().ttl()
    }

    /// Joins an IPv4 multicast group.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, iface: &Ipv4Addr) -> io::Result<()> {
        self.std().join_multicast_v4(group, iface)
    }

    /// Joins an IPv6 multicast group.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, iface: u32) -> io::Result<()> {
        self.std().join_multicast_v6(group, iface)
    }

    /// Takes `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.std().take_error()
    }
}
