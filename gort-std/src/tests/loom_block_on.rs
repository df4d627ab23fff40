//! loom models of `block_on`'s waker: a wake from another thread racing
//! the poll, the park's commit and the park itself is never lost, and two
//! wakers racing each other ready the owner once (it returns, and nothing
//! is left parked).

use crate::block_on::block_on;
use crate::loom::{Arc, AtomicBool, Ordering, StdMutex};
use loom::thread;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A flag and the waker of the last poll that found it unset.
struct Flag {
    set: AtomicBool,
    waker: StdMutex<Option<Waker>>,
}

impl Flag {
    fn new() -> Arc<Flag> {
        Arc::new(Flag {
            set: AtomicBool::new(false),
            waker: StdMutex::new(None),
        })
    }

    fn fire(&self) {
        self.set.store(true, Ordering::SeqCst);
        let w = self.waker.lock().unwrap().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

struct Wait(Arc<Flag>);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.set.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn wake_from_another_thread_is_not_lost() {
    loom::model(|| {
        let f = Flag::new();
        let f2 = f.clone();
        let t = thread::spawn(move || f2.fire());
        block_on(Wait(f.clone()));
        assert!(f.set.load(Ordering::SeqCst));
        t.join().unwrap();
    });
}

#[test]
fn two_wakers_ready_the_owner_once() {
    loom::model(|| {
        let f = Flag::new();
        // Both fire the same flag; one of them may find no waker (taken by
        // the other) or an old one: the owner still returns.
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let f2 = f.clone();
                thread::spawn(move || f2.fire())
            })
            .collect();
        block_on(Wait(f.clone()));
        for t in ts {
            t.join().unwrap();
        }
    });
}
