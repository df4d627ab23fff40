//! Loom model of the pacer's assist wait (`pacer::assist`) against a
//! cycle's end: an allocator that finds the heap past the assist level
//! either sees the level the ending cycle lowered, or is woken by that end
//! — never left parked (loom reports a model whose threads all block).
//! The timeout that bounds the real wait is not modeled: this checks that
//! the ordinary wake-up needs none.

use crate::heap::heap;
use crate::loom::Ordering::Relaxed;

#[test]
fn assist_is_woken_by_the_cycle_end() {
    loom::model(|| {
        let hp = heap();
        hp.live.store(1 << 20, Relaxed);
        hp.assist_at.store(1 << 10, Relaxed);
        // The collector: the cycle recomputed the level (as `update_goal`
        // does before the cycle's end), then ends.
        let c = loom::thread::spawn(|| {
            heap().assist_at.store(i64::MAX, Relaxed);
            crate::pacer::cycle_ended(None);
        });
        crate::pacer::assist(1 << 20);
        c.join().unwrap();
    });
}
