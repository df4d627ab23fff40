//! The poller driver: epoll instances (one per M that waits on a
//! descriptor, and a main one), plugged into gort-sched as a blocking
//! [`Source`]; the never-freed [`PollDesc`]s they report readiness into;
//! and their deadline timers.
//!
//! A started goroutine never leaves its M, so the descriptors it waits on
//! live in its M's own epoll instance: an idle M blocks there and the
//! kernel wakes exactly the M whose goroutine an event is for. (With one
//! instance for the process, the M blocked in it woke first and then
//! woke, with a futex, the M of each goroutine it readied: two wake-ups
//! in a row on the path of every request.) A descriptor moves to the
//! instance of the M that waits on it, at most [`MAX_MOVES`] times; one
//! waited on from plain threads, or from goroutines of several Ms by
//! turns, settles in the main instance, which is nested in every M's own
//! (so it holds no break eventfd: a break would wake them all) and in a
//! spare instance, which one idle M at a time may block in (gort-sched's
//! protocol for a blocking source).
//!
//! A stale event (for a descriptor closed after epoll reported it) either
//! fails the generation check or, if the PollDesc was reused in between,
//! marks the new owner ready once: a spurious readiness, which costs one
//! system call returning `WouldBlock` and is never a lost one. The same
//! holds for an event reported by the instance a descriptor just left.

use crate::loom::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};
use crate::pd::{Dir, CLOSING, EXPIRED};
use gort_os::clock::nanotime;
use gort_sched::Source;
use gort_timer::RawTimer;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicPtr};
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
    /// The descriptor, while open (for moving it between instances).
    fd: AtomicI32,
    /// The epoll instance the descriptor is registered in. Changed (and
    /// the descriptor moved) under `moves`, which counts the moves.
    home: AtomicPtr<Epoll>,
    moves: Mutex<u8>,
    /// Waits in progress (one per direction at most), counted when they
    /// begin, before `rehome` looks at `home` (SeqCst), and uncounted with
    /// Release when they end: a wait that reads 0 here sees the `home` of
    /// every move made before (`rehome`).
    waiting: AtomicUsize,
}

const GEN_SHIFT: u32 = 48;
const GEN_MASK: usize = 0xffff;

/// A direction's deadline as `NetFd::set_deadline` decided it.
#[derive(Clone, Copy)]
pub(crate) enum Deadline {
    /// Not in the future when set: operations fail at once (Go: a
    /// deadline `d <= 0` from now).
    Passed,
    /// Ahead, at this nanotime.
    At(i64),
}

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

    /// Sets (or clears, `None`) the deadline of one direction.
    pub(crate) fn set_deadline(&'static self, write: bool, when: Option<Deadline>) {
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
        let when = match when {
            None => return,
            Some(Deadline::Passed) => {
                dir.set_flag(EXPIRED);
                return;
            }
            // (One that passes before the timer is armed fires at the
            // timers' next check.)
            Some(Deadline::At(when)) => when,
        };
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
    /// [`PollError::Closing`](crate::pd::PollError::Closing).
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
    /// poller knows someone needs it. The descriptor is first registered
    /// with (or moved to) the instance this wait's events should reach
    /// ([`PollDesc::rehome`]); an error registering it is the wait's.
    pub(crate) fn wait(&'static self, write: bool) -> std::io::Result<()> {
        let np = netpoll();
        let home = match self.rehome(np) {
            Ok(home) => home,
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Release);
                return Err(e);
            }
        };
        // SeqCst pairs with the source's loads: a poller that misses us was
        // polling already, and an idle M polls before it sleeps.
        home.waiters.fetch_add(1, Ordering::SeqCst);
        let r = if write {
            self.wd.wait()
        } else {
            self.rd.wait()
        };
        home.waiters.fetch_sub(1, Ordering::Relaxed);
        self.waiting.fetch_sub(1, Ordering::Release);
        Ok(r?)
    }

    /// The instance the descriptor is registered in, if any yet.
    fn home(&self) -> Option<&'static Epoll> {
        let h = self.home.load(Ordering::Acquire);
        // SAFETY: homes are leaked (never freed) instances.
        (!h.is_null()).then(|| unsafe { &*h })
    }

    /// Counts a wait beginning, and returns the instance it should find
    /// the descriptor in: the calling M's own (a goroutine never changes
    /// M), or the main one on a plain thread. A descriptor is registered at
    /// its first wait (one that never waits costs no `epoll_ctl`, and an
    /// accepted connection goes straight to its handler's M), and moved
    /// when a wait comes from elsewhere. The main instance instead once it
    /// has made [`MAX_MOVES`] moves (goroutines of two Ms taking turns on it
    /// would move it at every wait), or while another wait is in progress
    /// (the other direction's: its M may stop polling its instance, a
    /// borrowed thread's M may even leave the runtime, but the main
    /// instance is nested in every M's own). Registering reports readiness
    /// already there, so adding to the new instance before deleting from
    /// the old loses nothing, and an event the old one still reports is a
    /// spurious one. If the add fails (out of memory, the user's epoll
    /// watch limit), it goes to the main instance; if that fails too, the
    /// wait fails with the error (the descriptor stays where it was).
    ///
    /// The usual wait, alone on a descriptor already in the instance it
    /// wants, takes no lock: a wait that moves the descriptor counts itself
    /// in `waiting` before it decides (under the lock), so one in progress
    /// makes `others` non-zero here; one that ended uncounted itself with
    /// Release after its move, which our read of 0 acquires (its `home` is
    /// what we load); and one that comes after sees us and may only settle
    /// it in the main instance, which ours nests.
    fn rehome(&'static self, np: &'static Netpoll) -> std::io::Result<&'static Epoll> {
        let mine = own_epoll(true).unwrap_or(&np.main);
        // SeqCst: both sides of the note above count before they look.
        let others = self.waiting.fetch_add(1, Ordering::SeqCst);
        if others == 0 {
            if let Some(cur) = self.home().filter(|&cur| ptr::eq(cur, mine)) {
                return Ok(cur);
            }
        }
        let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        // Counted above; whoever came meanwhile saw us.
        let others = self.waiting.load(Ordering::SeqCst) - 1;
        let cur = self.home();
        let settled = *moves >= MAX_MOVES || others > 0;
        let mut to = match cur {
            Some(cur) if ptr::eq(cur, mine) || ptr::eq(cur, &np.main) && settled => return Ok(cur),
            Some(_) if settled => &np.main,
            _ => mine,
        };
        let fd = self.fd.load(Ordering::Relaxed);
        if let Err(e) = to.add(fd, self.key()) {
            // Never left counted on an instance nobody may poll for us
            // (another M's, which may be busy or gone): the main one, or
            // the error.
            if ptr::eq(to, &np.main) || np.main.add(fd, self.key()).is_err() {
                return Err(e);
            }
            to = &np.main;
        }
        if let Some(cur) = cur {
            cur.delete(fd);
            *moves += 1;
        }
        self.home
            .store(ptr::from_ref(to).cast_mut(), Ordering::Release);
        Ok(to)
    }
}

/// Moves a descriptor may make between epoll instances before it settles
/// in the main one (see [`PollDesc::rehome`]).
const MAX_MOVES: u8 = 2;

/// Takes `fd` into the poller and returns its PollDesc. The descriptor is
/// registered (edge-triggered, both directions) at its first wait, in the
/// waiting M's own instance (see [`PollDesc::rehome`]).
///
/// # Safety
/// `fd` must stay open until [`close`] is called with it.
pub(crate) unsafe fn open(fd: RawFd) -> &'static PollDesc {
    let pd = netpoll().alloc();
    pd.fd.store(fd, Ordering::Relaxed);
    *pd.moves.lock().unwrap_or_else(|e| e.into_inner()) = 0;
    pd.home.store(ptr::null_mut(), Ordering::Release);
    pd
}

/// Unregisters `fd` (before the caller closes it) and releases its
/// PollDesc.
pub(crate) fn close(fd: std::os::fd::BorrowedFd<'_>, pd: &'static PollDesc) {
    let np = netpoll();
    {
        let _moving = pd.moves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(home) = pd.home() {
            home.delete(fd.as_raw_fd());
        }
        pd.home.store(ptr::null_mut(), Ordering::Release);
        pd.fd.store(-1, Ordering::Relaxed);
    }
    pd.evict();
    np.free(pd);
}

/// One epoll instance: the main one, the spare, or an M's own; with a
/// netpollBreak eventfd, registered in those an M blocks in (not the main
/// one).
///
/// Registration and the wait are plain `epoll_ctl`/`epoll_pwait2` (or
/// `epoll_wait`) calls. (The `polling` crate served for the single
/// instance; its `wait` costs five system calls per call, re-arming a
/// timerfd and its notifier around every `epoll_wait`, and idle Ms poll
/// often: measured on tcp_echo, that was the difference between trailing
/// Go and not. With an instance per M, nothing of it was left in use.)
struct Epoll {
    epfd: OwnedFd,
    /// netpollBreak: written by `wake`, drained by the blocking wait.
    break_fd: OwnedFd,
    /// Events buffer of whoever holds `busy`.
    events: UnsafeCell<Vec<libc::epoll_event>>,
    /// Held by the thread inside the wait (blocking or not); others skip
    /// polling meanwhile (the holder dispatches what arrives), leaving a
    /// note in `missed`. Acquire on taking pairs with the Release on giving
    /// back (the events buffer).
    busy: AtomicBool,
    /// A poll skipped for `busy`: the holder polls once more before it
    /// leaves (an event that arrived after its wait returned would else
    /// wait for the next poll).
    missed: AtomicBool,
    /// Set by `wake` (which then writes `break_fd` once), cleared after
    /// each blocking wait (Go's netpollWakeSig); also tells the blocked M
    /// not to spin out the rest of its timeout.
    woken: AtomicBool,
    /// Goroutines/threads waiting on a descriptor registered here (Go's
    /// netpollWaiters, per instance): with none, polling it is skipped.
    waiters: AtomicUsize,
    /// When an M's own instance was last polled, by its M (nanotime; 0 for
    /// the others): a look without blocking that soon after is skipped
    /// (`poll_own_if_waited`).
    polled_at: AtomicI64,
}

// SAFETY: `events` is only touched by the holder of `busy`.
unsafe impl Sync for Epoll {}
// SAFETY: as above.
unsafe impl Send for Epoll {}

/// The process's poller state: the main instance, the one its blocker
/// waits in, and the PollDesc free list.
struct Netpoll {
    /// Descriptors waited on from plain threads or from several Ms. No
    /// break eventfd in it: it is nested in every M's own instance, and a
    /// break meant for its blocker would wake them all.
    main: Epoll,
    /// What an M without waits of its own blocks in for the main instance
    /// (gort-sched's one-blocker protocol: `Source::block`/`wake`): the
    /// main instance nested, and a break eventfd.
    spare: Epoll,
    /// Released PollDescs.
    free: Mutex<Vec<&'static PollDesc>>,
}

/// Wake this long before a timer deadline and spin the rest (a timer
/// expiry arrives tens of microseconds late in VMs); as the scheduler's
/// timekeeper does.
const EARLY_NS: i64 = 25_000;
/// The event key of an instance's `break_fd` (PollDesc keys are
/// addresses, never 1 or 2).
const BREAK_KEY: u64 = 1;
/// The event key of the main instance nested in an M's own.
const MAIN_KEY: u64 = 2;
const EVENTS: usize = 128;
/// An M looks at its own instance without blocking at most this often
/// (`poll_own_if_waited`): a little less than the 2 µs between the looks
/// of a watching idle M (gort-sched's `WATCH_POLL_NS`, timed by its own
/// clock reads), so that none of those is skipped.
const REPOLL_NS: i64 = 1_500;
/// Ms numbered below this get an instance of their own (more Ms exist only
/// while many goroutines sit in blocking calls; theirs use the main one).
const MAX_OWN: usize = 256;

static NP: OnceLock<Netpoll> = OnceLock::new();
/// Each M's own instance, by M number; set once, by the M itself.
static OWN: [AtomicPtr<Epoll>; MAX_OWN] = [const { AtomicPtr::new(ptr::null_mut()) }; MAX_OWN];
/// Whether the kernel has epoll_pwait2 (ns timeouts; Linux 5.11).
static PWAIT2: AtomicBool = AtomicBool::new(true);

/// Goroutines and threads waiting on a descriptor now (Go's
/// `netpollWaiters`; gort's `/gort/netpoll/waiters:goroutines`). 0, without
/// creating the poller, if nothing has used the network.
pub fn netpoll_waiters() -> usize {
    NP.get().map_or(0, Netpoll::waiters)
}

fn netpoll() -> &'static Netpoll {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let np = NP.get_or_init(|| {
        let fail =
            |e: std::io::Error| -> ! { panic!("gort-netpoll: cannot create the poller: {e}") };
        let main = Epoll::new(false).unwrap_or_else(|e| fail(e));
        let spare = Epoll::nesting(&main).unwrap_or_else(|e| fail(e));
        Netpoll {
            main,
            spare,
            free: Mutex::new(Vec::new()),
        }
    });
    // SAFETY: NetpollSource polls epoll and readies waiters (poll never
    // blocks; block and block_own wait in epoll_pwait2 until the deadline
    // or a wake, their documented wait); it runs no user code and never
    // registers again.
    REGISTERED.call_once(|| unsafe { gort_sched::register_source(Arc::new(NetpollSource)) });
    np
}

/// The calling M's own instance (made on first use if `create`); `None` on
/// a plain thread, or an M numbered `MAX_OWN` or above, or if the kernel
/// refuses a new instance (then the main one serves).
fn own_epoll(create: bool) -> Option<&'static Epoll> {
    let slot = OWN.get(usize::try_from(gort_sched::m_id()?).ok()?)?;
    let e = slot.load(Ordering::Acquire);
    if !e.is_null() {
        // SAFETY: set below from a leaked instance, never freed.
        return Some(unsafe { &*e });
    }
    if !create {
        return None;
    }
    let own: &'static Epoll = Box::leak(Box::new(Epoll::nesting(&netpoll().main).ok()?));
    // Only this M writes its slot.
    slot.store(ptr::from_ref(own).cast_mut(), Ordering::Release);
    Some(own)
}

fn fail_fd(r: libc::c_int) -> std::io::Result<OwnedFd> {
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

impl Epoll {
    /// An instance with a break eventfd and the main instance nested in it
    /// (edge-triggered: an M blocked here wakes once per new event there).
    fn nesting(main: &Epoll) -> std::io::Result<Epoll> {
        let e = Epoll::new(true)?;
        e.ctl(
            libc::EPOLL_CTL_ADD,
            main.epfd.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            MAIN_KEY,
        )?;
        Ok(e)
    }

    /// An instance; with its break eventfd registered if `with_break`.
    fn new(with_break: bool) -> std::io::Result<Epoll> {
        // SAFETY: plain epoll_create1(2) and eventfd(2).
        let epfd = fail_fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let break_fd =
            fail_fd(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        let e = Epoll {
            epfd,
            break_fd,
            events: UnsafeCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS]),
            busy: AtomicBool::new(false),
            missed: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            polled_at: AtomicI64::new(0),
        };
        // Level-triggered (as Go's): a non-blocking poll leaves a pending
        // break for the blocking wait it is meant for.
        if with_break {
            e.ctl(
                libc::EPOLL_CTL_ADD,
                e.break_fd.as_raw_fd(),
                libc::EPOLLIN as u32,
                BREAK_KEY,
            )?;
        }
        Ok(e)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: plain epoll_ctl(2) on our instance with a valid event.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Registers a descriptor: both directions, edge-triggered, with
    /// EPOLLRDHUP (the short-read hint needs to know of a peer's shutdown:
    /// see `pd::UNUSUAL`).
    fn add(&self, fd: RawFd, key: usize) -> std::io::Result<()> {
        let events =
            libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET;
        self.ctl(libc::EPOLL_CTL_ADD, fd, events as u32, key as u64)
    }

    fn delete(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// One `epoll_pwait2`/`epoll_wait` into `ev`: `None` blocks until an
    /// event, else waits at most `timeout` ns. Returns the event count.
    fn epoll(&self, ev: &mut [libc::epoll_event], timeout: Option<i64>) -> usize {
        let epfd = self.epfd.as_raw_fd();
        loop {
            let n = match timeout {
                Some(t) if t > 0 && PWAIT2.load(Ordering::Relaxed) => {
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
                        PWAIT2.store(false, Ordering::Relaxed);
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

    /// Takes `busy`, or leaves a note in `missed` for its holder (then
    /// takes it after all if the holder let go meanwhile: either the holder
    /// sees the note, or we see `busy` free).
    fn take_busy(&self) -> bool {
        loop {
            if !self.busy.swap(true, Ordering::SeqCst) {
                return true;
            }
            self.missed.store(true, Ordering::SeqCst);
            if self.busy.load(Ordering::SeqCst) {
                return false;
            }
        }
    }

    /// Waits for events (blocking: at most until `until`, nanotime) and
    /// readies their waiters. Skips if another thread is inside.
    fn poll(&self, until: Option<i64>, mut block: bool) {
        if !self.take_busy() {
            return;
        }
        loop {
            self.poll_held(until, block);
            self.busy.store(false, Ordering::SeqCst);
            if !self.missed.swap(false, Ordering::SeqCst) || !self.take_busy() {
                return;
            }
            block = false;
        }
    }

    fn poll_held(&self, until: Option<i64>, block: bool) {
        let mut timeout = match (block, until) {
            (false, _) => Some(0),
            (true, None) => None,
            (true, Some(u)) => Some((u - nanotime() - EARLY_NS).max(0)),
        };
        // SAFETY: we hold `busy`.
        let got = unsafe {
            self.events.with_mut(|ev| {
                let mut got = false;
                // A full buffer may have left events behind: take them
                // too (a nested instance's edge will not come again).
                loop {
                    let n = self.epoll(ev, timeout);
                    got |= n > 0;
                    for e in &ev[..n] {
                        let (flags, key) = (e.events, e.u64);
                        match key {
                            BREAK_KEY => {
                                if !block {
                                    continue; // not ours: the blocked M's break
                                }
                                let mut b = [0u8; 8];
                                // SAFETY: draining our eventfd into a local buffer.
                                let _ =
                                    libc::read(self.break_fd.as_raw_fd(), b.as_mut_ptr().cast(), 8);
                            }
                            // Nested here (an M's own instance, or the
                            // spare): the main one has events.
                            MAIN_KEY => registered().main.poll(None, false),
                            _ => dispatch(flags, key as usize),
                        }
                    }
                    if n < ev.len() {
                        return got;
                    }
                    timeout = Some(0);
                }
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
    }

    /// Interrupts a blocking wait (Go's netpollBreak): one write per
    /// blocking wait (Go's netpollWakeSig).
    fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: an 8-byte write to our eventfd; EAGAIN (counter full)
            // still leaves it readable, which is all we need.
            let _ = unsafe { libc::write(self.break_fd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }

    /// A non-blocking poll, if anyone waits on a descriptor here.
    fn poll_if_waited(&self) {
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.poll(None, false);
        }
    }

    /// `poll_if_waited` for an M's own instance, by its M: skipped when
    /// the M polled it less than `REPOLL_NS` ago. An M running dry looks
    /// three or four times in a row before it sleeps (on running dry, at
    /// the end of its watch, before and after letting go of its P): 1.3
    /// `epoll_wait`s per request of the HTTP example, against hyper's 0.2.
    /// A skipped look loses nothing: the M looks again, or blocks in this
    /// instance, which returns at once with what arrived meanwhile.
    fn poll_own_if_waited(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let now = nanotime();
        if cfg!(not(gort_loom)) && now - self.polled_at.load(Ordering::Relaxed) < REPOLL_NS {
            return;
        }
        self.poll(None, false);
        self.polled_at.store(now, Ordering::Relaxed);
    }
}

impl Netpoll {
    /// Waiters on every instance, summed (a racy snapshot, for the rare
    /// looks of `pending` and `netpoll_waiters`): each wait counts itself
    /// on the instance it waits in only, as a global count would be one
    /// more locked instruction per wait on a line every M writes (42% of
    /// `PollDesc::wait`'s samples in tcp_echo).
    fn waiters(&self) -> usize {
        let own = OWN.iter().map(|slot| {
            let e = slot.load(Ordering::Acquire);
            // SAFETY: a leaked instance, never freed.
            (!e.is_null()).then(|| unsafe { &*e })
        });
        [Some(&self.main), Some(&self.spare)]
            .into_iter()
            .chain(own)
            .flatten()
            .map(|e| e.waiters.load(Ordering::SeqCst))
            .sum()
    }

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
            fd: AtomicI32::new(-1),
            home: AtomicPtr::new(ptr::null_mut()),
            moves: Mutex::new(0),
            waiting: AtomicUsize::new(0),
        }))
    }

    fn free(&self, pd: &'static PollDesc) {
        pd.generation.fetch_add(1, Ordering::Relaxed);
        pd.rd.reset();
        pd.wd.reset();
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(pd);
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

/// The scheduler's view of the poller. An M that ran dry polls its own
/// instance and the main one without blocking, when anyone waits on a
/// descriptor there (a busy M, every so often, and a watching idle M poll
/// their own only); an idle M whose goroutines wait on descriptors blocks
/// in its own instance, which readying one of its goroutines interrupts;
/// otherwise one idle M at a time may block in the spare instance (the
/// main one nested) until the next timer deadline (Go's netpoll and
/// netpollBreak).
struct NetpollSource;

/// The poller, for the source's methods: it exists before the source is
/// registered, and `netpoll()` must not be re-entered from the
/// registration itself (which may wake sources: its `Once` would wait for
/// itself).
fn registered() -> &'static Netpoll {
    NP.get()
        .expect("gort-netpoll: source registered before the poller")
}

impl Source for NetpollSource {
    fn poll(&self, _now: i64) -> Option<i64> {
        self.poll_own();
        registered().main.poll_if_waited();
        None
    }

    fn blocks(&self) -> bool {
        true
    }

    fn block(&self, until: Option<i64>) {
        registered().spare.poll(until, true);
    }

    fn wake(&self) {
        registered().spare.wake();
    }

    /// A goroutine waits on a descriptor (an event may still ready it).
    fn pending(&self) -> bool {
        registered().waiters() != 0
    }

    fn poll_own(&self) {
        if let Some(own) = own_epoll(false) {
            own.poll_own_if_waited();
        }
    }

    fn has_own(&self) -> bool {
        own_epoll(false).is_some_and(|e| e.waiters.load(Ordering::SeqCst) != 0)
    }

    fn block_own(&self, until: Option<i64>) {
        if let Some(own) = own_epoll(false) {
            own.poll(until, true);
        }
    }

    fn wake_own(&self, m: u64) {
        let e = usize::try_from(m)
            .ok()
            .and_then(|m| OWN.get(m))
            .map_or(ptr::null_mut(), |slot| slot.load(Ordering::Acquire));
        if !e.is_null() {
            // SAFETY: a leaked instance, never freed.
            unsafe { &*e }.wake();
        }
    }
}
