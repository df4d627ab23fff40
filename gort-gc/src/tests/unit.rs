//! Unit tests of the pacer's parsing and goal (ports of the cases of Go's
//! runtime TestParseByteCount and readGOGC behaviour).

use crate::pacer::{parse_gogc, parse_gomemlimit, HEAP_MINIMUM};

/// runtime/string_test.go TestParseByteCount (the cases that apply).
#[test]
fn gomemlimit_byte_counts() {
    let ok: &[(&str, i64)] = &[
        ("off", i64::MAX),
        ("0", 0),
        ("1", 1),
        ("12345", 12345),
        ("012345", 12345),
        ("9223372036854775807", i64::MAX),
        ("0B", 0),
        ("1B", 1),
        ("12345B", 12345),
        ("1KiB", 1 << 10),
        ("1MiB", 1 << 20),
        ("1GiB", 1 << 30),
        ("1TiB", 1 << 40),
        ("1PiB", 1 << 50),
        ("1EiB", 1 << 60),
        ("4096MiB", 4096 << 20),
        ("7EiB", 7 << 60),
        ("8191PiB", 8191 << 50),
    ];
    for &(s, want) in ok {
        assert_eq!(parse_gomemlimit(s), Ok(want), "{s}");
    }
    for bad in [
        "",
        "B",
        "KiB",
        "1b",
        "1kib",
        "1KB",
        "1Ki",
        "1iB",
        "1 MiB",
        "-1",
        "-1B",
        "1.5GiB",
        "8EiB",
        "9223372036854775808",
        "99999999999999999999",
        "1XiB",
        " 1",
    ] {
        let e = parse_gomemlimit(bad).unwrap_err();
        assert_eq!(e.var, "GOMEMLIMIT");
        assert_eq!(e.value, bad);
        assert!(e.to_string().starts_with("invalid GOMEMLIMIT="), "{e}");
    }
}

/// readGOGC: "off" and negatives turn collection off; numbers are percent.
#[test]
fn gogc_values() {
    assert_eq!(parse_gogc("off"), Ok(-1));
    assert_eq!(parse_gogc("100"), Ok(100));
    assert_eq!(parse_gogc("0"), Ok(0));
    assert_eq!(parse_gogc("-5"), Ok(-1));
    assert_eq!(parse_gogc(" 50 "), Ok(50));
    for bad in ["", "abc", "1.5", "100%", "99999999999"] {
        let e = parse_gogc(bad).unwrap_err();
        assert_eq!(e.var, "GOGC");
        assert!(e.to_string().contains("GOGC"));
    }
}

#[test]
fn heap_minimum_is_gos() {
    assert_eq!(HEAP_MINIMUM, 4 << 20);
}
