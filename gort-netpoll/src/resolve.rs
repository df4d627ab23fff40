//! Address resolution that parks instead of blocking: [`ToSocketAddrs`]
//! (its docs say why gort-netpoll has its own trait).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses: what
/// [`TcpStream::connect`](crate::TcpStream::connect), the `bind`s,
/// [`UdpSocket::connect`](crate::UdpSocket::connect) and
/// [`UdpSocket::send_to`](crate::UdpSocket::send_to) take, in place of
/// `std::net::ToSocketAddrs` (as tokio's `net::ToSocketAddrs`).
///
/// Implemented for the same types as std's trait, so the same arguments
/// work:
///
/// * socket addresses and IP literals — `SocketAddr`, `SocketAddrV4`,
///   `SocketAddrV6`, `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`,
///   `&[SocketAddr]`, and strings that parse as one (`"127.0.0.1:80"`,
///   `("::1", 80)`) — resolve inline, without allocating for one address;
/// * host names (`"localhost:80"`, `("example.com", 443)`, as `&str` or
///   `String`) go to std's resolver (`getaddrinfo`) on gort-sched's
///   blocking pool ([`gort_sched::blocking`]): the goroutine parks and its
///   M runs the others meanwhile. From a plain thread the lookup runs
///   inline, as with std.
///
/// Why not std's trait: without specialization a function taking
/// `impl std::net::ToSocketAddrs` cannot tell a `SocketAddr` from a host
/// name before calling the (blocking) resolver, so it would pay a pool
/// round trip for every address or block on every host name.
///
/// The trait is sealed. A value that implements only std's trait can be
/// resolved by the caller — `gort::blocking(|| addr.to_socket_addrs())`
/// from a goroutine — and the addresses passed as a slice.
pub trait ToSocketAddrs: sealed::Resolve {}

pub(crate) mod sealed {
    use super::*;

    /// The resolution itself, private to this crate.
    pub trait Resolve {
        /// The addresses, looked up on the blocking pool if needed.
        fn resolve(&self) -> io::Result<Addrs>;
    }

    /// Resolved addresses: one inline, or several from a lookup.
    #[derive(Debug)]
    pub enum Addrs {
        /// A single address (no allocation).
        One(Option<SocketAddr>),
        /// Several, or the result of a lookup.
        Many(std::vec::IntoIter<SocketAddr>),
    }

    impl Iterator for Addrs {
        type Item = SocketAddr;

        fn next(&mut self) -> Option<SocketAddr> {
            match self {
                Addrs::One(a) => a.take(),
                Addrs::Many(it) => it.next(),
            }
        }
    }
}

use sealed::{Addrs, Resolve};

/// Resolves `addr` with std's resolver on the blocking pool.
#[cold]
fn lookup<A>(addr: A) -> io::Result<Addrs>
where
    A: std::net::ToSocketAddrs + Send,
{
    gort_sched::blocking(move || {
        addr.to_socket_addrs()
            .map(|it| Addrs::Many(it.collect::<Vec<_>>().into_iter()))
    })
}

macro_rules! inline_addr {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {}
        impl Resolve for $t {
            fn resolve(&self) -> io::Result<Addrs> {
                Ok(Addrs::One(Some(SocketAddr::from(*self))))
            }
        }
    )*};
}

inline_addr!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for [SocketAddr] {}
impl Resolve for [SocketAddr] {
    fn resolve(&self) -> io::Result<Addrs> {
        Ok(match self {
            [a] => Addrs::One(Some(*a)),
            _ => Addrs::Many(Vec::from(self).into_iter()),
        })
    }
}

impl ToSocketAddrs for str {}
impl Resolve for str {
    fn resolve(&self) -> io::Result<Addrs> {
        // std tries the same parse first; only a host name reaches the
        // resolver (or fails in it with std's own error).
        match self.parse::<SocketAddr>() {
            Ok(a) => Ok(Addrs::One(Some(a))),
            Err(_) => lookup(self),
        }
    }
}

impl ToSocketAddrs for String {}
impl Resolve for String {
    fn resolve(&self) -> io::Result<Addrs> {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Resolve for (&str, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(Addrs::One(Some((ip, port).into())));
        }
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            return Ok(Addrs::One(Some((ip, port).into())));
        }
        lookup((host, port))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Resolve for (String, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).resolve()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: Resolve + ?Sized> Resolve for &T {
    fn resolve(&self) -> io::Result<Addrs> {
        (**self).resolve()
    }
}

/// Tries `f` on each address of `addr`; returns the first success or the
/// last error (std's `each_addr`).
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.resolve()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// The first address of `addr` (std's `UdpSocket::send_to`).
pub(crate) fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.resolve()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(a: impl ToSocketAddrs) -> bool {
        matches!(a.resolve().unwrap(), Addrs::One(Some(_)))
    }

    #[test]
    fn addresses_and_ip_literals_resolve_inline() {
        let sa: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(inline(sa));
        let by_ref: &SocketAddr = &sa;
        assert!(inline(by_ref));
        assert!(inline("127.0.0.1:80"));
        assert!(inline("[::1]:80"));
        assert!(inline(String::from("10.0.0.1:1")));
        assert!(inline(("127.0.0.1", 80)));
        assert!(inline(("::1", 80)));
        assert!(inline((String::from("::1"), 80)));
        assert!(inline((IpAddr::from([127, 0, 0, 1]), 80)));
        assert!(inline(&[sa][..]));
    }

    #[test]
    fn host_names_resolve_like_std() {
        let ours: Vec<_> = "localhost:80".resolve().unwrap().collect();
        let std: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
            .unwrap()
            .collect();
        assert_eq!(ours, std);
        assert!(!ours.is_empty());
        // No port: std's error, from the resolver.
        let e = "localhost".resolve().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
