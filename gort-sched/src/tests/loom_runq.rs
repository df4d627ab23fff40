//! loom models of the P run queue (capacity 4 under loom): every entry put
//! is taken exactly once across the owner's gets, a thief's steals, runnext
//! and the overflow batch.

use crate::loom::RUNQ_SIZE;
use crate::runq::RunQueue;
use loom::sync::Arc;
use loom::thread;

fn item(i: usize) -> *mut usize {
    Box::into_raw(Box::new(i))
}

fn take(p: *mut usize) -> usize {
    // SAFETY: every pointer in these models came from `item` and is taken
    // exactly once (that is what the models check).
    unsafe { *Box::from_raw(p) }
}

/// Owner puts and gets while a thief steals: nothing lost or duplicated.
#[test]
fn put_get_steal() {
    loom::model(|| {
        let victim = Arc::new(RunQueue::<usize>::new());
        let thief_q = RunQueue::<usize>::new();
        for i in 0..3 {
            victim.put(item(i), false).unwrap();
        }
        let v2 = victim.clone();
        let t = thread::spawn(move || {
            let mut got = Vec::new();
            if let Some(g) = v2.steal_into(&thief_q, false) {
                got.push(take(g));
            }
            while let Some((g, _)) = thief_q.get() {
                got.push(take(g));
            }
            got
        });
        let mut mine = Vec::new();
        if let Some((g, _)) = victim.get() {
            mine.push(take(g));
        }
        let mut all = t.join().unwrap();
        while let Some((g, _)) = victim.get() {
            mine.push(take(g));
        }
        all.extend(mine);
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    });
}

/// runnext: the owner's put(next) races a thief allowed to take runnext.
#[test]
fn runnext_race() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        let dst = RunQueue::<usize>::new();
        q.put(item(0), true).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.steal_into(&dst, true).map(take));
        // Kicks 0 to the ring if it is still in runnext.
        q.put(item(1), true).unwrap();
        let stolen = t.join().unwrap();
        let mut all: Vec<usize> = stolen.into_iter().collect();
        while let Some((g, _)) = q.get() {
            all.push(take(g));
        }
        all.sort();
        assert_eq!(all, vec![0, 1]);
    });
}

/// A full ring spills half plus the new entry as one batch while a thief
/// steals concurrently.
#[test]
fn overflow_to_global_with_thief() {
    loom::model(|| {
        let q = Arc::new(RunQueue::<usize>::new());
        let dst = RunQueue::<usize>::new();
        for i in 0..RUNQ_SIZE {
            q.put(item(i), false).unwrap();
        }
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let mut got = Vec::new();
            if let Some(g) = q2.steal_into(&dst, false) {
                got.push(take(g));
                while let Some((g, _)) = dst.get() {
                    got.push(take(g));
                }
            }
            got
        });
        let mut all = Vec::new();
        // The ring is full unless the thief got in first.
        if let Err(batch) = q.put(item(RUNQ_SIZE), false) {
            assert_eq!(batch.len(), RUNQ_SIZE / 2 + 1);
            all.extend(batch.into_iter().map(take));
        }
        all.extend(t.join().unwrap());
        while let Some((g, _)) = q.get() {
            all.push(take(g));
        }
        all.sort();
        assert_eq!(all, (0..=RUNQ_SIZE).collect::<Vec<_>>());
    });
}
