//! Futex-style waiting on a 32-bit word, and [`Parker`], the one-token thread
//! parker every idle M and every plain OS thread that blocks in gort sleeps on.
//!
//! Linux: `futex(2)` with the private flag. Other Unixes: `parking_lot_core`
//! keyed by the word's address. Under loom: a model of the kernel's wait
//! list (wake-ups per word, at most `n`, oldest first); a timeout either
//! never fires or fires at once, as the model chooses (`timeouts_fire`, loom builds only).

use crate::loom::{AtomicU32, Ordering};
use std::time::Duration;

/// Blocks while `*word == expected`, for at most `timeout`.
///
/// May return spuriously; the caller re-checks its condition.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    imp::wait(word, expected, timeout)
}

/// Wakes up to `n` threads blocked in [`futex_wait`] on `word`.
#[inline]
pub fn futex_wake(word: &AtomicU32, n: u32) {
    imp::wake(word, n)
}

#[cfg(all(target_os = "linux", not(gort_loom)))]
mod imp {
    use super::*;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts;
        let ts_ptr = match timeout {
            Some(d) => {
                ts = libc::timespec {
                    tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                };
                &ts as *const libc::timespec
            }
            None => std::ptr::null(),
        };
        // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
        // the call; the kernel only reads it and `ts_ptr` (null or a timespec
        // that outlives the call).
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            );
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key; `word` is live.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                n.min(i32::MAX as u32) as i32,
            );
        }
    }
}

#[cfg(all(not(target_os = "linux"), not(gort_loom)))]
mod imp {
    use super::*;
    use std::time::Instant;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let key = word as *const AtomicU32 as usize;
        let deadline = timeout.map(|d| Instant::now() + d);
        // SAFETY: the validate and timed-out callbacks do not panic and do not
        // call back into parking_lot_core; the key is the word's address.
        unsafe {
            parking_lot_core::park(
                key,
                || word.load(Ordering::Acquire) == expected,
                || {},
                |_, _| {},
                parking_lot_core::DEFAULT_PARK_TOKEN,
                deadline,
            );
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let key = word as *const AtomicU32 as usize;
        for _ in 0..n {
            // SAFETY: the callback does not call back into parking_lot_core.
            let r = unsafe {
                parking_lot_core::unpark_one(key, |_| parking_lot_core::DEFAULT_UNPARK_TOKEN)
            };
            if r.unparked_threads == 0 {
                break;
            }
        }
    }
}

#[cfg(gort_loom)]
mod imp {
    //! Under loom a futex is a model-wide wait list under one loom mutex:
    //! a waiter re-checks the word and enqueues itself under the mutex, a
    //! waker wakes at most `n` waiters *of that word*, oldest first, as the
    //! kernel does. So a lost wake-up, a `wake(1)` that should have been a
    //! `wake(all)`, or a wake of the wrong word shows up in the models, and
    //! a blocked waiter is not runnable (loom does not explore it spinning).
    //!
    //! Timeouts: a model chooses with [`timeouts_fire`] whether a timed
    //! wait ends by its timeout at a point loom picks — after being queued,
    //! so a wake-up may land on it first or pass it by — or waits like an
    //! untimed one (the default: the models have no clock to make a timeout
    //! mean "later"). A zero timeout always expires at once. The model never
    //! wakes spuriously: every caller in gort loops on its condition anyway
    //! (spurious returns are part of `futex_wait`'s contract).
    use super::*;
    use loom::sync::{Condvar, Mutex};

    #[derive(Default)]
    struct Model {
        /// (word address, waiter id), oldest first.
        waiting: Vec<(usize, u64)>,
        /// Waiters woken and not yet returned.
        woken: Vec<u64>,
        next_id: u64,
        timeouts_fire: bool,
    }

    loom::lazy_static! {
        static ref FUTEX: (Mutex<Model>, Condvar) = (Mutex::new(Model::default()), Condvar::new());
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let mut m = FUTEX.0.lock().unwrap();
        if word.load(Ordering::Acquire) != expected {
            return;
        }
        if timeout == Some(Duration::ZERO) {
            return; // a zero timeout expires at once, on any kernel
        }
        let id = m.next_id;
        m.next_id += 1;
        m.waiting.push((word as *const AtomicU32 as usize, id));
        if timeout.is_some() && m.timeouts_fire {
            // Queued like any waiter (a wake may pick it), then the timeout
            // fires at a point loom chooses: woken first, or withdrawn
            // unwoken (a wake(1) then goes to the next waiter, as the
            // kernel's would).
            drop(m);
            loom::thread::yield_now();
            let mut m = FUTEX.0.lock().unwrap();
            if let Some(i) = m.woken.iter().position(|&w| w == id) {
                m.woken.swap_remove(i);
            } else if let Some(i) = m.waiting.iter().position(|&(_, w)| w == id) {
                m.waiting.remove(i);
            }
            return;
        }
        loop {
            m = FUTEX.1.wait(m).unwrap();
            if let Some(i) = m.woken.iter().position(|&w| w == id) {
                m.woken.swap_remove(i);
                return;
            }
        }
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) {
        let addr = word as *const AtomicU32 as usize;
        let mut m = FUTEX.0.lock().unwrap();
        let mut left = n;
        let mut i = 0;
        while left > 0 && i < m.waiting.len() {
            if m.waiting[i].0 == addr {
                let (_, id) = m.waiting.remove(i);
                m.woken.push(id);
                left -= 1;
            } else {
                i += 1;
            }
        }
        if left < n {
            FUTEX.1.notify_all();
        }
    }

    pub(super) fn set_timeouts_fire(fire: bool) {
        FUTEX.0.lock().unwrap().timeouts_fire = fire;
    }
}

/// Loom models only: whether a timed [`futex_wait`] that nobody wakes ends
/// by its timeout at once (`true`) or waits like an untimed one (`false`,
/// the default). Set at the start of a model; it lasts for that execution.
#[cfg(gort_loom)]
pub fn timeouts_fire(fire: bool) {
    imp::set_timeouts_fire(fire);
}

const EMPTY: u32 = 0;
const NOTIFIED: u32 = 1;
const PARKED: u32 = u32::MAX;

/// A one-token parker for one OS thread (std's `thread::park` protocol on a
/// futex word, usable without a `Thread` handle).
///
/// `unpark` stores the token; `park` consumes it, sleeping until there is one.
/// An `unpark` before `park` makes that `park` return at once, so there is no
/// lost wake-up. Only the owning thread may call [`Parker::park`]: two
/// threads parking on one `Parker` at once can both sleep through an
/// `unpark` (a hang of those threads, never memory unsafety).
///
/// # Invariants
/// `state` is `EMPTY`, `NOTIFIED` or `PARKED`; only the owner moves it to
/// `PARKED` (and back from `NOTIFIED`); any thread moves it to `NOTIFIED`.
#[derive(Debug)]
pub struct Parker {
    /// Written by the owner (park) and by unparkers (swap to NOTIFIED).
    state: AtomicU32,
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    /// A parker with no token.
    #[cfg(not(gort_loom))]
    pub const fn new() -> Self {
        Parker {
            state: AtomicU32::new(EMPTY),
        }
    }

    /// A parker with no token.
    #[cfg(gort_loom)]
    pub fn new() -> Self {
        Parker {
            state: AtomicU32::new(EMPTY),
        }
    }

    /// Sleeps until a token is available, then consumes it.
    pub fn park(&self) {
        // Acquire pairs with the Release swap in `unpark`.
        if self.state.fetch_sub(1, Ordering::Acquire) == NOTIFIED {
            return; // NOTIFIED -> EMPTY
        }
        loop {
            futex_wait(&self.state, PARKED, None);
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Like [`Parker::park`] but gives up after `timeout`. Returns whether a
    /// token was consumed.
    pub fn park_timeout(&self, timeout: Duration) -> bool {
        if self.state.fetch_sub(1, Ordering::Acquire) == NOTIFIED {
            return true;
        }
        futex_wait(&self.state, PARKED, Some(timeout));
        // Whatever woke us, leave EMPTY; report whether it was a token.
        self.state.swap(EMPTY, Ordering::Acquire) == NOTIFIED
    }

    /// Makes a token available, waking the owner if it sleeps.
    #[inline]
    pub fn unpark(&self) {
        // Release pairs with the Acquire in `park`/`park_timeout`.
        if self.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            futex_wake(&self.state, 1);
        }
    }
}

#[cfg(all(test, not(gort_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn unpark_before_park_is_not_lost() {
        let p = Parker::new();
        p.unpark();
        p.park(); // returns at once
        assert!(!p.park_timeout(Duration::from_millis(5)));
    }

    #[test]
    fn cross_thread_wakeup() {
        let p = Arc::new(Parker::new());
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                p2.park();
            }
        });
        for _ in 0..1000 {
            p.unpark();
            std::thread::yield_now();
        }
        // Tokens do not accumulate: keep unparking until the thread is done.
        while !t.is_finished() {
            p.unpark();
            std::thread::yield_now();
        }
        t.join().unwrap();
    }

    #[test]
    fn timeout_elapses() {
        let p = Parker::new();
        let t0 = Instant::now();
        assert!(!p.park_timeout(Duration::from_millis(20)));
        assert!(t0.elapsed() >= Duration::from_millis(19));
    }
}
