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
    pair("user", "user");
    let r = std::panic::catch_unwind(gc);
    let e = r.expect_err("using a dead sibling must panic");
    let msg = e.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("collected"), "{msg}");

    // A handle moved out of a dying cycle is inert: dropping it is a no-op
    // and using it panics.
    pair("smuggler", "smuggler");
    gc();
    let h = SMUGGLED.lock().unwrap().take().expect("smuggled");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.s.len()));
    assert!(r.is_err());
    drop(h);
    // The collector still works afterwards.
    gc();
}
