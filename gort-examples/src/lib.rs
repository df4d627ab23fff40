//! Examples of gort that need more than the facade (a C library built with
//! `cc`). The crate itself is empty; see `examples/`:
//!
//! * `thread_affine`: a worker goroutine locked to its OS thread calls a
//!   thread-affine C library (`csrc/affine.c`) while hundreds of goroutines
//!   run and park around it.
//! * `thread_state`: a locked worker sets per-thread state, waits on a
//!   cancellation channel, tears the state down.
//! * `main_thread`: the main goroutine on the process's main thread, as GUI
//!   toolkits need.
//!
//! `tests/examples.rs` runs all three and checks what they print.

/// The thread-affine C library of `csrc/affine.c` (linked by `build.rs`).
pub mod affine {
    extern "C" {
        /// Binds the library to the calling OS thread; returns its id.
        pub fn affine_init() -> libc::c_long;
        /// A call valid only on the bound thread: the number of calls so
        /// far on it (>= 1), or -1 from any other thread.
        pub fn affine_call() -> libc::c_long;
        /// Unbinds the library; the calls made, or -1 off its thread.
        pub fn affine_shutdown() -> libc::c_long;
        /// The calling thread's OS id (gettid).
        pub fn affine_gettid() -> libc::c_long;
    }
}
