//! Stack walking for goroutine dumps: the registers a suspend saves, an
//! unwinder for *suspended* stacks, a capture of the calling thread's own
//! stack, and symbolisation.
//!
//! A suspended goroutine's stack is walked from the registers
//! [`crate::context::Suspender::suspend`] saves in the stack's reserved top
//! words just before it switches out (stack pointer, program counter, frame
//! pointer and, on AArch64, the link register). The program counter points
//! into `suspend` itself, so the first unwind rule is an ordinary compiled
//! function's; every later frame is found with the loaded objects'
//! `.eh_frame_hdr`/`.eh_frame` tables (the DWARF CFI that panics unwind
//! with), by framehop. The tables are found once, with `dl_iterate_phdr`;
//! objects `dlopen`ed later are not known (their frames end the walk), and
//! an object `dlclose`d after the first dump must not have code on any
//! stack a later dump walks (the tables would point at unmapped memory).
//!
//! Every read of stack memory goes through a closure the caller bounds to
//! the stack's own range, so a corrupt or unexpected frame ends the walk
//! instead of faulting.
//!
//! Symbols come from the `backtrace` crate (addr2line over the binary's
//! DWARF), cached per address here: a dump of 10,000 goroutines in a few
//! call chains resolves each distinct return address once.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The registers saved at a suspend (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SavedRegs {
    pub(crate) sp: usize,
    pub(crate) pc: usize,
    pub(crate) fp: usize,
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(crate) lr: usize,
}

/// Stores the current stack pointer, program counter, frame pointer and
/// link register in `slots[0..4]`. Inlined into its caller, whose frame the
/// saved program counter then lies in.
///
/// # Safety
/// `slots` points to four writable words.
#[inline(always)]
pub(crate) unsafe fn save_regs(slots: *mut usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: stores to the caller's four words; reads only registers.
    unsafe {
        std::arch::asm!(
            "lea {t}, [rip]",
            "mov [{s} + 8], {t}",
            "mov [{s}], rsp",
            "mov [{s} + 16], rbp",
            s = in(reg) slots,
            t = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!(
            "adr {t}, .",
            "str {t}, [{s}, #8]",
            "mov {t}, sp",
            "str {t}, [{s}]",
            "str x29, [{s}, #16]",
            "str x30, [{s}, #24]",
            s = in(reg) slots,
            t = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // No unwinding here: only the approximate stack pointer, which
        // compaction needs (its margin covers the difference).
        let x = 0u8;
        // SAFETY: the caller's words.
        unsafe {
            *slots = std::hint::black_box(&x) as *const u8 as usize;
            *slots.add(1) = 0;
        }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod imp {
    use super::SavedRegs;
    use framehop::{
        CacheNative, ExplicitModuleSectionInfo, FrameAddress, MayAllocateDuringUnwind, Module,
        UnwindRegsNative, Unwinder, UnwinderNative,
    };
    use std::sync::{Mutex, OnceLock};

    struct State {
        unwinder: UnwinderNative<&'static [u8], MayAllocateDuringUnwind>,
        cache: CacheNative<MayAllocateDuringUnwind>,
    }

    fn state() -> &'static Mutex<State> {
        static S: OnceLock<Mutex<State>> = OnceLock::new();
        S.get_or_init(|| {
            let mut unwinder = UnwinderNative::new();
            for m in loaded_modules() {
                unwinder.add_module(m);
            }
            Mutex::new(State {
                unwinder,
                cache: CacheNative::new(),
            })
        })
    }

    /// Reads a pointer-encoded value of `.eh_frame_hdr` (only the encodings
    /// linkers emit for `eh_frame_ptr`).
    ///
    /// # Safety
    /// `at` points into the mapped header.
    unsafe fn read_encoded(enc: u8, at: usize) -> Option<usize> {
        // SAFETY: forwarded; unaligned reads.
        let v = unsafe {
            match enc & 0x0f {
                0x00 => (at as *const usize).read_unaligned(),
                0x03 => (at as *const u32).read_unaligned() as usize,
                0x0b => (at as *const i32).read_unaligned() as isize as usize,
                0x04 | 0x0c => (at as *const u64).read_unaligned() as usize,
                _ => return None,
            }
        };
        match enc & 0x70 {
            0x00 => Some(v),
            0x10 => Some(at.wrapping_add(v)), // pc-relative
            _ => None,
        }
    }

    fn loaded_modules() -> Vec<Module<&'static [u8]>> {
        let mut out: Vec<Module<&'static [u8]>> = Vec::new();
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: dl_iterate_phdr passes a valid info and our data.
            let (info, out) = unsafe { (&*info, &mut *data.cast::<Vec<Module<&'static [u8]>>>()) };
            if let Some(m) = module_of(info) {
                out.push(m);
            }
            0
        }
        // SAFETY: the callback only reads the headers it is given.
        unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut out).cast()) };
        out
    }

    fn module_of(info: &libc::dl_phdr_info) -> Option<Module<&'static [u8]>> {
        let bias = info.dlpi_addr as usize;
        // SAFETY: the loader's program headers for this object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let mut text: Option<(usize, usize)> = None;
        let mut exec_segments = 0;
        let mut hdr: Option<(usize, usize)> = None;
        for ph in phdrs {
            let (lo, len) = (ph.p_vaddr as usize, ph.p_memsz as usize);
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                exec_segments += 1;
                text = Some(match text {
                    Some((a, b)) => (a.min(lo), b.max(lo + len)),
                    None => (lo, lo + len),
                });
            } else if ph.p_type == libc::PT_GNU_EH_FRAME {
                hdr = Some((lo, len));
            }
        }
        let (text, (hdr_svma, hdr_len)) = (text?, hdr?);
        // The code bytes (for prologue/epilogue analysis) only when they are
        // one mapped range: the span of several segments may hold gaps.
        let one_segment = exec_segments == 1;
        let hdr_avma = bias + hdr_svma;
        // SAFETY: the header segment is mapped (PT_GNU_EH_FRAME lies in a
        // PT_LOAD); version, eh_frame_ptr encoding, then the pointer.
        let (version, enc) = unsafe { (*(hdr_avma as *const u8), *((hdr_avma + 1) as *const u8)) };
        if version != 1 || hdr_len < 8 {
            return None;
        }
        // SAFETY: inside the header.
        let eh_avma = unsafe { read_encoded(enc, hdr_avma + 4) }?;
        // .eh_frame runs to the end of its loaded segment at most.
        let seg_end = phdrs
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD)
            .map(|ph| {
                (
                    bias + ph.p_vaddr as usize,
                    bias + (ph.p_vaddr + ph.p_memsz) as usize,
                )
            })
            .find(|&(lo, hi)| lo <= eh_avma && eh_avma < hi)?
            .1;
        // SAFETY: loaded objects stay mapped for the process's life (gort
        // does not support unloading an object whose code is on a goroutine
        // stack); both ranges lie in loaded segments.
        let (hdr_bytes, eh_bytes, text_bytes) = unsafe {
            (
                std::slice::from_raw_parts(hdr_avma as *const u8, hdr_len),
                std::slice::from_raw_parts(eh_avma as *const u8, seg_end - eh_avma),
                one_segment.then(|| {
                    std::slice::from_raw_parts((bias + text.0) as *const u8, text.1 - text.0)
                }),
            )
        };
        let eh_svma = (eh_avma - bias) as u64;
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: Some(text.0 as u64..text.1 as u64),
            text: text_bytes,
            eh_frame_svma: Some(eh_svma..eh_svma + eh_bytes.len() as u64),
            eh_frame: Some(eh_bytes),
            eh_frame_hdr_svma: Some(hdr_svma as u64..(hdr_svma + hdr_len) as u64),
            eh_frame_hdr: Some(hdr_bytes),
            ..Default::default()
        };
        Some(Module::new(
            String::new(),
            (bias + text.0) as u64..(bias + text.1) as u64,
            bias as u64,
            info,
        ))
    }

    pub(super) fn unwind(
        regs: SavedRegs,
        mut read: impl FnMut(usize) -> Option<usize>,
        out: &mut Vec<usize>,
        max: usize,
    ) -> bool {
        if regs.pc == 0 || regs.sp == 0 {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        let r = UnwindRegsNative::new(regs.pc as u64, regs.sp as u64, regs.fp as u64);
        #[cfg(target_arch = "aarch64")]
        let r = UnwindRegsNative::new(regs.lr as u64, regs.sp as u64, regs.fp as u64);
        // Bounded: a fatal report walks stacks while a thread that will never
        // run again (one stopped in the overflow handler) may hold the lock.
        let mut tries = 0u32;
        let mut st = loop {
            match state().try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    // A walk takes microseconds: yield first (profiles walk
                    // from several Ms at once), sleep only if it lasts.
                    tries += 1;
                    if tries > 10_000 {
                        return false;
                    }
                    if tries <= 1_000 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                }
            }
        };
        let st = &mut *st;
        let mut rd = |a: u64| read(a as usize).map(|v| v as u64).ok_or(());
        let mut it = st
            .unwinder
            .iter_frames(regs.pc as u64, r, &mut st.cache, &mut rd);
        let start = out.len();
        while out.len() - start < max {
            match it.next() {
                Ok(Some(FrameAddress::InstructionPointer(a))) => out.push(a as usize),
                Ok(Some(FrameAddress::ReturnAddress(a))) => out.push(a.get() as usize),
                Ok(None) | Err(_) => break,
            }
        }
        true
    }

    /// Loads the unwind tables now (the first dump would otherwise pay).
    pub(super) fn warm() {
        let _ = state();
    }
}

/// Reads the word at `a` if it is aligned and inside `[lo, hi)`: the one
/// memory access every stack walk makes, so that a corrupt or unexpected
/// frame ends the walk instead of faulting.
///
/// # Safety
/// `[lo, hi)` is mapped, and nothing writes the words the walk reads while
/// it runs (the stack's goroutine is suspended, stopped or blocked).
pub(crate) unsafe fn read_stack_word(lo: usize, hi: usize, a: usize) -> Option<usize> {
    if a % std::mem::size_of::<usize>() != 0 || a < lo || a >= hi {
        return None;
    }
    // SAFETY: inside the mapped range, not written meanwhile (forwarded).
    Some(unsafe { std::ptr::read_volatile(a as *const usize) })
}

/// Walks a suspended stack (see [`crate::context::Context::backtrace`]).
pub(crate) fn unwind(
    regs: SavedRegs,
    read: impl FnMut(usize) -> Option<usize>,
    out: &mut Vec<usize>,
    max: usize,
) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        imp::unwind(regs, read, out, max)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (regs, read, out, max);
        false
    }
}

/// Pushes the calling thread's return addresses (innermost first, this
/// function's caller first) onto `out`, at most `max`, with the `backtrace`
/// crate (it takes that crate's global lock, and a good deal of stack: for
/// a goroutine's own dump, see [`Here`]).
#[inline(never)]
pub fn backtrace_here(out: &mut Vec<usize>, max: usize) {
    let start = out.len();
    let me = backtrace_here as *const () as usize;
    // The unwinder's own frames come first, then this function's: drop
    // everything up to and including the frame whose function is this one.
    let mut passed = false;
    backtrace::trace(|f| {
        if !passed {
            passed = f.symbol_address() as usize == me;
            return true;
        }
        out.push(f.ip() as usize);
        out.len() - start < max
    });
}

/// The registers of a running goroutine's frame and its stack's bounds,
/// captured by [`Here::capture`], so that *another thread* can walk the
/// goroutine's stack while it waits (a goroutine's own stack may be too
/// small for the unwinder).
#[derive(Debug, Clone, Copy)]
pub struct Here {
    regs: SavedRegs,
    stack: (usize, usize),
}

impl Here {
    /// Captures the calling frame's registers, if the caller runs on a
    /// goroutine's (a context's) stack. Inlined into the caller: the walk
    /// starts in the caller's frame.
    #[inline(always)]
    pub fn capture() -> Option<Here> {
        let stack = crate::signal::current_stack()?;
        let mut slots = [0usize; 4];
        // SAFETY: four writable words.
        unsafe { save_regs(slots.as_mut_ptr()) };
        let [sp, pc, fp, lr] = slots;
        Some(Here {
            regs: SavedRegs { sp, pc, fp, lr },
            stack,
        })
    }

    /// Walks the captured stack (return addresses, innermost first: the
    /// capturing frame's program counter first), reading only inside it.
    ///
    /// # Safety
    /// The frame that called [`Here::capture`] must still be live and its
    /// goroutine blocked (not running, not suspended and resumed) for the
    /// whole call: its frame and its callers' must not change.
    pub unsafe fn backtrace(&self, out: &mut Vec<usize>, max: usize) -> bool {
        let (lo, hi) = self.stack;
        // SAFETY: the blocked goroutine's mapped stack, whose live frames do
        // not change meanwhile (the caller's promise).
        let read = |a: usize| unsafe { read_stack_word(lo, hi, a) };
        unwind(self.regs, read, out, max)
    }
}

/// One source-level frame of a return address (inlined calls give several,
/// innermost first).
#[derive(Debug, Clone)]
pub struct Frame {
    /// The function, demangled, without the hash suffix.
    pub function: String,
    /// Source file, if the debug info has it.
    pub file: Option<String>,
    /// Source line, if known.
    pub line: Option<u32>,
}

fn symbol_cache() -> &'static Mutex<HashMap<usize, std::sync::Arc<[Frame]>>> {
    static C: OnceLock<Mutex<HashMap<usize, std::sync::Arc<[Frame]>>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The source frames of `addr`, a return address (or the first program
/// counter) from [`backtrace_here`] or a suspended stack's walk. Cached per
/// address for the life of the process. Uses a good deal of stack the first
/// time (the debug info is parsed): call it from a thread, not a small
/// goroutine stack.
pub fn symbolize(addr: usize) -> std::sync::Arc<[Frame]> {
    if let Some(f) = symbol_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&addr)
    {
        return f.clone();
    }
    let mut frames = Vec::new();
    backtrace::resolve(addr as *mut std::ffi::c_void, |sym| {
        let function = match sym.name() {
            Some(n) => format!("{n:#}"),
            None => format!("{addr:#x}"),
        };
        frames.push(Frame {
            function,
            file: sym.filename().map(|p| p.display().to_string()),
            line: sym.lineno(),
        });
    });
    if frames.is_empty() {
        frames.push(Frame {
            function: format!("{addr:#x}"),
            file: None,
            line: None,
        });
    }
    let frames: std::sync::Arc<[Frame]> = frames.into();
    symbol_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(addr, frames.clone());
    frames
}

/// Loads the unwind tables ahead of the first dump.
pub fn warm() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    imp::warm();
}
