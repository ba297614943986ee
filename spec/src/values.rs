//! Value syntaxes shared with systemd: time spans, byte sizes and CPU lists.
//!
//! Each type keeps the text the operator wrote (trimmed) so it can be written to a unit file
//! unchanged, and the parsed value so it can be checked and used.

use std::fmt;

use serde::{Serialize, Serializer};

/// A systemd time span (`systemd.time(7)`): `90`, `60s`, `5min`, `1h 30min`, `infinity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    /// `None` means infinity.
    micros: Option<u64>,
}

const TIME_UNITS: &[(&str, u64)] = &[
    ("usec", 1),
    ("us", 1),
    ("µs", 1),
    ("msec", 1_000),
    ("ms", 1_000),
    ("seconds", 1_000_000),
    ("second", 1_000_000),
    ("sec", 1_000_000),
    ("s", 1_000_000),
    ("minutes", 60_000_000),
    ("minute", 60_000_000),
    ("min", 60_000_000),
    ("m", 60_000_000),
    ("hours", 3_600_000_000),
    ("hour", 3_600_000_000),
    ("hr", 3_600_000_000),
    ("h", 3_600_000_000),
    ("days", 86_400_000_000),
    ("day", 86_400_000_000),
    ("d", 86_400_000_000),
    ("weeks", 604_800_000_000),
    ("week", 604_800_000_000),
    ("w", 604_800_000_000),
];

impl Duration {
    /// Parses a time span; the error says what is wrong and shows valid examples.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let fail = |why: &str| {
            Err(format!(
                "'{}' is not a time span ({why}); write e.g. \"90s\", \"5min\" or \"1h 30min\"",
                text.escape_debug()
            ))
        };
        if text == "infinity" {
            return Ok(Duration {
                text: text.into(),
                micros: None,
            });
        }
        if text.is_empty() {
            return fail("it is empty");
        }
        let mut total: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return fail("expected a number");
            }
            let Ok(number) = rest[..digits].parse::<u64>() else {
                return fail("number too large");
            };
            rest = rest[digits..].trim_start();
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let scale = if unit.is_empty() {
                1_000_000
            } else if let Some((_, scale)) = TIME_UNITS.iter().find(|(name, _)| *name == unit) {
                *scale
            } else {
                return fail(&format!("unknown unit '{unit}'"));
            };
            let Some(sum) = number.checked_mul(scale).and_then(|v| total.checked_add(v)) else {
                return fail("too large");
            };
            total = sum;
            rest = rest[unit_len..].trim_start();
        }
        Ok(Duration {
            text: text.into(),
            micros: Some(total),
        })
    }

    /// Microseconds, or `None` for `infinity`.
    pub fn as_micros(&self) -> Option<u64> {
        self.micros
    }

    /// Whether the span is zero, which turns a watchdog or timeout off.
    pub fn is_zero(&self) -> bool {
        self.micros == Some(0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A systemd byte size for memory limits: `2G`, `1.5G`, `512M`, `1073741824`, `50%`, `infinity`.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    text: String,
    value: SizeValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SizeValue {
    Bytes(u64),
    Percent(f64),
    Infinity,
}

impl Size {
    /// Parses a size; suffixes K, M, G, T, P, E are powers of 1024, as in systemd.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let fail = || {
            Err(format!(
                "'{}' is not a size; write e.g. \"512M\", \"1.5G\", \"50%\" or \"infinity\"",
                text.escape_debug()
            ))
        };
        let value = if text == "infinity" {
            SizeValue::Infinity
        } else if let Some(percent) = text.strip_suffix('%') {
            match parse_decimal(percent) {
                Some(p) if p <= 100.0 => SizeValue::Percent(p),
                _ => return fail(),
            }
        } else {
            let (number, scale) = match text.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => {
                    let power = match c {
                        'K' => 1,
                        'M' => 2,
                        'G' => 3,
                        'T' => 4,
                        'P' => 5,
                        'E' => 6,
                        _ => return fail(),
                    };
                    (&text[..i], 1024f64.powi(power))
                }
                _ => (text, 1.0),
            };
            match parse_decimal(number) {
                Some(n) if n * scale < u64::MAX as f64 => SizeValue::Bytes((n * scale) as u64),
                _ => return fail(),
            }
        };
        Ok(Size {
            text: text.into(),
            value,
        })
    }

    /// The size in bytes, when it is an absolute size (not a percentage or infinity).
    pub fn as_bytes(&self) -> Option<u64> {
        match self.value {
            SizeValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Whether `self` is certainly larger than `other` (only comparable when both are bytes).
    pub fn exceeds(&self, other: &Size) -> bool {
        match (self.value, other.value) {
            (SizeValue::Bytes(a), SizeValue::Bytes(b)) => a > b,
            (SizeValue::Percent(a), SizeValue::Percent(b)) => a > b,
            (SizeValue::Infinity, SizeValue::Bytes(_) | SizeValue::Percent(_)) => true,
            _ => false,
        }
    }
}

fn parse_decimal(text: &str) -> Option<f64> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && !text.starts_with('.')
        && !text.ends_with('.');
    if valid { text.parse().ok() } else { None }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A CPU list as `CPUAffinity=` and `AllowedCPUs=` take it: `2-3`, `0,2,4-7`, `1 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList {
    text: String,
    cpus: Vec<u32>,
}

/// The highest CPU number accepted; systemd's own limit is 8192 CPUs.
const MAX_CPU: u32 = 8191;

impl CpuList {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let fail = |why: String| {
            Err(format!(
                "'{}' is not a CPU list ({why}); write e.g. \"2-3\" or \"0,2,4-7\"",
                text.escape_debug()
            ))
        };
        let mut cpus = Vec::new();
        for item in text.split([',', ' ']).filter(|item| !item.is_empty()) {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) else {
                return fail(format!("'{item}' is not a CPU number or range"));
            };
            if first > last || last > MAX_CPU {
                return fail(format!("'{item}' is not a valid range"));
            }
            cpus.extend(first..=last);
        }
        if cpus.is_empty() {
            return fail("it names no CPU".into());
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList {
            text: text.into(),
            cpus,
        })
    }

    /// Builds a list from CPU numbers, rendering it compactly (`0,2-5`).
    pub fn from_cpus(mut cpus: Vec<u32>) -> Option<Self> {
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = Vec::new();
        let mut start = cpus[0];
        let mut prev = cpus[0];
        for &cpu in cpus[1..].iter().chain(std::iter::once(&u32::MAX)) {
            if cpu != prev + 1 || cpu == u32::MAX {
                parts.push(if start == prev {
                    start.to_string()
                } else {
                    format!("{start}-{prev}")
                });
                start = cpu;
            }
            prev = cpu;
        }
        Some(CpuList {
            text: parts.join(","),
            cpus,
        })
    }

    /// The CPUs, ascending and without repeats.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Each value serializes as the text the operator wrote, as in the spec file.
macro_rules! serialize_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.text)
            }
        }
    )*};
}
serialize_as_text!(Duration, Size, CpuList);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_systemd() {
        let micros = |t: &str| Duration::parse(t).unwrap().as_micros();
        assert_eq!(micros("90"), Some(90_000_000));
        assert_eq!(micros("60s"), Some(60_000_000));
        assert_eq!(micros("5min"), Some(300_000_000));
        assert_eq!(micros("1h 30min"), Some(5_400_000_000));
        assert_eq!(micros("1h30min"), Some(5_400_000_000));
        assert_eq!(micros("250ms"), Some(250_000));
        assert_eq!(micros(" 2 min "), Some(120_000_000));
        assert_eq!(micros("0"), Some(0));
        assert_eq!(micros("infinity"), None);
        assert!(Duration::parse("0").unwrap().is_zero());
        assert_eq!(Duration::parse(" 5min ").unwrap().to_string(), "5min");
    }

    #[test]
    fn bad_durations_are_refused_with_examples() {
        for bad in [
            "",
            "min",
            "5 fortnights",
            "-5s",
            "1.5h",
            "5min!",
            "99999999999999999999",
        ] {
            let err = Duration::parse(bad).unwrap_err();
            assert!(err.contains("5min"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_parse_like_systemd() {
        assert_eq!(Size::parse("2G").unwrap().as_bytes(), Some(2 << 30));
        assert_eq!(Size::parse("1.5G").unwrap().as_bytes(), Some(3 << 29));
        assert_eq!(Size::parse("512M").unwrap().as_bytes(), Some(512 << 20));
        assert_eq!(Size::parse("4096").unwrap().as_bytes(), Some(4096));
        assert_eq!(Size::parse("50%").unwrap().as_bytes(), None);
        assert_eq!(Size::parse("infinity").unwrap().as_bytes(), None);
        assert_eq!(Size::parse("1.5G").unwrap().to_string(), "1.5G");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "G", "2g", "2GB", "1.5.1G", ".5G", "-1G", "150%", "lots"] {
            assert!(Size::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_compare_when_comparable() {
        let s = |t| Size::parse(t).unwrap();
        assert!(s("3G").exceeds(&s("2G")));
        assert!(!s("1.5G").exceeds(&s("2G")));
        assert!(s("infinity").exceeds(&s("2G")));
        assert!(!s("50%").exceeds(&s("2G")));
    }

    #[test]
    fn cpu_lists_parse_and_render() {
        assert_eq!(CpuList::parse("2-3").unwrap().cpus(), [2, 3]);
        assert_eq!(CpuList::parse("0,2,4-6").unwrap().cpus(), [0, 2, 4, 5, 6]);
        assert_eq!(CpuList::parse("1 3").unwrap().cpus(), [1, 3]);
        assert_eq!(
            CpuList::from_cpus(vec![5, 1, 2, 3]).unwrap().to_string(),
            "1-3,5"
        );
        assert_eq!(CpuList::from_cpus(vec![0]).unwrap().to_string(), "0");
        assert!(CpuList::from_cpus(vec![]).is_none());
        for bad in ["", "a", "3-1", "1-", "-1", "9000"] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?}");
        }
    }
}
