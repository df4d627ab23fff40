//! The one place this crate takes its atomics, locks, parker, clock and
//! threads from (see gort-os's twin).
//!
//! Under `--cfg gort_loom` these are loom's, so the models in `src/tests/`
//! run the real run queue, park protocol and idle protocol (`rt/idle.rs`,
//! `rt/sources.rs`). Capacities shrink under loom (a run queue of 4) so the
//! models stay small. What differs under loom, and why:
//!
//! * **SeqCst.** loom treats a `SeqCst` access as `AcqRel` (its README,
//!   "Unsupported features"), so a Dekker pair written with `SeqCst`
//!   accesses — `in_source`/inbox, `nextp`/`in_source`, `npidle`/
//!   `nmspinning` — would be reported broken when it is not. The loom
//!   atomics here are loom's wrapped: a `SeqCst` store or read-modify-write
//!   is followed by `fence(SeqCst)` (the trailing-fence mapping of C11
//!   `SeqCst`, as on x86; loom does model fences). Weakening the store of
//!   such a pair to `Release` drops its fence, so the models catch that.
//!   (Loads get no fence: an IRIW-style use of `SeqCst` loads alone would
//!   not be checked; the runtime has none.)
//! * **Stores are swaps** whose read is relaxed: loom can otherwise order a
//!   plain store between the read and the write of a concurrent RMW (loom
//!   issues #254 and #389), a false alarm the idle models hit at once.
//! * **Time** passes only when someone spins ([`spin_loop`] advances the
//!   model clock [`nanotime`] by 1 ms and yields), so a spin-until-deadline
//!   ends and every execution is deterministic.
//! * **M threads** are loom threads ([`spawn_m`]); when a model is over it
//!   calls [`shutdown`], and every M leaves at its next (or current) park of
//!   its [`Parker`] by unwinding to the top of its thread.
//!
//! Not loom-specific: [`Mutex`] and [`RwLock`] recover from poisoning (a
//! panic under a runtime lock is already a fatal error elsewhere; the data
//! they guard is kept consistent by every critical section), so callers
//! write `lock()` instead of `lock().unwrap_or_else(|e| e.into_inner())`.

/// Items compiled only in the normal build (not under `--cfg gort_loom`).
macro_rules! cfg_not_loom {
    ($($item:item)*) => { $( #[cfg(not(gort_loom))] $item )* };
}

/// Items compiled only under `--cfg gort_loom`.
macro_rules! cfg_loom {
    ($($item:item)*) => { $( #[cfg(gort_loom)] $item )* };
}

cfg_not_loom! {
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use gort_os::clock::nanotime;
    pub(crate) use gort_os::futex::Parker;
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    /// A mutex whose `lock` recovers from poisoning (see the module docs).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(t: T) -> Self {
            Mutex(std::sync::Mutex::new(t))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A reader-writer lock whose guards recover from poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(std::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(t: T) -> Self {
            RwLock(std::sync::RwLock::new(t))
        }

        #[inline]
        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        #[inline]
        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Starts the OS thread of an M.
    pub(crate) fn spawn_m(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        gort_os::thread::spawn_named(name, 0, f).map(drop)
    }
}

cfg_loom! {
    pub(crate) use loom::sync::atomic::Ordering;
    pub(crate) use loom::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};
    pub(crate) use model::{nanotime, spawn_m, spin_loop, Parker};
    // For the models.
    #[cfg(test)]
    pub(crate) use model::{exit_if_shutdown, shutdown};
    pub(crate) use seqcst::{
        AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    };

    /// loom's mutex, recovering from poisoning like the normal build's.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Mutex(loom::sync::Mutex::new(t))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// loom's reader-writer lock, recovering from poisoning.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(t: T) -> Self {
            RwLock(loom::sync::RwLock::new(t))
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }

    mod seqcst {
        //! loom atomics whose `SeqCst` accesses keep their C11 meaning
        //! (module docs): a `SeqCst` store or RMW is followed by
        //! `fence(SeqCst)` (the trailing-fence mapping, x86's), so a Dekker
        //! pair of `SeqCst` store-then-load on both sides holds, and one
        //! whose store is weakened does not. Stores are relaxed-read swaps
        //! (see `store`).
        use loom::sync::atomic::{fence, Ordering};

        #[inline]
        fn after_write(o: Ordering) {
            if o == Ordering::SeqCst {
                fence(Ordering::SeqCst);
            }
        }

        macro_rules! wrap {
            ($name:ident, $t:ty $(, $gen:ident)?) => {
                pub(crate) struct $name$(<$gen>)?(loom::sync::atomic::$name$(<$gen>)?);

                #[allow(dead_code)]
                impl$(<$gen>)? $name$(<$gen>)? {
                    pub(crate) fn new(v: $t) -> Self {
                        Self(loom::sync::atomic::$name::new(v))
                    }
                    pub(crate) fn load(&self, o: Ordering) -> $t {
                        self.0.load(o)
                    }
                    pub(crate) fn store(&self, v: $t, o: Ordering) {
                        // A swap, not a store: loom can place a plain store
                        // between the read and the write of a concurrent RMW
                        // (loom issues #254, #389), losing it. The read part
                        // is relaxed (no synchronisation is added).
                        let o2 = if o == Ordering::SeqCst { Ordering::Release } else { o };
                        self.0.swap(v, o2);
                        after_write(o);
                    }
                    pub(crate) fn swap(&self, v: $t, o: Ordering) -> $t {
                        let r = self.0.swap(v, o);
                        after_write(o);
                        r
                    }
                    pub(crate) fn compare_exchange(
                        &self,
                        cur: $t,
                        new: $t,
                        ok: Ordering,
                        err: Ordering,
                    ) -> Result<$t, $t> {
                        let r = self.0.compare_exchange(cur, new, ok, err);
                        after_write(if r.is_ok() { ok } else { err });
                        r
                    }
                    pub(crate) fn compare_exchange_weak(
                        &self,
                        cur: $t,
                        new: $t,
                        ok: Ordering,
                        err: Ordering,
                    ) -> Result<$t, $t> {
                        self.compare_exchange(cur, new, ok, err)
                    }
                }
            };
        }

        macro_rules! wrap_int {
            ($name:ident, $t:ty) => {
                wrap!($name, $t);

                #[allow(dead_code)]
                impl $name {
                    pub(crate) fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                        let r = self.0.fetch_add(v, o);
                        after_write(o);
                        r
                    }
                    pub(crate) fn fetch_sub(&self, v: $t, o: Ordering) -> $t {
                        let r = self.0.fetch_sub(v, o);
                        after_write(o);
                        r
                    }
                    pub(crate) fn fetch_min(&self, v: $t, o: Ordering) -> $t {
                        let r = self.0.fetch_min(v, o);
                        after_write(o);
                        r
                    }
                }
            };
        }

        wrap!(AtomicBool, bool);
        wrap!(AtomicPtr, *mut T, T);
        wrap_int!(AtomicI64, i64);
        wrap_int!(AtomicIsize, isize);
        wrap_int!(AtomicU32, u32);
        wrap_int!(AtomicU64, u64);
        wrap_int!(AtomicUsize, usize);
    }

    mod model {
        //! Per-execution model state: the clock, the M threads' exit.
        use std::panic::{self, AssertUnwindSafe};
        use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
        use std::sync::Mutex;
        use std::time::Duration;

        // Plain std state, invisible to loom: loom runs one model thread at
        // a time on one OS thread, and these are read and written between
        // loom operations only (never held across one).
        struct State {
            now: AtomicI64,
            shutdown: AtomicBool,
            /// The parkers of the Ms, registered at their first park under a
            /// loom mutex: the only loom-visible operation here, so that
            /// `shutdown`'s unpark happens after the parker was made (by
            /// whichever thread made its M).
            parkers: loom::sync::Mutex<Vec<usize>>,
            /// The M threads, joined by `shutdown` (loom drops the lazy
            /// statics, the futex model among them, when the model's main
            /// thread returns: no M may outlive it).
            threads: Mutex<Vec<loom::thread::JoinHandle<()>>>,
        }

        loom::lazy_static! {
            static ref STATE: State = State {
                now: AtomicI64::new(0),
                shutdown: AtomicBool::new(false),
                parkers: loom::sync::Mutex::new(Vec::new()),
                threads: Mutex::new(Vec::new()),
            };
        }

        /// The model clock (nanoseconds), 0 at the start of an execution.
        pub(crate) fn nanotime() -> i64 {
            STATE.now.load(Ordering::Relaxed)
        }

        /// Sets the model clock.
        pub(crate) fn set_nanotime(t: i64) {
            STATE.now.store(t, Ordering::Relaxed);
        }

        /// A spin-wait step: time passes (1 ms) and others run.
        pub(crate) fn spin_loop() {
            STATE.now.fetch_add(1_000_000, Ordering::Relaxed);
            loom::thread::yield_now();
        }

        /// Unwound through an M's stack when the model is over.
        struct MExit;

        /// Ends the model's M threads and waits for them: each leaves at its
        /// next (or current) park. `wake` gets out Ms blocked elsewhere (a
        /// model's blocking source, whose `block` calls
        /// [`exit_if_shutdown`]).
        pub(crate) fn shutdown(wake: impl Fn()) {
            STATE.shutdown.store(true, Ordering::Relaxed);
            let ps = STATE.parkers.lock().unwrap().clone();
            for p in ps {
                // SAFETY: registered by `Parker::park*` of a parker that
                // lives in a leaked (immortal) M.
                unsafe { &*(p as *const Parker) }.unpark();
            }
            wake();
            loop {
                let ts = std::mem::take(&mut *STATE.threads.lock().unwrap());
                if ts.is_empty() {
                    break;
                }
                for t in ts {
                    t.join().unwrap();
                }
            }
        }

        /// After [`shutdown`]: leaves the calling M thread (a blocking
        /// model source calls this too).
        pub(crate) fn exit_if_shutdown() {
            if STATE.shutdown.load(Ordering::Relaxed) {
                panic::resume_unwind(Box::new(MExit));
            }
        }

        /// An M's parker: gort-os's (on loom's futex model), which also
        /// ends the thread once the model is over.
        /// (With whether it is registered: plain std state, as above.)
        #[derive(Debug, Default)]
        pub(crate) struct Parker(gort_os::futex::Parker, AtomicBool);

        impl Parker {
            pub(crate) fn new() -> Self {
                Parker(gort_os::futex::Parker::new(), AtomicBool::new(false))
            }

            fn enter(&self) {
                if !self.1.swap(true, Ordering::Relaxed) {
                    let me = self as *const Parker as usize;
                    STATE.parkers.lock().unwrap().push(me);
                }
                exit_if_shutdown();
            }

            pub(crate) fn park(&self) {
                self.enter();
                self.0.park();
                exit_if_shutdown();
            }

            pub(crate) fn park_timeout(&self, d: Duration) -> bool {
                self.enter();
                let r = self.0.park_timeout(d);
                exit_if_shutdown();
                r
            }

            pub(crate) fn unpark(&self) {
                self.0.unpark();
            }
        }

        /// Starts an M as a loom thread; [`shutdown`] ends it.
        pub(crate) fn spawn_m(
            _name: String,
            f: impl FnOnce() + Send + 'static,
        ) -> std::io::Result<()> {
            // A larger stack than loom's default: an M's idle path is deep.
            loom::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    if let Err(e) = panic::catch_unwind(AssertUnwindSafe(f)) {
                        if !e.is::<MExit>() {
                            panic::resume_unwind(e);
                        }
                    }
                })
                .map(|t| STATE.threads.lock().unwrap().push(t))
        }
    }
}

/// Slots in a P's local run queue: 256 as in Go, 4 under loom.
pub(crate) const RUNQ_SIZE: usize = if cfg!(gort_loom) { 4 } else { 256 };
