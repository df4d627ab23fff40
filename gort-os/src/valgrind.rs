//! Valgrind client requests, so that memcheck follows gort's stack switches.
//!
//! Memcheck tracks one stack per thread; when a thread's stack pointer jumps
//! into memory it does not know as a stack, it takes the jump for a huge
//! frame and reports every later access as invalid (tens of thousands of
//! false reports per test run). Registering each goroutine stack once, when
//! it is first mapped (stacks are never unmapped), tells it these are
//! stacks. The requests are Valgrind's magic instruction sequence: a no-op
//! on real hardware, interpreted by Valgrind. They are compiled in only with
//! `--cfg gort_valgrind` (`cargo xtask valgrind` sets it).

/// Registers `[lo, hi)` as a stack with Valgrind (a no-op when not built
/// with `--cfg gort_valgrind`, or when not running under Valgrind).
#[inline]
pub(crate) fn stack_register(lo: usize, hi: usize) {
    #[cfg(all(gort_valgrind, target_arch = "x86_64"))]
    {
        /// `VG_USERREQ__STACK_REGISTER` from valgrind.h.
        const STACK_REGISTER: usize = 0x1501;
        // SAFETY: the magic sequence rotates rdi by a multiple of 64 bits
        // (unchanged) and exchanges rbx with itself; it reads the six-word
        // request block through rax and leaves its answer in rdx. Without
        // Valgrind it changes nothing.
        unsafe { client_request(STACK_REGISTER, lo, hi) };
    }
    #[cfg(not(all(gort_valgrind, target_arch = "x86_64")))]
    let _ = (lo, hi);
}

/// Tells memcheck that `[addr, addr + len)` is addressable and defined:
/// compaction saves a margin below a suspended stack's recorded pointer (the
/// switch's own pushes, which memcheck considers dead once the thread left
/// that stack) and writes it back before the resume.
#[inline]
pub(crate) fn make_mem_defined(addr: usize, len: usize) {
    #[cfg(all(gort_valgrind, target_arch = "x86_64"))]
    {
        /// `VG_USERREQ__MAKE_MEM_DEFINED` from memcheck.h.
        const MAKE_MEM_DEFINED: usize = 0x4D43_0002;
        // SAFETY: as in stack_register.
        unsafe { client_request(MAKE_MEM_DEFINED, addr, len) };
    }
    #[cfg(not(all(gort_valgrind, target_arch = "x86_64")))]
    let _ = (addr, len);
}

#[cfg(all(gort_valgrind, target_arch = "x86_64"))]
unsafe fn client_request(req: usize, a1: usize, a2: usize) -> usize {
    let args: [usize; 6] = [req, a1, a2, 0, 0, 0];
    let mut result: usize = 0;
    // SAFETY: see stack_register; `args` outlives the asm block.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            options(nostack)
        );
    }
    result
}
