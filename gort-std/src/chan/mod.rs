//! Channels: Go's `chan T` (runtime/chan.go) as a cloneable
//! [`Sender`]/[`Receiver`] pair, and [`select!`](crate::select!)
//! (runtime/select.go).
//!
//! ## Design
//!
//! Go's `hchan`, kept whole: one short-hold lock per channel ([`RawLock`],
//! never held across a park) guarding a ring buffer of `cap` slots and two
//! FIFO queues of blocked operations ([`Sudog`]s). A sender that finds a
//! blocked receiver writes the value straight into the receiver's slot and
//! readies it (and symmetrically), so an unbuffered channel is a rendezvous
//! and a buffered one never makes a woken goroutine retry: every wake-up
//! carries the completed operation. A receiver that finds a full buffer with
//! a blocked sender takes the head and moves the sender's value to the tail,
//! keeping FIFO order.
//!
//! One departure from Go's `chansend`: a blocking sender that finds the
//! buffer full, with no sender queued, first spins (unlocked, up to 20 µs,
//! once per send) for a batch of room while `gort_sched::can_wait_spin`
//! allows, then parks as Go's does (`Chan::wait_for_room` says why).
//!
//! `select` locks all its channels in address order, polls the cases in a
//! random order, and otherwise queues one sudog per case and parks once.
//! The first waker to flip the select's `done` flag wins; the others skip
//! its sudogs; on wake-up the select removes its losing sudogs.
//!
//! Rejected: a lock-free ring plus waker lists (crossbeam's array channel):
//! fast for buffered traffic, but every blocking operation then needs a
//! retry loop and `select` a second registration protocol, and unbuffered
//! channels a separate implementation; the lock is held for a few dozen
//! instructions, and Go's measurements (and ours, see the README) show it
//! is not what limits throughput.
//!
//! ## Rust additions to Go's semantics
//!
//! * Dropping the last [`Sender`] closes the channel (if nobody did), so
//!   `for v in rx` ends; closing twice (explicitly) panics as in Go.
//! * When the last [`Receiver`] is dropped, nobody can ever receive:
//!   blocked and future sends fail with [`SendError`] (giving the value
//!   back) instead of blocking forever, and buffered values are dropped.
//!   A timer's channel (`Timer`, `Ticker`, `after`) owns its timer, and
//!   that drop also stops and frees the timer: Go 1.23 collects timers
//!   nobody references; Rust knows the moment.
//!
//! # Invariants
//! * Under the lock: `sendq` is non-empty only if the buffer is full (or
//!   `cap == 0`); `recvq` non-empty only if the buffer is empty.
//! * A closed channel has an empty `sendq` (close wakes every sender, and
//!   a send on a closed channel never queues); likewise once the receivers
//!   are gone.
//! * A queued sudog's owner is parked until the waker that dequeued it
//!   readies it; nothing touches the sudog after that ready.

mod select;
mod sudog;

pub use select::{RecvCase, Select, SendCase};

use crate::loom::{
    can_wait_spin, do_spin, nanotime, park, Arc, AtomicUsize, Ordering, UnsafeCell, WaitReason,
    Waiter,
};
use gort_os::lock::RawLock;
#[cfg(not(gort_loom))]
use gort_timer::RawTimer;
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr;
use sudog::{Sudog, WaitQ, CLOSED, DISCONNECTED, OK};

/// Creates a channel of capacity `cap` (Go's `make(chan T, cap)`); `0` is an
/// unbuffered channel, where every send waits for its receiver.
///
/// ```
/// let (tx, rx) = gort_std::chan::<u32>(1);
/// tx.send(7).unwrap();
/// assert_eq!(rx.recv(), Ok(7));
/// drop(tx); // the last sender closes the channel
/// assert!(rx.recv().is_err());
/// ```
pub fn chan<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let c = Arc::new(Chan::new(cap, false));
    (Sender { c: c.clone() }, Receiver { c })
}

/// A timer's channel (gort-std's `Timer`, `Ticker`, `after`): one buffered
/// slot, reported as `len() == 0` and `capacity() == 0` (Go 1.23's
/// synchronous timer channels), owning the timer `make` builds around its
/// only `Sender`. `make` must return the timer unarmed. The timer lives as
/// long as some `Receiver` does ([`Receiver::timer`]); the last one's drop
/// stops and frees it.
#[cfg(not(gort_loom))]
pub(crate) fn timer_chan<T>(make: impl FnOnce(Sender<T>) -> RawTimer) -> Receiver<T> {
    let c = Arc::new(Chan::new(1, true));
    let rx = Receiver { c: c.clone() };
    let raw = make(Sender { c });
    // SAFETY: nobody else can reach `timer` yet: `rx` is the only Receiver
    // and has not been handed out, and the only Sender, inside the unarmed
    // timer's callback, never touches it.
    unsafe { *rx.c.timer.get() = Some(raw) };
    rx
}

/// The sending side of a channel; clone it for more senders.
pub struct Sender<T> {
    c: Arc<Chan<T>>,
}

/// The receiving side of a channel; clone it for more receivers. Iterating
/// over it receives until the channel is closed and drained.
pub struct Receiver<T> {
    c: Arc<Chan<T>>,
}

/// A send failed because every [`Receiver`] was dropped; the value is
/// returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// A non-blocking send failed; the value is returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel has no room and no receiver is waiting.
    Full(T),
    /// Every [`Receiver`] was dropped.
    Disconnected(T),
}

/// The channel is closed and drained: no value will ever arrive.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RecvError;

/// A non-blocking receive failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// The channel is closed and drained.
    Closed,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}
impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a channel with no receivers")
    }
}
impl<T> std::error::Error for SendError<T> {}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }
}
impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}
impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a channel with no receivers"),
        }
    }
}
impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on a closed channel")
    }
}
impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Closed => f.write_str("receiving on a closed channel"),
        }
    }
}
impl std::error::Error for TryRecvError {}

/// The outcome of a send attempted under the channel lock.
pub(crate) enum Sent {
    /// Done (the value was moved out); ready this waiter after unlocking.
    Done(Option<Waiter>),
    /// The channel is closed (the value is untouched).
    Closed,
    /// No receivers remain (the value is untouched).
    Disconnected,
    /// Nobody to take it and no room (the value is untouched).
    WouldBlock,
}

/// The outcome of a receive attempted under the channel lock.
pub(crate) enum Recvd {
    /// A value was written to the slot; ready this waiter after unlocking.
    Done(Option<Waiter>),
    /// Closed and drained.
    Closed,
    /// Nothing to receive.
    WouldBlock,
}

/// Which queue a blocked operation waits in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Send,
    Recv,
}

/// Go's `hchan`.
pub(crate) struct Chan<T> {
    lock: RawLock,
    cap: usize,
    /// Mirror of `State::qcount` for `len()`: written under the lock,
    /// read without it (a snapshot, as Go's `len(ch)`).
    len: AtomicUsize,
    /// Live `Sender`s/`Receiver`s (the last one out closes/disconnects).
    senders: AtomicUsize,
    receivers: AtomicUsize,
    /// A timer's channel (Go's `c.timer != nil`): `len` and `capacity`
    /// report 0, as for Go 1.23's synchronous timer channels. Fixed.
    is_timer: bool,
    /// The timer that sends on this channel, owned by it (Go: the channel
    /// keeps its timer alive). Written once by [`timer_chan`] before the
    /// channel is shared; read (`&RawTimer`) by holders of a `Receiver`;
    /// taken by the drop of the last `Receiver` (no reader is left then:
    /// each one's accesses happen before its own drop's Release decrement,
    /// which that drop's AcqRel decrement acquires). Taking it breaks the
    /// cycle channel → timer → callback → `Sender` → channel, so a timer
    /// nobody can receive from is stopped and freed at once.
    #[cfg(not(gort_loom))]
    timer: std::cell::UnsafeCell<Option<RawTimer>>,
    /// Everything else; only touched under `lock`.
    st: UnsafeCell<State<T>>,
}

struct State<T> {
    buf: Box<[MaybeUninit<T>]>,
    /// Index of the next value to receive / next free slot.
    recvx: usize,
    sendx: usize,
    /// Values in `buf`.
    qcount: usize,
    closed: bool,
    /// Every receiver was dropped.
    no_receivers: bool,
    recvq: WaitQ,
    sendq: WaitQ,
}

// SAFETY: values of T move between threads through the channel (hence
// T: Send); all shared state is under `lock` or atomic, except `timer`,
// whose accesses the receiver count orders (see the field; `RawTimer` is
// Send and Sync).
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above; `&Chan` gives no access to a `&T`.
unsafe impl<T: Send> Sync for Chan<T> {}

impl<T> Chan<T> {
    fn new(cap: usize, is_timer: bool) -> Self {
        Chan {
            lock: RawLock::new(),
            cap,
            len: AtomicUsize::new(0),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            is_timer,
            #[cfg(not(gort_loom))]
            timer: std::cell::UnsafeCell::new(None),
            st: UnsafeCell::new(State {
                buf: (0..cap).map(|_| MaybeUninit::uninit()).collect(),
                recvx: 0,
                sendx: 0,
                qcount: 0,
                closed: false,
                no_receivers: false,
                recvq: WaitQ::new(),
                sendq: WaitQ::new(),
            }),
        }
    }

    /// Runs `f` on the state.
    ///
    /// # Safety
    /// The caller holds `self.lock`.
    #[inline(always)]
    unsafe fn locked<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        // SAFETY: the lock gives exclusive access.
        unsafe { self.st.with_mut(f) }
    }

    /// Go's `chansend` minus blocking: hand the value to a waiting
    /// receiver, else buffer it.
    ///
    /// # Safety
    /// The caller holds the lock; `val` points at a live `T` that this call
    /// moves out of exactly when it returns `Sent::Done`.
    #[inline]
    unsafe fn send_locked(&self, val: *mut T) -> Sent {
        // SAFETY: the caller holds the lock.
        unsafe {
            self.locked(|st| {
                if st.closed {
                    return Sent::Closed;
                }
                if st.no_receivers {
                    return Sent::Disconnected;
                }
                if let Some(sg) = st.recvq.dequeue() {
                    // A parked receiver: straight into its slot.
                    ptr::copy_nonoverlapping(val, (*sg).elem.cast::<T>(), 1);
                    (*sg).result = OK;
                    return Sent::Done((*sg).waiter.take());
                }
                if st.qcount < self.cap {
                    st.buf[st.sendx].write(ptr::read(val));
                    st.sendx = if st.sendx + 1 == self.cap {
                        0
                    } else {
                        st.sendx + 1
                    };
                    st.qcount += 1;
                    self.len.store(st.qcount, Ordering::Relaxed);
                    return Sent::Done(None);
                }
                Sent::WouldBlock
            })
        }
    }

    /// Go's `chanrecv` minus blocking.
    ///
    /// # Safety
    /// The caller holds the lock; `slot` is valid for a write of a `T`,
    /// done exactly when this returns `Recvd::Done`.
    #[inline]
    unsafe fn recv_locked(&self, slot: *mut T) -> Recvd {
        // SAFETY: the caller holds the lock.
        unsafe {
            self.locked(|st| {
                if let Some(sg) = st.sendq.dequeue() {
                    let from = (*sg).elem.cast::<T>();
                    if self.cap == 0 {
                        ptr::copy_nonoverlapping(from, slot, 1);
                    } else {
                        // Full buffer: take the head, the sender's value
                        // becomes the tail (the slot just freed).
                        let head = st.buf[st.recvx].as_mut_ptr();
                        ptr::copy_nonoverlapping(head, slot, 1);
                        ptr::copy_nonoverlapping(from, head, 1);
                        st.recvx = if st.recvx + 1 == self.cap {
                            0
                        } else {
                            st.recvx + 1
                        };
                        st.sendx = st.recvx;
                    }
                    (*sg).result = OK;
                    return Recvd::Done((*sg).waiter.take());
                }
                if st.qcount > 0 {
                    ptr::copy_nonoverlapping(st.buf[st.recvx].as_ptr(), slot, 1);
                    st.recvx = if st.recvx + 1 == self.cap {
                        0
                    } else {
                        st.recvx + 1
                    };
                    st.qcount -= 1;
                    self.len.store(st.qcount, Ordering::Relaxed);
                    return Recvd::Done(None);
                }
                if st.closed {
                    return Recvd::Closed;
                }
                Recvd::WouldBlock
            })
        }
    }

    /// Unlocks, then readies the waiter a completed operation handed us.
    #[inline]
    fn unlock_ready(&self, w: Option<Waiter>) {
        // SAFETY: every caller holds the lock.
        unsafe { self.lock.unlock() };
        if let Some(w) = w {
            w.ready();
        }
    }

    /// Queues a sudog for a blocking operation and parks until a waker
    /// completes it; returns the sudog's result. Entered with the lock held.
    #[cold]
    fn block(&self, dir: Dir, sg: *mut Sudog) -> u8 {
        // SAFETY: `sg` is ours until queued; the lock is held.
        unsafe {
            (*sg).waiter = Some(Waiter::current());
            self.enqueue(dir, sg);
        }
        let reason = match dir {
            Dir::Send => WaitReason::ChanSend,
            Dir::Recv => WaitReason::ChanReceive,
        };
        park(reason, || {
            // SAFETY: held since the caller took it.
            unsafe { self.lock.unlock() };
            true
        });
        // SAFETY: the waker set `result` before readying us, and no longer
        // touches the sudog.
        unsafe { (*sg).result }
    }

    fn send(&self, v: T, block: bool) -> Result<(), TrySendError<T>> {
        let mut v = ManuallyDrop::new(v);
        let mut spun = false;
        loop {
            self.lock.lock();
            // SAFETY: locked; `v` is live and forgotten if moved out.
            return match unsafe { self.send_locked(&mut *v) } {
                Sent::Done(w) => {
                    self.unlock_ready(w);
                    Ok(())
                }
                Sent::Closed => {
                    self.unlock_ready(None);
                    drop(ManuallyDrop::into_inner(v));
                    panic!("send on closed channel");
                }
                Sent::Disconnected => {
                    self.unlock_ready(None);
                    Err(TrySendError::Disconnected(ManuallyDrop::into_inner(v)))
                }
                Sent::WouldBlock if !block => {
                    self.unlock_ready(None);
                    Err(TrySendError::Full(ManuallyDrop::into_inner(v)))
                }
                Sent::WouldBlock if !spun && self.cap > 0 && self.wait_for_room() => {
                    spun = true;
                    continue;
                }
                Sent::WouldBlock => self.send_slow(ManuallyDrop::into_inner(v)),
            };
        }
    }

    /// A sender found the buffer full (called with the lock held). If no
    /// sender is queued and `can_wait_spin` says another P runs while the
    /// scheduler has nothing pressing for this M, unlock and wait
    /// (spinning) up to `ROOM_SPIN_NS` for `ROOM_BATCH` free slots (or half
    /// the buffer), and return true: the caller tries once more. Otherwise
    /// return false with the lock still held: the caller parks.
    ///
    /// Parking at once makes the receiver ready this sender for every slot
    /// it frees: the sender's M wakes, sends one value and parks again, each
    /// round a cross-core hand-off and a fight for the channel lock
    /// (select2: 131 -> 72 ns/msg at 2 Ps). With a sender queued the buffer
    /// stays full until that queue empties (each freed slot takes a queued
    /// value), so there is nothing to wait for. The spin stops as soon as
    /// something becomes runnable here or on the global queue, an M waits
    /// for a P, or a timer is due. (If another sender queues, or the channel
    /// closes, meanwhile, it runs its 20 µs out and then finds that.)
    /// Semantics are unchanged: a sender that has not queued yet is one
    /// that has not arrived yet.
    ///
    /// Out of line: block profiling unwinds through `send` at every park,
    /// and this code inlined there made each unwind 3.7x dearer.
    #[cold]
    #[inline(never)]
    fn wait_for_room(&self) -> bool {
        const ROOM_SPIN_NS: i64 = 20_000;
        const ROOM_BATCH: usize = 256;
        // SAFETY: the caller holds the lock.
        if !unsafe { self.locked(|st| st.sendq.is_empty()) } || !can_wait_spin(nanotime()) {
            return false;
        }
        self.unlock_ready(None);
        let enough = self.cap - ROOM_BATCH.min(self.cap / 2).max(1);
        let t0 = nanotime();
        loop {
            do_spin();
            if self.len.load(Ordering::Relaxed) <= enough {
                return true;
            }
            let now = nanotime();
            if now - t0 > ROOM_SPIN_NS || !can_wait_spin(now) {
                return true;
            }
        }
    }

    #[cold]
    fn send_slow(&self, v: T) -> Result<(), TrySendError<T>> {
        let sg = Sudog::acquire::<T>();
        // SAFETY: `elem` is a slot for a `T` in our sudog.
        unsafe { (*sg).elem.cast::<T>().write(v) };
        let result = self.block(Dir::Send, sg);
        // SAFETY: readied; the sudog is ours again. On OK the receiver took
        // the value; otherwise it is still in the slot.
        unsafe {
            let back = (result != OK).then(|| (*sg).elem.cast::<T>().read());
            Sudog::release(sg);
            match back {
                None => Ok(()),
                Some(v) if result == DISCONNECTED => Err(TrySendError::Disconnected(v)),
                Some(v) => {
                    debug_assert_eq!(result, CLOSED);
                    drop(v);
                    panic!("send on closed channel");
                }
            }
        }
    }

    fn recv(&self, block: bool) -> Result<T, TryRecvError> {
        let mut slot = MaybeUninit::<T>::uninit();
        self.lock.lock();
        // SAFETY: locked; `slot` is writable.
        match unsafe { self.recv_locked(slot.as_mut_ptr()) } {
            Recvd::Done(w) => {
                self.unlock_ready(w);
                // SAFETY: Done wrote the slot.
                Ok(unsafe { slot.assume_init() })
            }
            Recvd::Closed => {
                self.unlock_ready(None);
                Err(TryRecvError::Closed)
            }
            Recvd::WouldBlock if !block => {
                self.unlock_ready(None);
                Err(TryRecvError::Empty)
            }
            Recvd::WouldBlock => self.recv_slow(),
        }
    }

    #[cold]
    fn recv_slow(&self) -> Result<T, TryRecvError> {
        let sg = Sudog::acquire::<T>();
        let result = self.block(Dir::Recv, sg);
        // SAFETY: readied; on OK the sender wrote a `T` into the slot.
        unsafe {
            let v = (result == OK).then(|| (*sg).elem.cast::<T>().read());
            Sudog::release(sg);
            v.ok_or(TryRecvError::Closed)
        }
    }

    /// Go's `closechan`: wakes every blocked receiver (they report closed)
    /// and sender (they panic).
    fn close(&self, explicit: bool) {
        self.lock.lock();
        let mut chain = ptr::null_mut();
        // SAFETY: locked.
        let was_closed = unsafe {
            self.locked(|st| {
                let was = st.closed;
                if !was {
                    st.closed = true;
                    st.recvq.drain(CLOSED, &mut chain);
                    st.sendq.drain(CLOSED, &mut chain);
                }
                was
            })
        };
        self.unlock_ready(None);
        // SAFETY: drained above, under the lock.
        unsafe { WaitQ::ready_all(chain) };
        if was_closed && explicit {
            panic!("close of closed channel");
        }
    }

    /// The last receiver left: fail blocked senders, drop buffered values.
    fn disconnect_receivers(&self) {
        self.lock.lock();
        let mut chain = ptr::null_mut();
        // SAFETY: locked.
        let values: Vec<T> = unsafe {
            self.locked(|st| {
                st.no_receivers = true;
                st.sendq.drain(DISCONNECTED, &mut chain);
                let mut vs = Vec::with_capacity(st.qcount);
                while st.qcount > 0 {
                    vs.push(st.buf[st.recvx].assume_init_read());
                    st.recvx = if st.recvx + 1 == self.cap {
                        0
                    } else {
                        st.recvx + 1
                    };
                    st.qcount -= 1;
                }
                st.sendx = st.recvx;
                self.len.store(0, Ordering::Relaxed);
                vs
            })
        };
        self.unlock_ready(None);
        // SAFETY: drained above, under the lock.
        unsafe { WaitQ::ready_all(chain) };
        drop(values); // outside the lock: a Drop may use this channel
    }

    /// Blocked operations queued in direction `dir` (see
    /// `Sender::blocked_senders`).
    fn blocked(&self, dir: Dir) -> usize {
        self.lock.lock();
        // SAFETY: locked.
        let n = unsafe {
            self.locked(|st| match dir {
                Dir::Send => st.sendq.waiting(),
                Dir::Recv => st.recvq.waiting(),
            })
        };
        self.unlock_ready(None);
        n
    }

    fn is_closed(&self) -> bool {
        self.lock.lock();
        // SAFETY: locked.
        let c = unsafe { self.locked(|st| st.closed) };
        self.unlock_ready(None);
        c
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        let cap = self.cap;
        let st = self.st.get_mut();
        debug_assert!(st.recvq.is_empty() && st.sendq.is_empty());
        while st.qcount > 0 {
            // SAFETY: the `qcount` slots from `recvx` hold values.
            unsafe { st.buf[st.recvx].assume_init_drop() };
            st.recvx = if st.recvx + 1 == cap { 0 } else { st.recvx + 1 };
            st.qcount -= 1;
        }
    }
}

impl<T> Sender<T> {
    /// Sends `v`, blocking until a receiver takes it (unbuffered) or there
    /// is room in the buffer.
    ///
    /// # Errors
    /// [`SendError`] with the value if every [`Receiver`] is gone (also when
    /// that happens while this send is blocked).
    ///
    /// # Panics
    /// `send on closed channel` if the channel is closed, as in Go (also
    /// when it is closed while this send is blocked).
    #[inline]
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        crate::loom::preempt_point();
        self.c.send(v, true).map_err(|e| SendError(e.into_inner()))
    }

    /// Sends `v` only if that can be done without blocking (Go's `select`
    /// with a `default`).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if it would block, [`TrySendError::Disconnected`]
    /// if every receiver is gone.
    ///
    /// # Panics
    /// `send on closed channel` if the channel is closed.
    #[inline]
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.c.send(v, false)
    }

    /// Closes the channel (Go's `close(ch)`): receivers get the buffered
    /// values, then [`RecvError`]; blocked and later sends panic.
    ///
    /// # Panics
    /// `close of closed channel` if it was already closed.
    pub fn close(&self) {
        self.c.close(true)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, blocking until one is available.
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and drained.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        crate::loom::preempt_point();
        self.c.recv(true).map_err(|_| RecvError)
    }

    /// Receives a value only if one is available now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if it would block, [`TryRecvError::Closed`]
    /// once the channel is closed and drained.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.c.recv(false)
    }

    /// A blocking iterator: receives until the channel is closed and
    /// drained (Go's `for v := range ch`).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator over the values available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// The timer of a timer's channel ([`timer_chan`]); `None` for others.
    #[cfg(not(gort_loom))]
    pub(crate) fn timer(&self) -> Option<&RawTimer> {
        // SAFETY: while this Receiver lives, `timer` is only read (it is
        // taken by the last Receiver's drop; see the field).
        unsafe { (*self.c.timer.get()).as_ref() }
    }
}

/// The state queries both ends share.
macro_rules! channel_queries {
    ($ty:ident) => {
        impl<T> $ty<T> {
            /// Whether the channel is closed (values may still be buffered).
            pub fn is_closed(&self) -> bool {
                self.c.is_closed()
            }

            /// Values buffered now (a snapshot, as Go's `len(ch)`); always
            /// 0 for a timer's channel, as in Go 1.23.
            pub fn len(&self) -> usize {
                if self.c.is_timer {
                    return 0;
                }
                self.c.len.load(Ordering::Relaxed)
            }

            /// Whether nothing is buffered now (a snapshot).
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The buffer capacity (Go's `cap(ch)`); 0 for an unbuffered
            /// channel, and for a timer's channel (Go 1.23: synchronous).
            pub fn capacity(&self) -> usize {
                if self.c.is_timer {
                    return 0;
                }
                self.c.cap
            }

            /// How many goroutines or threads are blocked sending on this
            /// channel right now, `select!`s waiting to send on it
            /// included: a snapshot taken under the channel's lock, for
            /// tests and diagnostics (a test waits for it instead of
            /// sleeping and hoping the sender has blocked). An operation
            /// counts from the moment it is queued — the next receive will
            /// find it, even if it has not finished parking — until it is
            /// completed or its select is won by another case.
            pub fn blocked_senders(&self) -> usize {
                self.c.blocked(Dir::Send)
            }

            /// How many goroutines or threads are blocked receiving from
            /// this channel right now, `select!`s included; as
            #[doc = concat!("[`", stringify!($ty), "::blocked_senders`].")]
            pub fn blocked_receivers(&self) -> usize {
                self.c.blocked(Dir::Recv)
            }

            /// Whether `self` and `other` are ends of the same channel.
            pub fn same_channel(&self, other: &$ty<T>) -> bool {
                Arc::ptr_eq(&self.c, &other.c)
            }
        }
    };
}
channel_queries!(Sender);
channel_queries!(Receiver);

// A panic never leaves a channel inconsistent: no code panics while the
// lock is held, and misuse panics happen after it is released.
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        // Relaxed: we hold a sender, so the count cannot reach zero meanwhile.
        self.c.senders.fetch_add(1, Ordering::Relaxed);
        Sender { c: self.c.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        // Relaxed: as for Sender.
        self.c.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver { c: self.c.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // AcqRel: the last dropper sees every other sender's sends done.
        if self.c.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.c.close(false);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // AcqRel: as for Sender; and the last dropper's Acquire orders every
        // other receiver's reads of `timer` before the take below.
        if self.c.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.c.disconnect_receivers();
            // SAFETY: this was the last Receiver, so no reader of `timer` is
            // left (see the field), and Senders never touch it.
            #[cfg(not(gort_loom))]
            let timer = unsafe { (*self.c.timer.get()).take() };
            // Outside the channel lock (a timer's callback takes the heap
            // lock, then this channel's): stops it and frees it, and with it
            // its Sender.
            #[cfg(not(gort_loom))]
            drop(timer);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.len())
            .field("cap", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("cap", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator; see [`Receiver::iter`].
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

/// The type-erased view of a channel that `select` works through. All
/// methods require the channel's lock to be held.
pub(crate) trait ChanOps {
    /// `recv_locked` into an erased slot.
    ///
    /// # Safety
    /// Lock held; `slot` is valid for a write of the channel's `T`.
    unsafe fn select_recv(&self, slot: *mut u8) -> Recvd;

    /// `send_locked` from an erased value.
    ///
    /// # Safety
    /// Lock held; `val` holds a live `T`, moved out iff `Sent::Done`.
    unsafe fn select_send(&self, val: *mut u8) -> Sent;

    /// Queues a select case's sudog.
    ///
    /// # Safety
    /// Lock held; `sg` is valid and not queued.
    unsafe fn enqueue(&self, dir: Dir, sg: *mut Sudog);

    /// Removes a select case's sudog if still queued.
    ///
    /// # Safety
    /// Lock held; `sg` was queued in this channel's `dir` queue.
    unsafe fn remove(&self, dir: Dir, sg: *mut Sudog);
}

impl<T> ChanOps for Chan<T> {
    unsafe fn select_recv(&self, slot: *mut u8) -> Recvd {
        // SAFETY: forwarded contract.
        unsafe { self.recv_locked(slot.cast()) }
    }

    unsafe fn select_send(&self, val: *mut u8) -> Sent {
        // SAFETY: forwarded contract.
        unsafe { self.send_locked(val.cast()) }
    }

    unsafe fn enqueue(&self, dir: Dir, sg: *mut Sudog) {
        // SAFETY: forwarded contract.
        unsafe {
            self.locked(|st| match dir {
                Dir::Send => st.sendq.enqueue(sg),
                Dir::Recv => st.recvq.enqueue(sg),
            })
        }
    }

    unsafe fn remove(&self, dir: Dir, sg: *mut Sudog) {
        // SAFETY: forwarded contract.
        unsafe {
            self.locked(|st| match dir {
                Dir::Send => st.sendq.remove(sg),
                Dir::Recv => st.recvq.remove(sg),
            })
        }
    }
}
