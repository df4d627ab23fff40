//! `select`: Go's selectgo (runtime/select.go) over type-erased cases, and
//! the [`select!`](crate::select!) macro that builds one.
//!
//! 1. Lock every case's channel, in address order (so two selects over the
//!    same channels cannot deadlock), each distinct channel once.
//! 2. Pass 1: poll the cases in a uniformly random order; the first that can
//!    complete does, and the select returns.
//! 3. With a `default`, give up. Otherwise pass 2: queue one sudog per case,
//!    all pointing at one `done` flag, and park once; the park's commit
//!    unlocks the channels.
//! 4. A waker dequeuing one of these sudogs must flip `done` 0 -> 1 first; a
//!    waker that fails drops the sudog from its queue and looks further.
//! 5. Pass 3, after the wake-up: lock everything again, find the case the
//!    waker completed (its `result` is set), remove the other sudogs from
//!    the queues they are still in.

use super::sudog::{Sudog, CLOSED, DISCONNECTED, OK, PENDING};
use super::{Chan, ChanOps, Dir, Receiver, RecvError, Recvd, SendError, Sender, Sent};
use crate::loom::{park, Ordering, WaitReason, Waiter};
use gort_os::lock::RawLock;
use std::cell::Cell;
use std::marker::PhantomData;

/// One operation of a [`Select`].
struct Case<'a> {
    chan: &'a dyn ChanOps,
    /// The channel's lock (cached: no virtual call per lock/unlock/sort).
    lock: &'a RawLock,
    dir: Dir,
    /// Holds the case's value (a send's, or a receive's result) and, in
    /// pass 2, its place in the channel's queue.
    sg: *mut Sudog,
}

impl Case<'_> {
    #[inline]
    fn addr(&self) -> usize {
        self.lock.order_key()
    }
}

/// A case that completed when polled.
enum Polled {
    /// Done; ready this peer (after unlocking).
    Done(Option<Waiter>),
    /// A send on a closed channel: the select panics (after unlocking).
    SendOnClosed,
}

/// Cases inline up to this many (no allocation for the common selects).
const INLINE_CASES: usize = 4;

/// A dynamic `select` over send and receive cases, for when the cases are
/// not known at compile time; [`select!`](crate::select!) is built on it.
///
/// Add cases with [`Select::recv`] and [`Select::send`], run it with
/// [`Select::select`] (blocks) or [`Select::try_select`] (Go's `default`),
/// then complete the chosen case with its token's `finish`. Values of send cases that were not chosen are dropped with
/// the `Select`.
///
/// ```
/// use gort_std::{chan, Select};
/// let (tx1, rx1) = chan::<u32>(1);
/// let (_tx2, rx2) = chan::<&str>(1);
/// tx1.send(1).unwrap();
/// let mut sel = Select::new();
/// let a = sel.recv(&rx1);
/// let b = sel.recv(&rx2);
/// let i = sel.select();
/// assert_eq!(i, a.index());
/// assert_ne!(i, b.index());
/// assert_eq!(a.finish(&mut sel), Ok(1));
/// ```
pub struct Select<'a> {
    inline: [Option<Case<'a>>; INLINE_CASES],
    spill: Vec<Case<'a>>,
    len: usize,
    /// Brands this select's case tokens (unique per thread; tokens are !Send).
    id: u64,
    selected: Option<usize>,
    /// Sudogs come from (and return to) this thread's cache.
    _not_send: PhantomData<*mut ()>,
}

/// The token of a receive case of a [`Select`].
#[derive(Debug)]
pub struct RecvCase<T> {
    index: usize,
    id: u64,
    _t: PhantomData<*const T>,
}

/// The token of a send case of a [`Select`].
#[derive(Debug)]
pub struct SendCase<T> {
    index: usize,
    id: u64,
    _t: PhantomData<*const T>,
}

// Right across a park: each is read and updated in one step with no park in
// between; interleaving goroutines only share a counter and a random stream
// (ids need only be unique per thread, the stream only uniform).
thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A uniformly distributed number below `n` (wyrand; Go: cheaprandn).
#[cfg(not(gort_loom))]
fn rand_below(n: usize) -> usize {
    let x = RNG.with(|r| {
        let mut s = r.get();
        if s == 0 {
            // Seed from the thread-local's address and the clock.
            s = ((r as *const _ as u64) ^ (gort_os::clock::nanotime() as u64)) | 1;
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        r.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    });
    ((u128::from(x) * n as u128) >> 64) as usize
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Select<'a> {
    /// An empty select. Running it blocks forever (Go's `select {}`), or
    /// with [`Select::try_select`] returns `None`.
    pub fn new() -> Self {
        Select {
            inline: [None, None, None, None],
            spill: Vec::new(),
            len: 0,
            id: NEXT_ID.with(|c| {
                c.set(c.get() + 1);
                c.get()
            }),
            selected: None,
            _not_send: PhantomData,
        }
    }

    fn push(&mut self, c: Case<'a>) -> usize {
        assert!(self.len < u16::MAX as usize, "select: too many cases");
        assert!(
            self.selected.is_none(),
            "select: case added after selection"
        );
        if self.len < INLINE_CASES {
            self.inline[self.len] = Some(c);
        } else {
            self.spill.push(c);
        }
        self.len += 1;
        self.len - 1
    }

    #[inline]
    fn case(&self, i: usize) -> &Case<'a> {
        if i < INLINE_CASES {
            self.inline[i].as_ref().expect("select: case index")
        } else {
            &self.spill[i - INLINE_CASES]
        }
    }

    /// Adds a case on channel `c` with a fresh sudog holding a slot for a
    /// `T`; returns the case index and the sudog.
    fn add<T>(&mut self, c: &'a Chan<T>, dir: Dir) -> (usize, *mut Sudog) {
        let sg = Sudog::acquire::<T>();
        let index = self.push(Case {
            chan: c,
            lock: &c.lock,
            dir,
            sg,
        });
        (index, sg)
    }

    /// Adds a case receiving from `rx`.
    pub fn recv<T>(&mut self, rx: &'a Receiver<T>) -> RecvCase<T> {
        let (index, _) = self.add(&rx.c, Dir::Recv);
        RecvCase {
            index,
            id: self.id,
            _t: PhantomData,
        }
    }

    /// Adds a case sending `v` on `tx`. If another case is chosen, `v` is
    /// dropped with the `Select`.
    pub fn send<T>(&mut self, tx: &'a Sender<T>, v: T) -> SendCase<T> {
        let (index, sg) = self.add(&tx.c, Dir::Send);
        // SAFETY: the sudog is ours; `elem` is a slot for a `T`.
        unsafe {
            (*sg).elem.cast::<T>().write(v);
            (*sg).live = true;
        }
        SendCase {
            index,
            id: self.id,
            _t: PhantomData,
        }
    }

    /// Blocks until one case can complete, completes it, and returns its
    /// index. With no cases, blocks forever.
    ///
    /// # Panics
    /// `send on closed channel` if the chosen case sends on a closed
    /// channel (as Go's select does); if the select already ran.
    pub fn select(&mut self) -> usize {
        crate::loom::preempt_point();
        self.run(true)
            .expect("blocking select returned without a case")
    }

    /// Completes a case that is ready now (choosing uniformly among the
    /// ready ones) and returns its index, or returns `None` — Go's select
    /// with a `default`.
    ///
    /// # Panics
    /// As [`Select::select`].
    pub fn try_select(&mut self) -> Option<usize> {
        self.run(false)
    }

    fn lock_all(&self, order: &[u16]) {
        let mut prev = 0;
        for &i in order {
            let c = self.case(i as usize);
            let a = c.addr();
            if a != prev {
                c.lock.lock();
                prev = a;
            }
        }
    }

    fn unlock_all(&self, order: &[u16]) {
        let mut prev = 0;
        for &i in order.iter().rev() {
            let c = self.case(i as usize);
            let a = c.addr();
            if a != prev {
                // SAFETY: `lock_all` locked each distinct channel once.
                unsafe { c.lock.unlock() };
                prev = a;
            }
        }
    }

    fn run(&mut self, block: bool) -> Option<usize> {
        assert!(self.selected.is_none(), "select: already ran");
        let n = self.len;
        if n == 0 {
            if !block {
                return None;
            }
            loop {
                // Nobody can wake us (Go's `select {}`).
                park(WaitReason::SelectNoCases, || true);
            }
        }
        let mut inline = [0u16; 2 * INLINE_CASES * 2];
        let mut heap = Vec::new();
        let (poll, lock) = if n <= INLINE_CASES * 2 {
            let (a, b) = inline.split_at_mut(INLINE_CASES * 2);
            (&mut a[..n], &mut b[..n])
        } else {
            heap.resize(2 * n, 0u16);
            heap.split_at_mut(n)
        };
        // Random poll order (Fisher-Yates, "inside-out"). Under loom: source
        // order (a model must be deterministic).
        for i in 0..n {
            #[cfg(not(gort_loom))]
            let j = rand_below(i + 1);
            #[cfg(gort_loom)]
            let j = i;
            poll[i] = poll[j];
            poll[j] = i as u16;
        }
        // Lock order: by channel (lock address; creation order under loom,
        // see RawLock::order_key); cases on the same channel keep
        // their random poll order (a stable insertion sort), so pass 2
        // queues them in random order too and neither is always served
        // first. Selects are small; this is what Go does too (heap sort
        // for large ones aside).
        if n > 32 {
            lock.copy_from_slice(poll);
            lock.sort_by_key(|&i| self.case(i as usize).addr());
        } else {
            for (k, &v) in poll.iter().enumerate() {
                let a = self.case(v as usize).addr();
                let mut j = k;
                while j > 0 && self.case(lock[j - 1] as usize).addr() > a {
                    lock[j] = lock[j - 1];
                    j -= 1;
                }
                lock[j] = v;
            }
        }

        // Pass 0 (not in Go): try each case under its own lock alone, in
        // poll order. A busy select usually finds a ready case here and
        // pays for one lock instead of all of them. Nothing is decided on
        // a miss: pass 1 looks again with every lock held, so a select
        // still acts on the channels' state at one instant.
        for &i in poll.iter() {
            let i = i as usize;
            let c = self.case(i);
            c.lock.lock();
            let r = self.poll_case(i);
            // SAFETY: locked just above.
            unsafe { c.lock.unlock() };
            if let Some(r) = r {
                return Some(self.chosen(i, r));
            }
        }

        self.lock_all(lock);
        // Pass 1: is any case ready?
        for &i in poll.iter() {
            let i = i as usize;
            if let Some(r) = self.poll_case(i) {
                self.unlock_all(lock);
                return Some(self.chosen(i, r));
            }
        }
        if !block {
            self.unlock_all(lock);
            return None;
        }

        // Pass 2: queue on every channel, park once.
        let done = {
            let first = self.case(0).sg;
            // SAFETY: our sudog. Relaxed: published by the channel locks
            // released after the enqueues below.
            unsafe { (*first).done.store(0, Ordering::Relaxed) };
            // SAFETY: as above.
            unsafe { &(*first).done as *const _ }
        };
        // One waiter for the one park, cloned into every case: a newer
        // waiter would make the earlier cases' copies stale.
        let waiter = Waiter::current();
        for &i in lock.iter() {
            let c = self.case(i as usize);
            // SAFETY: our sudog, not queued; the channel is locked.
            unsafe {
                (*c.sg).sel_done = done;
                (*c.sg).result = PENDING;
                (*c.sg).waiter = Some(waiter.clone());
                c.chan.enqueue(c.dir, c.sg);
            }
        }
        park(WaitReason::Select, || {
            self.unlock_all(lock);
            true
        });

        // Pass 3: find the winner, withdraw the rest.
        self.lock_all(lock);
        let mut won = None;
        for &i in lock.iter() {
            let c = self.case(i as usize);
            // SAFETY: locked; our sudogs (a waker that completed one set its
            // result under this same lock).
            unsafe {
                if (*c.sg).result != PENDING {
                    debug_assert!(won.is_none(), "select: two cases won");
                    won = Some(i as usize);
                } else {
                    c.chan.remove(c.dir, c.sg);
                }
                (*c.sg).waiter = None;
                (*c.sg).sel_done = std::ptr::null();
            }
        }
        self.unlock_all(lock);
        let i = won.expect("select: woken without a completed case");
        self.selected = Some(i);
        let c = self.case(i);
        // SAFETY: our sudog, no longer queued anywhere.
        unsafe {
            match (c.dir, (*c.sg).result) {
                (Dir::Recv, OK) => (*c.sg).live = true,
                (Dir::Send, OK) => (*c.sg).live = false,
                (Dir::Send, CLOSED) => panic!("send on closed channel"),
                _ => {}
            }
        }
        Some(i)
    }

    /// Tries case `i` alone; its channel is locked. `Some` if the case
    /// completed (or must panic): the waiter of the peer it completed with.
    #[inline]
    fn poll_case(&self, i: usize) -> Option<Polled> {
        let c = self.case(i);
        let sg = c.sg;
        match c.dir {
            // SAFETY: the channel is locked; `sg` is our sudog and its
            // `elem` a slot for the channel's T.
            Dir::Recv => match unsafe { c.chan.select_recv((*sg).elem) } {
                Recvd::Done(w) => {
                    // SAFETY: see above; the slot now holds a value.
                    unsafe {
                        (*sg).result = OK;
                        (*sg).live = true;
                    }
                    Some(Polled::Done(w))
                }
                Recvd::Closed => {
                    // SAFETY: see above.
                    unsafe { (*sg).result = CLOSED };
                    Some(Polled::Done(None))
                }
                Recvd::WouldBlock => None,
            },
            // SAFETY: as above; the slot holds our live value.
            Dir::Send => match unsafe { c.chan.select_send((*sg).elem) } {
                Sent::Done(w) => {
                    // SAFETY: see above; the value was moved out.
                    unsafe {
                        (*sg).result = OK;
                        (*sg).live = false;
                    }
                    Some(Polled::Done(w))
                }
                Sent::Closed => Some(Polled::SendOnClosed),
                Sent::Disconnected => {
                    // SAFETY: see above; the value stays for SendError.
                    unsafe { (*sg).result = DISCONNECTED };
                    Some(Polled::Done(None))
                }
                Sent::WouldBlock => None,
            },
        }
    }

    /// Case `i` was chosen in pass 0 or 1 (the channels are unlocked again):
    /// wake the peer it completed with, or panic for a closed channel.
    fn chosen(&mut self, i: usize, r: Polled) -> usize {
        self.selected = Some(i);
        match r {
            Polled::Done(Some(w)) => w.ready(),
            Polled::Done(None) => {}
            Polled::SendOnClosed => panic!("send on closed channel"),
        }
        i
    }

    fn check(&self, id: u64, index: usize) -> *mut Sudog {
        assert!(
            id == self.id && self.selected == Some(index),
            "select: finish called with a case that this Select did not choose"
        );
        self.case(index).sg
    }
}

impl Drop for Select<'_> {
    fn drop(&mut self) {
        for i in 0..self.len {
            // SAFETY: no sudog of a finished (or never run) select is queued;
            // `release` drops a live value left in it.
            unsafe { Sudog::release(self.case(i).sg) };
        }
    }
}

impl<T> RecvCase<T> {
    /// This case's index, as returned by [`Select::select`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes the chosen receive case: the value, or [`RecvError`] if the
    /// channel was closed and drained.
    ///
    /// # Panics
    /// If `sel` did not choose this case.
    pub fn finish(self, sel: &mut Select<'_>) -> Result<T, RecvError> {
        let sg = sel.check(self.id, self.index);
        // SAFETY: the token's brand proves the case holds a slot for `T`;
        // OK means the slot holds a value we own.
        unsafe {
            if (*sg).result == OK {
                (*sg).live = false;
                Ok((*sg).elem.cast::<T>().read())
            } else {
                Err(RecvError)
            }
        }
    }
}

impl<T> SendCase<T> {
    /// This case's index, as returned by [`Select::select`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes the chosen send case: `Ok` if the value was sent, or the
    /// value back if every receiver is gone.
    ///
    /// # Panics
    /// If `sel` did not choose this case.
    pub fn finish(self, sel: &mut Select<'_>) -> Result<(), SendError<T>> {
        let sg = sel.check(self.id, self.index);
        // SAFETY: as for RecvCase; DISCONNECTED leaves our live value.
        unsafe {
            if (*sg).result == DISCONNECTED {
                (*sg).live = false;
                Err(SendError((*sg).elem.cast::<T>().read()))
            } else {
                Ok(())
            }
        }
    }
}

/// Waits on several channel operations at once — Go's `select` statement.
///
/// ```
/// use gort_std::{chan, select};
/// let (tx, rx) = chan::<i32>(1);
/// let (_tx2, rx2) = chan::<String>(0);
/// tx.send(7).unwrap();
/// let got = select! {
///     recv(rx) -> v => v.unwrap(),
///     recv(rx2) -> s => s.unwrap().len() as i32,
/// };
/// assert_eq!(got, 7);
/// let r = select! {
///     send(tx, 8) -> res => { res.unwrap(); "sent" },
///     default => "full",
/// };
/// assert_eq!(r, "sent");
/// ```
///
/// Cases:
/// * `recv(rx) -> pat => body` — `pat` binds `Result<T, RecvError>`
///   (`Err` once the channel is closed and drained);
/// * `send(tx, value) -> pat => body` — `pat` binds
///   `Result<(), SendError<T>>` (`Err` if every receiver is gone);
/// * `default => body` — at most one; taken when no case is ready.
///
/// As in Go, channel and value expressions are evaluated once before
/// selecting (the channels first, then the send values, each in source
/// order; a temporary such as `recv(after(d))` lives through the select); among ready cases one is chosen uniformly at
/// random; without `default`, the caller parks once on all cases; a chosen
/// send on a closed channel panics; `select! {}` blocks forever. Values of
/// send cases that were not chosen are dropped. `break`, `continue`,
/// `return` and `?` in bodies act on the enclosing code.
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_munch!(@cases () @default () $($tokens)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_munch {
    // recv(rx) -> pat => body
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        recv($rx:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [recv __case __chan ($rx) $p => $body]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        recv($rx:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [recv __case __chan ($rx) $p => $body]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        recv($rx:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [recv __case __chan ($rx) $p => { $body }]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        recv($rx:expr) -> $p:pat => $body:expr) => {
        $crate::__select_munch!(@cases ($($c)* [recv __case __chan ($rx) $p => { $body }]) @default ($($d)*))
    };
    // send(tx, value) -> pat => body
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        send($tx:expr, $v:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [send __case __chan ($tx, $v) $p => $body]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        send($tx:expr, $v:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [send __case __chan ($tx, $v) $p => $body]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        send($tx:expr, $v:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)* [send __case __chan ($tx, $v) $p => { $body }]) @default ($($d)*) $($rest)*)
    };
    (@cases ($($c:tt)*) @default ($($d:tt)*)
        send($tx:expr, $v:expr) -> $p:pat => $body:expr) => {
        $crate::__select_munch!(@cases ($($c)* [send __case __chan ($tx, $v) $p => { $body }]) @default ($($d)*))
    };
    // default => body (once)
    (@cases ($($c:tt)*) @default () default => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)*) @default ($body) $($rest)*)
    };
    (@cases ($($c:tt)*) @default () default => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)*) @default ($body) $($rest)*)
    };
    (@cases ($($c:tt)*) @default () default => $body:expr, $($rest:tt)*) => {
        $crate::__select_munch!(@cases ($($c)*) @default ({ $body }) $($rest)*)
    };
    (@cases ($($c:tt)*) @default () default => $body:expr) => {
        $crate::__select_munch!(@cases ($($c)*) @default ({ $body }))
    };
    (@cases ($($c:tt)*) @default ($($d:tt)+) default $($rest:tt)*) => {
        ::core::compile_error!("select!: more than one `default` case")
    };
    // All parsed.
    (@cases ($([$kind:ident $case:ident $ch:ident ($first:expr $(, $rest:expr)*) $p:pat => $body:block])*) @default ($($d:tt)*)) => {{
        // `let x = &expr;` keeps a temporary channel (`recv(after(d))`)
        // alive for the whole select.
        $( let $ch = &$first; )*
        let mut __sel = $crate::Select::new();
        $( let $case = $crate::__select_add!(__sel, $kind, $ch $(, $rest)*); )*
        let __idx = $crate::__select_run!(__sel, $($d)*);
        $(
            if __idx == ::core::option::Option::Some($case.index()) {
                let __r = $case.finish(&mut __sel);
                ::core::mem::drop(__sel); // release the borrows before the body
                let $p = __r;
                $body
            } else
        )*
        { $crate::__select_default!(__sel, __idx, $($d)*) }
    }};
    (@cases ($($c:tt)*) @default ($($d:tt)*) $($rest:tt)+) => {
        ::core::compile_error!(
            "select!: expected `recv(rx) -> pat => body`, `send(tx, value) -> pat => body` or `default => body`"
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_add {
    ($sel:ident, recv, $rx:ident) => {
        $sel.recv($rx)
    };
    ($sel:ident, send, $tx:ident, $v:expr) => {
        $sel.send($tx, $v)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_run {
    ($sel:ident,) => {
        ::core::option::Option::Some($sel.select())
    };
    ($sel:ident, $d:block) => {
        $sel.try_select()
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_default {
    ($sel:ident, $idx:ident,) => {{
        let _ = $idx;
        ::core::unreachable!("select!: no case chosen")
    }};
    ($sel:ident, $idx:ident, $d:block) => {{
        ::core::mem::drop($sel);
        $d
    }};
}
