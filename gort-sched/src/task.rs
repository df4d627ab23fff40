//! A goroutine's closure and result, stored inline in its descriptor.
//!
//! Spawning allocates nothing in the common case: the closure is written
//! into the G's 128-byte payload area (boxed only when it is larger), the
//! goroutine replaces it with its result there, and the `JoinHandle` reads
//! the result from the same place. The G is recycled when both the
//! goroutine and its handle are done with it (a two-count reference).
//!
//! The join handshake is one atomic: `RUNNING -> DONE` by the goroutine, or
//! `RUNNING -> WAITING` by a joiner that first stored its [`Waiter`] in the
//! G; the goroutine that then finds `WAITING` readies that waiter.

use crate::loom::Ordering;
use crate::rt::{self, G};
use crate::spawn::{Goexit, JoinError};
use crate::waiter::{park, Waiter};
use crate::WaitReason;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

/// Bytes of closure/result state kept inline in a G.
pub(crate) const PAYLOAD: usize = 128;

/// Inline storage for a goroutine's task state.
#[repr(C, align(16))]
pub(crate) struct Payload(#[allow(dead_code)] [MaybeUninit<u8>; PAYLOAD]);

impl Payload {
    pub(crate) const fn new() -> Payload {
        Payload([MaybeUninit::uninit(); PAYLOAD])
    }
}

/// Join states.
pub(crate) const RUNNING: u32 = 0;
pub(crate) const DONE: u32 = 1;
pub(crate) const WAITING: u32 = 2;
/// The handle was dropped before the goroutine finished: the goroutine
/// drops its result itself, on its own stack.
pub(crate) const DETACHED: u32 = 3;

enum State<F, T> {
    Pending(F),
    Done(Result<T, JoinError>),
    Taken,
}

/// Type-erased operations on a payload holding `State<F, T>`.
#[derive(Clone, Copy)]
pub(crate) struct TaskVtable {
    /// Runs the closure and stores the result (on the goroutine's stack).
    pub(crate) run: unsafe fn(&'static G),
    /// Drops whatever state is left when the G is recycled.
    pub(crate) destroy: unsafe fn(*mut Payload),
}

pub(crate) struct Task<F, T>(PhantomData<(F, T)>);

/// Drops the result of a goroutine nobody will join, on the goroutine's own
/// stack (it may block or park). A panicking destructor ends the process, as
/// std does for a thread's result ("thread result panicked on drop").
fn drop_detached<T>(r: Result<T, JoinError>) {
    if panic::catch_unwind(AssertUnwindSafe(move || drop(r))).is_err() {
        rt::fatal("a detached goroutine's result panicked while being dropped");
    }
}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    const INLINE: bool = size_of::<State<F, T>>() <= PAYLOAD && align_of::<State<F, T>>() <= 16;

    pub(crate) const VTABLE: TaskVtable = TaskVtable {
        run: Self::run,
        destroy: Self::destroy,
    };

    /// # Safety
    /// `p` holds a `State<F, T>` installed by [`Task::install`].
    unsafe fn state(p: *mut Payload) -> *mut State<F, T> {
        if Self::INLINE {
            p.cast()
        } else {
            // SAFETY: install stored a Box pointer at the start of p.
            unsafe { *p.cast::<*mut State<F, T>>() }
        }
    }

    /// # Safety
    /// `p` is an unused payload owned by the caller.
    pub(crate) unsafe fn install(p: *mut Payload, f: F) {
        // SAFETY: p is valid for PAYLOAD bytes, 16-aligned; INLINE checked
        // the size and alignment; otherwise we store one pointer.
        unsafe {
            if Self::INLINE {
                ptr::write(p.cast(), State::<F, T>::Pending(f));
            } else {
                ptr::write(
                    p.cast::<*mut State<F, T>>(),
                    Box::into_raw(Box::new(State::<F, T>::Pending(f))),
                );
            }
        }
    }

    /// # Safety
    /// Called once, by the goroutine `g`, on its own stack.
    unsafe fn run(g: &'static G) {
        // SAFETY: the payload of a running goroutine belongs to it until it
        // publishes DONE.
        let st = unsafe { Self::state(rt::payload(g)) };
        // SAFETY: as above.
        let f = match unsafe { ptr::replace(st, State::Taken) } {
            State::Pending(f) => f,
            _ => unreachable!("goroutine run twice"),
        };
        let r = match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => Ok(v),
            Err(p) if p.is::<Goexit>() => Err(JoinError::Goexit),
            Err(p) => Err(JoinError::Panic(p)),
        };
        // The goroutine counts as live while it drops a detached result
        // (that Drop may park: `run`'s "no goroutines" check must not fire).
        if join_detached(g) {
            drop_detached(r);
            // SAFETY: g is the running goroutine (this is its body).
            unsafe { rt::goroutine_count(g, -1) };
            return;
        }
        // A joiner woken below must not count this goroutine any more.
        // SAFETY: g is the running goroutine.
        unsafe { rt::goroutine_count(g, -1) };
        // SAFETY: still ours until complete() below publishes DONE.
        unsafe { ptr::write(st, State::Done(r)) };
        // SAFETY: g is the running goroutine.
        if unsafe { join_complete(g) } {
            // Detached while we stored it: nobody will read it, and the
            // payload is still ours. Live again while its Drop runs.
            // SAFETY: g is the running goroutine.
            unsafe { rt::goroutine_count(g, 1) };
            // SAFETY: as above.
            if let State::Done(r) = unsafe { ptr::replace(st, State::Taken) } {
                drop_detached(r);
            }
            // SAFETY: g is the running goroutine.
            unsafe { rt::goroutine_count(g, -1) };
        }
    }

    /// Takes the result after the join state became DONE.
    ///
    /// # Safety
    /// `p` holds a `State<F, T>` whose goroutine published DONE, and the
    /// caller holds the handle's reference.
    pub(crate) unsafe fn take(p: *mut Payload) -> Result<T, JoinError> {
        // SAFETY: forwarded.
        match unsafe { ptr::replace(Self::state(p), State::Taken) } {
            State::Done(r) => r,
            _ => unreachable!("join without a result"),
        }
    }

    /// # Safety
    /// Called once when the G is recycled (no other reference left).
    unsafe fn destroy(p: *mut Payload) {
        // SAFETY: forwarded; frees the box when the state was boxed.
        unsafe {
            let st = Self::state(p);
            if Self::INLINE {
                ptr::drop_in_place(st);
            } else {
                drop(Box::from_raw(st));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The join handshake (the states above)

/// Goroutine side of the join handshake, after the result is stored.
/// Returns true if the handle was dropped meanwhile (state `DETACHED`): the
/// result is then still the goroutine's, to drop on its own stack.
///
/// # Safety
/// `g` is the running goroutine, which has written its result.
pub(crate) unsafe fn join_complete(gr: &G) -> bool {
    // AcqRel: Release publishes the result to the joiner; Acquire pairs
    // with the joiner's Release CAS to WAITING (its waiter is visible).
    match gr.join_state.swap(DONE, Ordering::AcqRel) {
        WAITING => {
            // SAFETY: the joiner stored the waiter before its CAS and will
            // not touch the cell again.
            if let Some(w) = unsafe { (*gr.join_waiter.get()).take() } {
                w.ready();
            }
            false
        }
        DETACHED => true,
        _ => false,
    }
}

/// Goroutine side, before storing its result: whether the handle is gone
/// already (then nobody will ever read the result).
pub(crate) fn join_detached(g: &G) -> bool {
    // Acquire pairs with join_detach's CAS.
    g.join_state.load(Ordering::Acquire) == DETACHED
}

/// Handle side, when it is dropped unjoined: `RUNNING -> DETACHED`, so the
/// goroutine drops its own result on its own stack. Returns false if the
/// goroutine has finished already (`DONE`): the result is the handle's to
/// drop.
pub(crate) fn join_detach(gr: &G) -> bool {
    // AcqRel: Release/Acquire with the goroutine's swap in join_complete
    // (whichever runs second sees the other's writes).
    gr.join_state
        .compare_exchange(RUNNING, DETACHED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Whether the goroutine has published its result.
pub(crate) fn join_done(g: &G) -> bool {
    // Acquire pairs with join_complete's swap.
    g.join_state.load(Ordering::Acquire) == DONE
}

/// Handle side: waits until the goroutine published its result.
pub(crate) fn join_wait(gr: &G) {
    while gr.join_state.load(Ordering::Acquire) != DONE {
        // SAFETY: only the (single) handle writes the cell, and only while
        // the state is RUNNING (the goroutine reads it after WAITING).
        unsafe { *gr.join_waiter.get() = Some(Waiter::current()) };
        match gr.join_state.compare_exchange(
            RUNNING,
            WAITING,
            // Release publishes the waiter to join_complete's Acquire.
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => park(WaitReason::Join, || true),
            Err(_) => {
                // DONE already: the goroutine never looks at the cell.
                // SAFETY: as above; nobody else touches it now.
                unsafe { *gr.join_waiter.get() = None };
            }
        }
    }
}
