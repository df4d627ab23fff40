mod loom_idle;
mod loom_locked;
mod loom_park;
mod loom_runq;

use std::sync::Arc;

/// Runs `f` as a loom model, on a model thread with a larger stack than
/// loom's main thread has (32 KiB: the idle path overflows it), and with
/// room for 4,000 branches per execution (loom's default is 1,000; the
/// longest executions of `fresh_goroutine_given_to_an_m_going_to_sleep_runs`,
/// two Ms' idle paths racing a gift, take about 1,100).
fn model(f: impl Fn() + Send + Sync + 'static) {
    model_with_preemptions(0, f);
}

/// [`model`], exploring at least `preemptions` preemptions per execution
/// even where `LOOM_MAX_PREEMPTIONS` (CI: 2) asks for fewer: for a race
/// that needs three threads each stopped at the wrong point.
fn model_with_preemptions(preemptions: usize, f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let mut builder = loom::model::Builder::new();
    builder.max_branches = builder.max_branches.max(4_000);
    builder.preemption_bound = builder.preemption_bound.map(|b| b.max(preemptions));
    builder.check(move || {
        let f = f.clone();
        loom::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || f())
            .unwrap()
            .join()
            .unwrap();
    });
}
