//! `Note`: a one-shot sleep/wake-up (Go's note: notesleep, notewakeup,
//! noteclear).
//!
//! After [`Note::clear`], exactly one [`Note::wakeup`] is allowed, and
//! [`Note::sleep`] returns once it happened (at once if it already did).
//! A second wake-up without a clear is a bug and panics, as in Go.

use crate::loom::{park, AtomicU32, Mutex, Ordering, WaitReason, Waiter};

/// A one-shot event.
pub struct Note {
    /// 0 = cleared, 1 = woken. Swapped by `wakeup`; read by sleepers.
    key: AtomicU32,
    /// The sleeper, if one sleeps (only one may).
    sleeper: Mutex<Option<Waiter>>,
}

impl Default for Note {
    fn default() -> Self {
        Self::new()
    }
}

impl Note {
    /// A cleared note.
    pub fn new() -> Note {
        Note {
            key: AtomicU32::new(0),
            sleeper: Mutex::new(None),
        }
    }

    /// Re-arms the note. Must not race with `sleep` or `wakeup`.
    pub fn clear(&self) {
        self.key.store(0, Ordering::SeqCst);
    }

    /// Whether the wake-up happened.
    pub fn is_woken(&self) -> bool {
        self.key.load(Ordering::SeqCst) == 1
    }

    /// Whether a goroutine or thread is parked on the note. The sleeper is
    /// recorded under the note's lock, which its park releases only once
    /// committed: when this returns true the sleeper really waits (or has
    /// just been woken). For tests and diagnostics.
    pub fn has_sleeper(&self) -> bool {
        self.sleeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Wakes the sleeper (now or when it comes).
    ///
    /// # Panics
    /// On a second wake-up without [`Note::clear`] in between.
    pub fn wakeup(&self) {
        let w = {
            let mut s = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
            if self.key.swap(1, Ordering::SeqCst) != 0 {
                drop(s);
                panic!("Note::wakeup: double wakeup (the note was not cleared)");
            }
            s.take()
        };
        if let Some(w) = w {
            w.ready();
        }
    }

    /// Sleeps until the wake-up (returns at once if it already happened).
    /// Parks the goroutine, or the plain thread.
    ///
    /// # Panics
    /// If another sleeper already waits on this note.
    pub fn sleep(&self) {
        let mut s = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
        if self.key.load(Ordering::SeqCst) == 1 {
            return;
        }
        assert!(s.is_none(), "Note::sleep: a second sleeper on one note");
        *s = Some(Waiter::current());
        // The waker sets key before taking the waiter (both under the
        // lock), so once readied the key is 1.
        park(WaitReason::Other("note sleep"), move || {
            drop(s);
            true
        });
    }

    /// Like [`Note::sleep`], for plain OS threads, giving up after
    /// `timeout`; returns whether the wake-up happened. (Goroutines get
    /// timeouts from gort-timer, which is built on the scheduler's sources.)
    ///
    /// # Panics
    /// If called from a goroutine, or with a second sleeper.
    #[cfg(not(gort_loom))]
    pub fn sleep_timeout(&self, timeout: std::time::Duration) -> bool {
        let mut s = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
        if self.key.load(Ordering::SeqCst) == 1 {
            return true;
        }
        assert!(
            s.is_none(),
            "Note::sleep_timeout: a second sleeper on one note"
        );
        *s = Some(Waiter::current());
        let woken =
            gort_sched::park_thread_timeout(WaitReason::Other("note sleep"), timeout, move || {
                drop(s);
                true
            });
        if !woken {
            // Withdraw, unless the wake-up raced with the timeout.
            let mut s = self.sleeper.lock().unwrap_or_else(|e| e.into_inner());
            *s = None;
        }
        self.is_woken()
    }
}
