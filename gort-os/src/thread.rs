//! OS threads for Ms: named, with an alternate signal stack so the overflow
//! handler can run when a goroutine stack is exhausted.

use std::io;
use std::thread::JoinHandle;

/// Spawns a named OS thread of `stack_size` bytes (0: the platform default)
/// running `f`. The thread gets an alternate signal stack if it has none.
pub fn spawn_named<F>(name: String, stack_size: usize, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut b = std::thread::Builder::new().name(name);
    if stack_size != 0 {
        b = b.stack_size(stack_size);
    }
    b.spawn(move || {
        crate::signal::ensure_altstack();
        f()
    })
}
