//! Go's `context` package: cancellation, deadlines and request-scoped
//! values that flow down a tree of [`Context`]s.
//!
//! A [`Context`] is a cheap handle (an `Arc`, or nothing at all for
//! [`background`]). [`with_cancel`], [`with_deadline`], [`with_timeout`]
//! and their `_cause` variants derive a child that is cancelled when its
//! cancel function is called, when its deadline passes (a gort timer, one
//! goroutine-free heap entry, stopped as soon as the context is cancelled),
//! or when its parent is — whichever comes first. [`Context::done`] is a
//! channel that is closed then, usable in [`select!`](gort_std::select!);
//! [`Context::err`] says why ([`Error::Canceled`] or
//! [`Error::DeadlineExceeded`]); [`cause`] gives the error passed to a
//! [`CancelCauseFunc`]. [`with_value`] attaches a value under a typed
//! [`Key`]; [`without_cancel`] keeps the values and drops the
//! cancellation; [`after_func`] runs a function on its own goroutine once a
//! context is done.
//!
//! ```
//! use gort_kit::context;
//! use gort_std::select;
//! use std::time::Duration;
//!
//! gort_sched::run(|| {
//!     let (ctx, cancel) = context::with_cancel(&context::background());
//!     let worker = {
//!         let ctx = ctx.clone();
//!         gort_sched::go(move || {
//!             let mut n = 0u64;
//!             loop {
//!                 select! {
//!                     recv(ctx.done()) -> _ => return n, // torn down
//!                     default => n += 1,
//!                 }
//!                 gort_sched::gosched();
//!             }
//!         })
//!     };
//!     gort_std::sleep(Duration::from_millis(5));
//!     cancel.cancel();
//!     worker.join().unwrap();
//!     assert_eq!(ctx.err(), Some(context::Error::Canceled));
//! });
//! ```
//!
//! # Differences from Go
//! * One concrete type instead of an interface: a custom `Context`
//!   implementation (rare in Go) has no equivalent; the tree, its
//!   propagation and unlinking are all here.
//! * Keys are typed statics ([`Key<T>`]): a value comes back as a `&T`,
//!   with no type assertion, and a key cannot collide with another
//!   package's by accident (Go's advice to use an unexported key type is
//!   the only way a key exists here).
//! * A child that is dropped — every clone of it and its cancel function —
//!   unlinks itself from its parent, so forgetting to call cancel leaks
//!   nothing (Go keeps such a child until the parent is cancelled, and
//!   `go vet` warns). Calling cancel stays the way to release a child
//!   early and to stop its timer at once. One exception: an
//!   [`after_func`] whose function holds a clone of the context it waits
//!   on keeps that context alive (Go's collector would free the cycle;
//!   reference counts cannot) until the context is cancelled or the
//!   registration stopped.
//! * Dropping a cancel function does not cancel (as in Go).
//!
//! # Invariants
//! * A cancellable node is in its nearest cancellable ancestor's
//!   `children` exactly while both are live and neither is cancelled.
//! * Once a node's `state` is non-zero it never changes, its `done`
//!   channel is closed (or never made) and its timer stopped.
//! * Locks are taken parent before child only when linking; cancelling
//!   takes the children out under the parent's lock and cancels them
//!   after releasing it, so no two node locks are ever held together.

use crate::rt::{AtomicBool, AtomicU8, Ordering};
use gort_std::{chan, Mutex, Receiver, Sender};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
#[cfg(not(gort_loom))]
use std::time::Duration;
use std::time::Instant;

/// Why a context is done: Go's `context.Canceled` and
/// `context.DeadlineExceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Its (or an ancestor's) cancel function was called.
    Canceled,
    /// Its (or an ancestor's) deadline passed.
    DeadlineExceeded,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for Error {}

/// The error a context was cancelled with ([`cause`]): what a
/// [`CancelCauseFunc`] was given, or the context's [`Error`] when none was.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A typed key for [`with_value`] (Go's `ctx.Value(key)`), declared as a
/// static: its address is its identity.
///
/// ```
/// use gort_kit::context::{self, Key};
/// static USER: Key<String> = Key::new("user");
/// let ctx = context::with_value(&context::background(), &USER, "ada".to_string());
/// assert_eq!(ctx.value(&USER).map(String::as_str), Some("ada"));
/// ```
pub struct Key<T> {
    name: &'static str,
    /// Interior mutability keeps the static in writable memory, where the
    /// linker never merges two of them: each key's address is its own.
    _unique: std::sync::atomic::AtomicU8,
    _t: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key named `name` (the name is for `Debug` output only).
    pub const fn new(name: &'static str) -> Key<T> {
        Key {
            name,
            _unique: std::sync::atomic::AtomicU8::new(0),
            _t: PhantomData,
        }
    }

    fn id(&'static self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.name)
    }
}

/// A context: cancellation, a deadline and values, inherited from its
/// parent (see the module docs). Cloning is cheap.
#[derive(Clone, Default)]
pub struct Context {
    /// None: the background context (never done, no values).
    node: Option<Arc<Node>>,
}

struct Node {
    /// For values and for `cause` of a value node (None: background).
    parent: Context,
    kind: Kind,
}

enum Kind {
    Cancel(CancelCtx),
    Value {
        key: usize,
        val: Box<dyn Any + Send + Sync>,
    },
    /// `without_cancel`: the parent's values, nothing of its cancellation.
    WithoutCancel,
}

/// `state` values.
const ACTIVE: u8 = 0;
const CANCELED: u8 = 1;
const DEADLINE: u8 = 2;

struct CancelCtx {
    /// Its deadline, or its parent's: the earliest in the chain.
    deadline: Option<Instant>,
    /// ACTIVE, CANCELED or DEADLINE; written once, under `inner`'s lock.
    state: AtomicU8,
    inner: Mutex<CancelInner>,
    /// The nearest cancellable ancestor this node is linked into, and the
    /// key it is linked under (its own address): to unlink on cancel and
    /// on drop.
    linked: Option<Arc<Node>>,
}

#[derive(Default)]
struct CancelInner {
    /// Made on the first `done()` (most contexts are never waited on);
    /// dropping the sender closes it.
    done: Option<(Sender<()>, Receiver<()>)>,
    children: HashMap<usize, Child, BuildAddrHasher>,
    /// What a cause function or deadline gave; None once done means the
    /// context's own [`Error`] (made into a [`Cause`] only when asked:
    /// most cancellations never are).
    cause: Option<Cause>,
    timer: Option<crate::rt::Timer>,
}

enum Child {
    Ctx(Weak<Node>),
    Func(Arc<AfterFuncInner>),
}

impl Node {
    fn cancel_ctx(&self) -> Option<&CancelCtx> {
        match &self.kind {
            Kind::Cancel(c) => Some(c),
            _ => None,
        }
    }
}

/// The background context: never cancelled, no deadline, no values (Go's
/// `context.Background()`). Free: no allocation.
pub fn background() -> Context {
    Context { node: None }
}

/// Go's `context.TODO()`: the background context, for code that does not
/// know yet which context to use.
pub fn todo() -> Context {
    background()
}

impl Context {
    /// The nearest cancellable node in the chain (value nodes pass
    /// through; `without_cancel` and background end it).
    fn cancel_node(&self) -> Option<&Arc<Node>> {
        let mut cur = self.node.as_ref();
        while let Some(n) = cur {
            match &n.kind {
                Kind::Cancel(_) => return Some(n),
                Kind::Value { .. } => cur = n.parent.node.as_ref(),
                Kind::WithoutCancel => return None,
            }
        }
        None
    }

    /// A channel that is closed when the context is done (Go's `Done()`):
    /// receive from it, usually in `select!`; the receive fails
    /// (`Err(RecvError)`) once it is. For a context that can never be done
    /// ([`background`], [`without_cancel`]) it never delivers.
    pub fn done(&self) -> Receiver<()> {
        let Some(n) = self.cancel_node() else {
            return never();
        };
        let c = n.cancel_ctx().expect("a cancel node");
        if c.state.load(Ordering::Acquire) != ACTIVE {
            return closed();
        }
        let mut g = c.inner.lock();
        if c.state.load(Ordering::Relaxed) != ACTIVE {
            return closed();
        }
        g.done.get_or_insert_with(|| chan(0)).1.clone()
    }

    /// Whether anything can ever cancel this context (false for
    /// [`background`] and what derives from it only by values or
    /// [`without_cancel`]).
    #[cfg(not(gort_loom))] // (the semaphore's)
    pub(crate) fn can_be_done(&self) -> bool {
        self.cancel_node().is_some()
    }

    /// Whether the context is done yet, without a channel (an atomic load).
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// `None` while the context is not done; then why (Go's `Err()`).
    pub fn err(&self) -> Option<Error> {
        let n = self.cancel_node()?;
        match n.cancel_ctx()?.state.load(Ordering::Acquire) {
            CANCELED => Some(Error::Canceled),
            DEADLINE => Some(Error::DeadlineExceeded),
            _ => None,
        }
    }

    /// When the context will be cancelled by its deadline, if it has one
    /// (Go's `Deadline()`): its own, or the earliest of its ancestors'.
    pub fn deadline(&self) -> Option<Instant> {
        self.cancel_node()?.cancel_ctx()?.deadline
    }

    /// The value stored under `key` by the nearest [`with_value`] in the
    /// chain (Go's `Value(key)`; [`without_cancel`] keeps them).
    pub fn value<T: Send + Sync + 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        let id = key.id();
        let mut cur = self.node.as_ref();
        while let Some(n) = cur {
            if let Kind::Value { key, val } = &n.kind {
                if *key == id {
                    return val.downcast_ref::<T>();
                }
            }
            cur = n.parent.node.as_ref();
        }
        None
    }

    /// For tests and diagnostics: how many children (contexts and
    /// [`after_func`] registrations) are linked to this context's nearest
    /// cancellable node now.
    #[doc(hidden)]
    pub fn linked_children(&self) -> usize {
        self.cancel_node()
            .and_then(|n| n.cancel_ctx())
            .map_or(0, |c| c.inner.lock().children.len())
    }
}

// No user code runs under a context's lock, and a panic never leaves a
// node half-updated (the state flips last, under the lock): safe to use
// across catch_unwind, as channels are.
impl std::panic::UnwindSafe for Context {}
impl std::panic::RefUnwindSafe for Context {}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Root first, as Go prints it; a loop, as chains can be deep.
        let mut layers = Vec::new();
        let mut cur = self.node.as_ref();
        while let Some(n) = cur {
            layers.push(n);
            cur = n.parent.node.as_ref();
        }
        f.write_str("context.Background")?;
        for n in layers.iter().rev() {
            match &n.kind {
                // A deadline of its own, or one inherited.
                Kind::Cancel(c) => match c.deadline {
                    Some(d) if Some(d) != n.parent.deadline() => write!(f, ".WithDeadline({d:?})")?,
                    _ => f.write_str(".WithCancel")?,
                },
                Kind::Value { .. } => f.write_str(".WithValue")?,
                Kind::WithoutCancel => f.write_str(".WithoutCancel")?,
            }
        }
        Ok(())
    }
}

/// The receiver `done()` gives for contexts that are never done.
#[cfg(not(gort_loom))]
fn never() -> Receiver<()> {
    static NEVER: std::sync::OnceLock<(Sender<()>, Receiver<()>)> = std::sync::OnceLock::new();
    NEVER.get_or_init(|| chan(0)).1.clone()
}

/// The (closed) receiver `done()` gives for contexts already done.
#[cfg(not(gort_loom))]
fn closed() -> Receiver<()> {
    static CLOSED: std::sync::OnceLock<Receiver<()>> = std::sync::OnceLock::new();
    CLOSED
        .get_or_init(|| {
            let (tx, rx) = chan(0);
            drop(tx);
            rx
        })
        .clone()
}

// Under loom a channel belongs to one model execution: fresh ones.
#[cfg(gort_loom)]
fn never() -> Receiver<()> {
    let (tx, rx) = chan(0);
    std::mem::forget(tx);
    rx
}

#[cfg(gort_loom)]
fn closed() -> Receiver<()> {
    chan(0).1
}

/// Cancels its context (Go's `CancelFunc`); cloneable, idempotent.
/// Dropping it does not cancel.
#[derive(Clone)]
pub struct CancelFunc {
    node: Arc<Node>,
}

impl CancelFunc {
    /// Cancels the context and every context derived from it, with
    /// [`Error::Canceled`]; stops its timer. Later calls do nothing.
    pub fn cancel(&self) {
        cancel(&self.node, true, Error::Canceled, None);
    }
}

impl fmt::Debug for CancelFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelFunc")
    }
}

/// Cancels its context with a cause (Go's `CancelCauseFunc`).
#[derive(Clone)]
pub struct CancelCauseFunc {
    node: Arc<Node>,
}

impl CancelCauseFunc {
    /// Cancels the context with [`Error::Canceled`], recording `cause`
    /// (see [`cause`]); `None` records the error itself. Later calls do
    /// nothing.
    pub fn cancel(&self, cause: Option<Cause>) {
        cancel(&self.node, true, Error::Canceled, cause);
    }
}

impl fmt::Debug for CancelCauseFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelCauseFunc")
    }
}

/// A child of `parent` that is cancelled by the returned function or with
/// its parent (Go's `WithCancel`).
pub fn with_cancel(parent: &Context) -> (Context, CancelFunc) {
    let node = new_cancel(parent, None);
    (
        Context {
            node: Some(node.clone()),
        },
        CancelFunc { node },
    )
}

/// [`with_cancel`] whose cancel function records a cause (Go's
/// `WithCancelCause`).
pub fn with_cancel_cause(parent: &Context) -> (Context, CancelCauseFunc) {
    let node = new_cancel(parent, None);
    (
        Context {
            node: Some(node.clone()),
        },
        CancelCauseFunc { node },
    )
}

/// A child of `parent` that is also cancelled, with
/// [`Error::DeadlineExceeded`], at `deadline` (Go's `WithDeadline`). If the
/// parent's deadline is earlier, the child simply inherits it.
#[cfg(not(gort_loom))]
pub fn with_deadline(parent: &Context, deadline: Instant) -> (Context, CancelFunc) {
    with_deadline_inner(parent, deadline, None)
}

/// [`with_deadline`] recording `cause` when the deadline passes (Go's
/// `WithDeadlineCause`).
#[cfg(not(gort_loom))]
pub fn with_deadline_cause(
    parent: &Context,
    deadline: Instant,
    cause: Cause,
) -> (Context, CancelFunc) {
    with_deadline_inner(parent, deadline, Some(cause))
}

/// [`with_deadline`] at `timeout` from now (Go's `WithTimeout`).
#[cfg(not(gort_loom))]
pub fn with_timeout(parent: &Context, timeout: Duration) -> (Context, CancelFunc) {
    with_deadline(parent, deadline_in(timeout))
}

/// [`with_timeout`] recording `cause` (Go's `WithTimeoutCause`).
#[cfg(not(gort_loom))]
pub fn with_timeout_cause(
    parent: &Context,
    timeout: Duration,
    cause: Cause,
) -> (Context, CancelFunc) {
    with_deadline_cause(parent, deadline_in(timeout), cause)
}

/// `now + d`, saturated far in the future.
#[cfg(not(gort_loom))]
fn deadline_in(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

#[cfg(not(gort_loom))]
fn with_deadline_inner(
    parent: &Context,
    deadline: Instant,
    cause: Option<Cause>,
) -> (Context, CancelFunc) {
    if parent.deadline().is_some_and(|p| p < deadline) {
        // The parent's is sooner: this is only a cancellable child.
        return with_cancel(parent);
    }
    let node = new_cancel(parent, Some(deadline));
    let c = node.cancel_ctx().expect("a cancel node");
    let now = Instant::now();
    if deadline <= now {
        cancel(&node, true, Error::DeadlineExceeded, cause);
    } else {
        let weak = Arc::downgrade(&node);
        let cause_at_fire = cause.clone();
        let mut g = c.inner.lock();
        if c.state.load(Ordering::Relaxed) == ACTIVE {
            // A timer, not a goroutine: its callback runs on a goroutine of
            // its own only when it fires; it holds the node weakly, so a
            // dropped context is not kept alive by it.
            g.timer = Some(crate::rt::timer(deadline - now, move || {
                if let Some(n) = weak.upgrade() {
                    cancel(&n, true, Error::DeadlineExceeded, cause_at_fire.clone());
                }
            }));
        }
    }
    (
        Context {
            node: Some(node.clone()),
        },
        CancelFunc { node },
    )
}

/// A new cancellable node under `parent`, linked into its nearest
/// cancellable ancestor (or cancelled at once if that one is done).
fn new_cancel(parent: &Context, deadline: Option<Instant>) -> Arc<Node> {
    let ancestor = parent.cancel_node();
    let node = Arc::new(Node {
        parent: parent.clone(),
        kind: Kind::Cancel(CancelCtx {
            // Its own, or the one it inherits (Go's embedded parent).
            deadline: deadline.or_else(|| parent.deadline()),
            state: AtomicU8::new(ACTIVE),
            inner: Mutex::new(CancelInner::default()),
            linked: ancestor.cloned(),
        }),
    });
    if let Some(a) = ancestor {
        let ac = a.cancel_ctx().expect("a cancel node");
        let mut g = ac.inner.lock();
        let st = ac.state.load(Ordering::Relaxed);
        if st == ACTIVE {
            g.children
                .insert(key_of(&node), Child::Ctx(Arc::downgrade(&node)));
        } else {
            // The parent is already done: so is the child, for the same
            // reason and cause.
            let cause = g.cause.clone();
            drop(g);
            cancel(&node, false, state_error(st), cause);
        }
    }
    node
}

fn key_of(n: &Arc<Node>) -> usize {
    Arc::as_ptr(n) as usize
}

/// Hashes the children map's keys, which are addresses of live nodes:
/// distinct, not chosen by anyone who could aim them at one bucket, and
/// with their low bits fixed by alignment. A multiply by an odd constant
/// (Fibonacci hashing) moves the address's entropy into the high bits, and
/// `finish` rotates them down: hashbrown takes the bucket from the low
/// bits (the top seven are its tag). SipHash's protection against chosen
/// keys buys nothing here.
#[derive(Clone, Copy, Default)]
struct BuildAddrHasher;

#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::BuildHasher for BuildAddrHasher {
    type Hasher = AddrHasher;
    fn build_hasher(&self) -> AddrHasher {
        AddrHasher(0)
    }
}

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `usize` keys; correct for anything else.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn state_error(st: u8) -> Error {
    if st == DEADLINE {
        Error::DeadlineExceeded
    } else {
        Error::Canceled
    }
}

/// Cancels `node` (a cancel node) with `err` and `cause` (None: `err`
/// itself), then its descendants; unlinks it from its ancestor if
/// `unlink`. Iterative: a chain thousands of contexts deep is cancelled on
/// a goroutine's small stack.
fn cancel(node: &Arc<Node>, unlink: bool, err: Error, cause: Option<Cause>) {
    /// Unlinks the node also if starting an `after_func` panics inside
    /// `cancel_one` (a done node's drop does not unlink it). Unlinking a
    /// node another cancel got to first is a no-op.
    struct Unlink<'a>(&'a Arc<Node>);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            unlink_from(self.0.cancel_ctx().expect("a cancel node"), key_of(self.0));
        }
    }
    let guard = unlink.then(|| Unlink(node));
    let mut work = Vec::new();
    if !cancel_one(node, err, cause, &mut work) {
        return; // already cancelled
    }
    drop(guard);
    // Each child with the parent's error and cause (Go's propagation).
    while let Some((child, cause)) = work.pop() {
        cancel_one(&child, err, cause, &mut work);
    }
}

/// Cancels one node (see [`cancel`]); pushes its live children onto
/// `work` and starts its `after_func`s. False if it was already done.
fn cancel_one(
    node: &Arc<Node>,
    err: Error,
    cause: Option<Cause>,
    work: &mut Vec<(Arc<Node>, Option<Cause>)>,
) -> bool {
    let c = node.cancel_ctx().expect("a cancel node");
    let (done, children, timer, cause) = {
        let mut g = c.inner.lock();
        if c.state.load(Ordering::Relaxed) != ACTIVE {
            return false;
        }
        g.cause.clone_from(&cause);
        c.state.store(
            match err {
                Error::Canceled => CANCELED,
                Error::DeadlineExceeded => DEADLINE,
            },
            Ordering::Release,
        );
        (
            g.done.take(),
            std::mem::take(&mut g.children),
            g.timer.take(),
            cause,
        )
    };
    // Closing the channel (its only sender goes) wakes every waiter.
    drop(done);
    if let Some(t) = timer {
        t.stop();
    }
    for child in children.into_values() {
        match child {
            Child::Ctx(w) => {
                if let Some(n) = w.upgrade() {
                    work.push((n, cause.clone()));
                }
            }
            Child::Func(f) => f.start(),
        }
    }
    true
}

/// Removes the child keyed `key` from `c`'s ancestor, if linked.
fn unlink_from(c: &CancelCtx, key: usize) {
    if let Some(a) = &c.linked {
        let ac = a.cancel_ctx().expect("a cancel node");
        // Taken out of the map under the lock, dropped after it (a Weak
        // needs no care; an after_func's state is just memory).
        let removed = ac.inner.lock().children.remove(&key);
        drop(removed);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let key = std::ptr::from_ref(self) as usize;
        if let Kind::Cancel(c) = &mut self.kind {
            // Nobody can cancel or wait on this context any more: unlink it
            // (a parent that lives forever must not collect dead children)
            // and stop its timer (its closure is dropped with it). A done
            // context is unlinked already: its own cancel unlinked it, or
            // its ancestor's took it out with all the children, or it was
            // done from the start and never linked. (Relaxed: we are the
            // last holder, so every write to it happened before.)
            if c.state.load(Ordering::Relaxed) == ACTIVE {
                unlink_from(c, key);
            }
            let timer = c.inner.get_mut().timer.take();
            if let Some(t) = timer {
                t.stop();
            }
            // Never the last reference to the ancestor: `parent` below
            // still leads to it.
            drop(c.linked.take());
        }
        // The ancestors this node was the last holder of, one at a time: a
        // long chain dropped recursively would overflow a goroutine's
        // stack.
        let mut up = self.parent.node.take();
        while let Some(p) = up {
            up = Arc::into_inner(p).and_then(|mut n| n.parent.node.take());
        }
    }
}

/// A context that carries `parent`'s values and `value` under `key` (Go's
/// `WithValue`); done exactly when `parent` is.
pub fn with_value<T: Send + Sync + 'static>(
    parent: &Context,
    key: &'static Key<T>,
    value: T,
) -> Context {
    Context {
        node: Some(Arc::new(Node {
            parent: parent.clone(),
            kind: Kind::Value {
                key: key.id(),
                val: Box::new(value),
            },
        })),
    }
}

/// A context with `parent`'s values that is never cancelled and has no
/// deadline (Go's `WithoutCancel`), for work that must outlive the
/// request that started it.
pub fn without_cancel(parent: &Context) -> Context {
    Context {
        node: Some(Arc::new(Node {
            parent: parent.clone(),
            kind: Kind::WithoutCancel,
        })),
    }
}

/// Why `ctx` was cancelled (Go's `context.Cause`): the cause given to its
/// (or an ancestor's) [`CancelCauseFunc`], or the deadline's cause, or
/// else its [`Error`]; `None` while it is not done.
pub fn cause(ctx: &Context) -> Option<Cause> {
    let n = ctx.cancel_node()?;
    let c = n.cancel_ctx()?;
    if c.state.load(Ordering::Acquire) == ACTIVE {
        return None;
    }
    let given = c.inner.lock().cause.clone();
    Some(given.unwrap_or_else(|| error_cause(state_error(c.state.load(Ordering::Relaxed)))))
}

/// The [`Cause`] of a context done without one: its [`Error`], one shared
/// `Arc` per kind (as Go's `Canceled` is one value), made on first use.
fn error_cause(e: Error) -> Cause {
    static CANCELED: std::sync::OnceLock<Cause> = std::sync::OnceLock::new();
    static DEADLINE: std::sync::OnceLock<Cause> = std::sync::OnceLock::new();
    match e {
        Error::Canceled => CANCELED.get_or_init(|| Arc::new(Error::Canceled)),
        Error::DeadlineExceeded => DEADLINE.get_or_init(|| Arc::new(Error::DeadlineExceeded)),
    }
    .clone()
}

/// The handle of an [`after_func`] registration.
pub struct AfterFuncHandle {
    inner: Arc<AfterFuncInner>,
    /// The cancellable node it is linked into (None: never done).
    linked: Option<Arc<Node>>,
}

struct AfterFuncInner {
    /// Set by whichever comes first: the context being done (which then
    /// starts the function) or `stop`.
    claimed: AtomicBool,
    f: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl AfterFuncInner {
    /// The context is done: start the function on its own goroutine,
    /// unless `stop` came first.
    fn start(&self) {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return;
        }
        let f = self.f.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(f) = f {
            crate::rt::spawn(f);
        }
    }
}

impl AfterFuncHandle {
    /// Stops the function from being started (Go's `stop()`): true if this
    /// call did so; false if it has been started or was already stopped.
    pub fn stop(&self) -> bool {
        if self.inner.claimed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Dropped after the lock (the closure is user code).
        let f = self
            .inner
            .f
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(f);
        if let Some(n) = &self.linked {
            let c = n.cancel_ctx().expect("a cancel node");
            let removed = c
                .inner
                .lock()
                .children
                .remove(&(Arc::as_ptr(&self.inner) as usize));
            drop(removed);
        }
        true
    }
}

impl fmt::Debug for AfterFuncHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AfterFuncHandle")
    }
}

/// Runs `f` on its own goroutine once `ctx` is done — at once if it
/// already is (Go's `context.AfterFunc`). Dropping the handle does not
/// stop it; [`AfterFuncHandle::stop`] does. The registration holds `f`
/// until then: if `f` holds a clone of `ctx` (or of a context derived
/// from it), that context stays alive until it is cancelled or the
/// registration stopped, even when every other handle is gone.
pub fn after_func(ctx: &Context, f: impl FnOnce() + Send + 'static) -> AfterFuncHandle {
    let inner = Arc::new(AfterFuncInner {
        claimed: AtomicBool::new(false),
        f: std::sync::Mutex::new(Some(Box::new(f))),
    });
    let node = ctx.cancel_node().cloned();
    if let Some(n) = &node {
        let c = n.cancel_ctx().expect("a cancel node");
        let mut g = c.inner.lock();
        if c.state.load(Ordering::Relaxed) == ACTIVE {
            g.children
                .insert(Arc::as_ptr(&inner) as usize, Child::Func(inner.clone()));
        } else {
            drop(g);
            inner.start();
        }
    }
    AfterFuncHandle {
        inner,
        linked: node,
    }
}
