//! The public face of goroutines: `go`, `Builder`, `JoinHandle`, `goexit`,
//! `run`.

use crate::rt::{self, G};
use crate::task::{Payload, Task};
use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic;
use std::sync::Arc;

/// Why a goroutine did not return a value.
pub enum JoinError {
    /// It panicked; the payload, as `std::thread::JoinHandle::join` gives it.
    Panic(Box<dyn Any + Send + 'static>),
    /// It called [`goexit`].
    Goexit,
}

impl JoinError {
    /// Whether the goroutine panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panic(_))
    }

    /// Whether the goroutine called [`goexit`].
    pub fn is_goexit(&self) -> bool {
        matches!(self, JoinError::Goexit)
    }

    /// The panic payload (to `resume_unwind`, or to downcast).
    ///
    /// # Panics
    /// If the goroutine called [`goexit`] instead.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self {
            JoinError::Panic(p) => p,
            JoinError::Goexit => panic!("JoinError::into_panic on a goroutine that called goexit"),
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            JoinError::Panic(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str())),
            JoinError::Goexit => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panic(_) => {
                write!(f, "JoinError::Panic({:?})", self.message().unwrap_or(".."))
            }
            JoinError::Goexit => f.write_str("JoinError::Goexit"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.message()) {
            (JoinError::Panic(_), Some(m)) => write!(f, "goroutine panicked: {m}"),
            (JoinError::Panic(_), None) => f.write_str("goroutine panicked"),
            (JoinError::Goexit, _) => f.write_str("goroutine called goexit"),
        }
    }
}

impl std::error::Error for JoinError {}

/// The unwinding payload of [`goexit`]. Code that catches panics should
/// resume unwinding when it sees this (`payload.is::<Goexit>()`).
#[derive(Debug)]
pub struct Goexit;

/// An owned permission to wait for a goroutine and take its result.
///
/// Dropping it detaches the goroutine. `join` works from a goroutine (parks
/// it) and from a plain thread (parks the thread).
pub struct JoinHandle<T> {
    /// The goroutine's descriptor; this handle holds one of its two
    /// references, so it is not recycled before the handle is gone.
    g: &'static G,
    id: u64,
    take: unsafe fn(*mut Payload) -> Result<T, JoinError>,
    _not_sync: PhantomData<*const ()>,
}

// SAFETY: the handle moves a `T` out of the goroutine's descriptor; sending
// the handle is as safe as sending T.
unsafe impl<T: Send> Send for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// Waits for the goroutine to finish. `Err` if it panicked (with the
    /// payload, like `std::thread`) or called [`goexit`].
    ///
    /// # Panics
    /// If a goroutine joins itself (its own handle reached it): that would
    /// wait forever.
    pub fn join(self) -> Result<T, JoinError> {
        let g = self.g;
        assert!(
            !rt::current_g().is_some_and(|cur| std::ptr::eq(cur, g)),
            "JoinHandle::join: goroutine {} tried to join itself (deadlock)",
            self.id
        );
        // Not dropped: the result is taken here, not detached.
        let this = std::mem::ManuallyDrop::new(self);
        crate::task::join_wait(g);
        // SAFETY: the goroutine published DONE and we hold our reference.
        let r = unsafe { (this.take)(rt::payload(g)) };
        rt::release_g(g);
        r
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        crate::task::join_done(self.g)
    }

    /// The goroutine's id (as in Go's tracebacks).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Drop for JoinHandle<T> {
    /// Detaches the goroutine. Its result is dropped by the goroutine itself
    /// when it finishes, or here if it has finished already.
    fn drop(&mut self) {
        let g = self.g;
        if !crate::task::join_detach(g) {
            // SAFETY: the goroutine published DONE (the only state besides
            // RUNNING a handle can see here) and we hold our reference.
            drop(unsafe { (self.take)(rt::payload(g)) });
        }
        rt::release_g(g);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

/// Configures a goroutine before spawning it.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    migratable: bool,
    compactable: bool,
    system: bool,
    locked: bool,
}

impl Builder {
    /// Default settings: no name, the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the goroutine (shown in stack-overflow reports).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Virtual stack size in bytes (rounded up to whole pages, at least
    /// 16 KiB). Pages are committed only when touched.
    ///
    /// # Panics
    /// If `bytes` exceeds [`gort_os::stack::MAX_STACK_SIZE`] (1 GiB, Go's
    /// maximum stack).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        assert!(
            bytes <= gort_os::stack::MAX_STACK_SIZE,
            "Builder::stack_size: {bytes} bytes exceeds the maximum goroutine stack of {} bytes",
            gort_os::stack::MAX_STACK_SIZE
        );
        self.stack_size = Some(bytes);
        self
    }

    /// Lets the goroutine move between OS threads after it started, as Go's
    /// do: a waker's thread runs it next, which saves a cross-thread wake-up.
    ///
    /// # Safety
    /// Across every blocking call (anything that may park: channel and lock
    /// operations, `join`, sleeps, I/O, `gosched`) the goroutine must hold
    /// nothing thread-affine: no thread-local references or addresses, no
    /// `!Send` values (`Rc`, `MutexGuard` of std, `RefCell` borrows of a
    /// thread-local, `ThreadRng`, crossbeam-epoch `Guard`s, ...). Violating
    /// this is undefined behaviour.
    pub unsafe fn migratable(mut self, yes: bool) -> Builder {
        self.migratable = yes;
        self
    }

    /// Lets the runtime compact this goroutine's stack while it is parked
    /// for a long time (10-20 ms): the live bytes (typically a few hundred)
    /// move to the heap and the stack's pages go back to the kernel, so a
    /// parked goroutine costs about 1 KiB instead of at least 4 KiB. The
    /// bytes are copied back to the same addresses before it resumes.
    ///
    /// # Safety
    /// While the goroutine is parked, nothing but the goroutine itself may
    /// read or write its stack: no scoped thread or other goroutine may hold
    /// a reference into its stack frames, and no raw pointer to its locals
    /// may be used by others (gort's own primitives never do this). Such an
    /// access would see zeroed memory, and its writes would be lost.
    pub unsafe fn compact_when_parked(mut self, yes: bool) -> Builder {
        self.compactable = yes;
        self
    }

    /// Marks the goroutine as a *system goroutine*: part of a runtime layer
    /// (gort-gc's finalizer goroutine, gort-timer's helpers), not of the
    /// program. As in Go, [`crate::num_goroutine`] does not count system
    /// goroutines, so exact leak checks in tests see only their own.
    pub fn system(mut self, yes: bool) -> Builder {
        self.system = yes;
        self
    }

    /// Gives the goroutine an OS thread of its own, locked to it from its
    /// first instruction (Go: a goroutine that calls `LockOSThread` first
    /// thing): a new thread that runs nothing else while the goroutine is
    /// locked. It holds a P only while the goroutine runs (and for up to
    /// 50 µs after it parks, if no other thread wants one). When the
    /// goroutine ends while still locked -- the usual case -- the thread
    /// exits with it; if it calls [`crate::unlock_os_thread`] as often as
    /// it was locked (once here), the thread becomes an ordinary M and also
    /// runs other goroutines. Overrides [`Builder::migratable`].
    ///
    /// For thread-affine C libraries, per-thread kernel state (`setns`,
    /// `unshare`, signal masks, capabilities) and anything that must not
    /// share its thread. Costs a thread creation per spawn (tens of µs).
    ///
    /// ```
    /// // SAFETY: gettid has no preconditions.
    /// let tid = || unsafe { libc::gettid() };
    /// let (a, b) = gort_sched::Builder::new()
    ///     .lock_os_thread()
    ///     .spawn(move || {
    ///         let a = tid();
    ///         gort_sched::gosched();
    ///         (a, tid())
    ///     })
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(a, b);
    /// ```
    pub fn lock_os_thread(mut self) -> Builder {
        self.locked = true;
        self
    }

    /// Starts `f` as a new goroutine. The caller's source location is the
    /// goroutine's `created by` line in dumps ([`crate::stack`]).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (g, id) = rt::newproc(
            rt::Spawn {
                name: self.name.map(Arc::from),
                stack_size: self.stack_size.unwrap_or(0),
                migratable: self.migratable,
                compactable: self.compactable,
                system: self.system,
                site: panic::Location::caller(),
                locked: self.locked,
                here: false,
            },
            Task::<F, T>::VTABLE,
            // SAFETY: newproc hands us the fresh G's unused payload.
            |p| unsafe { Task::<F, T>::install(p, f) },
        );
        // Spawning is a preemption point (the new goroutine is queued).
        rt::preempt_point();
        JoinHandle {
            g,
            id,
            take: Task::<F, T>::take,
            _not_sync: PhantomData,
        }
    }
}

/// Starts `f` as a new goroutine (Go's `go f()`), starting the runtime if
/// needed.
///
/// Spawning is a preemption point: if sysmon asked the calling goroutine
/// to yield (it ran 10 ms without switching), it yields here, and other
/// goroutines of its thread run meanwhile — hold no std guard or
/// thread-local borrow across it.
#[track_caller]
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// Ends the calling goroutine after running every destructor on its stack
/// (Go's `runtime.Goexit`). Its `JoinHandle` reports [`JoinError::Goexit`].
///
/// On the main goroutine of [`run`], the other goroutines keep running; when
/// none is left, `run` panics with Go's message
/// `no goroutines (main called goexit) - deadlock!`.
///
/// # Panics
/// If called from a thread that is not a goroutine.
pub fn goexit() -> ! {
    assert!(
        rt::current_g_any().is_some(), // (inside `syscall` too)
        "gort::goexit called from a thread that is not a goroutine"
    );
    panic::resume_unwind(Box::new(Goexit))
}

/// Runs `f` as the main goroutine and returns its value when it finishes; a
/// panic in it is resumed here. Starts the runtime if needed. Goroutines
/// still running when `f` returns keep running (in Go the process would
/// exit; here the caller decides).
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    finish_main(Builder::new().name("main").spawn(f))
}

/// Like [`run`], but the main goroutine runs on the calling OS thread (the
/// process's main thread when called from `main`: Go's `m0`). For GUI
/// toolkits and other libraries that must be called from the main thread.
///
/// The calling thread becomes an M that runs `f`'s goroutine and nothing
/// else: the thread is the caller's again when this returns, so no other
/// goroutine may ever start on it. The main goroutine is thus always alone
/// on its thread, locked or not ([`crate::lock_os_thread`] at its start
/// only documents the intent). It holds a P only while it runs (and for up
/// to 50 µs after it parks, if no other thread wants one). Goroutines it
/// spawns run on other threads.
///
/// ```
/// // SAFETY (both calls): gettid has no preconditions.
/// let main_tid = unsafe { libc::gettid() };
/// let tid = gort_sched::run_on_this_thread(|| {
///     gort_sched::go(|| 1).join().unwrap();
///     unsafe { libc::gettid() }
/// });
/// assert_eq!(tid, main_tid);
/// ```
///
/// # Panics
/// If called from a goroutine (its thread already runs goroutines); a panic
/// of `f` is resumed here, as in [`run`].
#[track_caller]
pub fn run_on_this_thread<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    assert!(
        rt::current_g_any().is_none() && !rt::on_m(),
        "gort::run_on_this_thread called from a goroutine (its thread already runs goroutines)"
    );
    let (g, id) = rt::newproc(
        rt::Spawn {
            name: Some(Arc::from("main")),
            stack_size: 0,
            migratable: false,
            compactable: false,
            system: false,
            site: panic::Location::caller(),
            locked: false,
            here: true,
        },
        Task::<F, T>::VTABLE,
        // SAFETY: newproc hands us the fresh G's unused payload.
        |p| unsafe { Task::<F, T>::install(p, f) },
    );
    let handle = JoinHandle {
        g,
        id,
        take: Task::<F, T>::take,
        _not_sync: PhantomData,
    };
    rt::run_on_this_thread(rt::sched(), g);
    finish_main(handle)
}

/// `run`'s ending: the main goroutine's value, its panic resumed, or after
/// a `goexit` Go's deadlock message once every goroutine is done.
fn finish_main<T>(h: JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(JoinError::Panic(p)) => panic::resume_unwind(p),
        Err(JoinError::Goexit) => {
            rt::wait_no_goroutines();
            panic!("no goroutines (main called goexit) - deadlock!");
        }
    }
}
