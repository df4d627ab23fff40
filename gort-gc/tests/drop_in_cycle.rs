//! A `Drop` impl of a member of a collected cycle cannot reach a freed
//! sibling: the handles between dead members are severed first, so using
//! one panics (in the thread running the collection) instead of reading
//! freed memory, and a smuggled-out handle stays unusable. Its own test
//! binary: the panic surfaces in whichever thread collects.

use gort_gc::{gc, Gc, Trace};
use std::sync::Mutex;

static SMUGGLED: Mutex<Option<Gc<Bad>>> = Mutex::new(None);

#[derive(Trace)]
struct Bad {
    s: String,
    other: Mutex<Option<Gc<Bad>>>,
}

impl Drop for Bad {
    fn drop(&mut self) {
        if let Some(o) = self.other.lock().unwrap().take() {
            if self.s == "smuggler" {
                *SMUGGLED.lock().unwrap() = Some(o);
            } else {
                // Uses a sibling that may already be dropped.
                let _ = o.s.len();
            }
        }
    }
}

fn pair(a: &str, b: &str) {
    let x = Gc::new(Bad {
        s: a.into(),
        other: Mutex::new(None),
    });
    let y = Gc::new(Bad {
        s: b.into(),
        other: Mutex::new(Some(x.clone())),
    });
    *x.other.lock().unwrap() = Some(y);
}

#[test]
fn drop_using_a_dead_sibling_panics() {
    // A live object the panicking cycle examined is freed normally
    // afterwards (a panic once left every examined object pinned, so none
    // could be freed again; the cycle holds no counts now).
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keep = Gc::new(Flag(dropped.clone()));
    pair("user", "user");
    let r = std::panic::catch_unwind(gc);
    let e = r.expect_err("using a dead sibling must panic");
    let msg = e.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("collected"), "{msg}");
    drop(keep);
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "kept alive by the panicking cycle"
    );

    // A handle moved out of a dying cycle is inert: dropping it is a no-op
    // and using it panics.
    pair("smuggler", "smuggler");
    gc();
    let h = SMUGGLED.lock().unwrap().take().expect("smuggled");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.s.len()));
    assert!(r.is_err());
    // Every operation that would touch the freed header panics first
    // (review finding: downgrade, strong_count and the specials did not).
    type Op = Box<dyn Fn(&Gc<Bad>)>;
    let ops: Vec<(&str, Op)> = vec![
        ("clone", Box::new(|h| drop(h.clone()))),
        ("downgrade", Box::new(|h| drop(Gc::downgrade(h)))),
        (
            "strong_count",
            Box::new(|h| {
                let _ = Gc::strong_count(h);
            }),
        ),
        (
            "as_ptr",
            Box::new(|h| {
                let _ = Gc::as_ptr(h);
            }),
        ),
        (
            "set_finalizer",
            Box::new(|h| gort_gc::set_finalizer(h, |_| {})),
        ),
        ("clear_finalizer", Box::new(gort_gc::clear_finalizer)),
        (
            "add_cleanup",
            Box::new(|h| drop(gort_gc::add_cleanup(h, |_: u8| {}, 0u8))),
        ),
    ];
    for (name, op) in &ops {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&h)));
        assert!(r.is_err(), "{name} on a severed handle must panic");
    }
    // A severed handle stored in a live object that later dies in a cycle
    // is skipped by that collection's sever pass (it points at freed
    // memory), and dropping it with the ring is a no-op.
    let a = Gc::new(Ring {
        severed: Mutex::new(Some(h)),
        next: Mutex::new(None),
    });
    let b = Gc::new(Ring {
        severed: Mutex::new(None),
        next: Mutex::new(Some(a.clone())),
    });
    *a.next.lock().unwrap() = Some(b);
    let w = Gc::downgrade(&a);
    drop(a);
    gc();
    assert!(w.upgrade().is_none(), "the ring was collected");
    // The collector still works afterwards.
    gc();
}

/// Sets its flag when dropped.
struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
// SAFETY: no handles.
unsafe impl Trace for Flag {
    fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
}

/// A two-node ring, one node holding a severed handle.
#[derive(Trace)]
struct Ring {
    severed: Mutex<Option<Gc<Bad>>>,
    next: Mutex<Option<Gc<Ring>>>,
}
