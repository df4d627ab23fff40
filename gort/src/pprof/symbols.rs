//! From program counters to source: symbolisation with Go's adjustment
//! for return addresses, the trimming of leading runtime frames, and the
//! process's executable mappings (`/proc/self/maps`).

use super::{Profile, ProfileSample};
use gort_os::unwind::{symbolize, Frame};
use std::sync::Arc;

/// One address of a sample's stack and how to look it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pc {
    /// The address as recorded.
    pub(crate) addr: usize,
    /// Whether `addr` is the exact address of an instruction (a sampled
    /// leaf) rather than a return address.
    pub(crate) exact: bool,
    /// Leading (innermost) inlined frames hidden: runtime frames inlined
    /// into the first user frame of a trimmed stack (a distinct location
    /// from the same address untrimmed).
    pub(crate) skip: usize,
}

impl Pc {
    /// The address to symbolise: a return address points just past its
    /// call, possibly into the next line or (after a call that does not
    /// return) the next function, so it is looked up one byte earlier,
    /// inside the call instruction, as Go's `CallersFrames` does.
    pub(crate) fn lookup(self) -> usize {
        if self.exact {
            self.addr
        } else {
            self.addr.saturating_sub(1)
        }
    }

    /// Its source frames, innermost (inlined) first.
    pub(crate) fn frames(self) -> Arc<[Frame]> {
        let all = symbolize(self.lookup());
        if self.skip == 0 || self.skip >= all.len() {
            return all;
        }
        all[self.skip..].to_vec().into()
    }
}

/// Function-name prefixes of gort's own machinery and the standard
/// library: the frames a reader of a profile does not care to see at the
/// top of a stack (Go hides `runtime.*` frames there the same way), so a
/// blocked goroutine's leaf is the gort-std call it blocked in (a channel
/// receive, a `Mutex::lock`), as Go's is `runtime.chanrecv1`.
const RUNTIME_PREFIXES: &[&str] = &[
    "gort_sched::",
    "gort_os::",
    "gort_gc::memprof::",
    "corosensei::",
    "core::",
    "std::",
    "alloc::",
    "<gort_sched",
    "<gort_os",
    "gort_gc::gc::Gc<T>::new",
    "<core::",
    "<std::",
    "<alloc::",
];

/// Whether every frame of an address is runtime machinery: an address
/// whose inlined frames include one user function is kept.
fn all_runtime(frames: &[Frame]) -> bool {
    frames.iter().all(is_runtime)
}

/// Whether the symboliser found nothing (it then names the address).
fn unsymbolized(frames: &[Frame]) -> bool {
    frames.len() == 1 && frames[0].function.starts_with("0x")
}

fn is_runtime(f: &Frame) -> bool {
    RUNTIME_PREFIXES.iter().any(|p| f.function.starts_with(p))
}

/// A sample's stack as the encoders see it: each address with its
/// exactness (only the recorded leaf can be exact), and with
/// `p.trim_runtime` the leading runtime addresses dropped, unless that
/// would drop them all (a stack made only of runtime frames stays whole,
/// as Go's `printStackRecord` falls back to every frame). Zero addresses,
/// which unwinders leave at a stack's outer end, are no frames: dropped.
pub(crate) fn stack(p: &Profile, s: &ProfileSample) -> Vec<Pc> {
    let pcs: Vec<Pc> = s
        .pcs
        .iter()
        .enumerate()
        .filter(|&(_, &addr)| addr != 0)
        .map(|(i, &addr)| Pc {
            addr,
            exact: i == 0 && p.leaf_exact,
            skip: 0,
        })
        .collect();
    // The outermost address of a goroutine's stack is the context
    // switch's entry code above it, which has no symbol: no frame.
    let mut pcs = pcs;
    while pcs.len() > 1 && pcs.last().is_some_and(|pc| unsymbolized(&pc.frames())) {
        pcs.pop();
    }
    if !p.trim_runtime {
        return pcs;
    }
    match pcs.iter().position(|pc| !all_runtime(&pc.frames())) {
        Some(first_user) => {
            let mut kept = pcs[first_user..].to_vec();
            // Runtime functions inlined into the first user frame go too
            // (a `park` inlined into a channel receive).
            kept[0].skip = kept[0]
                .frames()
                .iter()
                .take_while(|f| is_runtime(f))
                .count();
            kept
        }
        None => pcs,
    }
}

/// One executable mapping of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) start: u64,
    pub(crate) limit: u64,
    pub(crate) offset: u64,
    pub(crate) file: String,
}

/// The executable mappings of this process, the main executable's first:
/// pprof takes the first mapping for the program itself (its name in
/// reports, where it looks for the binary).
pub(crate) fn self_mappings() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut maps = parse_maps(&text);
    if let Ok(exe) = std::env::current_exe() {
        let exe = exe.display().to_string();
        if let Some(i) = maps.iter().position(|m| m.file == exe) {
            let main = maps.remove(i);
            maps.insert(0, main);
        }
    }
    maps
}

/// The executable lines of a `/proc/<pid>/maps` text (Go's
/// `parseProcSelfMaps` keeps only those too: only code has PCs in it).
/// A line is `start-limit perms offset dev inode [path]`; the path may be
/// missing (anonymous code) or hold spaces.
pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
    let (_dev, _inode) = (fields.next()?, fields.next()?);
    if perms.as_bytes().get(2) != Some(&b'x') {
        return None;
    }
    let (start, limit) = range.split_once('-')?;
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let file = fields.next().unwrap_or("").trim_start();
    Some(Mapping {
        start: hex(start)?,
        limit: hex(limit)?,
        offset: hex(offset)?,
        file: file.strip_suffix(" (deleted)").unwrap_or(file).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 123 /usr/bin/prog
55d0c0a21000-55d0c0b00000 r-xp 00021000 08:01 123 /usr/bin/prog
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 
7fff00000000-7fff00002000 r-xp 00000000 00:00 0                          [vdso]
7f1000000000-7f1000001000 r-xp 00001000 08:01 9 /tmp/my lib.so (deleted)
";
        let m = parse_maps(text);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[0],
            Mapping {
                start: 0x55d0c0a21000,
                limit: 0x55d0c0b00000,
                offset: 0x21000,
                file: "/usr/bin/prog".into()
            }
        );
        assert_eq!(m[1].file, "");
        assert_eq!(m[2].file, "[vdso]");
        assert_eq!(m[3].file, "/tmp/my lib.so");
    }

    #[test]
    fn main_executable_first() {
        let maps = self_mappings();
        let exe = std::env::current_exe().unwrap().display().to_string();
        assert_eq!(maps.first().map(|m| m.file.as_str()), Some(exe.as_str()));
    }
}
