//! Goroutine-local storage: the sound replacement for `thread_local!` state
//! that must survive a park.
//!
//! Goroutines bound to one M interleave on its OS thread, so a
//! `thread_local!` is shared by all of them, and a discipline that assumes
//! calls on a thread nest (set a value, call something, restore it) breaks
//! when one goroutine parks inside the region and another enters it. A
//! [`LocalKey`] declared with [`goroutine_local!`](crate::goroutine_local) is instead set *per
//! goroutine*: [`LocalKey::scope`] makes a value visible to the calling
//! goroutine (and nobody else) for the duration of a closure, and
//! [`LocalKey::with`] reads the innermost value the calling goroutine set.
//! This is tokio's `task_local!`, for goroutines.
//!
//! # Design
//!
//! Each G carries a small stack of `(key, type, pointer)` entries, touched
//! only by the goroutine itself on its own stack (never across a switch: the
//! entry is pushed before the closure runs and removed — by identity, since
//! a stackful coroutine inside the goroutine may end scopes out of order —
//! after it returns or unwinds). The value lives in the `scope` call's frame on the goroutine's
//! stack, which stays mapped and in place while it is parked, so the
//! pointer stays valid for as long as the entry exists. A plain OS thread
//! (not a goroutine) has one flow of control, so it uses a per-thread
//! stack of the same pairs. Lookups scan from the innermost entry: scopes
//! are few and shallow in practice, and a scan of a handful of words beats
//! a hash map.
//!
//! Rejected: a per-G `HashMap<TypeId, Box<dyn Any>>` with lazy
//! initialisation (an allocation per goroutine that uses it, a destructor
//! pass at every exit, and a value whose lifetime is the goroutine's, which
//! the scoped form gives for free by nesting).

use crate::rt;
use std::any::TypeId;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

/// One entry: the key's address, the value's type (a second check of the
/// key's identity), and a pointer to the value it is set to.
pub(crate) type Entry = (usize, TypeId, *const ());

thread_local! {
    /// Scopes set by a plain OS thread (not a goroutine). Right across a
    /// park: a plain thread that parks blocks, so nothing else runs on it,
    /// and an M's own stack never runs user code that could set one.
    static THREAD_LOCALS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the calling goroutine's (or plain thread's) entry stack;
/// `None` on a plain thread whose thread-locals are already destroyed (a
/// thread-local destructor running late). `f` must not park or run user
/// code.
fn with_entries<R>(f: impl FnOnce(&mut Vec<Entry>) -> R) -> Option<R> {
    // (A goroutine inside `syscall` keeps its own locals.)
    let Some(g) = rt::current_g_any() else {
        return THREAD_LOCALS.try_with(|l| f(&mut l.borrow_mut())).ok();
    };
    // SAFETY: `g` is the running goroutine, and its entry stack is only ever
    // touched by the goroutine itself, here, without a switch in between.
    Some(f(unsafe { rt::locals(g) }))
}

/// A key for goroutine-local values; declare it with [`goroutine_local!`](crate::goroutine_local).
pub struct LocalKey<T: 'static> {
    /// Never read: it makes the static non-zero-sized, so every key has an
    /// address of its own (the address is the key's identity).
    _unique: u8,
    _marker: PhantomData<fn(&T)>,
}

/// The error of [`LocalKey::try_with`]: the calling goroutine has not set
/// the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessError;

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("goroutine-local value not set in this goroutine")
    }
}

impl std::error::Error for AccessError {}

impl<T: 'static> LocalKey<T> {
    /// Used by [`goroutine_local!`](crate::goroutine_local) only.
    ///
    /// # Safety
    /// The result must initialise a `static` (whose address is the key's
    /// identity): a `const` key could share its address with another
    /// constant.
    ///
    /// ```compile_fail,E0133
    /// const K: gort_sched::LocalKey<u64> = gort_sched::LocalKey::new();
    /// ```
    #[doc(hidden)]
    pub const unsafe fn new() -> LocalKey<T> {
        LocalKey {
            _unique: 0,
            _marker: PhantomData,
        }
    }

    fn id(&'static self) -> usize {
        self as *const LocalKey<T> as usize
    }

    /// Sets the key to `value` for the calling goroutine while `f` runs, and
    /// returns `f`'s result. Other goroutines — including those that run on
    /// the same OS thread while this one is parked inside `f` — do not see
    /// it. Scopes nest: an inner `scope` of the same key shadows the outer
    /// one until it returns.
    ///
    /// # Panics
    /// On a plain thread whose thread-locals are being destroyed (from a
    /// thread-local destructor), where nothing can be recorded.
    pub fn scope<F: FnOnce() -> R, R>(&'static self, value: T, f: F) -> R {
        /// Removes exactly this scope's entry when the scope ends (returns
        /// or unwinds). Scopes of one flow of control nest, but a stackful
        /// coroutine running inside the goroutine can end its scopes in
        /// another order, so the entry is found by identity, not popped.
        struct Pop(Entry);
        impl Drop for Pop {
            fn drop(&mut self) {
                let me = self.0;
                let found = with_entries(|e| match e.iter().rposition(|x| *x == me) {
                    Some(i) => {
                        e.remove(i);
                        true
                    }
                    None => false,
                });
                if found != Some(true) {
                    // The scope ends on another goroutine or thread than it
                    // began (a coroutine moved across threads): its entry
                    // would dangle there. Nothing sound is left to do.
                    gort_os::fatal(
                        "a goroutine_local! scope ended on another goroutine or thread than \
                         it began",
                    );
                }
            }
        }
        let entry = (
            self.id(),
            TypeId::of::<T>(),
            &value as *const T as *const (),
        );
        if with_entries(|e| e.push(entry)).is_none() {
            panic!("LocalKey::scope: this thread's thread-locals are already destroyed");
        }
        let _pop = Pop(entry);
        f()
    }

    /// Calls `f` with the calling goroutine's innermost value of this key.
    ///
    /// # Panics
    /// If the calling goroutine has not set the key (see
    /// [`LocalKey::try_with`]).
    pub fn with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}: use LocalKey::scope first (or try_with)"),
        }
    }

    /// Like [`LocalKey::with`], or `Err` if the calling goroutine has not
    /// set the key (or, on a plain thread, its thread-locals are gone).
    pub fn try_with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> Result<R, AccessError> {
        let (id, ty) = (self.id(), TypeId::of::<T>());
        let p = with_entries(|e| e.iter().rev().find(|x| x.0 == id && x.1 == ty).map(|x| x.2))
            .flatten();
        match p {
            // SAFETY: the entry points at a value of type T (its TypeId
            // matched) set by a `scope` of this key that has not ended on
            // this goroutine or thread (entries are removed when their scope
            // ends, or the process aborts), so its frame is alive; the stack
            // stays in place while the goroutine runs `f`, even if it parks.
            Some(p) => Ok(f(unsafe { &*(p as *const T) })),
            None => Err(AccessError),
        }
    }

    /// Whether the calling goroutine has set the key.
    pub fn is_set(&'static self) -> bool {
        self.try_with(|_| ()).is_ok()
    }

    /// A copy of the calling goroutine's value.
    ///
    /// # Panics
    /// If the calling goroutine has not set the key.
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(|v| *v)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Declares goroutine-local keys ([`LocalKey`]): values set per goroutine
/// with [`LocalKey::scope`] and read with [`LocalKey::with`], the sound
/// replacement for `thread_local!` state that must survive a park (tokio's
/// `task_local!`, for goroutines).
///
/// ```
/// gort_sched::goroutine_local! {
///     /// The request being served by this goroutine.
///     static REQUEST_ID: u64;
/// }
///
/// let h = gort_sched::go(|| {
///     REQUEST_ID.scope(7, || {
///         gort_sched::gosched(); // another goroutine may run on this thread
///         REQUEST_ID.get()
///     })
/// });
/// assert_eq!(h.join().unwrap(), 7);
/// assert!(!REQUEST_ID.is_set()); // not set on this thread
/// ```
#[macro_export]
macro_rules! goroutine_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $(#[$attr])*
        // SAFETY: initialises a static, as `LocalKey::new` requires.
        $vis static $name: $crate::LocalKey<$t> = unsafe { $crate::LocalKey::new() };
        $crate::goroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $(#[$attr])*
        // SAFETY: initialises a static, as `LocalKey::new` requires.
        $vis static $name: $crate::LocalKey<$t> = unsafe { $crate::LocalKey::new() };
    };
    () => {};
}
