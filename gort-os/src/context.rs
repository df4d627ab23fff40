//! The stackful context switch: a thin layer over corosensei that adds what a
//! runtime needs — a label naming the goroutine for overflow reports, the
//! overflow checks at every switch, a `Copy` handle to suspend from deep
//! inside the goroutine, and *compaction* of suspended stacks.
//!
//! # Compaction
//!
//! A parked goroutine keeps at least one resident page of stack (4 KiB),
//! although it typically uses a few hundred bytes of it. [`Context::compact`]
//! copies the live part — from the stack pointer saved at the last suspend
//! (less a safety margin for the switch's own pushes) to the top — into a
//! heap buffer of exactly that size, and hands back the stack's range so the
//! caller can return its pages to the kernel (batched with others). The next
//! [`Context::resume`] copies the bytes back to the *same addresses* before
//! switching in, so pointers into the stack stay valid. Compaction is for
//! goroutines parked a long time; it costs a copy each way and one page fault
//! on resume.

use crate::signal::{self, OverflowInfo};
use crate::stack::Stack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::ptr::NonNull;
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
///
/// Kept small (a goroutine descriptor holds one): everything derivable from
/// the stack's bounds in `info` is derived, and the rare compaction state
/// is boxed.
pub struct Context {
    co: Option<Coroutine<(), (), (), Stack>>,
    /// The stack's bounds, its guard (`(0, 0)`: an unguarded slab stack,
    /// whose canary each switch checks), the label and the profiler tag.
    info: OverflowInfo,
    /// The live bytes of a compacted stack and where they belong.
    saved: Option<Box<Saved>>,
}

/// A compacted stack's live bytes and the address they were copied from.
struct Saved {
    at: usize,
    bytes: Box<[u8]>,
}

/// Compactions performed so far, process-wide (statistics only).
static COMPACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many stack compactions have happened in this process.
pub fn compactions() -> u64 {
    COMPACTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Bytes below the recorded stack pointer that the switch itself may still
/// push (corosensei pushes three words; the rest is margin).
const SP_MARGIN: usize = 256;

/// Handle used from inside a context to switch back to whoever resumed it.
#[derive(Debug, Clone, Copy)]
pub struct Suspender(NonNull<Yielder<(), ()>>, NonNull<usize>);

impl Suspender {
    /// Switches back to the thread's scheduler stack; returns when resumed.
    ///
    /// # Safety
    /// Must be called on the stack of the context this handle was given to,
    /// while that context is running (not after it finished).
    #[inline(never)]
    pub unsafe fn suspend(self) {
        // The registers an unwinder needs to walk this stack while it is
        // suspended (goroutine dumps), taken here so that the first frame is
        // this function's, whose unwind rule is in the binary's tables
        // (corosensei's switch code below is hand-written assembly).
        // SAFETY: the slots are the reserved top words of this very stack.
        unsafe { crate::unwind::save_regs(self.1.as_ptr()) };
        // SAFETY: the caller guarantees we are on this context's stack, where
        // the Yielder lives for as long as the context runs.
        unsafe { self.0.as_ref().suspend(()) }
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
    ///
    /// # Safety
    /// The code that runs on the context must suspend only through the
    /// [`Suspender`] it is given, never through another context's: in
    /// particular it must not block or park a goroutine of gort-sched (whose
    /// park suspends the *goroutine's* context) while running nested inside
    /// this one. gort-sched's goroutines are the intended user.
    pub unsafe fn new<F>(stack: Stack, label: Label, f: F) -> Context
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
            tag: std::sync::atomic::AtomicUsize::new(0),
        };
        let sp_slot = stack.sp_slot();
        // SAFETY: the slot is the reserved top word of a stack we own.
        unsafe { *sp_slot = 0 };
        let slot = NonNull::new(sp_slot).expect("a stack's top is not null");
        let region = stack.region();
        let co = Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
            f(Suspender(NonNull::from(y), slot))
        });
        let ctx = Context {
            co: Some(co),
            info,
            saved: None,
        };
        debug_assert_eq!(ctx.region(), region);
        ctx
    }

    /// Whether the stack has a guard page (else a canary).
    fn guarded(&self) -> bool {
        self.info.guard != (0, 0)
    }

    /// Where the suspend path saves its registers (the stack's top words).
    fn sp_slot(&self) -> *mut usize {
        crate::stack::sp_slot_of(self.info.stack.1)
    }

    /// The stack's whole mapping region, guard included (an unguarded slab
    /// stack's mapping starts at its bottom).
    fn region(&self) -> (usize, usize) {
        let lo = if self.guarded() {
            self.info.guard.0
        } else {
            self.info.stack.0
        };
        (lo, self.info.stack.1)
    }

    /// Runs the context until it suspends or finishes.
    ///
    /// # Panics
    /// If the context already finished. A panic escaping the function is
    /// propagated here (gort-sched catches panics before that).
    #[inline]
    pub fn resume(&mut self) -> Resumed {
        let co = self.co.as_mut().expect("resume of a finished context");
        if let Some(saved) = self.saved.take() {
            restore(&saved);
        }
        let prev = signal::set_current(&self.info);
        let r = co.resume(());
        signal::set_current(prev);
        if !self.guarded() && !crate::stack::canary_ok_at(self.info.stack.0) {
            signal::report_canary(&self.info);
        }
        match r {
            CoroutineResult::Yield(()) => Resumed::Suspended,
            CoroutineResult::Return(()) => Resumed::Finished,
        }
    }

    /// Compacts a suspended context (see the module docs): saves its live
    /// stack bytes on the heap and returns the stack's whole region, whose
    /// pages the caller may then give back (`stack::release_memory`, which
    /// batches many) before the next resume. Returns `None` if the context
    /// is not suspended mid-run, or is already compacted.
    ///
    /// # Safety
    /// Until the next [`Context::resume`], nothing but this context's own
    /// code may access its stack: no other thread or context may hold a
    /// reference into its frames (the resume copies the saved bytes back
    /// over whatever such an access wrote, and a released page reads as
    /// zero meanwhile).
    pub unsafe fn compact(&mut self) -> Option<(usize, usize)> {
        let co = self.co.as_ref()?;
        if self.saved.is_some() || !co.started() || co.done() {
            return None;
        }
        // SAFETY: the slot lies in our stack's reserved top word.
        let sp = unsafe { *self.sp_slot() };
        let (bottom, top) = self.info.stack;
        if sp <= bottom || sp >= top {
            return None;
        }
        let lo = sp.saturating_sub(SP_MARGIN).max(bottom) & !15;
        let len = top - lo;
        let mut buf = vec![0u8; len].into_boxed_slice();
        // The margin below the recorded stack pointer is dead to memcheck.
        crate::valgrind::make_mem_defined(lo, len);
        // SAFETY: [lo, top) is inside our suspended stack; nothing runs on
        // it; the buffer is a fresh allocation of the same length.
        unsafe { std::ptr::copy_nonoverlapping(lo as *const u8, buf.as_mut_ptr(), len) };
        self.saved = Some(Box::new(Saved { at: lo, bytes: buf }));
        COMPACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(self.region())
    }

    /// Whether the live stack bytes are currently saved on the heap.
    pub fn is_compacted(&self) -> bool {
        self.saved.is_some()
    }

    /// Bytes of stack a compaction saved (0 if not compacted).
    pub fn compacted_len(&self) -> usize {
        self.saved.as_ref().map_or(0, |s| s.bytes.len())
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

    /// Sets the word CPU profile samples taken while this context runs
    /// carry (see [`crate::cpuprof`]; gort-sched stores its goroutine's
    /// label set). The code running on the context changes it with
    /// [`crate::cpuprof::set_current_tag`]. 0 when never set.
    pub fn set_tag(&self, tag: usize) {
        self.info
            .tag
            .store(tag, std::sync::atomic::Ordering::Relaxed);
    }

    /// The word [`Context::set_tag`] (or the code on the context) set last.
    pub fn tag(&self) -> usize {
        self.info.tag.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Unwinds the suspended computation's stack from the registers saved
    /// at its last suspend, pushing return addresses (innermost first, the
    /// first one the exact program counter) onto `out`, at most `max`.
    /// Returns false (pushing nothing) if the context has not started, has
    /// finished, or unwinding is not supported on this target. Reads only
    /// inside the stack's bounds (from the saved bytes if compacted).
    ///
    /// # Safety
    /// The context must be suspended, and nothing may resume, compact or
    /// drop it (or write to its stack) until this returns.
    pub unsafe fn backtrace(&self, out: &mut Vec<usize>, max: usize) -> bool {
        let Some(co) = self.co.as_ref() else {
            return false;
        };
        if !co.started() || co.done() {
            return false;
        }
        let (bottom, top) = self.info.stack;
        let saved = self.saved.as_ref().map(|s| (s.at, &s.bytes[..]));
        let read = |addr: usize| -> Option<usize> {
            if let Some((at, bytes)) = saved {
                if addr % std::mem::size_of::<usize>() != 0 || addr >= top {
                    return None;
                }
                let off = addr.checked_sub(at)?;
                let b = bytes.get(off..off + std::mem::size_of::<usize>())?;
                return Some(usize::from_ne_bytes(b.try_into().ok()?));
            }
            // SAFETY: this suspended stack's mapped, usable range (the guard
            // page lies below `bottom`); nothing writes it meanwhile (the
            // caller's promise). A compacted stack is read from `saved`.
            unsafe { crate::unwind::read_stack_word(bottom, top, addr) }
        };
        let slots = self.sp_slot() as usize;
        let regs = crate::unwind::SavedRegs {
            sp: read(slots).unwrap_or(0),
            pc: read(slots + 8).unwrap_or(0),
            fp: read(slots + 16).unwrap_or(0),
            lr: read(slots + 24).unwrap_or(0),
        };
        crate::unwind::unwind(regs, read, out, max)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Dropping a suspended coroutine unwinds its stack (running its
        // destructors): the stack must hold its bytes again first.
        if let Some(saved) = self.saved.take() {
            restore(&saved);
        }
    }
}

fn restore(s: &Saved) {
    crate::valgrind::make_mem_defined(s.at, s.bytes.len());
    // SAFETY: `at..at+len` is the range compact() saved from this same
    // stack, which stays mapped; nothing runs on it until we switch in.
    unsafe { std::ptr::copy_nonoverlapping(s.bytes.as_ptr(), s.at as *mut u8, s.bytes.len()) };
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
        let body = move |s: Suspender| {
            l2.set(1);
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            l2.set(2);
        };
        // SAFETY: the code suspends only through its own Suspender.
        let mut c = unsafe { Context::new(stack, Label::default(), body) };
        assert_eq!(log.get(), 0);
        assert_eq!(c.resume(), Resumed::Suspended);
        assert_eq!(log.get(), 1);
        assert_eq!(c.resume(), Resumed::Finished);
        assert_eq!(log.get(), 2);
        assert!(c.is_finished());
        let _stack = c.into_stack();
    }

    #[test]
    fn compacted_stack_comes_back_intact() {
        let stack = Stack::new(crate::stack::DEFAULT_STACK_SIZE).unwrap();
        let out = Rc::new(Cell::new(0u64));
        let o2 = out.clone();
        let body = move |s: Suspender| {
            // Live data on the stack, and a pointer into it, across the park.
            let mut arr = [0u64; 64];
            for (i, x) in arr.iter_mut().enumerate() {
                *x = i as u64 * 3;
            }
            let p: *const u64 = &arr[10];
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            // SAFETY: p points into this frame, which is live.
            o2.set(arr.iter().sum::<u64>() + unsafe { *p });
        };
        // SAFETY: the code suspends only through its own Suspender.
        let mut c = unsafe { Context::new(stack, Label::default(), body) };
        assert_eq!(c.resume(), Resumed::Suspended);
        // SAFETY: nothing else touches the context's stack.
        let region = unsafe { c.compact() }.expect("suspended context compacts");
        assert!(c.is_compacted());
        assert!(
            c.compacted_len() < 4096,
            "saved {} bytes",
            c.compacted_len()
        );
        // SAFETY: as above.
        assert!(unsafe { c.compact() }.is_none(), "already compacted");
        // Give the pages back, as the scheduler does: they read as zero now.
        // SAFETY: the region of a compacted stack nobody runs on.
        unsafe { crate::stack::release_memory(vec![region]) };
        assert_eq!(c.resume(), Resumed::Finished);
        assert_eq!(out.get(), (0..64).map(|i| i * 3).sum::<u64>() + 30);
    }

    #[test]
    fn dropping_a_compacted_context_unwinds_an_intact_stack() {
        let seen = Rc::new(Cell::new(0u64));
        let s2 = seen.clone();
        struct D(Rc<Cell<u64>>, [u64; 8]);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.set(self.1.iter().sum());
            }
        }
        let stack = Stack::new(crate::stack::DEFAULT_STACK_SIZE).unwrap();
        let body = move |s: Suspender| {
            let _d = D(s2, [1, 2, 3, 4, 5, 6, 7, 8]);
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            unreachable!("never resumed");
        };
        // SAFETY: the code suspends only through its own Suspender.
        let mut c = unsafe { Context::new(stack, Label::default(), body) };
        c.resume();
        // SAFETY: nothing else touches the context's stack.
        let region = unsafe { c.compact() }.unwrap();
        // SAFETY: the region of a compacted stack nobody runs on.
        unsafe { crate::stack::release_memory(vec![region]) };
        drop(c);
        assert_eq!(seen.get(), 36, "the destructor saw its data");
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
        let body = move |s: Suspender| {
            let _d = D(d2);
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
            unreachable!("never resumed");
        };
        // SAFETY: the code suspends only through its own Suspender.
        let mut c = unsafe { Context::new(stack, Label::default(), body) };
        c.resume();
        drop(c);
        assert!(dropped.get());
    }
}
