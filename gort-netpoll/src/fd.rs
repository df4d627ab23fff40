//! `NetFd`: a non-blocking descriptor registered with the poller, with the
//! retry-on-EAGAIN loops every socket type shares (Go's internal/poll.FD).

use crate::loom::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use crate::pd::PollError;
use crate::poller::{self, Deadline, PollDesc};
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The error inside the [`io::Error`]s gort-netpoll returns for its own
/// conditions (downcast with [`io::Error::get_ref`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The descriptor was closed with `close()` (Go's `net.ErrClosed`,
    /// "use of closed network connection"); kind
    /// [`io::ErrorKind::NotConnected`].
    Closed,
    /// The read or write deadline passed (Go's
    /// `os.ErrDeadlineExceeded`, "i/o timeout"); kind
    /// [`io::ErrorKind::TimedOut`].
    Timeout,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetError::Closed => "use of closed network connection",
            NetError::Timeout => "i/o timeout",
        })
    }
}

impl std::error::Error for NetError {}

impl From<NetError> for io::Error {
    fn from(e: NetError) -> io::Error {
        let kind = match e {
            NetError::Closed => io::ErrorKind::NotConnected,
            NetError::Timeout => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, e)
    }
}

impl From<PollError> for io::Error {
    fn from(e: PollError) -> io::Error {
        match e {
            PollError::Closing => NetError::Closed.into(),
            PollError::Timeout => NetError::Timeout.into(),
        }
    }
}

/// Whether `e` is gort-netpoll's deadline error.
pub fn is_timeout(e: &io::Error) -> bool {
    e.get_ref().and_then(|e| e.downcast_ref::<NetError>()) == Some(&NetError::Timeout)
}

/// Whether `e` is gort-netpoll's "use of closed network connection".
pub fn is_closed(e: &io::Error) -> bool {
    e.get_ref().and_then(|e| e.downcast_ref::<NetError>()) == Some(&NetError::Closed)
}

/// A sleeping lock that lets one operation per direction use the
/// descriptor's wait slot at a time (the part of Go's fdMutex that
/// serialises readers and writers). Uncontended: one CAS each way.
struct IoLock {
    /// Bit 0: locked; the rest: waiters × 2. RMW only.
    state: AtomicU32,
    /// Semaphore the waiters sleep on (gort-sema, address-keyed).
    sema: AtomicU32,
}

const LOCKED: u32 = 1;
const WAITER: u32 = 2;

impl IoLock {
    const fn new() -> IoLock {
        IoLock {
            state: AtomicU32::new(0),
            sema: AtomicU32::new(0),
        }
    }

    #[inline]
    fn lock(&self) -> IoGuard<'_> {
        // Acquire pairs with the Release in unlock.
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        IoGuard(self)
    }

    #[cold]
    fn lock_slow(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    s,
                    s | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(a) => s = a,
                }
                continue;
            }
            match self.state.compare_exchange_weak(
                s,
                s + WAITER,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    gort_sema::semacquire(&self.sema);
                    s = self.state.load(Ordering::Relaxed);
                }
                Err(a) => s = a,
            }
        }
    }

    #[inline]
    fn unlock(&self) {
        // Release pairs with the Acquire of the next locker.
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // Waiters: hand one a wake-up (it competes for the lock again).
            self.state.fetch_sub(LOCKED + WAITER, Ordering::Release);
            gort_sema::semrelease(&self.sema, false);
        }
    }
}

struct IoGuard<'a>(&'a IoLock);

impl Drop for IoGuard<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// A non-blocking socket registered with the poller.
pub(crate) struct NetFd {
    fd: OwnedFd,
    pd: &'static PollDesc,
    rlock: IoLock,
    wlock: IoLock,
    /// The last stream read was short: it emptied the socket's receive
    /// queue (see [`NetFd::read_stream`]). Read and written under `rlock`.
    drained: AtomicBool,
    /// Whether the descriptor is a TCP socket: `UNKNOWN`, `YES` or `NO`
    /// (`is_tcp`). Under `rlock`.
    tcp: AtomicU8,
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// The most bytes one read(2) or readv(2) returns (Linux's `MAX_RW_COUNT`)
/// and the most buffers std's `read_vectored` passes (`UIO_MAXIOV`): a read
/// that stops at these is not short.
const MAX_RW: usize = 0x7fff_f000;
const MAX_IOV: usize = 1024;

impl NetFd {
    /// Takes a descriptor that is already in non-blocking mode (it is
    /// registered with a poller at its first wait, whose error that wait
    /// returns).
    pub(crate) fn new(fd: OwnedFd) -> NetFd {
        // SAFETY: `fd` is owned by the NetFd, whose Drop unregisters it
        // before the OwnedFd closes it.
        let pd = unsafe { poller::open(fd.as_raw_fd()) };
        NetFd {
            fd,
            pd,
            rlock: IoLock::new(),
            wlock: IoLock::new(),
            drained: AtomicBool::new(false),
            tcp: AtomicU8::new(UNKNOWN),
        }
    }

    /// Sets `std_sock` non-blocking and registers it.
    pub(crate) fn from_std(std_sock: impl Into<OwnedFd>) -> io::Result<NetFd> {
        let fd: OwnedFd = std_sock.into();
        set_nonblocking(fd.as_raw_fd())?;
        Ok(NetFd::new(fd))
    }

    /// A std socket type viewing this descriptor, for the system calls and
    /// options std already wraps. Never dropped (it does not own the fd).
    #[inline]
    pub(crate) fn view<T: FromRawFd>(&self) -> ManuallyDrop<T> {
        // SAFETY: the fd is open for as long as `self`; ManuallyDrop keeps
        // the view from closing it.
        ManuallyDrop::new(unsafe { T::from_raw_fd(self.fd.as_raw_fd()) })
    }

    /// Runs `f` (a non-blocking read-side system call) until it does not
    /// return `WouldBlock`, parking on read readiness in between.
    #[inline]
    pub(crate) fn read_with<R>(&self, f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        let _g = self.rlock.lock();
        self.read_locked(f)
    }

    /// [`NetFd::read_with`] under `rlock`. After a short stream read, waits
    /// for readiness first: that read emptied the receive queue, so a read
    /// now would only fail with `EAGAIN` unless bytes arrived since, and
    /// those raised readiness (tokio skips the same call). Any read-side
    /// operation clears the hint: one that consumed a readiness must not
    /// leave the next read waiting for another.
    fn read_locked<R>(&self, f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        if self.drained.load(Ordering::Relaxed) {
            self.drained.store(false, Ordering::Relaxed);
            self.pd.wait(false)?;
        }
        self.io_loop(false, f)
    }

    /// A stream read (`f` reads at most `want` bytes) that, on a TCP
    /// socket, records a short read for the next one. Readiness pending
    /// before each attempt is dropped (the attempt sees the socket as it
    /// is), so that after a short read it means bytes that arrived later.
    /// A non-blocking TCP read returns short once the receive queue is
    /// empty, or with packets in the socket's backlog, whose processing at
    /// the end of the call raises readiness anew, or at an urgent mark or
    /// before a FIN or a reset, which the poller reported (`EPOLLPRI`,
    /// `EPOLLRDHUP`, `EPOLLERR`) by the time the read could have seen them:
    /// after that, never a hint ([`UNUSUAL`](crate::pd::UNUSUAL)).
    ///
    /// Not for other stream sockets (a descriptor given to `from_std` is
    /// asked its protocol once): Unix streams' reads also stop between two
    /// writers' credentials and after passed descriptors, bytes still
    /// queued. Known gaps, all outside what gort's API does: an urgent
    /// mark the kernel never reports (a peer's urgent pointer into bytes
    /// that arrive out of order), the urgent byte taken through the raw
    /// descriptor before the poller saw it, and kernel TLS (reads stop at
    /// record boundaries) can leave bytes waiting for the next arrival; a
    /// `SO_RCVLOWAT` set through the raw descriptor holds back readiness
    /// below it, so the read after a short one waits for that much, as a
    /// first read would.
    fn read_stream(
        &self,
        want: usize,
        mut f: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let _g = self.rlock.lock();
        if want == 0 {
            // As Go's: no system call (TCP's would fail with EAGAIN on an
            // empty socket and wait), no wait; only a close fails it. The
            // hint stays for the next read.
            if self.is_closing() {
                return Err(PollError::Closing.into());
            }
            return Ok(0);
        }
        if !self.is_tcp() {
            return self.read_locked(f);
        }
        let (rd, mut unusual) = (&self.pd.rd, false);
        let n = self.read_locked(|| {
            unusual = rd.clear_ready();
            f()
        })?;
        if n > 0 && n < want && !unusual {
            self.drained.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Whether the descriptor is a TCP socket: asked once, under `rlock`.
    fn is_tcp(&self) -> bool {
        match self.tcp.load(Ordering::Relaxed) {
            YES => true,
            NO => false,
            _ => {
                let mut proto: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: getsockopt(2) into a c_int of the given size.
                let r = unsafe {
                    libc::getsockopt(
                        self.fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_PROTOCOL,
                        (&mut proto as *mut libc::c_int).cast(),
                        &mut len,
                    )
                };
                let tcp = r == 0 && proto == libc::IPPROTO_TCP;
                self.tcp
                    .store(if tcp { YES } else { NO }, Ordering::Relaxed);
                tcp
            }
        }
    }

    /// As [`NetFd::read_with`], for the write side.
    #[inline]
    pub(crate) fn write_with<R>(&self, f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        let _g = self.wlock.lock();
        self.io_loop(true, f)
    }

    #[inline]
    fn io_loop<R>(&self, write: bool, mut f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        let dir = if write { &self.pd.wd } else { &self.pd.rd };
        // Go's prepareRead/prepareWrite: a passed deadline or a close fails
        // at once, even with data available.
        dir.check()?;
        loop {
            match f() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pd.wait(write)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A close that raced the system call (its shutdown makes
                // accept fail with EINVAL, say) reports as the close.
                Err(e) => return Err(dir.check().err().map_or(e, io::Error::from)),
                r => return r,
            }
        }
    }

    /// Connects a fresh non-blocking socket: `connect(2)`, then wait for
    /// writability and read `SO_ERROR` (Go's netFD.connect).
    pub(crate) fn connect_raw(
        &self,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
    ) -> io::Result<()> {
        // SAFETY: addr/len describe a valid sockaddr (the caller built it).
        let r = unsafe { libc::connect(self.fd.as_raw_fd(), addr, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINPROGRESS) | Some(libc::EALREADY) | Some(libc::EINTR) => {}
            _ => return Err(e),
        }
        self.write_with(|| match take_error(self.fd.as_raw_fd())? {
            Some(e) => Err(e),
            None => {
                // Writable without an error means connected; still
                // connecting means EAGAIN-equivalent: wait again.
                let mut sa: libc::sockaddr_storage =
                    // SAFETY: all-zero is a valid sockaddr_storage.
                    unsafe { std::mem::zeroed() };
                let mut l = std::mem::size_of_val(&sa) as libc::socklen_t;
                // SAFETY: valid out-pointers of the right size.
                let r = unsafe {
                    libc::getpeername(
                        self.fd.as_raw_fd(),
                        &mut sa as *mut _ as *mut libc::sockaddr,
                        &mut l,
                    )
                };
                if r == 0 {
                    Ok(())
                } else {
                    match io::Error::last_os_error().raw_os_error() {
                        Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
                        _ => Err(io::Error::last_os_error()),
                    }
                }
            }
        })
    }

    /// Whether an operation is parked waiting for readiness in one
    /// direction (see [`Dir::is_parked`](crate::pd::Dir::is_parked)).
    pub(crate) fn is_parked(&self, write: bool) -> bool {
        if write {
            self.pd.wd.is_parked()
        } else {
            self.pd.rd.is_parked()
        }
    }

    /// Whether `close` was called.
    fn is_closing(&self) -> bool {
        self.pd.rd.check() == Err(PollError::Closing)
    }

    /// End-of-stream caused by our own `close` (its shutdown) reports as
    /// the close.
    fn eof_or_closed(&self, n: usize, want: usize) -> io::Result<usize> {
        if n == 0 && want > 0 && self.is_closing() {
            return Err(NetError::Closed.into());
        }
        Ok(n)
    }

    /// `read(2)` on a stream socket through std's `S` (TcpStream,
    /// UnixStream), parking on read readiness.
    pub(crate) fn stream_read<S: FromRawFd>(&self, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read,
    {
        let s = self.view::<S>();
        let want = buf.len();
        let n = self.read_stream(want.min(MAX_RW), || (&*s).read(buf))?;
        self.eof_or_closed(n, want)
    }

    /// `readv(2)`, as [`NetFd::stream_read`].
    pub(crate) fn stream_read_vectored<S: FromRawFd>(
        &self,
        bufs: &mut [IoSliceMut<'_>],
    ) -> io::Result<usize>
    where
        for<'a> &'a S: Read,
    {
        let s = self.view::<S>();
        let want = bufs.iter().map(|b| b.len()).sum();
        let most = bufs.iter().take(MAX_IOV).map(|b| b.len()).sum::<usize>();
        let n = self.read_stream(most.min(MAX_RW), || (&*s).read_vectored(bufs))?;
        self.eof_or_closed(n, want)
    }

    /// `write(2)` on a stream socket, parking on write readiness.
    pub(crate) fn stream_write<S: FromRawFd>(&self, buf: &[u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Write,
    {
        let s = self.view::<S>();
        self.write_with(|| (&*s).write(buf))
    }

    /// `writev(2)`, as [`NetFd::stream_write`].
    pub(crate) fn stream_write_vectored<S: FromRawFd>(
        &self,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize>
    where
        for<'a> &'a S: Write,
    {
        let s = self.view::<S>();
        self.write_with(|| (&*s).write_vectored(bufs))
    }

    pub(crate) fn set_deadline(&self, read: bool, write: bool, t: Option<Instant>) {
        // A deadline not in the future expires at once (Go: `time.Until(t)
        // <= 0`), decided here on `Instant`s (the conversion to the
        // runtime's clock may err late by up to a microsecond).
        let when = t.map(|t| {
            if t <= Instant::now() {
                Deadline::Passed
            } else {
                Deadline::At(gort_timer::deadline_at(t))
            }
        });
        if read {
            self.pd.set_deadline(false, when);
        }
        if write {
            self.pd.set_deadline(true, when);
        }
    }

    /// Go's Close as far as other handles can see it: every blocked and
    /// future operation fails with [`NetError::Closed`], and the connection
    /// is shut down so the peer sees it end. The descriptor number itself is
    /// released when the owner drops (no operation in flight on another
    /// goroutine can then hit a reused number).
    pub(crate) fn close(&self) {
        self.pd.evict();
        // SAFETY: plain shutdown(2) on our open fd; errors (e.g. ENOTCONN
        // on an unconnected UDP socket) do not matter here.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

impl Drop for NetFd {
    fn drop(&mut self) {
        poller::close(self.fd.as_fd(), self.pd);
    }
}

impl AsFd for NetFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for NetFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO takes a pointer to an int.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Re-listens with the system's maximum backlog (Go's
/// `maxListenerBacklog`: /proc/sys/net/core/somaxconn); std listens with
/// 128, and a burst of connects beyond it waits a full SYN retransmission
/// (1 s). Linux applies a new backlog to a listening socket.
pub(crate) fn listen_max_backlog(fd: RawFd) -> io::Result<()> {
    static BACKLOG: std::sync::OnceLock<libc::c_int> = std::sync::OnceLock::new();
    let b = *BACKLOG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&n: &libc::c_int| n > 0)
            .unwrap_or(4096)
    });
    // SAFETY: plain listen(2) on a socket we hold open.
    if unsafe { libc::listen(fd, b) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A fresh non-blocking, close-on-exec socket.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}
