//! # gort-os: the OS layer under gort's scheduler
//!
//! Everything the scheduler needs from the machine, and nothing it does not:
//!
//! * [`context`] — the stackful context switch. A goroutine is a
//!   [`context::Context`]: a corosensei coroutine on a gort [`stack::Stack`],
//!   labelled with the goroutine's id and name so that a stack overflow can say
//!   whose it was. A suspended context can be *compacted*: its live stack
//!   bytes saved on the heap and its pages returned, restored in place on
//!   resume.
//! * [`stack`] — stacks, pooled per thread (per M) with a global overflow list
//!   and batched `madvise`. Every stack has a guard page: installed inside
//!   16 MiB slabs with `MADV_GUARD_INSTALL` (Linux 6.13+), so a million
//!   guarded goroutines run on the default `vm.max_map_count` of 65530; on
//!   older kernels, a guard mapping per stack within a budget of that cap,
//!   then a clear error (or, by an `unsafe` opt-in, canary-checked unguarded
//!   stacks).
//! * [`futex`] — waiting on a 32-bit word, and [`futex::Parker`], the one-token
//!   parker that idle Ms and plain OS threads sleep on.
//! * [`barrier`] — asymmetric fences: a [`barrier::light`] fence for a hot
//!   path that pairs with a rare [`barrier::heavy`] one (`membarrier(2)`).
//! * [`cell`] — [`cell::UnsafeCell`], checked by loom in model builds.
//! * [`lock`] — [`lock::RawLock`], the runtime's short-hold lock (spin, yield,
//!   then futex; Go's `runtime.mutex`) for channels and timer heaps.
//! * [`thread`] — named OS threads with an alternate signal stack.
//! * [`clock`] — [`clock::nanotime`], the monotonic clock.
//! * [`cpu`] — [`cpu::num_cpu`] (the affinity mask) and
//!   [`cpu::default_procs`] (Go 1.25's cgroup-aware default for `GOMAXPROCS`).
//! * [`unwind`] — walking a suspended goroutine's stack from the registers
//!   its last switch saved (framehop over the loaded objects' CFI), and
//!   symbolising return addresses, for goroutine dumps.
//! * [`cpuprof`] — the CPU profiler's sampler: a SIGPROF handler that
//!   copies the interrupted registers and top of stack into a lock-free
//!   ring, and a drain that unwinds the copies (goroutine id and profiler
//!   tag attached) for the pprof builder above.
//! * [`signal`] — the SIGSEGV handler that turns a guard-page hit into
//!   `fatal error: stack overflow in goroutine N "name"`.
//!
//! ## Design
//!
//! The context switch is corosensei's: about 2 ns a round trip, correct forced
//! unwinding (dropping a parked goroutine runs its destructors), backtraces
//! through the switch, and no process-wide side effects. We considered hand
//! written assembly (may, Go): no faster, and it would have to re-derive
//! corosensei's unwinding and CFI work. We considered `ucontext` (swapcontext
//! does a signal-mask system call per switch: ~100x slower).
//!
//! Stacks cost what they touch: a parked goroutine that never went deeper than
//! a few hundred bytes has one resident page. Memory is returned to the kernel
//! only in batches, when a thread's cache overflows; a goroutine exit is a push
//! onto a thread-local vector.
//!
//! Rejected: growing stacks by copying (Go's way) needs precise pointer maps
//! Rust does not have; segmented stacks need compiler support. Fixed-size
//! virtual stacks with lazy commit are the Rust answer.
//!
//! ## Platform
//!
//! Linux is the first-class target (futex, cgroups, `max_map_count`). Other
//! Unixes build, with `parking_lot_core` for parking and no cgroup limit.
//!
//! # Invariants
//!
//! * A `Context` is resumed only by one OS thread at a time, and (for the safe
//!   scheduler API) always the same one.
//! * While a context runs, the thread-local overflow info points at it.
//! * Every stack has a guard page, unless the program called the `unsafe`
//!   `stack::allow_unguarded_stacks`; an unguarded stack's canary is zero
//!   unless its goroutine overflowed.

#![cfg(unix)]

mod loom;

pub mod barrier;
pub mod cell;
pub mod clock;
pub mod cpu;
pub mod futex;
pub mod lock;

#[cfg(not(gort_loom))]
pub mod context;
#[cfg(not(gort_loom))]
pub mod cpuprof;
#[cfg(not(gort_loom))]
pub mod signal;
#[cfg(not(gort_loom))]
pub mod stack;
#[cfg(not(gort_loom))]
pub mod thread;
#[cfg(not(gort_loom))]
pub mod unwind;
#[cfg(not(gort_loom))]
mod valgrind;

#[cfg(all(test, gort_loom))]
mod tests;

/// Ends the process for a broken runtime invariant or a failure nothing can
/// recover from (Go's `runtime.fatal`): prints `fatal error: <msg>` and
/// aborts, without unwinding (there is nobody sound to unwind to). The one
/// exit path every gort layer uses, so every such death reads the same.
#[cold]
pub fn fatal(msg: &str) -> ! {
    // Not eprintln!: it panics if stderr fails (a closed pipe), and this
    // must never unwind. A failed write is ignored; the abort still comes.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "fatal error: {msg}");
    std::process::abort()
}
