//! The poller driver: one OS poller for the process (an epoll instance,
//! registered through the `polling` crate), plugged into gort-sched as a
//! blocking [`Source`]; the never-freed [`PollDesc`]s it reports readiness
//! into; and their deadline timers.
//!
//! A stale event (for a descriptor closed after epoll reported it) either
//! fails the generation check or, if the PollDesc was reused in between,
//! marks the new owner ready once: a spurious readiness, which costs one
//! system call returning `WouldBlock` and is never a lost one.

use crate::loom::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};
use crate::pd::{Dir, PollError, CLOSING, EXPIRED};
use gort_os::clock::nanotime;
use gort_sched::Source;
use gort_timer::RawTimer;
use polling::{Event, PollMode, Poller};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A descriptor's readiness state: a [`Dir`] per direction and their
/// deadline timers.
///
/// PollDescs are never freed (Go allocates them off-heap for the same
/// reason): the poller's events carry a PollDesc's address, and an event
/// can be in flight in another M while the descriptor closes. A released
/// PollDesc goes to a free list; its generation, also in the event key,
/// makes events for the previous owner no-ops.
pub(crate) struct PollDesc {
    pub(crate) rd: Dir,
    pub(crate) wd: Dir,
    /// Bumped at each release; the low 16 bits ride in the event key.
    /// Written by the owner at release, read by the poller's dispatch.
    generation: AtomicUsize,
    /// The deadline timers, created on first use and kept across reuse.
    /// The locks serialise deadline setters; timer callbacks never take
    /// them (they only set a flag), so the lock order lock → timer heap has
    /// no reverse.
    rtimer: Mutex<Option<RawTimer>>,
    wtimer: Mutex<Option<RawTimer>>,
}

const GEN_SHIFT: u32 = 48;
const GEN_MASK: usize = 0xffff;

impl PollDesc {
    fn key(&'static self) -> usize {
        let addr = self as *const PollDesc as usize;
        assert_eq!(
            addr >> GEN_SHIFT,
            0,
            "gort-netpoll: PollDesc address above 2^48"
        );
        addr | ((self.generation.load(Ordering::Relaxed) & GEN_MASK) << GEN_SHIFT)
    }

    /// Sets (or clears, `None`) the deadline of one direction, as an
    /// absolute nanotime; a deadline not in the future expires at once.
    pub(crate) fn set_deadline(&'static self, write: bool, when: Option<i64>) {
        let (dir, timer) = if write {
            (&self.wd, &self.wtimer)
        } else {
            (&self.rd, &self.rtimer)
        };
        let mut t = timer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = t.as_ref() {
            // Exact: the callback is neither running nor going to run.
            t.stop();
        }
        dir.clear_flag(EXPIRED);
        let Some(when) = when else { return };
        if when <= nanotime() {
            dir.set_flag(EXPIRED);
            return;
        }
        let t = t.get_or_insert_with(|| {
            let d: &'static Dir = dir;
            // SAFETY: the callback sets a flag on a never-freed Dir (a CAS
            // loop) and, if a waiter is parked, readies it: it returns at
            // once, never parks or panics, and touches no timer (nor these
            // timer locks). Running under the heap lock is what makes the
            // `stop` above exact.
            unsafe { RawTimer::new_unchecked(move || d.set_flag(EXPIRED)) }
        });
        t.reset_at(when, Duration::ZERO);
    }

    /// Go's pollUnblock: every current and future wait fails with
    /// [`PollError::Closing`].
    pub(crate) fn evict(&'static self) {
        self.rd.set_flag(CLOSING);
        self.wd.set_flag(CLOSING);
        for t in [&self.rtimer, &self.wtimer] {
            if let Some(t) = t.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                t.stop();
            }
        }
    }

    /// Waits for readiness in one direction, counting the waiter so the
    /// poller knows someone needs it.
    pub(crate) fn wait(&'static self, write: bool) -> Result<(), PollError> {
        let np = netpoll();
        // SeqCst pairs with the source's load: a poller that misses us was
        // polling already, and an idle M polls before it sleeps.
        np.waiters.fetch_add(1, Ordering::SeqCst);
        let r = if write {
            self.wd.wait()
        } else {
            self.rd.wait()
        };
        np.waiters.fetch_sub(1, Ordering::Relaxed);
        r
    }
}

/// Registers `fd` with the poller (edge-triggered, both directions) and
/// returns its PollDesc.
///
/// # Safety
/// `fd` must stay open until [`close`] is called with it.
pub(crate) unsafe fn open(fd: RawFd) -> std::io::Result<&'static PollDesc> {
    let np = netpoll();
    let pd = np.alloc();
    // Both directions, edge-triggered; with EPOLLRDHUP, which `polling`'s
    // interest does not include (the short-read hint needs to know of a
    // peer's shutdown: see `pd::UNUSUAL`).
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET)
            as u32,
        u64: pd.key() as u64,
    };
    // SAFETY: plain epoll_ctl(2) on our epoll instance; the caller keeps fd
    // open until `close` deletes it.
    let r = unsafe { libc::epoll_ctl(np.poller.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if r < 0 {
        np.free(pd);
        return Err(std::io::Error::last_os_error());
    }
    Ok(pd)
}

/// Unregisters `fd` (before the caller closes it) and releases its
/// PollDesc.
pub(crate) fn close(fd: std::os::fd::BorrowedFd<'_>, pd: &'static PollDesc) {
    let np = netpoll();
    let _ = np.poller.delete(fd);
    pd.evict();
    np.free(pd);
}

/// The process's poller and its scheduler source.
///
/// Registration goes through `polling` (its epoll instance, `add`/`delete`);
/// the wait is one `epoll_pwait2` (or `epoll_wait`) on that instance with
/// our own eventfd for netpollBreak. `Poller::wait` costs five system calls
/// per call (it re-arms a timerfd and its notifier around every
/// `epoll_wait`), and idle Ms poll often: measured on tcp_echo, that was
/// the difference between trailing Go and not. `polling`'s own timerfd and
/// notifier are never armed (we never call its `wait`/`notify`), so they
/// never show up in our events.
struct Netpoll {
    poller: Poller,
    /// netpollBreak: written by `wake`, drained by the poller.
    break_fd: OwnedFd,
    /// Events buffer of whoever holds `busy`.
    events: UnsafeCell<Vec<libc::epoll_event>>,
    /// Held by the M inside the wait (blocking or not); others skip polling
    /// meanwhile (the holder dispatches what arrives). Acquire on taking
    /// pairs with the Release on giving back (the events buffer).
    busy: AtomicBool,
    /// Set by `wake` (which then writes `break_fd` once), cleared after
    /// each blocking wait (Go's netpollWakeSig); also tells the blocked M
    /// not to spin out the rest of its timeout.
    woken: AtomicBool,
    /// Goroutines/threads waiting on some descriptor (Go's
    /// netpollWaiters): with none, polling is skipped.
    waiters: AtomicUsize,
    /// Released PollDescs.
    free: Mutex<Vec<&'static PollDesc>>,
    /// Whether the kernel has epoll_pwait2 (ns timeouts; Linux 5.11).
    pwait2: AtomicBool,
}

// SAFETY: `events` is only touched by the holder of `busy`.
unsafe impl Sync for Netpoll {}
// SAFETY: as above.
unsafe impl Send for Netpoll {}

/// Wake this long before a timer deadline and spin the rest (a timer
/// expiry arrives tens of microseconds late in VMs); as the scheduler's
/// timekeeper does.
const EARLY_NS: i64 = 25_000;
/// The event key of `break_fd` (PollDesc keys are addresses, never 1).
const BREAK_KEY: u64 = 1;
const EVENTS: usize = 128;

static NP: OnceLock<Netpoll> = OnceLock::new();

/// Goroutines and threads waiting on a descriptor now (Go's
/// `netpollWaiters`; gort's `/gort/netpoll/waiters:goroutines`). 0, without
/// creating the poller, if nothing has used the network.
pub fn netpoll_waiters() -> usize {
    NP.get().map_or(0, |np| np.waiters.load(Ordering::Relaxed))
}

fn netpoll() -> &'static Netpoll {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let np = NP.get_or_init(|| {
        let fail =
            |e: std::io::Error| -> ! { panic!("gort-netpoll: cannot create the poller: {e}") };
        let poller = Poller::new().unwrap_or_else(|e| fail(e));
        // SAFETY: plain eventfd(2).
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            fail(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let break_fd = unsafe { OwnedFd::from_raw_fd(efd) };
        // Level-triggered (as Go's): a non-blocking poll leaves a pending
        // break for the blocking wait it is meant for.
        // SAFETY: break_fd lives as long as the poller (both immortal).
        unsafe {
            poller
                .add_with_mode(efd, Event::readable(BREAK_KEY as usize), PollMode::Level)
                .unwrap_or_else(|e| fail(e));
        }
        Netpoll {
            poller,
            break_fd,
            events: UnsafeCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS]),
            busy: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            free: Mutex::new(Vec::new()),
            pwait2: AtomicBool::new(true),
        }
    });
    // SAFETY: NetpollSource polls epoll and readies waiters (poll never
    // blocks; block waits in epoll_pwait2 until the deadline or a wake, its
    // documented wait); it runs no user code and never registers again.
    REGISTERED.call_once(|| unsafe { gort_sched::register_source(Arc::new(NetpollSource)) });
    np
}

impl Netpoll {
    fn alloc(&self) -> &'static PollDesc {
        if let Some(pd) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return pd;
        }
        Box::leak(Box::new(PollDesc {
            rd: Dir::new(),
            wd: Dir::new(),
            generation: AtomicUsize::new(0),
            rtimer: Mutex::new(None),
            wtimer: Mutex::new(None),
        }))
    }

    fn free(&self, pd: &'static PollDesc) {
        pd.generation.fetch_add(1, Ordering::Relaxed);
        pd.rd.reset();
        pd.wd.reset();
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(pd);
    }

    /// One `epoll_pwait2`/`epoll_wait` into `ev`: `None` blocks until an
    /// event, else waits at most `timeout` ns. Returns the event count.
    fn epoll(&self, ev: &mut [libc::epoll_event], timeout: Option<i64>) -> usize {
        let epfd = self.poller.as_raw_fd();
        loop {
            let n = match timeout {
                Some(t) if t > 0 && self.pwait2.load(Ordering::Relaxed) => {
                    let ts = libc::timespec {
                        tv_sec: (t / 1_000_000_000) as libc::time_t,
                        tv_nsec: (t % 1_000_000_000) as libc::c_long,
                    };
                    // SAFETY: valid buffer of ev.len() events and timespec;
                    // no signal mask.
                    let r = unsafe {
                        libc::syscall(
                            libc::SYS_epoll_pwait2,
                            epfd,
                            ev.as_mut_ptr(),
                            ev.len() as libc::c_int,
                            &ts as *const libc::timespec,
                            std::ptr::null::<libc::sigset_t>(),
                            0usize,
                        )
                    };
                    if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
                    {
                        self.pwait2.store(false, Ordering::Relaxed);
                        continue;
                    }
                    r as libc::c_int
                }
                _ => {
                    let ms = match timeout {
                        None => -1,
                        // Round up: never wake before the deadline.
                        Some(t) => {
                            ((t.max(0) + 999_999) / 1_000_000).min(i32::MAX as i64) as libc::c_int
                        }
                    };
                    // SAFETY: valid buffer of ev.len() events.
                    unsafe { libc::epoll_wait(epfd, ev.as_mut_ptr(), ev.len() as libc::c_int, ms) }
                }
            };
            if n >= 0 {
                return n as usize;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return 0;
            }
        }
    }

    /// Waits for events (blocking: at most until `until`, nanotime) and
    /// readies their waiters. Skips if another M is inside the poller.
    fn poll(&self, until: Option<i64>, block: bool) {
        if self.busy.swap(true, Ordering::Acquire) {
            return;
        }
        let timeout = match (block, until) {
            (false, _) => Some(0),
            (true, None) => None,
            (true, Some(u)) => Some((u - nanotime() - EARLY_NS).max(0)),
        };
        // SAFETY: we hold `busy`.
        let got = unsafe {
            self.events.with_mut(|ev| {
                let n = self.epoll(ev, timeout);
                for e in &ev[..n] {
                    let (flags, key) = (e.events, e.u64);
                    if key == BREAK_KEY {
                        if !block {
                            continue; // not ours: the blocked M's break
                        }
                        let mut b = [0u8; 8];
                        // SAFETY: draining our eventfd into a local buffer.
                        let _ = libc::read(self.break_fd.as_raw_fd(), b.as_mut_ptr().cast(), 8);
                    } else {
                        dispatch(flags, key as usize);
                    }
                }
                n > 0
            })
        };
        if block {
            let woken = self.woken.swap(false, Ordering::AcqRel);
            if let (false, false, Some(u)) = (got, woken, until) {
                // Timed out early on purpose: spin to the deadline unless
                // someone needs this M (bounded: a wait that returned for
                // another reason long before the deadline does not spin).
                let now = nanotime();
                while now + 2 * EARLY_NS >= u
                    && nanotime() < u
                    && !self.woken.load(Ordering::Relaxed)
                {
                    std::hint::spin_loop();
                }
            }
        }
        self.busy.store(false, Ordering::Release);
    }
}

fn dispatch(flags: u32, key: usize) {
    let addr = key & ((1 << GEN_SHIFT) - 1);
    if addr == 0 {
        return;
    }
    // SAFETY: keys are addresses of leaked (never freed) PollDescs.
    let pd = unsafe { &*(addr as *const PollDesc) };
    if pd.generation.load(Ordering::Relaxed) & GEN_MASK != key >> GEN_SHIFT {
        return; // for a previous owner of this slot
    }
    let (err, hup) = (libc::EPOLLERR as u32, libc::EPOLLHUP as u32);
    // (Not a hang-up alone: a fresh socket reports one before it
    // connects, and a FIN or a reset comes with EPOLLRDHUP.)
    if flags & (libc::EPOLLPRI as u32 | libc::EPOLLRDHUP as u32 | err) != 0 {
        pd.rd.mark_unusual();
    }
    if flags & (libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32 | libc::EPOLLPRI as u32 | err | hup)
        != 0
    {
        pd.rd.ready();
    }
    if flags & (libc::EPOLLOUT as u32 | err | hup) != 0 {
        pd.wd.ready();
    }
}

/// The scheduler's view of the poller: idle Ms poll it without blocking
/// (when anyone waits on a descriptor), and one idle M at a time blocks in
/// it until the next timer deadline; readying a goroutine bound to that M
/// interrupts the wait (Go's netpollBreak).
struct NetpollSource;

impl Source for NetpollSource {
    fn poll(&self, _now: i64) -> Option<i64> {
        let np = netpoll();
        if np.waiters.load(Ordering::SeqCst) != 0 {
            np.poll(None, false);
        }
        None
    }

    fn blocks(&self) -> bool {
        true
    }

    fn block(&self, until: Option<i64>) {
        netpoll().poll(until, true);
    }

    /// A goroutine waits on a descriptor (an event may still ready it).
    fn pending(&self) -> bool {
        netpoll().waiters.load(Ordering::SeqCst) != 0
    }

    fn wake(&self) {
        let np = netpoll();
        // One write per blocking wait (Go's netpollWakeSig).
        if !np.woken.swap(true, Ordering::AcqRel) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: an 8-byte write to our eventfd; EAGAIN (counter full)
            // still leaves it readable, which is all we need.
            let _ = unsafe { libc::write(np.break_fd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }
}
