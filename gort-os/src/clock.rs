//! The monotonic clock: `nanotime()`, as Go's runtime names it.

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`): only differences
/// mean anything. Never goes backwards; not affected by wall-clock changes.
///
/// On Linux this is a vDSO call (~20 ns), no system call.
#[inline]
pub fn nanotime() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC exists on
    // every supported Unix; clock_gettime only writes into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    // time_t and c_long are i64 on the 64-bit targets gort supports.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec * 1_000_000_000 + nsec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_advances() {
        let a = nanotime();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = nanotime();
        assert!(
            b - a >= 2_000_000,
            "slept 2ms but clock advanced {} ns",
            b - a
        );
    }
}
