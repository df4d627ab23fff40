//! `NotifyList`: the ticket-based wait list under sync.Cond (Go's
//! notifyList in runtime/sema.go).
//!
//! A waiter first takes a ticket ([`NotifyList::add`]) while it still holds
//! the user's lock, then releases that lock and waits for its ticket
//! ([`NotifyList::wait`]). `notify_one` wakes the oldest ticket not yet
//! notified; `notify_all` every ticket issued so far. A notify therefore
//! wakes only waiters that registered before it, even if they had not yet
//! reached `wait` — and never one that registers after.

use crate::loom::{park, AtomicU32, Mutex, Ordering, WaitReason, Waiter};
use std::collections::VecDeque;

/// A place in a [`NotifyList`]'s order, from [`NotifyList::add`]; spent by
/// [`NotifyList::wait`]. Not `Copy` and not constructible outside this
/// crate: a forged or reused ticket could take the wake-up meant for a real
/// waiter (a lost wake-up, a hang).
#[derive(Debug)]
#[must_use = "a ticket must be waited for, or its notification is wasted"]
pub struct Ticket {
    n: u32,
    /// The id of the list that issued it (checked by `wait`).
    list: u64,
}

/// Source of list ids (0 means "not assigned yet").
static NEXT_LIST_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Ticket {
    /// The ticket's number in its list's order (wrapping).
    pub fn number(&self) -> u32 {
        self.n
    }
}

/// A list of waiters ordered by ticket.
pub struct NotifyList {
    /// Next ticket to hand out. Incremented atomically outside the lock.
    wait: AtomicU32,
    /// Next ticket to notify. Written under `waiters`' lock; read without
    /// it for the no-waiter fast path.
    notify: AtomicU32,
    /// Tickets that reached `wait` and sleep, with their waiters.
    waiters: Mutex<VecDeque<(u32, Waiter)>>,
    /// This list's id for its tickets, assigned at the first `add` (not
    /// its address: the list may move between `add` and `wait`, and a new
    /// list may reuse an old one's address). Relaxed: a CAS from 0 decides
    /// it once; every later read sees the winner.
    id: std::sync::atomic::AtomicU64,
}

impl Default for NotifyList {
    fn default() -> Self {
        Self::new()
    }
}

/// `a` comes before `b` in wrapping ticket order.
fn less(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl NotifyList {
    /// An empty list.
    pub fn new() -> NotifyList {
        NotifyList {
            wait: AtomicU32::new(0),
            notify: AtomicU32::new(0),
            waiters: Mutex::new(VecDeque::new()),
            id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn id(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let id = self.id.load(Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_LIST_ID.fetch_add(1, Relaxed);
        match self.id.compare_exchange(0, fresh, Relaxed, Relaxed) {
            Ok(_) => fresh,
            Err(winner) => winner,
        }
    }

    /// Takes a ticket. Call while holding the lock that protects the
    /// condition, before releasing it.
    pub fn add(&self) -> Ticket {
        Ticket {
            // SeqCst: ordered with notifiers' loads of `wait`.
            n: self.wait.fetch_add(1, Ordering::SeqCst),
            list: self.id(),
        }
    }

    /// Sleeps until `ticket` has been notified (returns at once if it
    /// already was). Parks the goroutine, or the plain thread.
    ///
    /// # Panics
    /// If `ticket` was issued by another list.
    pub fn wait(&self, ticket: Ticket) {
        assert_eq!(
            ticket.list,
            self.id(),
            "NotifyList::wait: the ticket was issued by another NotifyList"
        );
        let ticket = ticket.n;
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if less(ticket, self.notify.load(Ordering::SeqCst)) {
            return;
        }
        w.push_back((ticket, Waiter::current()));
        park(WaitReason::SyncCondWait, move || {
            drop(w);
            true
        });
    }

    /// How many waiters sleep in [`wait`](Self::wait) right now, not yet
    /// notified: a snapshot under the list's lock, for tests and
    /// diagnostics. A waiter counts from the moment it is queued (a notify
    /// will find it even if it has not finished parking yet).
    pub fn waiting(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Wakes every ticket issued so far.
    pub fn notify_all(&self) {
        if self.wait.load(Ordering::SeqCst) == self.notify.load(Ordering::SeqCst) {
            return; // nobody took a ticket since the last notify
        }
        let woken = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            self.notify
                .store(self.wait.load(Ordering::SeqCst), Ordering::SeqCst);
            std::mem::take(&mut *w)
        };
        for (_, waiter) in woken {
            waiter.ready();
        }
    }

    /// Wakes the oldest ticket not yet notified, if any was issued.
    pub fn notify_one(&self) {
        if self.wait.load(Ordering::SeqCst) == self.notify.load(Ordering::SeqCst) {
            return;
        }
        let woken = {
            let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            let t = self.notify.load(Ordering::SeqCst);
            if t == self.wait.load(Ordering::SeqCst) {
                return;
            }
            self.notify.store(t.wrapping_add(1), Ordering::SeqCst);
            // The ticket's owner may not have reached wait() yet; then it
            // will see it was notified and not sleep.
            w.iter()
                .position(|(tk, _)| *tk == t)
                .and_then(|i| w.remove(i))
        };
        if let Some((_, waiter)) = woken {
            waiter.ready();
        }
    }
}
