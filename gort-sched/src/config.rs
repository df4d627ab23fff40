//! Runtime configuration, from the environment or explicit.
//!
//! [`Config::from_env`] also checks the garbage collector's variables,
//! `GOGC` and `GOMEMLIMIT`, so that an unusable value stops the implicit
//! runtime at start, exactly as an unusable `GOMAXPROCS` does (Go checks
//! them at start-up too), instead of surfacing later as a panic in
//! whichever goroutine happens to allocate the first `Gc`. gort-gc, which
//! sits above and owns the pacer, reads its initial values through the
//! same parser ([`Config::gc_from_env`]), so both always agree. They are
//! not `Config` fields: the values belong to gort-gc, which reads them
//! itself, also when the runtime was started with an explicit [`crate::init`]
//! (which, as for every other setting, reads no environment).

use crate::rt::MAX_PROCS;
use std::fmt;

/// How the runtime starts. [`Config::from_env`] is what the implicit runtime
/// uses; [`crate::init`] takes an explicit one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of Ps (GOMAXPROCS).
    pub procs: usize,
    /// Default goroutine stack size in bytes.
    pub stack_size: usize,
}

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, e.g. `GOMAXPROCS`.
    pub var: &'static str,
    /// The value as found.
    pub value: String,
    /// What was wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: {}", self.var, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    fn default() -> Self {
        Config {
            procs: gort_os::cpu::default_procs().min(MAX_PROCS),
            stack_size: gort_os::stack::DEFAULT_STACK_SIZE,
        }
    }
}

impl Config {
    /// The defaults (Go 1.25's cgroup-aware CPU count, 64 KiB stacks),
    /// overridden by `GOMAXPROCS` and `GORT_STACK_SIZE` when set. A set but
    /// unusable value is an error, never silently ignored — this includes
    /// the collector's `GOGC` and `GOMEMLIMIT` ([`Config::gc_from_env`]),
    /// checked here so that the runtime fails at start on them too.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = std::env::var_os("GOMAXPROCS") {
            c.procs = parse_procs(&v.to_string_lossy())?;
        }
        if let Some(v) = std::env::var_os("GORT_STACK_SIZE") {
            c.stack_size = parse_stack_size(&v.to_string_lossy())?;
        }
        Config::gc_from_env()?;
        Debug::from_env()?;
        Traceback::from_env()?;
        Ok(c)
    }

    /// The collector's settings from the environment: `(GOGC, GOMEMLIMIT)`
    /// as gort-gc uses them — GOGC in percent (-1: off; 100 when unset or
    /// empty), GOMEMLIMIT in bytes (`i64::MAX`: none; the default). The
    /// first unusable value is an error.
    pub fn gc_from_env() -> Result<(i64, i64), ConfigError> {
        let gogc = match std::env::var_os("GOGC") {
            Some(v) if !v.is_empty() => Config::parse_gogc(&v.to_string_lossy())?,
            _ => 100,
        };
        let limit = match std::env::var_os("GOMEMLIMIT") {
            Some(v) if !v.is_empty() => Config::parse_gomemlimit(&v.to_string_lossy())?,
            _ => i64::MAX,
        };
        Ok((gogc, limit))
    }

    /// Parses a GOGC value (Go's `readGOGC`): `off` (returned as -1) or a
    /// whole number of percent that fits an `i32`; a negative number also
    /// means off. Go silently falls back to 100 for an unusable value;
    /// gort reports it.
    pub fn parse_gogc(v: &str) -> Result<i64, ConfigError> {
        let err = |reason: String| ConfigError {
            var: "GOGC",
            value: v.to_string(),
            reason,
        };
        let out_of_range = || {
            err(format!(
                "out of range: a percent from {} to {} (negative: off)",
                i32::MIN,
                i32::MAX
            ))
        };
        let t = v.trim();
        if t == "off" {
            return Ok(-1);
        }
        match parse_int(t) {
            Int::Malformed => Err(err(
                "malformed: expected a whole number of percent or \"off\"".into(),
            )),
            Int::TooLarge => Err(out_of_range()),
            Int::Value(n) => match i32::try_from(n) {
                Ok(n) if n < 0 => Ok(-1),
                Ok(n) => Ok(i64::from(n)),
                Err(_) => Err(out_of_range()),
            },
        }
    }

    /// Parses a GOMEMLIMIT value (Go's `readGOMEMLIMIT`/`parseByteCount`):
    /// `off` (returned as `i64::MAX`), or a byte count with an optional
    /// unit suffix `B`, `KiB`, `MiB`, `GiB`, `TiB`, `PiB` or `EiB`, at most
    /// `i64::MAX` bytes. A well-formed count that is too large (or
    /// negative) is reported as out of range, not as malformed.
    pub fn parse_gomemlimit(v: &str) -> Result<i64, ConfigError> {
        let err = |reason: String| ConfigError {
            var: "GOMEMLIMIT",
            value: v.to_string(),
            reason,
        };
        if v == "off" {
            return Ok(i64::MAX);
        }
        parse_byte_count(v).map_err(|e| match e {
            ByteCount::Malformed => err(
                "malformed: expected bytes with an optional unit (B, KiB, MiB, GiB, TiB, \
                 PiB, EiB) or \"off\""
                    .into(),
            ),
            ByteCount::OutOfRange => err(format!(
                "out of range: from 0 to {} bytes (8 EiB - 1)",
                i64::MAX
            )),
        })
    }
}

/// A whole number as text: its value, too large for an `i64` (either
/// sign), or not a number.
enum Int {
    Value(i64),
    TooLarge,
    Malformed,
}

/// An optional `-` then one or more ASCII digits (Go's `atoi64`; no `+`,
/// no spaces).
fn parse_int(t: &str) -> Int {
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Int::Malformed;
    }
    match t.parse::<i64>() {
        Ok(n) => Int::Value(n),
        Err(_) => Int::TooLarge, // all digits: only the size can be wrong
    }
}

/// Why a GOMEMLIMIT byte count was refused.
enum ByteCount {
    Malformed,
    OutOfRange,
}

/// Go's `parseByteCount`, telling a malformed count from one out of range.
fn parse_byte_count(s: &str) -> Result<i64, ByteCount> {
    let count = |t: &str| match parse_int(t) {
        Int::Malformed => Err(ByteCount::Malformed),
        Int::TooLarge => Err(ByteCount::OutOfRange),
        Int::Value(n) if n < 0 => Err(ByteCount::OutOfRange),
        Int::Value(n) => Ok(n),
    };
    let b = s.as_bytes();
    let last = *b.last().ok_or(ByteCount::Malformed)?;
    if last.is_ascii_digit() {
        return count(s);
    }
    if last != b'B' || b.len() < 2 {
        return Err(ByteCount::Malformed);
    }
    let c = b[b.len() - 2];
    if c.is_ascii_digit() {
        return count(&s[..s.len() - 1]);
    }
    if c != b'i' || b.len() < 4 {
        return Err(ByteCount::Malformed);
    }
    let power = match b[b.len() - 3] {
        b'K' => 1,
        b'M' => 2,
        b'G' => 3,
        b'T' => 4,
        b'P' => 5,
        b'E' => 6,
        _ => return Err(ByteCount::Malformed),
    };
    let n = count(&s[..s.len() - 3])?;
    n.checked_mul(1i64 << (10 * power))
        .ok_or(ByteCount::OutOfRange)
}

/// Parses a GOMAXPROCS value: a whole number from 1 to [`MAX_PROCS`].
pub fn parse_procs(v: &str) -> Result<usize, ConfigError> {
    let err = |reason: String| ConfigError {
        var: "GOMAXPROCS",
        value: v.to_string(),
        reason,
    };
    let n: usize = v
        .trim()
        .parse()
        .map_err(|_| err(format!("expected a whole number from 1 to {MAX_PROCS}")))?;
    if n == 0 || n > MAX_PROCS {
        return Err(err(format!("must be from 1 to {MAX_PROCS}")));
    }
    Ok(n)
}

/// Parses a stack size: bytes, or with a `k`/`K`/`KiB` or `m`/`M`/`MiB` suffix.
pub fn parse_stack_size(v: &str) -> Result<usize, ConfigError> {
    let err = |reason: &str| ConfigError {
        var: "GORT_STACK_SIZE",
        value: v.to_string(),
        reason: reason.to_string(),
    };
    let t = v.trim();
    let (num, mul) = if let Some(n) = t
        .strip_suffix("KiB")
        .or(t.strip_suffix('k'))
        .or(t.strip_suffix('K'))
    {
        (n, 1024)
    } else if let Some(n) = t
        .strip_suffix("MiB")
        .or(t.strip_suffix('m'))
        .or(t.strip_suffix('M'))
    {
        (n, 1024 * 1024)
    } else {
        (t, 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| err("expected bytes, e.g. 65536, 64K or 1M"))?;
    let bytes = n.checked_mul(mul).ok_or_else(|| err("too large"))?;
    if !(gort_os::stack::MIN_STACK_SIZE..=(1 << 30)).contains(&bytes) {
        return Err(err("must be from 16K to 1024M"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gomaxprocs_values() {
        assert_eq!(parse_procs("4"), Ok(4));
        assert_eq!(parse_procs(" 2 "), Ok(2));
        for bad in ["", "0", "-1", "abc", "2.5", "100000"] {
            let e = parse_procs(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid GOMAXPROCS="), "{e}");
        }
    }

    #[test]
    fn gc_values() {
        assert_eq!(Config::parse_gogc("off"), Ok(-1));
        assert_eq!(Config::parse_gogc(" 50 "), Ok(50));
        assert_eq!(Config::parse_gogc("-5"), Ok(-1));
        for (bad, why) in [
            ("abc", "malformed"),
            ("1.5", "malformed"),
            ("", "malformed"),
            ("99999999999", "out of range"),
            ("-99999999999", "out of range"),
            ("99999999999999999999999", "out of range"),
        ] {
            let e = Config::parse_gogc(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid GOGC="), "{e}");
            assert!(e.reason.starts_with(why), "{bad}: {e}");
        }
        assert_eq!(Config::parse_gomemlimit("64MiB"), Ok(64 << 20));
        assert_eq!(Config::parse_gomemlimit("off"), Ok(i64::MAX));
        assert_eq!(
            Config::parse_gomemlimit("9223372036854775807"),
            Ok(i64::MAX)
        );
        assert_eq!(Config::parse_gomemlimit("7EiB"), Ok(7 << 60));
        for (bad, why) in [
            ("64MB", "malformed"),
            ("1 MiB", "malformed"),
            ("", "malformed"),
            ("-", "malformed"),
            ("1XiB", "malformed"),
            ("8EiB", "out of range"),
            ("9223372036854775808", "out of range"),
            ("99999999999999999999999", "out of range"),
            ("99999999999999999999999KiB", "out of range"),
            ("-1", "out of range"),
        ] {
            let e = Config::parse_gomemlimit(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid GOMEMLIMIT="), "{e}");
            assert!(e.reason.starts_with(why), "{bad}: {e}");
        }
    }

    #[test]
    fn stack_size_values() {
        assert_eq!(parse_stack_size("64K"), Ok(65536));
        assert_eq!(parse_stack_size("1M"), Ok(1 << 20));
        assert_eq!(parse_stack_size("32768"), Ok(32768));
        assert!(parse_stack_size("1K").is_err());
        assert!(parse_stack_size("lots").is_err());
    }
}

/// The `GODEBUG` settings the scheduler reads: `schedtrace=MS` (print a
/// scheduler line every MS milliseconds; 0: off) and `scheddetail=1` (with
/// it, one line per P and M). Other keys belong to others and are left
/// alone, as Go does; a key of ours with an unusable value is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Debug {
    pub(crate) schedtrace_ms: u64,
    pub(crate) scheddetail: bool,
}

impl Debug {
    /// From the environment's `GODEBUG` (unset or empty: the defaults).
    pub(crate) fn from_env() -> Result<Debug, ConfigError> {
        match std::env::var_os("GODEBUG") {
            Some(v) => Debug::parse(&v.to_string_lossy()),
            None => Ok(Debug::default()),
        }
    }

    /// Parses a `GODEBUG` value: comma-separated `key=value` pairs.
    pub(crate) fn parse(v: &str) -> Result<Debug, ConfigError> {
        let mut d = Debug::default();
        for kv in v.split(',').filter(|kv| !kv.is_empty()) {
            let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
            let err = |reason: &str| ConfigError {
                var: "GODEBUG",
                value: v.to_string(),
                reason: format!("{k}={val:?}: {reason}"),
            };
            match k {
                "schedtrace" => {
                    d.schedtrace_ms = val
                        .parse()
                        .map_err(|_| err("a period in milliseconds (0: off)"))?;
                }
                "scheddetail" => {
                    d.scheddetail = match val {
                        "0" => false,
                        "1" => true,
                        _ => return Err(err("0 or 1")),
                    };
                }
                _ => {}
            }
        }
        Ok(d)
    }
}

/// What fatal errors print (`GOTRACEBACK`, as in Go): the goroutine dump
/// of a stack overflow, a deadlock or a SIGQUIT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Traceback {
    /// `none` (or `0`): no goroutine stacks at all.
    None,
    /// `single` (the default): the goroutine that failed only.
    #[default]
    Single,
    /// `all` (or `1`): every user goroutine.
    All,
    /// `system` (or `2`): every goroutine, runtime frames and runtime
    /// goroutines included.
    System,
    /// `crash`: as `system`, then abort (SIGABRT) to leave a core dump.
    Crash,
}

impl Traceback {
    /// From the environment's `GOTRACEBACK` (unset or empty: `single`).
    pub fn from_env() -> Result<Traceback, ConfigError> {
        match std::env::var_os("GOTRACEBACK") {
            Some(v) => Traceback::parse(&v.to_string_lossy()),
            None => Ok(Traceback::default()),
        }
    }

    /// Parses a `GOTRACEBACK` value (Go's names and numbers).
    pub fn parse(v: &str) -> Result<Traceback, ConfigError> {
        Ok(match v {
            "none" | "0" => Traceback::None,
            "" | "single" => Traceback::Single,
            "all" | "1" => Traceback::All,
            "system" | "2" => Traceback::System,
            "crash" => Traceback::Crash,
            // Go's numeric levels: 1 is all, 2 and up add runtime frames.
            n => match n.parse::<u32>() {
                Ok(0) => Traceback::None,
                Ok(1) => Traceback::All,
                Ok(_) => Traceback::System,
                Err(_) => {
                    return Err(ConfigError {
                        var: "GOTRACEBACK",
                        value: v.to_string(),
                        reason: "one of none, single, all, system, crash, or a number".into(),
                    })
                }
            },
        })
    }
}

#[cfg(test)]
mod godebug_tests {
    use super::Debug;

    #[test]
    fn godebug_keys_of_ours_are_parsed_others_left_alone() {
        assert_eq!(Debug::parse("").unwrap(), Debug::default());
        let d = Debug::parse("gctrace=1,schedtrace=1000,scheddetail=1,x").unwrap();
        assert_eq!(d.schedtrace_ms, 1000);
        assert!(d.scheddetail);
    }

    #[test]
    fn gotraceback_values() {
        use super::Traceback;
        assert_eq!(Traceback::parse("").unwrap(), Traceback::Single);
        assert_eq!(Traceback::parse("0").unwrap(), Traceback::None);
        assert_eq!(Traceback::parse("all").unwrap(), Traceback::All);
        assert_eq!(Traceback::parse("2").unwrap(), Traceback::System);
        assert_eq!(Traceback::parse("crash").unwrap(), Traceback::Crash);
        assert_eq!(Traceback::parse("3").unwrap(), Traceback::System);
        let e = Traceback::parse("everything").unwrap_err();
        assert!(e.to_string().starts_with("invalid GOTRACEBACK="), "{e}");
    }

    #[test]
    fn malformed_godebug_values_are_reported() {
        for bad in ["schedtrace=abc", "schedtrace=-5", "schedtrace", "scheddetail=yes"] {
            let e = Debug::parse(bad).expect_err(bad);
            assert_eq!(e.var, "GODEBUG");
            assert!(e.to_string().contains("GODEBUG"), "{e}");
        }
    }
}
