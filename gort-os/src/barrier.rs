//! Asymmetric fences: a [`light`] fence that costs a compiler barrier,
//! paired with a [`heavy`] fence that makes every running thread of the
//! process execute a full memory barrier (Linux's `membarrier(2)`,
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED`).
//!
//! For a Dekker-style handshake between a hot side and a rare side. The hot
//! side stores its flag, calls [`light`], then loads the rare side's flag;
//! the rare side stores its flag, calls [`heavy`], then loads the hot
//! side's. As with two `fence(SeqCst)`, at least one of them sees the
//! other's store. The hot side pays no atomic read-modify-write and no
//! `mfence` (a locked instruction costs 7-8 ns on the 2-core VM gort is
//! measured on); the rare side pays a system call and an interrupt per CPU
//! running one of our threads (microseconds).
//!
//! Why it holds: `membarrier` runs a full barrier on the calling CPU, then
//! on every CPU currently running a thread of this process, before it
//! returns. A hot-side load that executed before its CPU's barrier belongs
//! to a sequence whose flag store that barrier made visible; one that
//! executes after it sees the rare side's store, which preceded the
//! syscall. A thread that was not running passes through the scheduler's
//! own full barriers before it runs again.
//!
//! Where the command is missing (kernels before 4.14, seccomp filters that
//! return an error, other Unixes) both sides fall back to `fence(SeqCst)`.
//! The hot side checks which mode is on with one relaxed load; it skips its
//! fence only once the mode says every heavy fence uses the syscall. The
//! mode is decided once (the first probe's answer wins a compare-exchange;
//! a concurrent probe adopts it) and never changes, so any mixture of the
//! modes keeps the guarantee. Under loom both are `fence(SeqCst)`, which is
//! what loom can model; the expedited mode is outside the Rust memory model
//! and rests on the argument above (and `tests` below).

#[cfg(not(gort_loom))]
use std::sync::atomic::{AtomicU8, Ordering};

/// Not yet probed: the light side fences fully.
#[cfg(not(gort_loom))]
const UNKNOWN: u8 = 0;
/// Registered: every heavy fence is a `membarrier`; the light side only
/// stops the compiler.
#[cfg(not(gort_loom))]
const EXPEDITED: u8 = 1;
/// Unavailable: both sides `fence(SeqCst)`.
#[cfg(not(gort_loom))]
const FALLBACK: u8 = 2;

#[cfg(not(gort_loom))]
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The hot side's fence: orders this thread's earlier stores before its
/// later loads against a concurrent [`heavy`] fence (and only against
/// that: two light fences do not order each other).
#[inline]
pub fn light() {
    #[cfg(not(gort_loom))]
    {
        // Relaxed: EXPEDITED is only stored after the registration
        // succeeded, and the heavy side (not this load) carries the order.
        if MODE.load(Ordering::Relaxed) == EXPEDITED {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }
    #[cfg(gort_loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

/// Probes (once) for the kernel's expedited barriers, so that [`light`]
/// fences are cheap from now on; until a probe they are full fences. A
/// [`heavy`] fence probes too. Call it where the hot side is set up.
pub fn prepare() {
    #[cfg(not(gort_loom))]
    if MODE.load(Ordering::Relaxed) == UNKNOWN {
        probe();
    }
}

/// The rare side's fence: when it returns, every thread of the process that
/// was running has executed a full barrier since it was called, so each
/// [`light`] fence before it is ordered as a `fence(SeqCst)` would be.
/// Costs a system call (microseconds): for the rare side only.
pub fn heavy() {
    #[cfg(not(gort_loom))]
    {
        let mode = match MODE.load(Ordering::Relaxed) {
            UNKNOWN => probe(),
            m => m,
        };
        // Our own side fenced in any mode (the syscall fences its caller
        // too; this costs nothing beside it and does not rest on that).
        std::sync::atomic::fence(Ordering::SeqCst);
        if mode == EXPEDITED {
            expedited();
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }
    #[cfg(gort_loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

#[cfg(all(not(gort_loom), target_os = "linux"))]
const CMD_QUERY: libc::c_long = 0;
#[cfg(all(not(gort_loom), target_os = "linux"))]
const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
#[cfg(all(not(gort_loom), target_os = "linux"))]
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

#[cfg(all(not(gort_loom), target_os = "linux"))]
fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integers and a CPU id (unused without
    // MEMBARRIER_CMD_FLAG_CPU) and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// Registers the process for expedited private barriers if the kernel
/// offers them, and records the outcome. Two threads may probe at once:
/// registering twice is harmless, and the first outcome recorded stands
/// (the other probe returns it).
#[cfg(not(gort_loom))]
#[cold]
fn probe() -> u8 {
    #[cfg(target_os = "linux")]
    let mode = {
        let both = CMD_PRIVATE_EXPEDITED | CMD_REGISTER_PRIVATE_EXPEDITED;
        let q = membarrier(CMD_QUERY);
        if q >= 0 && q & both == both && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
            EXPEDITED
        } else {
            FALLBACK
        }
    };
    #[cfg(not(target_os = "linux"))]
    let mode = FALLBACK;
    // The first answer stands: were a second probe to disagree (a
    // registration failing for memory while another succeeded), a heavy
    // fence that read FALLBACK could pair with a light one that read
    // EXPEDITED, and neither would order anything.
    match MODE.compare_exchange(UNKNOWN, mode, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => mode,
        Err(first) => first,
    }
}

/// One expedited barrier (the process is registered). The kernel may fail
/// it for memory (`ENOMEM`: a CPU mask it allocates); that is transient,
/// and the light sides rely on it, so it is retried, after a pause.
/// Anything else would mean the registration is gone: fatal.
#[cfg(not(gort_loom))]
fn expedited() {
    #[cfg(target_os = "linux")]
    loop {
        if membarrier(CMD_PRIVATE_EXPEDITED) == 0 {
            return;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOMEM) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            _ => crate::fatal(
                "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration",
            ),
        }
    }
    #[cfg(not(target_os = "linux"))]
    unreachable!("EXPEDITED is only ever set on Linux");
}

#[cfg(all(test, not(gort_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;

    /// The Dekker handshake the fences exist for, run many times: a hot
    /// thread announces itself with a relaxed store and a light fence, then
    /// looks for the rare side's flag; the rare side stores its flag, fences
    /// heavily and looks for the hot side's. They must never both miss.
    #[test]
    fn a_heavy_and_a_light_fence_never_both_miss() {
        prepare(); // probe first, so the light side runs its cheap mode
        eprintln!("barrier mode: {}", MODE.load(Relaxed)); // 1: expedited
        let rounds = 20_000usize;
        let hot = Arc::new(AtomicBool::new(false));
        let rare = Arc::new(AtomicBool::new(false));
        let round = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let saw = Arc::new(AtomicBool::new(false));
        let t = {
            let (hot, rare, round, done, saw) = (
                hot.clone(),
                rare.clone(),
                round.clone(),
                done.clone(),
                saw.clone(),
            );
            std::thread::spawn(move || {
                for r in 1..=rounds {
                    while round.load(std::sync::atomic::Ordering::Acquire) < r {
                        std::hint::spin_loop();
                    }
                    hot.store(true, Relaxed);
                    light();
                    saw.store(rare.load(Relaxed), Relaxed);
                    done.store(r, std::sync::atomic::Ordering::Release);
                }
            })
        };
        let mut both_missed = 0;
        for r in 1..=rounds {
            hot.store(false, Relaxed);
            rare.store(false, Relaxed);
            round.store(r, std::sync::atomic::Ordering::Release);
            rare.store(true, Relaxed);
            heavy();
            let seen_hot = hot.load(Relaxed);
            while done.load(std::sync::atomic::Ordering::Acquire) < r {
                std::hint::spin_loop();
            }
            if !seen_hot && !saw.load(Relaxed) {
                both_missed += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(both_missed, 0, "both sides missed the other's store");
    }
}
