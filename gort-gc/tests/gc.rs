//! Public API tests for `Gc<T>`: counting, cycles of many shapes, cells,
//! weak pointers, the derive. They run concurrently, each calling `gc()`;
//! what needs a heap no other collection touches (frees at the last drop,
//! exact stats, hooks) is in `tests/quiet_heap.rs`.

use gort_gc::{gc, Gc, Trace, Weak};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Collects until `want` values were dropped, failing with `what` and the
/// count after 60 s. A cycle needs collecting; an acyclic object whose
/// last handle is dropped while another test's collection examines it is
/// freed when that collection ends (`gc()` waits for it). Claims that
/// need no other collection running are in `tests/quiet_heap.rs`.
fn wait_for_drops(c: &AtomicUsize, want: usize, what: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while c.load(SeqCst) != want {
        assert!(
            Instant::now() < end,
            "{what}: {} of {want} dropped after 60 s of collections",
            c.load(SeqCst)
        );
        gc();
        std::thread::yield_now();
    }
}

/// Counts drops through a shared counter.
struct Drops(Arc<AtomicUsize>);
impl Drop for Drops {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}
// SAFETY: no handles.
unsafe impl Trace for Drops {
    fn trace(&self, _: &mut gort_gc::Tracer<'_>) {}
}

#[derive(Trace)]
struct Node {
    d: Drops,
    next: Mutex<Option<Gc<Node>>>,
    more: Mutex<Vec<Gc<Node>>>,
}

fn node(c: &Arc<AtomicUsize>) -> Gc<Node> {
    Gc::new(Node {
        d: Drops(c.clone()),
        next: Mutex::new(None),
        more: Mutex::new(Vec::new()),
    })
}

#[test]
fn self_cycle_collected() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = node(&c);
    *a.next.lock().unwrap() = Some(a.clone());
    drop(a);
    wait_for_drops(&c, 1, "the self-cycle was not collected");
}

#[test]
fn cycles_of_many_shapes_collected() {
    let c = Arc::new(AtomicUsize::new(0));
    let mut expected = 0;
    // Ring of 2, ring of 100, a clique of 10, a doubly linked list, a tree
    // with parent pointers, a ring with a tail hanging off it.
    for ring in [2usize, 100] {
        let ns: Vec<_> = (0..ring).map(|_| node(&c)).collect();
        for i in 0..ring {
            *ns[i].next.lock().unwrap() = Some(ns[(i + 1) % ring].clone());
        }
        expected += ring;
    }
    {
        let ns: Vec<_> = (0..10).map(|_| node(&c)).collect();
        for a in &ns {
            a.more.lock().unwrap().extend(ns.iter().cloned());
        }
        expected += 10;
    }
    {
        let ns: Vec<_> = (0..50).map(|_| node(&c)).collect();
        for i in 0..49 {
            *ns[i].next.lock().unwrap() = Some(ns[i + 1].clone());
            ns[i + 1].more.lock().unwrap().push(ns[i].clone());
        }
        expected += 50;
    }
    {
        let root = node(&c);
        let mut level = vec![root.clone()];
        let mut count = 1;
        for _ in 0..5 {
            let mut next = Vec::new();
            for p in &level {
                for _ in 0..2 {
                    let ch = node(&c);
                    *ch.next.lock().unwrap() = Some(p.clone());
                    p.more.lock().unwrap().push(ch.clone());
                    next.push(ch);
                    count += 1;
                }
            }
            level = next;
        }
        expected += count;
    }
    {
        let a = node(&c);
        let b = node(&c);
        let tail = node(&c);
        *a.next.lock().unwrap() = Some(b.clone());
        *b.next.lock().unwrap() = Some(a.clone());
        a.more.lock().unwrap().push(tail.clone());
        expected += 3;
    }
    wait_for_drops(&c, expected, "garbage cycles left");
}

#[test]
fn reachable_cycle_is_kept() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = node(&c);
    let b = node(&c);
    *a.next.lock().unwrap() = Some(b.clone());
    *b.next.lock().unwrap() = Some(a.clone());
    drop(b);
    for _ in 0..3 {
        gc();
    }
    assert_eq!(c.load(SeqCst), 0);
    // Still intact.
    let b2 = a.next.lock().unwrap().clone().unwrap();
    assert!(b2.next.lock().unwrap().as_ref().is_some());
    drop(b2);
    drop(a);
    wait_for_drops(&c, 2, "the cycle was not freed once unreachable");
}

#[test]
fn cycle_kept_by_arc_outside_heap() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = node(&c);
    *a.next.lock().unwrap() = Some(a.clone());
    let holder = Arc::new(Mutex::new(Some(a)));
    gc();
    gc();
    assert_eq!(c.load(SeqCst), 0);
    holder.lock().unwrap().take();
    wait_for_drops(&c, 1, "the cycle was not freed once the Arc let go");
}

#[derive(Trace)]
enum Shape {
    Leaf(#[gc(skip)] u32),
    Pair(Gc<Cells>, Gc<Cells>),
    Named { m: HashMap<u32, Gc<Cells>> },
}

#[derive(Trace)]
struct Cells {
    d: Drops,
    rw: RwLock<Option<Gc<Cells>>>,
    once: OnceLock<Gc<Cells>>,
    shape: Mutex<Option<Shape>>,
    boxed: Box<Option<Gc<Cells>>>,
}

fn cells(c: &Arc<AtomicUsize>) -> Gc<Cells> {
    Gc::new(Cells {
        d: Drops(c.clone()),
        rw: RwLock::new(None),
        once: OnceLock::new(),
        shape: Mutex::new(Some(Shape::Leaf(1))),
        boxed: Box::new(None),
    })
}

#[test]
fn cycles_through_every_cell_kind() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = cells(&c);
    let b = cells(&c);
    let d = cells(&c);
    *a.rw.write().unwrap() = Some(b.clone());
    let _ = b.once.set(d.clone());
    *d.shape.lock().unwrap() = Some(Shape::Named {
        m: [(1, a.clone())].into_iter().collect(),
    });
    let e = Gc::new(Cells {
        d: Drops(c.clone()),
        rw: RwLock::new(None),
        once: OnceLock::new(),
        shape: Mutex::new(Some(Shape::Pair(a.clone(), d.clone()))),
        boxed: Box::new(Some(a.clone())),
    });
    *b.rw.write().unwrap() = Some(e.clone());
    drop((a, b, d, e));
    wait_for_drops(&c, 4, "the cycle through every cell kind was not collected");
}

#[test]
fn held_lock_makes_object_a_root() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = node(&c);
    *a.next.lock().unwrap() = Some(a.clone());
    let w = Gc::downgrade(&a);
    let guard_holder = a.clone();
    drop(a);
    {
        let g = guard_holder.next.lock().unwrap();
        gc();
        assert_eq!(c.load(SeqCst), 0);
        drop(g);
    }
    drop(guard_holder);
    wait_for_drops(&c, 1, "the cycle was not collected once its lock was free");
    assert!(w.upgrade().is_none());
}

#[test]
fn weak_upgrade_until_collected() {
    let c = Arc::new(AtomicUsize::new(0));
    let a = node(&c);
    let w: Weak<Node> = Gc::downgrade(&a);
    let w2 = w.clone();
    assert!(Gc::ptr_eq(&w.upgrade().unwrap(), &a));
    *a.next.lock().unwrap() = Some(a.clone());
    drop(a);
    gc();
    wait_for_drops(&c, 1, "the weakly referenced cycle was not collected");
    assert!(w.upgrade().is_none());
    assert!(w2.upgrade().is_none());
    assert!(Weak::ptr_eq(&w, &w2));
}

#[test]
fn deref_and_traits() {
    let a = Gc::new(String::from("hi"));
    assert_eq!(a.len(), 2);
    assert_eq!(format!("{a} {a:?}"), "hi \"hi\"");
    assert_eq!(Gc::strong_count(&a), 1);
    let b = a.clone();
    assert_eq!(Gc::strong_count(&a), 2);
    assert_eq!(Gc::as_ptr(&a), Gc::as_ptr(&b));
    gort_gc::keep_alive(&b);
    let d: Gc<u32> = Gc::default();
    assert_eq!(*d, 0);
}

#[test]
fn gc_concurrent_callers_all_return() {
    let hs: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..5 {
                    gc();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[derive(Trace)]
struct Generic<T: Send + Sync + 'static, const N: usize> {
    items: [T; N],
    unit: (),
    tuple: (u8, Option<Gc<Node>>),
}

#[derive(Trace)]
struct Tuple(
    Mutex<Option<Gc<Tuple>>>,
    #[gc(skip)] std::sync::mpsc::SyncSender<()>,
);

#[derive(Trace)]
struct Unit;

/// The derive handles generics, const generics, tuple structs, unit
/// structs and `#[gc(skip)]`.
#[test]
fn derive_shapes() {
    let c = Arc::new(AtomicUsize::new(0));
    let n = node(&c);
    let g = Gc::new(Generic::<Option<Gc<Node>>, 2> {
        items: [Some(n.clone()), None],
        unit: (),
        tuple: (1, Some(n.clone())),
    });
    *n.next.lock().unwrap() = Some(n.clone());
    drop(n);
    let (tx, _rx) = std::sync::mpsc::sync_channel(1);
    let t = Gc::new(Tuple(Mutex::new(None), tx));
    *t.0.lock().unwrap() = Some(t.clone());
    drop(t);
    let _u = Gc::new(Unit);
    gc();
    assert_eq!(c.load(SeqCst), 0, "reachable through the generic struct");
    drop(g);
    wait_for_drops(
        &c,
        1,
        "the cycle reachable through the generic struct was not collected",
    );
}

mod reexported {
    //! The derive through a re-export, as the `gort` facade will use it.
    pub(crate) mod facade {
        pub(crate) use gort_gc as gc;
    }

    #[derive(facade::gc::Trace)]
    #[gc(crate = "facade::gc")]
    struct Via {
        next: std::sync::Mutex<Option<facade::gc::Gc<Via>>>,
    }

    #[test]
    fn derive_with_crate_path() {
        let v = facade::gc::Gc::new(Via {
            next: std::sync::Mutex::new(None),
        });
        *v.next.lock().unwrap() = Some(v.clone());
        let w = facade::gc::Gc::downgrade(&v);
        drop(v);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while w.upgrade().is_some() && std::time::Instant::now() < end {
            facade::gc::gc();
        }
        assert!(w.upgrade().is_none());
    }
}

#[test]
fn stopping_a_cleanup_whose_arg_holds_the_last_handle() {
    // Review finding: Cleanup::stop dropped the closure under the specials
    // lock; the closure's arg held the last handle, whose release takes the
    // same lock — a self-deadlock. Now the object is simply freed.
    let c = Arc::new(AtomicUsize::new(0));
    let x = node(&c);
    let cleanup = gort_gc::add_cleanup(&x, |_arg: (Gc<Node>,)| {}, (x.clone(),));
    drop(x);
    cleanup.stop();
    wait_for_drops(
        &c,
        1,
        "the object was not freed once its cleanup was stopped",
    );
}

#[test]
// A Gc's per-handle tag is atomic (collector bookkeeping, never part of the
// hash), which clippy's mutable_key_type cannot tell.
#[allow(clippy::mutable_key_type)]
fn comparisons_and_hashing_use_the_values() {
    use std::collections::{BTreeSet, HashSet};
    let a = Gc::new(7u32);
    let b = Gc::new(7u32);
    let c = Gc::new(9u32);
    assert_eq!(a, b);
    assert!(!Gc::ptr_eq(&a, &b));
    assert!(a < c);
    let hs: HashSet<Gc<u32>> = [a.clone(), b.clone(), c.clone()].into_iter().collect();
    assert_eq!(hs.len(), 2);
    assert!(hs.contains(&7u32)); // Borrow<T>
    let bs: BTreeSet<Gc<u32>> = [c.clone(), a.clone()].into_iter().collect();
    assert_eq!(bs.iter().map(|g| **g).collect::<Vec<_>>(), [7, 9]);
    assert_eq!(format!("{:p}", a), format!("{:p}", Gc::as_ptr(&a)));
    let r: &u32 = a.as_ref();
    assert_eq!(*r, 7);
}
