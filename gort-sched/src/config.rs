//! Runtime configuration, from the environment or explicit.

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
    /// unusable value is an error, never silently ignored.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = std::env::var_os("GOMAXPROCS") {
            c.procs = parse_procs(&v.to_string_lossy())?;
        }
        if let Some(v) = std::env::var_os("GORT_STACK_SIZE") {
            c.stack_size = parse_stack_size(&v.to_string_lossy())?;
        }
        Ok(c)
    }
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
    fn stack_size_values() {
        assert_eq!(parse_stack_size("64K"), Ok(65536));
        assert_eq!(parse_stack_size("1M"), Ok(1 << 20));
        assert_eq!(parse_stack_size("32768"), Ok(32768));
        assert!(parse_stack_size("1K").is_err());
        assert!(parse_stack_size("lots").is_err());
    }
}
