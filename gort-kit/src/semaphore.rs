//! golang.org/x/sync/semaphore: a weighted semaphore.
//!
//! [`Weighted::acquire`] takes `n` units, parking while they are not
//! available, in FIFO order: a large request at the head of the queue is
//! not overtaken by smaller ones behind it (no starvation), as in x/sync.
//! The wait ends early, with the context's error, if the context is done.
//!
//! ```
//! use gort_kit::{context, semaphore::Weighted};
//! use std::sync::Arc;
//!
//! gort_sched::run(|| {
//!     let sem = Arc::new(Weighted::new(4));
//!     let ctx = context::background();
//!     let mut hs = Vec::new();
//!     for _ in 0..16 {
//!         let (sem, ctx) = (sem.clone(), ctx.clone());
//!         hs.push(gort_sched::go(move || {
//!             sem.acquire(&ctx, 1).unwrap(); // at most 4 at a time
//!             gort_sched::gosched();
//!             sem.release(1);
//!         }));
//!     }
//!     for h in hs {
//!         h.join().unwrap();
//!     }
//!     assert!(sem.try_acquire(4));
//! });
//! ```

use crate::context::{self, Context};
use gort_std::{chan, select, Mutex, Sender};
use std::collections::VecDeque;
use std::fmt;

/// A semaphore of `size` units (Go's `semaphore.Weighted`).
pub struct Weighted {
    size: u64,
    inner: Mutex<State>,
}

struct State {
    /// Units held now.
    cur: u64,
    /// Queued acquisitions, oldest first.
    waiters: VecDeque<Waiting>,
    next_id: u64,
}

struct Waiting {
    id: u64,
    n: u64,
    /// Dropped (which closes the waiter's channel) when its units are
    /// granted.
    grant: Sender<()>,
}

impl fmt::Debug for Weighted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weighted")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Weighted {
    /// A semaphore with `size` units, all free (Go's `NewWeighted`).
    pub fn new(size: u64) -> Weighted {
        Weighted {
            size,
            inner: Mutex::new(State {
                cur: 0,
                waiters: VecDeque::new(),
                next_id: 0,
            }),
        }
    }

    /// Acquires `n` units, parking until they are available or `ctx` is
    /// done (Go's `Acquire`). On success nothing is left to undo; on
    /// failure the semaphore is unchanged and the context's error is
    /// returned. A context already done fails at once, even if the units
    /// are free. More units than the semaphore's size can never be granted:
    /// that call waits for the context.
    ///
    /// # Panics
    /// If more units than the size are asked with a context that can never
    /// be done (Go blocks forever there).
    pub fn acquire(&self, ctx: &Context, n: u64) -> Result<(), context::Error> {
        if let Some(e) = ctx.err() {
            return Err(e);
        }
        let (id, granted) = {
            let mut st = self.inner.lock();
            if self.size - st.cur.min(self.size) >= n && st.waiters.is_empty() {
                st.cur += n;
                return Ok(());
            }
            if n > self.size {
                drop(st);
                // Go waits forever here when the context can never be done;
                // a clear error instead of a silent hang.
                assert!(
                    ctx.can_be_done(),
                    "semaphore: acquire of {n} units from a semaphore of size {} with a context that is never done would block forever",
                    self.size
                );
                // Can never succeed: wait for the context.
                let _ = ctx.done().recv();
                return Err(ctx.err().unwrap_or(context::Error::Canceled));
            }
            let (grant, granted) = chan::<()>(0);
            let id = st.next_id;
            st.next_id += 1;
            st.waiters.push_back(Waiting { id, n, grant });
            (id, granted)
        };
        let done = ctx.done();
        select! {
            recv(granted) -> _ => {
                // Granted; but a context done meanwhile wins (as in x/sync):
                // the units go back.
                if ctx.is_done() {
                    self.release(n);
                    return Err(ctx.err().unwrap_or(context::Error::Canceled));
                }
                Ok(())
            }
            recv(done) -> _ => {
                let mut st = self.inner.lock();
                match st.waiters.iter().position(|w| w.id == id) {
                    None => {
                        // Granted after the context was done: give the
                        // units back, as if never acquired.
                        st.cur -= n;
                        self.notify(&mut st);
                    }
                    Some(i) => {
                        st.waiters.remove(i);
                        // A head that leaves may unblock the ones behind.
                        if i == 0 && self.size > st.cur {
                            self.notify(&mut st);
                        }
                    }
                }
                Err(ctx.err().unwrap_or(context::Error::Canceled))
            }
        }
    }

    /// Acquires `n` units if they are free and nobody is queued, without
    /// waiting (Go's `TryAcquire`); returns whether it did.
    pub fn try_acquire(&self, n: u64) -> bool {
        let mut st = self.inner.lock();
        let ok = self.size - st.cur.min(self.size) >= n && st.waiters.is_empty();
        if ok {
            st.cur += n;
        }
        ok
    }

    /// Releases `n` units (Go's `Release`) and grants queued acquisitions
    /// in order while they fit.
    ///
    /// # Panics
    /// `semaphore: released more than held` if fewer than `n` units are
    /// held.
    pub fn release(&self, n: u64) {
        let mut st = self.inner.lock();
        if n > st.cur {
            drop(st);
            panic!("semaphore: released more than held");
        }
        st.cur -= n;
        self.notify(&mut st);
    }

    /// Grants the queue's head while it fits (never skipping it).
    fn notify(&self, st: &mut State) {
        while let Some(w) = st.waiters.front() {
            if self.size - st.cur < w.n {
                break;
            }
            st.cur += w.n;
            let granted = st.waiters.pop_front().expect("the front");
            // Dropping its only sender closes the waiter's channel: it wakes.
            drop(granted.grant);
        }
    }

    /// The semaphore's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}
