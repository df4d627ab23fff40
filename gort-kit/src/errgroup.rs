//! golang.org/x/sync/errgroup: a group of goroutines working on subtasks
//! of one task, waited for together, reporting the first error.
//!
//! ```
//! use gort_kit::{context, errgroup};
//!
//! gort_sched::run(|| {
//!     let (g, ctx) = errgroup::with_context::<String>(&context::background());
//!     for i in 0..10 {
//!         let ctx = ctx.clone();
//!         g.go(move || {
//!             if i == 3 {
//!                 return Err(format!("task {i} failed"));
//!             }
//!             // The others see the group's context cancelled.
//!             let _ = ctx.done().recv();
//!             Ok(())
//!         });
//!     }
//!     assert_eq!(g.wait(), Err("task 3 failed".to_string()));
//!     assert!(ctx.is_done());
//! });
//! ```
//!
//! Differences from Go: the error type is a parameter (`E`, returned by
//! every [`Group::wait`] as in Go, so it is `Clone`: wrap an error type
//! that is not in an `Arc`); with [`with_context`] the context's
//! [`cause`](crate::context::cause) is a [`Failed`] carrying the first
//! error's message (the error itself goes to `wait`). A panic in a task is
//! caught and re-raised by `wait`, and cancels the group's context: gort's
//! choice (x/sync lets it crash the process, as any goroutine's panic;
//! here that would be silent in a detached goroutine). A task that calls
//! `goexit` just ends, as in Go.

use crate::context::{self, CancelCauseFunc, Context};
use gort_std::{chan, Receiver, Sender, TrySendError, WaitGroup};
use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// A group of goroutines (Go's `errgroup.Group`): cheap to clone, so tasks
/// may start more tasks in the same group. The zero-value group of Go is
/// [`Group::new`] (or `Group::default()`).
pub struct Group<E> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    wg: WaitGroup,
    /// The first error and the first panic.
    first: Mutex<First<E>>,
    /// `with_context`'s cancel function.
    cancel: Option<CancelCauseFunc>,
    /// The active-goroutine limit (`set_limit`): a token channel whose
    /// capacity is the limit; None without a limit.
    sem: Mutex<Option<Tokens>>,
}

struct First<E> {
    /// The first error.
    err: Option<E>,
    /// The first panic's payload (taken by the first `wait` after it).
    panic: Option<Box<dyn Any + Send>>,
    /// A task panicked: every `wait` panics.
    panicked: bool,
    /// An error or a panic happened (the context was cancelled for it).
    failed: bool,
}

/// One token per active task; the channel's capacity is the limit.
#[derive(Clone)]
struct Tokens {
    tx: Sender<()>,
    rx: Receiver<()>,
}

// Tasks run on their own goroutines, never under the group's locks; a
// panic of one is recorded, not left half-done.
impl<E> std::panic::UnwindSafe for Group<E> {}
impl<E> std::panic::RefUnwindSafe for Group<E> {}

impl<E> Clone for Group<E> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

/// The cause [`with_context`] cancels its context with: the first error's
/// message, or that a task panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The first error's `Display` (or the panic's message).
    pub message: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// A group and a context derived from `parent` that is cancelled the first
/// time a task fails or panics, or when [`Group::wait`] returns, whichever
/// happens first (Go's `errgroup.WithContext`).
pub fn with_context<E: fmt::Display + Send + 'static>(parent: &Context) -> (Group<E>, Context) {
    let (ctx, cancel) = context::with_cancel_cause(parent);
    (Group::build(Some(cancel)), ctx)
}

impl<E: Send + 'static> Group<E> {
    /// An empty group with no context and no limit.
    pub fn new() -> Group<E> {
        Group::build(None)
    }

    fn build(cancel: Option<CancelCauseFunc>) -> Group<E> {
        Group {
            inner: Arc::new(Inner {
                wg: WaitGroup::new(),
                first: Mutex::new(First {
                    err: None,
                    panic: None,
                    panicked: false,
                    failed: false,
                }),
                cancel,
                sem: Mutex::new(None),
            }),
        }
    }

    /// Runs `f` on a new goroutine (Go's `Group.Go`). With a limit set, it
    /// first waits until fewer than that many tasks of the group are
    /// active. The first task to return an error or panic cancels the
    /// group's context.
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: fmt::Display,
    {
        let tokens = self.tokens();
        if let Some(t) = &tokens {
            // Parks while the group is at its limit (forever at limit 0,
            // as in Go).
            t.tx.send(()).expect("the group holds a receiver");
        }
        self.spawn(f, tokens);
    }

    /// Runs `f` on a new goroutine only if the group is below its limit
    /// (Go's `Group.TryGo`); returns whether it did.
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: fmt::Display,
    {
        let tokens = self.tokens();
        if let Some(t) = &tokens {
            match t.tx.try_send(()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        self.spawn(f, tokens);
        true
    }

    fn tokens(&self) -> Option<Tokens> {
        self.inner
            .sem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn spawn<F>(&self, f: F, tokens: Option<Tokens>)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
        E: fmt::Display,
    {
        self.inner.wg.add(1);
        let done = TaskDone {
            inner: self.inner.clone(),
            tokens,
        };
        drop(gort_sched::go(move || {
            // The error's message is taken inside too: a panicking Display
            // is the task's panic.
            let r = catch_unwind(AssertUnwindSafe(|| {
                f().map_err(|e| {
                    let message = e.to_string();
                    (e, message)
                })
            }));
            match r {
                Ok(Ok(())) => {}
                Ok(Err((e, message))) => done.inner.fail(Some(e), None, message),
                // `goexit` in a task ends it without failing the group (Go's
                // errgroup sees no error from a Goexit): `done` finishes it
                // as the goroutine exits.
                Err(p) if p.is::<gort_sched::Goexit>() => resume_unwind(p),
                Err(p) => {
                    let message =
                        format!("errgroup: a task panicked: {}", crate::panic_message(&*p));
                    done.inner.fail(None, Some(p), message);
                }
            }
        }));
    }

    /// Limits the number of active tasks to `n` (Go's `SetLimit`; `None`:
    /// no limit; `Some(0)`: no new task can start).
    ///
    /// # Panics
    /// If tasks of the group are active (Go: `errgroup: modify limit while
    /// N goroutines in the group are still active`).
    pub fn set_limit(&self, n: Option<usize>) {
        let mut sem = self.inner.sem.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = sem.as_ref() {
            let active = t.rx.len();
            if active != 0 {
                panic!("errgroup: modify limit while {active} goroutines in the group are still active");
            }
        }
        *sem = n.map(|limit| {
            let (tx, rx) = chan(limit);
            Tokens { tx, rx }
        });
    }

    /// The limit [`Group::set_limit`] set.
    pub fn limit(&self) -> Option<usize> {
        self.inner
            .sem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|t| t.tx.capacity())
    }

    /// Waits for every task started so far (and those they start), then
    /// returns the first error (Go's `Wait`), cancelling the group's
    /// context. If a task panicked, `wait` panics instead, whatever the
    /// errors (the first `wait` re-raises the task's own payload).
    pub fn wait(&self) -> Result<(), E>
    where
        E: Clone,
    {
        self.inner.wg.wait();
        if let Some(c) = &self.inner.cancel {
            c.cancel(None); // a no-op if the first failure already did
        }
        let mut first = self.inner.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.panicked {
            let p = first.panic.take();
            drop(first);
            match p {
                Some(p) => resume_unwind(p),
                None => panic!("errgroup: a task of the group panicked"),
            }
        }
        match &first.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// A task's end, however it ends (an error, a panic, `goexit`): its token
/// goes back and the group's count goes down, so `wait` never hangs.
struct TaskDone<E> {
    inner: Arc<Inner<E>>,
    tokens: Option<Tokens>,
}

impl<E> Drop for TaskDone<E> {
    fn drop(&mut self) {
        if let Some(t) = &self.tokens {
            let _ = t.rx.try_recv(); // our token (sent before we started)
        }
        self.inner.wg.done();
    }
}

impl<E> Inner<E> {
    fn fail(&self, err: Option<E>, panic: Option<Box<dyn Any + Send>>, message: String) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        // What is not kept is dropped after the lock (user code).
        let mut unused_err = err;
        let mut unused_panic = None;
        if let Some(p) = panic {
            if first.panicked {
                unused_panic = Some(p);
            } else {
                first.panicked = true;
                first.panic = Some(p);
            }
        } else if first.err.is_none() && !first.failed {
            first.err = unused_err.take();
        }
        let was_failed = std::mem::replace(&mut first.failed, true);
        drop(first);
        drop((unused_err, unused_panic));
        if was_failed {
            return;
        }
        if let Some(c) = &self.cancel {
            c.cancel(Some(Arc::new(Failed { message })));
        }
    }
}
