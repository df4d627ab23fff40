//! Go's netpoller for gort: blocking-style networking on goroutines.
//!
//! # The problem
//!
//! A goroutine that reads from a socket must not hold its OS thread (its M)
//! while no data is there: ten thousand connections would need ten thousand
//! threads. Go makes every socket non-blocking; an operation that would
//! block parks the goroutine on the descriptor's `pollDesc`, and the
//! scheduler's idle path asks the OS poller (epoll) which descriptors became
//! ready and readies their goroutines. Code stays blocking-style:
//! `conn.read(&mut buf)` just returns later.
//!
//! # The design
//!
//! * **`PollDesc`** (`poller.rs`; Go's runtime/netpoll.go): per
//!   descriptor, a state word per direction (`pd::Dir`, Go's `rg`/`wg`):
//!   `NIL`, `READY` (readiness nobody consumed), `WAIT` (a waiter is
//!   committing to park), `PARKED` (its waiter is in the slot) — plus two
//!   flag bits, `EXPIRED` (deadline) and `CLOSING`. Readiness is never lost:
//!   it lands in the word whether or not anyone waits, and a waiter that
//!   finds it consumes it instead of parking. PollDescs are never freed (an
//!   event for a closed descriptor can still be in flight); a generation in
//!   the event key makes such stale events no-ops on a reused PollDesc.
//! * **The pollers** are epoll instances: one per M whose goroutines wait
//!   on descriptors, and a main one. A started goroutine never leaves its
//!   M, so a descriptor lives in the instance of the M that waits on it:
//!   registered at its first wait (edge-triggered, both directions), moved
//!   when a wait comes from another M, at most twice; then, like
//!   descriptors waited on from plain threads, it settles in the main
//!   instance, which is nested in every M's own. The wait is a single
//!   `epoll_pwait2` (nanosecond timeout)
//!   with an eventfd per instance for netpollBreak. They plug into
//!   gort-sched as a blocking *source*: an M that runs dry polls its own
//!   instance and the main one without blocking before it spins (only
//!   those with waiters, Go's `netpollAnyWaiters`), a busy M every 61
//!   schedules; an idle M whose goroutines wait on descriptors blocks in
//!   its own instance (so the kernel wakes exactly the M an event is for),
//!   and otherwise one idle M at a time blocks in a spare instance that
//!   nests the main one, until the next timer deadline. Readying a goroutine bound to a blocked M,
//!   handing it a P, or arming an earlier timer interrupts its wait (Go's
//!   `netpollBreak`). Like the scheduler's timekeeper, a blocked M wakes
//!   25 µs before a timer deadline and spins the rest, so timers stay
//!   exact while an M sleeps in a poller.
//! * **Reads** after a short TCP read wait for readiness before the next
//!   system call (that read emptied the receive queue; tokio does the
//!   same), unless the poller reported urgent data, a shutdown or an
//!   error for the descriptor (`pd::UNUSUAL`), which a read returns short
//!   before.
//! * **Deadlines** (Go's `SetReadDeadline` & co.) are gort-timer
//!   `RawTimer`s per direction (`new_unchecked`: the callback runs under
//!   the heap lock, so stopping it is exact) whose callback sets `EXPIRED`
//!   and wakes the waiter; a deadline not in the future sets it at once, so the next
//!   operation fails immediately, as Go's does. Setting a deadline stops the
//!   old timer exactly before clearing the flag, so a stale expiry can never
//!   land after a new deadline.
//! * **Close** (Go's `pollUnblock`): `close(&self)` sets `CLOSING` in both
//!   words, waking every blocked goroutine with [`NetError::Closed`]; later
//!   operations fail the same way. The descriptor number is released when
//!   the socket value drops, so an operation still running on another
//!   goroutine can never touch a reused descriptor (Go counts references in
//!   its fdMutex for the same reason; Rust ownership does it here).
//! * **Sockets** ([`TcpListener`], [`TcpStream`], [`UdpSocket`],
//!   [`UnixListener`], [`UnixStream`], [`UnixDatagram`]) mirror `std::net`
//!   and `std::os::unix::net`: the system calls are std's own, made on a
//!   borrowed std view of the non-blocking descriptor, retried after a park
//!   when they return `WouldBlock` (Go's internal/poll `FD.Read` loop). One
//!   operation per direction waits at a time: a small sleeping lock per
//!   direction (Go's fdMutex) queues concurrent readers on gort-sema.
//!   Streams split into owned halves for two goroutines
//!   ([`TcpStream::into_split`]); `&TcpStream` implements `Read` and `Write`
//!   for borrowed use.
//! * **Diagnostics**: `read_parked()` / `write_parked()` on every socket
//!   type report whether a waiter is parked in that direction now (the
//!   word says `PARKED`), so a test acts once an operation is really
//!   blocked instead of sleeping and hoping (as gort-sema's `semwaiters`).
//!
//! Everything works from plain OS threads too: a thread's wait parks the
//! thread (gort-sched's thread waiter) and the runtime's Ms deliver its
//! readiness.
//!
//! # Name resolution
//!
//! Everything that takes addresses takes [`ToSocketAddrs`], gort-netpoll's
//! own trait, implemented for the same types as `std::net::ToSocketAddrs`
//! (tokio made the same choice): socket addresses and IP literals
//! (`"127.0.0.1:80"`) resolve inline, while host names (`"localhost:80"`)
//! go to `getaddrinfo` on gort-sched's blocking pool, so a slow DNS server
//! parks the goroutine instead of stalling every goroutine of its thread.
//! std's trait cannot tell the two apart without calling the resolver (no
//! specialization), hence the separate trait. The one API difference from
//! std: a user type that implements only std's trait must be resolved by
//! the caller and passed as a `&[SocketAddr]`.
//!
//! # Rejected alternatives
//!
//! * *Level-triggered epoll*: every poll would report every readable socket
//!   nobody reads yet; edge-triggered plus the sticky `READY` state reports
//!   each change once and loses nothing.
//! * *A dedicated poller thread* (may, early tokio): every readiness then
//!   costs a cross-thread wake-up; polling from the idle path lets the M that
//!   finds the event run the goroutine, and a busy runtime batches events.
//! * *One instance for the process* (Go's; gort's until 2026-11-29): the M
//!   blocked in it woke for every event and then woke, with a futex, the M
//!   of each goroutine it readied (goroutines cannot move): two wake-ups in
//!   a row on the path of a request, the HTTP example's main cost at 2 Ps.
//! * *Re-arming one-shot registrations per wait*: an `epoll_ctl` per blocking
//!   operation; edge-triggered registration once per descriptor (at its
//!   first wait, and at a move) costs none after that.
//! * *The `polling` crate* (used until 2026-11-29): its `wait` costs five
//!   system calls per poll (timerfd_settime, two epoll_ctl, eventfd read,
//!   epoll_wait), and the idle path polls often (tcp_echo trailed Go with
//!   it); with the wait and the per-M instances written directly, only
//!   `epoll_create1` and `epoll_ctl` were left to it.
//! * *Error state in separate fields* (Go's `rd < 0`, `closing`): a
//!   deadline setter and a committing waiter would need a store-load fence
//!   pair; in the same word, the commit's CAS sees the flag or the setter's
//!   CAS sees the waiter.
//!
//! # Invariants
//!
//! * At most one waiter per direction of a descriptor (the I/O lock); its
//!   `Waiter` is in the slot exactly while the word says `PARKED`, and only
//!   the waker whose CAS leaves `PARKED` takes it.
//! * A PollDesc is registered with a poller only while its socket is
//!   open, from its first wait on; it is reset and returned to the free
//!   list after unregistering.
//! * `CLOSING` is never cleared while the socket lives; `EXPIRED` is cleared
//!   only by a deadline setter after stopping the timer exactly.
//! * No goroutine blocks its M: every socket is non-blocking, every
//!   would-block parks.

#![cfg_attr(gort_loom, allow(dead_code))]

mod loom;
mod pd;

#[cfg(not(gort_loom))]
mod addr;
#[cfg(not(gort_loom))]
mod fd;
#[cfg(not(gort_loom))]
mod poller;
#[cfg(not(gort_loom))]
mod resolve;
#[cfg(not(gort_loom))]
mod tcp;
#[cfg(not(gort_loom))]
mod udp;
#[cfg(not(gort_loom))]
mod unix;

#[cfg(not(gort_loom))]
pub use fd::{is_closed, is_timeout, NetError};
#[cfg(not(gort_loom))]
pub use poller::netpoll_waiters;
#[cfg(not(gort_loom))]
pub use resolve::ToSocketAddrs;
#[cfg(not(gort_loom))]
pub use tcp::{Incoming, OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
#[cfg(not(gort_loom))]
pub use udp::UdpSocket;
#[cfg(not(gort_loom))]
pub use unix::{UnixDatagram, UnixListener, UnixOwnedReadHalf, UnixOwnedWriteHalf, UnixStream};

#[cfg(all(test, gort_loom))]
mod tests;
