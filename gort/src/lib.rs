//! # gort: Go's runtime, for Rust
//!
//! Goroutines — cheap stackful green threads on Go's G/M/P scheduler — for
//! blocking-style Rust code. This facade re-exports every layer; depend on
//! the layers directly to take only what you need:
//!
//! | crate | what it gives |
//! |-------|---------------|
//! | [`gort_os`] (`gort::os`) | context switch and pooled stacks, futex parking, threads, clock, CPU quota |
//! | [`gort_sched`] (`gort::sched`) | goroutines: `go`, `run`, `JoinHandle`, `gosched`, `goexit`, `gomaxprocs`, park/ready, `syscall`/`blocking`, goroutine dumps (`stack`), SIGQUIT and `GOTRACEBACK`, `lock_os_thread` and `run_on_this_thread` (the main thread) |
//! | [`gort_sema`] (`gort::sema`) | Go's runtime semaphores: `semacquire`/`semrelease`, `NotifyList`, `Note` |
//! | [`gort_timer`] (`gort::timer`, `gort::time`) | per-P timer heaps, `sleep`, `RawTimer`; `gort::time` adds Go's channel timers (`Timer`, `Ticker`, `after`, `after_func`) |
//! | [`gort_netpoll`] (`gort::net`) | the netpoller: `TcpListener`, `TcpStream`, `UdpSocket`, `UnixListener`, `UnixStream`, `UnixDatagram` with deadlines; blocking calls park the goroutine |
//! | [`gort_gc`] (`gort::gc`) | garbage collection: `Gc<T>` (reference counts + a concurrent cycle collector, no stack scanning, no root registration), `#[derive(Trace)]`, `Weak`, `set_finalizer`, `add_cleanup`, `gc()`, GOGC/GOMEMLIMIT pacing, `read_mem_stats` |
//! | [`gort_std`] (`gort::sync`) | Go's sync package: `Mutex`, `RwLock`, `WaitGroup`, `Cond`, `Once`, `OnceValue`, `Pool`; channels (`chan`, `Sender`, `Receiver`) and `select!`; `block_on` (`gort::block_on`), the bridge to async Rust |
//! | [`gort_std::signal`] (`gort::signal`) | Go's os/signal: `notify` a channel of signals (never blocking the handler, dropping when the channel is full), `stop`, `ignore`, `reset`, `ignored` |
//! | [`metrics`] (`gort::metrics`) | Go's runtime/metrics: `all()` describes, `read(&mut [Sample])` reads, Go's metric names (`/sched/goroutines:goroutines`, `/gc/cycles/total:gc-cycles`, ...) plus gort's own under `/gort/` |
//! | [`pprof`] (`gort::pprof`) | profiles in pprof's gzipped protobuf (`go tool pprof` reads them) and Go's `debug=1` text: the `Profile` model, `encode`, `write_text`, and the goroutine, block, mutex, heap and CPU profiles |
//! | [`gort_kit`] (`gort::context`, `gort::errgroup`, `gort::semaphore`, `gort::singleflight`) | Go's everyday toolkit: `context` (cancellation trees, deadlines, typed values, causes, `after_func`; `done()` for `select!`), golang.org/x/sync's `errgroup`, weighted `semaphore` and `singleflight` |
//! | [`leak`] (`gort::leak`) | goleak for tests: `verify_none`, `find` and a drop `guard` report goroutines left running (state, frames, `created by`), with retries and ignore rules |
//! | [`debug`] (`gort::debug`) | `serve(addr)`: net/http/pprof's `/debug/pprof/` paths and Prometheus' `/metrics` on a goroutine-served listener |
//! | [`gort_std::fs`] (`gort::fs`) | `std::fs` for goroutines: `File`, `OpenOptions`, `read_dir`, `read`, `write`, ... run on the blocking pool ([`gort_sched::blocking`]), so file I/O does not stall the goroutines sharing the caller's thread |
//!
//! ```
//! let total = gort::run(|| {
//!     let hs: Vec<_> = (0..100u64).map(|i| gort::go(move || i * i)).collect();
//!     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 328_350);
//!
//! // Channels and select, from goroutines or plain threads.
//! let (tx, rx) = gort::chan::<u32>(0);
//! let (_quit_tx, quit) = gort::chan::<()>(0);
//! gort::go(move || (1..=3).for_each(|i| tx.send(i).unwrap()));
//! let mut sum = 0;
//! loop {
//!     gort::select! {
//!         recv(rx) -> v => match v { Ok(v) => sum += v, Err(_) => break },
//!         recv(quit) -> _q => break,
//!     }
//! }
//! assert_eq!(sum, 6);
//! ```
//!
//! The runtime starts itself on first use, as Go's does: `GOMAXPROCS` from
//! the environment, else the cgroup CPU limit, else the CPU count.
//!
//! One rule differs from Go, for soundness: a goroutine that has started
//! never changes OS thread, so thread-locals and `!Send` values on its stack
//! stay valid across blocking calls (see the `gort_sched` docs).

pub use gort_kit::{context, errgroup, semaphore, singleflight};
pub mod debug;
pub use gort_gc as gc;
pub use gort_netpoll as net;
pub mod leak;
pub use gort_os as os;
pub mod metrics;
pub mod pprof;
pub use gort_sched as sched;
pub use gort_sema as sema;
pub use gort_std as sync;
pub use gort_std::fs;
pub use gort_std::signal;
pub use gort_timer as timer;

/// Go's time package: sleeping, timers and tickers on channels.
pub mod time {
    pub use gort_std::{
        after, after_func, sleep, sleep_until, tick, AfterFunc, RecvTimeoutError, Ticker, Timer,
    };
}

/// Runs a blocking call on a pool thread while the goroutine parks (see
/// [`gort_sched::blocking`]).
pub use gort_sched::blocking;
pub use gort_sched::{
    go, goexit, gomaxprocs, goroutine_local, gosched, lock_os_thread, lock_os_thread_alone,
    num_cpu, num_goroutine, os_thread_lock_count, os_thread_siblings, preempt_point, run,
    run_on_this_thread, stack, syscall, traceback, unlock_os_thread, write_stack, Builder,
    JoinError, JoinHandle, LocalKey, Traceback,
};
/// Runs a future to completion, parking the calling goroutine (not its
/// thread) until its waker fires: the bridge to async Rust (see
/// [`gort_std::block_on`]).
pub use gort_std::block_on;
pub use gort_std::{chan, select, Receiver, RecvError, Select, SendError, Sender};

/// The names most programs need: `use gort::prelude::*;`.
pub mod prelude {
    pub use gort_sched::{go, gosched, run, Builder, JoinHandle};
    pub use gort_std::{
        chan, select, Cond, Mutex, Once, Pool, Receiver, RwLock, Select, Sender, WaitGroup,
    };
}
