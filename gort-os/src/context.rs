//! The stackful context switch: a thin layer over corosensei that adds what a
//! runtime needs — a label naming the goroutine for overflow reports, the
//! overflow checks at every switch, and a `Copy` handle to suspend from deep
//! inside the goroutine.

use crate::signal::{self, OverflowInfo};
use crate::stack::Stack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::sync::Arc;

/// Who runs on a context, for error messages.
#[derive(Debug, Clone, Default)]
pub struct Label {
    /// Goroutine id.
    pub id: u64,
    /// Optional name (from the goroutine builder).
    pub name: Option<Arc<str>>,
}

/// A suspended or not-yet-started computation on its own stack.
///
/// Must be resumed only on the OS thread that first resumed it, unless the
/// code on it holds nothing thread-affine across a suspend (that contract is
/// the scheduler's to keep; see `gort-sched`).
pub struct Context {
    co: Option<Coroutine<(), (), (), Stack>>,
    info: OverflowInfo,
    canary: Option<crate::stack::RawStack>,
}

/// Handle used from inside a context to switch back to whoever resumed it.
#[derive(Debug, Clone, Copy)]
pub struct Suspender(*const Yielder<(), ()>);

impl Suspender {
    /// Switches back to the thread's scheduler stack; returns when resumed.
    ///
    /// # Safety
    /// Must be called on the stack of the context this handle was given to,
    /// while that context is running (not after it finished).
    #[inline]
    pub unsafe fn suspend(self) {
        // SAFETY: the caller guarantees we are on this context's stack, where
        // the Yielder lives for as long as the context runs.
        unsafe { (*self.0).suspend(()) }
    }
}

/// What a [`Context::resume`] came back with.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Resumed {
    /// The context called [`Suspender::suspend`].
    Suspended,
    /// The function returned; the stack can be reclaimed.
    Finished,
}

impl Context {
    /// Prepares `f` to run on `stack`. Nothing runs until [`Context::resume`].
    pub fn new<F>(stack: Stack, label: Label, f: F) -> Context
    where
        F: FnOnce(Suspender) + 'static,
    {
        signal::install_overflow_handler();
        let (lo, hi) = stack.bounds();
        let info = OverflowInfo {
            guard: stack.guard().unwrap_or((0, 0)),
            stack: (lo, hi),
            id: label.id,
            name: label.name,
        };
        let canary = (!stack.is_guarded()).then(|| stack.raw());
        let co = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
            f(Suspender(y as *const _))
        });
        Context {
            co: Some(co),
            info,
            canary,
        }
    }

    /// Runs the context until it suspends or finishes.
    ///
    /// # Panics
    /// If the context already finished. A panic escaping the function is
    /// propagated here (gort-sched catches panics before that).
    #[inline]
    pub fn resume(&mut self) -> Resumed {
        let co = self.co.as_mut().expect("resume of a finished context");
        let prev = signal::set_current(&self.info);
        let r = co.resume(());
        signal::set_current(prev);
        if let Some(raw) = &self.canary {
            if !raw.canary_ok() {
                signal::report_canary(&self.info);
            }
        }
        match r {
            CoroutineResult::Yield(()) => Resumed::Suspended,
            CoroutineResult::Return(()) => Resumed::Finished,
        }
    }

    /// Whether the function has returned.
    pub fn is_finished(&self) -> bool {
        self.co.as_ref().is_none_or(|c| c.done())
    }

    /// Takes the stack back after the function returned, for reuse.
    ///
    /// # Panics
    /// If the context has not finished.
    pub fn into_stack(mut self) -> Stack {
        self.co.take().expect("context already taken").into_stack()
    }

    /// The label this context was created with.
    pub fn label_id(&self) -> u64 {
        self.info.id
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.info.id)
            .field("stack", &self.info.stack)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn suspend_and_resume_in_order() {
        let log = Rc::new(Cell::new(0));
        let l2 = log.clone();
        let stack = Stack::new(crate::stack::DEFAULT_STACK_SIZE).unwrap();
        let mut c = Context::new(stack, Label::default(), move |s| {
            l2.set(1);
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            l2.set(2);
        });
        assert_eq!(log.get(), 0);
        assert_eq!(c.resume(), Resumed::Suspended);
        assert_eq!(log.get(), 1);
        assert_eq!(c.resume(), Resumed::Finished);
        assert_eq!(log.get(), 2);
        assert!(c.is_finished());
        let _stack = c.into_stack();
    }

    #[test]
    fn drop_of_suspended_context_runs_destructors() {
        struct D(Rc<Cell<bool>>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let d2 = dropped.clone();
        let stack = Stack::new(crate::stack::DEFAULT_STACK_SIZE).unwrap();
        let mut c = Context::new(stack, Label::default(), move |s| {
            let _d = D(d2);
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            unreachable!("never resumed");
        });
        c.resume();
        drop(c);
        assert!(dropped.get());
    }
}
