//! golang.org/x/sync/singleflight: duplicate suppression. Calls of
//! [`Group::do_`] with a key whose call is already in flight wait for it
//! and share its result instead of running their own.
//!
//! ```
//! use gort_kit::singleflight::Group;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! gort_sched::run(|| {
//!     let g: Arc<Group<&str, u64, String>> = Arc::new(Group::new());
//!     let runs = Arc::new(AtomicUsize::new(0));
//!     let hs: Vec<_> = (0..8)
//!         .map(|_| {
//!             let (g, runs) = (g.clone(), runs.clone());
//!             gort_sched::go(move || {
//!                 g.do_("config", || {
//!                     runs.fetch_add(1, Ordering::SeqCst);
//!                     gort_std::sleep(std::time::Duration::from_millis(20));
//!                     Ok(42)
//!                 })
//!             })
//!         })
//!         .collect();
//!     for h in hs {
//!         let (v, _shared) = h.join().unwrap();
//!         assert_eq!(v, Ok(42));
//!     }
//!     assert!(runs.load(Ordering::SeqCst) < 8); // the calls were shared
//! });
//! ```
//!
//! A panic in the function reaches every caller waiting on it, as in Go:
//! the caller that ran it resumes the original panic, the others panic
//! with `singleflight: the shared call panicked: <message>`.

use gort_std::{Mutex, WaitGroup};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Calls in flight by key (Go's `singleflight.Group`).
pub struct Group<K, V, E> {
    calls: Mutex<HashMap<K, Arc<Call<V, E>>>>,
}

struct Call<V, E> {
    /// Done when `outcome` is set.
    wg: WaitGroup,
    outcome: OnceLock<Outcome<V, E>>,
    /// Callers that joined instead of running it.
    dups: AtomicUsize,
}

enum Outcome<V, E> {
    Returned(Result<V, E>),
    /// The function panicked (or its result could not be copied); the
    /// message.
    Panicked(String),
    /// The function called `goexit`.
    Goexited,
}

/// The end of a call this caller ran (see `do_`).
struct Finish<'a, K: Hash + Eq, V, E> {
    group: &'a Group<K, V, E>,
    key: &'a K,
    call: &'a Arc<Call<V, E>>,
}

impl<K: Hash + Eq, V, E> Finish<'_, K, V, E> {
    /// Frees the key unless `forget` already did (and maybe a new call took
    /// it); returns how many callers joined.
    fn free_key(&self) -> usize {
        let mut calls = self.group.calls.lock();
        if calls
            .get(self.key)
            .is_some_and(|cur| Arc::ptr_eq(cur, self.call))
        {
            calls.remove(self.key);
        }
        self.call.dups.load(Ordering::Relaxed)
    }
}

impl<K: Hash + Eq, V, E> Drop for Finish<'_, K, V, E> {
    fn drop(&mut self) {
        self.free_key();
        // Set unless copying the result panicked.
        let _ = self.call.outcome.set(Outcome::Panicked(
            "the call's result could not be copied for the callers sharing it".into(),
        ));
        self.call.wg.done();
    }
}

impl<K, V, E> fmt::Debug for Group<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone, E: Clone> Default for Group<K, V, E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone, E: Clone> Group<K, V, E> {
    /// An empty group.
    pub fn new() -> Group<K, V, E> {
        Group {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` for `key` unless a call for `key` is in flight, in which
    /// case it waits for that call and returns its result (Go's `Do`).
    /// The flag says whether the result was given to more than one caller.
    ///
    /// # Panics
    /// If the shared call panicked (see the module docs).
    pub fn do_<F>(&self, key: K, f: F) -> (Result<V, E>, bool)
    where
        F: FnOnce() -> Result<V, E>,
    {
        let mut calls = self.calls.lock();
        if let Some(c) = calls.get(&key) {
            let c = c.clone();
            // Under the lock, as Go: the caller running it reads the count
            // after it takes the lock again.
            c.dups.fetch_add(1, Ordering::Relaxed);
            drop(calls);
            c.wg.wait();
            return match c.outcome.get().expect("set before done") {
                Outcome::Returned(r) => (r.clone(), true),
                Outcome::Panicked(msg) => {
                    panic!("singleflight: the shared call panicked: {msg}")
                }
                // Go's Do: the waiters of a call that called Goexit exit too.
                Outcome::Goexited => gort_sched::goexit(),
            };
        }
        let c = Arc::new(Call {
            wg: WaitGroup::new(),
            outcome: OnceLock::new(),
            dups: AtomicUsize::new(0),
        });
        c.wg.add(1);
        calls.insert(key.clone(), c.clone());
        drop(calls);

        // However this ends (a panic in `f` or in `V::clone`, `goexit`),
        // the waiters are released and the key freed: `finish` does it.
        let finish = Finish {
            group: self,
            key: &key,
            call: &c,
        };
        let r = catch_unwind(AssertUnwindSafe(f));
        // The key first: no caller joins after it, so `dups` is final, and
        // without any the result is not copied.
        let dups = finish.free_key();
        if dups > 0 {
            let outcome = match &r {
                Ok(v) => Outcome::Returned(v.clone()),
                Err(p) if p.is::<gort_sched::Goexit>() => Outcome::Goexited,
                Err(p) => Outcome::Panicked(crate::panic_message(&**p).to_string()),
            };
            let _ = c.outcome.set(outcome);
        }
        drop(finish);
        match r {
            Ok(v) => (v, dups > 0),
            Err(p) => resume_unwind(p),
        }
    }

    /// Forgets `key`'s call in flight (Go's `Forget`): later calls for
    /// `key` run `f` again instead of joining it; callers already waiting
    /// still get its result.
    pub fn forget(&self, key: &K) {
        self.calls.lock().remove(key);
    }
}
