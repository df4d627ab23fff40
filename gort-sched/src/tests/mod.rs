mod loom_idle;
mod loom_locked;
mod loom_park;
mod loom_runq;

use std::sync::Arc;

/// Runs `f` as a loom model, on a model thread with a larger stack than
/// loom's main thread has (32 KiB: the idle path overflows it).
fn model(f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    loom::model(move || {
        let f = f.clone();
        loom::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || f())
            .unwrap()
            .join()
            .unwrap();
    });
}
