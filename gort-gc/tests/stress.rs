//! Nothing is freed while reachable: mutator goroutines and threads rewire
//! a shared graph (moving handles between fields and stacks, dropping
//! roots, upgrading weak pointers) while collections run back to back.
//! Every node carries a canary that its Drop poisons; every visit checks
//! it. At the end every node, cycles included, must be reclaimed.

use gort_gc::{gc, Gc, Trace, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAGIC: u64 = 0x5AFE_C0DE_5AFE_C0DE;
const POISON: u64 = 0xDEAD_DEAD_DEAD_DEAD;
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Both tests allocate counted nodes; the rewiring test ends by asserting
/// that none is left, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Trace)]
struct SNode {
    #[gc(skip)]
    canary: AtomicU64,
    edges: Mutex<Vec<Gc<SNode>>>,
    weak: Mutex<Option<Weak<SNode>>>,
}

impl Drop for SNode {
    fn drop(&mut self) {
        assert_eq!(self.canary.swap(POISON, SeqCst), MAGIC, "double drop");
        LIVE.fetch_sub(1, SeqCst);
    }
}

fn new_node() -> Gc<SNode> {
    LIVE.fetch_add(1, SeqCst);
    Gc::new(SNode {
        canary: AtomicU64::new(MAGIC),
        edges: Mutex::new(Vec::new()),
        weak: Mutex::new(None),
    })
}

fn check(n: &SNode) {
    assert_eq!(n.canary.load(SeqCst), MAGIC, "reachable node was freed");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

type Roots = Arc<Vec<Mutex<Option<Gc<SNode>>>>>;

fn mutate(roots: &Roots, seed: u64, iters: usize) {
    let mut r = Rng(seed | 1);
    let mut stack: Vec<Gc<SNode>> = Vec::new();
    for _ in 0..iters {
        let ri = r.next() % roots.len();
        let Some(mut cur) = roots[ri].lock().unwrap().clone() else {
            *roots[ri].lock().unwrap() = Some(new_node());
            continue;
        };
        check(&cur);
        // Walk a few edges, borrowing only (no clones) where possible.
        for _ in 0..(r.next() % 4) {
            let next = {
                let e = cur.edges.lock().unwrap();
                if e.is_empty() {
                    None
                } else {
                    Some(e[r.next() % e.len()].clone())
                }
            };
            match next {
                Some(n) => {
                    check(&n);
                    cur = n;
                }
                None => break,
            }
        }
        match r.next() % 9 {
            // Move a handle out of a field onto the stack (no count change).
            0 | 1 => {
                let mut e = cur.edges.lock().unwrap();
                if !e.is_empty() {
                    let i = r.next() % e.len();
                    stack.push(e.swap_remove(i));
                }
            }
            // Move a handle from the stack into a field.
            2 | 3 => {
                if let Some(h) = stack.pop() {
                    check(&h);
                    let mut e = cur.edges.lock().unwrap();
                    if e.len() < 6 {
                        e.push(h);
                    }
                }
            }
            // Link to a new node or back to a root (cycles).
            4 => {
                let n = new_node();
                n.edges.lock().unwrap().push(cur.clone());
                cur.edges.lock().unwrap().push(n);
            }
            5 => {
                let other = roots[r.next() % roots.len()].lock().unwrap().clone();
                if let Some(o) = other {
                    let mut e = cur.edges.lock().unwrap();
                    if e.len() < 6 {
                        e.push(o);
                    }
                }
            }
            // Drop a root: its cycle may become garbage.
            6 => {
                roots[r.next() % roots.len()].lock().unwrap().take();
            }
            // Weak pointers: remember one, later upgrade it.
            7 => {
                let w = Gc::downgrade(&cur);
                *cur.weak.lock().unwrap() = Some(w);
                if let Some(s) = stack.last() {
                    let w = s.weak.lock().unwrap().clone();
                    if let Some(back) = w.and_then(|w| w.upgrade()) {
                        check(&back);
                        stack.push(back);
                    }
                }
            }
            // Make a root of the current node; trim the stack.
            _ => {
                *roots[r.next() % roots.len()].lock().unwrap() = Some(cur.clone());
                if stack.len() > 8 {
                    stack.drain(..4);
                }
            }
        }
        for s in &stack {
            check(s);
        }
    }
}

/// The hazard the touch epochs exist for: a handle moved out of a field
/// onto the stack, then the last outside handle to the field's owner
/// dropped, while a collection is between its trace (and the read of the
/// owner's word that follows it) and its claim.
fn hidden_move(iters: usize, stop: &AtomicBool) {
    let mut r = Rng(0x1234_5678);
    for _ in 0..iters {
        if stop.load(Relaxed) {
            break;
        }
        let b = new_node();
        b.edges.lock().unwrap().push(b.clone()); // self-loop
        b.edges.lock().unwrap().push(new_node());
        spin(r.next() % 1500);
        let y = b.edges.lock().unwrap().pop().unwrap();
        drop(b);
        spin(r.next() % 1500);
        check(&y);
        std::thread::yield_now();
        check(&y);
    }
}

/// Busy-waits about `us` microseconds (keeps the thread on-CPU, unlike a
/// sleep; timing only shapes the interleaving, never the verdict).
fn spin(us: usize) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us as u64) {
        std::hint::spin_loop();
    }
}

#[test]
fn hidden_moves_during_collections() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The mutators allocate first, so their registry shards come before the
    // ballast's and their objects are traced before it: the window between
    // a mutator object's trace and the claim spans the ballast's trace.
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let stop = Arc::new(AtomicBool::new(false));
    let ms: Vec<_> = (0..2)
        .map(|_| {
            let (b, s) = (barrier.clone(), stop.clone());
            std::thread::spawn(move || {
                drop(new_node());
                b.wait();
                hidden_move(usize::MAX, &s)
            })
        })
        .collect();
    barrier.wait();
    let s = stop.clone();
    let collector = std::thread::spawn(move || {
        let ballast: Vec<Gc<Vec<u64>>> = (0..if cfg!(miri) { 10 } else { 50_000 })
            .map(|i| Gc::new(vec![i]))
            .collect();
        let end = Instant::now() + Duration::from_millis(if cfg!(miri) { 10 } else { 400 });
        while Instant::now() < end {
            gc();
        }
        s.store(true, SeqCst);
        drop(ballast);
    });
    for m in ms {
        m.join().unwrap();
    }
    collector.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "goroutines (corosensei stacks)")]
fn graph_rewired_during_collections() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let iters = if cfg!(miri) { 200 } else { 300_000 };
    let roots: Roots = Arc::new((0..32).map(|_| Mutex::new(Some(new_node()))).collect());
    // Ballast: live objects that make each collection long enough for the
    // mutators to race its phases.
    let ballast: Vec<Gc<Vec<u64>>> = (0..if cfg!(miri) { 10 } else { 20_000 })
        .map(|i| Gc::new(vec![i]))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let collector = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s.load(SeqCst) {
            gc();
            n += 1;
        }
        n
    });
    // Two goroutines and one thread.
    let gs: Vec<_> = (0..2)
        .map(|i| {
            let roots = roots.clone();
            gort_sched::go(move || mutate(&roots, 0x9E37_79B9 * (i + 1), iters))
        })
        .collect();
    let th = {
        let roots = roots.clone();
        std::thread::spawn(move || mutate(&roots, 0xDEADBEEF, iters))
    };
    for g in gs {
        g.join().unwrap();
    }
    th.join().unwrap();
    stop.store(true, SeqCst);
    let cycles = collector.join().unwrap();
    eprintln!("collections during the run: {cycles}");
    assert!(cycles > 0);
    for r in roots.iter() {
        if let Some(n) = r.lock().unwrap().as_ref() {
            check(n);
        }
        r.lock().unwrap().take();
    }
    drop(roots);
    drop(ballast);
    let end = Instant::now() + Duration::from_secs(30);
    while LIVE.load(SeqCst) != 0 && Instant::now() < end {
        gc();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(LIVE.load(SeqCst), 0, "unreachable cycles left");
}
