//! `Once` and `OnceValue`: Go's sync.Once and sync.OnceValue.
//!
//! `Once::call_once` runs its function once; concurrent callers wait for it
//! (parking their goroutine or thread). As in Go, if the function panics the
//! Once counts as done: later calls do not run anything. `OnceValue` caches
//! a value; as Go's OnceValue, if the function panicked, *every* call panics
//! with the same message.

use crate::mutex::RawMutex;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs an action exactly once.
#[derive(Default)]
pub struct Once {
    /// 1 once the action finished (Release), read with Acquire on the fast
    /// path.
    done: AtomicU32,
    m: RawMutex,
}

impl Once {
    /// A Once that has not run.
    pub const fn new() -> Once {
        Once {
            done: AtomicU32::new(0),
            m: RawMutex::new(),
        }
    }

    /// Calls `f` if no call has run it yet; otherwise waits until the first
    /// call finished, then returns.
    #[inline]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.done.load(Ordering::Acquire) == 0 {
            self.call_slow(f);
        }
    }

    #[cold]
    fn call_slow<F: FnOnce()>(&self, f: F) {
        struct Finish<'a>(&'a Once);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                // Done even if f panicked (Go's semantics), then unlock.
                self.0.done.store(1, Ordering::Release);
                // SAFETY: `Finish` exists only while `call_slow` holds `m`
                // (it locked it before creating us), and nothing else
                // releases that hold.
                unsafe { self.0.m.unlock() };
            }
        }
        self.m.lock();
        if self.done.load(Ordering::Relaxed) != 0 {
            // SAFETY: locked just above by this call; no `Finish` exists.
            unsafe { self.m.unlock() };
            return;
        }
        let _finish = Finish(self);
        f();
    }

    /// Whether the action has run (or panicked).
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire) != 0
    }
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once")
            .field("done", &self.is_completed())
            .finish()
    }
}

/// A lazily computed value (Go's sync.OnceValue).
pub struct OnceValue<T, F = fn() -> T> {
    once: Once,
    f: UnsafeCell<Option<F>>,
    value: UnsafeCell<Option<Result<T, String>>>,
}

// SAFETY: `f` and `value` are written only inside the Once (one writer,
// published by its Release store) and read only after it (Acquire).
unsafe impl<T: Send + Sync, F: Send> Sync for OnceValue<T, F> {}
// SAFETY: owning it owns T and F.
unsafe impl<T: Send, F: Send> Send for OnceValue<T, F> {}

impl<T, F: FnOnce() -> T> OnceValue<T, F> {
    /// A value computed by `f` on first use.
    pub const fn new(f: F) -> OnceValue<T, F> {
        OnceValue {
            once: Once::new(),
            f: UnsafeCell::new(Some(f)),
            value: UnsafeCell::new(None),
        }
    }

    /// The value, computing it on the first call.
    ///
    /// # Panics
    /// If the function panicked — on that call and on every later one, with
    /// the same message.
    pub fn get(&self) -> &T {
        self.once.call_once(|| {
            // SAFETY: inside the Once: the only access to `f` and `value`.
            let f = unsafe { (*self.f.get()).take() }.expect("OnceValue function present");
            let r = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "OnceValue function panicked".to_string())
            });
            // SAFETY: as above.
            unsafe { *self.value.get() = Some(r) };
        });
        // SAFETY: written once inside the Once, which completed (Acquire).
        match unsafe { &*self.value.get() } {
            Some(Ok(v)) => v,
            Some(Err(msg)) => panic!("{msg}"),
            None => unreachable!("Once completed without a value"),
        }
    }
}
