//! Goroutine-local storage (`goroutine_local!`): per goroutine, even when
//! goroutines interleave on one OS thread (issue 11.6b, the sound
//! replacement for LIFO thread-local disciplines such as `scoped-tls`).

use gort_sched::{go, goroutine_local, gosched, init, run, Config};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

goroutine_local! {
    /// A value per goroutine.
    static ID: u64;
    static NAME: String;
}

fn one_p() {
    init(Config {
        procs: 1,
        ..Config::default()
    });
}

#[test]
fn scope_sets_with_reads_and_nests() {
    one_p();
    run(|| {
        assert!(!ID.is_set());
        assert!(ID.try_with(|_| ()).is_err());
        ID.scope(1, || {
            assert_eq!(ID.get(), 1);
            ID.scope(2, || assert_eq!(ID.get(), 2));
            assert_eq!(ID.get(), 1);
            NAME.scope("x".to_string(), || {
                NAME.with(|n| assert_eq!(n, "x"));
                assert_eq!(ID.get(), 1);
            });
        });
        assert!(!ID.is_set());
    });
}

/// Goroutines interleaving on one thread each see their own value, in the
/// order that breaks a thread-local LIFO discipline: A sets and parks, B
/// sets and parks, A's scope ends first, then B reads, and C sees nothing.
#[test]
fn interleaved_goroutines_on_one_thread_see_their_own_values() {
    one_p();
    run(|| {
        let step = Arc::new(AtomicUsize::new(0));
        let wait_for = |step: &AtomicUsize, n: usize| {
            while step.load(Ordering::SeqCst) < n {
                gosched();
            }
        };
        let s = step.clone();
        let a = go(move || {
            let t = std::thread::current().id();
            ID.scope(10, || {
                s.store(1, Ordering::SeqCst);
                wait_for(&s, 2); // B sets its value meanwhile
                assert_eq!(ID.get(), 10);
            });
            s.store(3, Ordering::SeqCst);
            t
        });
        let s = step.clone();
        let b = go(move || {
            let t = std::thread::current().id();
            wait_for(&s, 1);
            ID.scope(20, || {
                s.store(2, Ordering::SeqCst);
                wait_for(&s, 3); // A's scope has ended
                assert_eq!(ID.get(), 20);
            });
            assert!(!ID.is_set());
            t
        });
        let (ta, tb) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(ta, tb, "one P: both ran on the same thread");
        let c = go(|| ID.is_set()).join().unwrap();
        assert!(!c, "a fresh goroutine sees no value");
    });
}

#[test]
fn a_panic_ends_the_scope() {
    one_p();
    run(|| {
        let r = std::panic::catch_unwind(|| ID.scope(5, || panic!("boom")));
        assert!(r.is_err());
        assert!(!ID.is_set());
        ID.scope(6, || assert_eq!(ID.get(), 6));
    });
}

#[test]
fn plain_threads_have_their_own_scopes() {
    ID.scope(1, || {
        let t = std::thread::spawn(|| ID.is_set()).join().unwrap();
        assert!(!t);
        assert_eq!(ID.get(), 1);
        assert!(!go(|| ID.is_set()).join().unwrap());
    });
}

#[test]
#[should_panic(expected = "not set in this goroutine")]
fn with_on_an_unset_key_panics() {
    ID.with(|_| ());
}

/// From a thread-local destructor that runs after gort's own per-thread
/// state is gone, `try_with`/`is_set` answer "not set" instead of panicking
/// (a panic in a thread-local destructor aborts the process).
#[test]
fn try_with_from_a_late_thread_local_destructor() {
    struct Late;
    impl Drop for Late {
        fn drop(&mut self) {
            assert!(!ID.is_set());
            assert!(ID.try_with(|_| ()).is_err());
        }
    }
    thread_local! {
        // Plain test threads only (not goroutines): nothing parks here.
        static LATE: std::cell::RefCell<Option<Late>> = const { std::cell::RefCell::new(None) };
    }
    std::thread::spawn(|| {
        // Register ours first, then touch gort's per-thread scopes:
        // destructors run in reverse order, so gort's are gone when ours runs.
        LATE.with(|l| *l.borrow_mut() = Some(Late));
        ID.scope(1, || ());
    })
    .join()
    .unwrap();
}

/// A stackful coroutine inside the flow ends its scope after the flow's
/// own scope ended: each scope removes exactly its own entry (the flow's
/// used to pop the coroutine's, leaving its own pointing into a dead frame).
#[test]
fn scopes_ended_out_of_order_by_a_coroutine() {
    use gort_os::context::{Context, Label, Suspender};
    use gort_os::stack::Stack;
    let body = |s: Suspender| {
        NAME.scope("inner".to_string(), || {
            // SAFETY: on this context's own stack while it runs.
            unsafe { s.suspend() };
        });
    };
    // SAFETY: the body suspends only through its own Suspender and never
    // parks a goroutine (this is a plain thread).
    let mut c = unsafe { Context::new(Stack::new(64 * 1024).unwrap(), Label::default(), body) };
    NAME.scope("outer".to_string(), || {
        c.resume(); // the coroutine's scope is now above ours, and open
        NAME.with(|n| assert_eq!(n, "inner"));
    }); // ours ends first: it must remove its own entry
    NAME.with(|n| assert_eq!(n, "inner", "the coroutine's scope is still open"));
    c.resume(); // the coroutine's scope ends
    assert!(!NAME.is_set());
    assert!(c.is_finished());
}
