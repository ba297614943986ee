//! systemd calendar expressions (systemd.time(7), "CALENDAR EVENTS"), as `OnCalendar=` and
//! `systemd-analyze calendar` take them: `daily`, `Mon..Fri *-*-* 05:00:00`, `*-*~01 04:30`,
//! `*:0/15`, `2026-12-24 18:00 Europe/Berlin`, `@1767225600`.
//!
//! The check follows systemd 252's `calendar_spec_from_string()` step by step (time zone
//! suffix, shorthands, weekdays, date, time, then normalisation and the range checks), so it
//! accepts exactly what `systemd-analyze calendar` accepts and refuses what it refuses;
//! `tests/calendar_differential.rs` runs both on a corpus and compares. Where systemd's answer
//! depends on the host, this module decides without looking at the host:
//! - a time zone is accepted when it is `UTC` (any case, as systemd) or in [`crate::tzdata`]
//!   (systemd looks for `/usr/share/zoneinfo/NAME`; the spec crate reads nothing outside the
//!   config dir). The abbreviations of the host's local zone (`CEST` on a Berlin host), which
//!   systemd also takes, are refused unless they are zone names themselves (`CET`, `EET`):
//!   write the zone (`Europe/Berlin`) instead.
//! - control characters (tab, newline) are refused: a unit file setting holds one line.
//!
//! It only validates; the expression is written to the timer unit as the operator wrote it.
//!
//! Longer than our usual 600 lines on purpose: one parser, laid out in the order of systemd's
//! own so the two can be read side by side when systemd changes.

use std::fmt;

use serde::{Serialize, Serializer};

/// A calendar expression systemd accepts, kept as written (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    text: String,
}

impl Calendar {
    /// Checks `text`; the error is one line quoting it and saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        check(text).map_err(|why| {
            format!(
                "\"{}\" is not a systemd calendar expression: {why}; write e.g. \
                 \"*-*-* 05:00:00\", \"Mon..Fri 04:30\" or \"daily\" (systemd.time(7))",
                text.escape_debug()
            )
        })?;
        Ok(Calendar {
            text: text.trim().to_owned(),
        })
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Calendar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// The longest list systemd takes in one field (`CALENDARSPEC_COMPONENTS_MAX` + 1).
const MAX_LIST: usize = 241;
/// Years systemd can schedule (`MIN_YEAR`, `MAX_YEAR`).
const YEARS: (i64, i64) = (1970, 2199);
const USEC_PER_SEC: i64 = 1_000_000;
/// The first second systemd cannot schedule: 2200-01-01 00:00:00 UTC.
const END_OF_EPOCHS: i64 = 7_258_118_400;
const INT_MAX: i64 = i32::MAX as i64;

/// The shorthands, compared without case (`anually` and `bi-annually` are systemd's spellings
/// kept for compatibility).
const SHORTHANDS: [&str; 13] = [
    "minutely",
    "hourly",
    "daily",
    "monthly",
    "annually",
    "yearly",
    "anually",
    "weekly",
    "quarterly",
    "biannually",
    "bi-annually",
    "semiannually",
    "semi-annually",
];

/// Weekday names in systemd's order of trial: the long form before the short one.
const WEEKDAYS: [(&str, u8); 14] = [
    ("Monday", 0),
    ("Mon", 0),
    ("Tuesday", 1),
    ("Tue", 1),
    ("Wednesday", 2),
    ("Wed", 2),
    ("Thursday", 3),
    ("Thu", 3),
    ("Friday", 4),
    ("Fri", 4),
    ("Saturday", 5),
    ("Sat", 5),
    ("Sunday", 6),
    ("Sun", 6),
];

/// One entry of a list: `start`, `start..stop`, `start/repeat`, `start..stop/repeat`.
#[derive(Debug, Clone, Copy)]
struct Component {
    start: i64,
    /// -1: no range.
    stop: i64,
    /// 0: no repetition.
    repeat: i64,
}

/// A field: `None` is `*`.
type Chain = Option<Vec<Component>>;

#[derive(Debug, Default)]
struct Spec {
    end_of_month: bool,
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    /// In microseconds.
    second: Chain,
}

/// A cursor over the expression; reading past the end gives 0, like C's terminating NUL.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at(&self, offset: usize) -> u8 {
        self.text.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn rest(&self) -> &str {
        std::str::from_utf8(&self.text[self.pos.min(self.text.len())..]).unwrap_or("")
    }

    fn skip_spaces(&mut self) {
        while self.at(0) == b' ' {
            self.pos += 1;
        }
    }

    /// What stands at the cursor, for messages.
    fn here(&self) -> String {
        match self.at(0) {
            0 => "the end".to_owned(),
            _ => format!("'{}'", self.rest().chars().next().unwrap_or('?')),
        }
    }
}

fn check(text: &str) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err("it contains a control character (tab, newline)".into());
    }
    let mut expr = text;
    if ends_with_ignore_case(expr, " UTC") {
        expr = &expr[..expr.len() - 4];
    } else if let Some(space) = expr.rfind(' ')
        && is_time_zone(&expr[space + 1..])
    {
        expr = &expr[..space];
    }
    if expr.is_empty() {
        return Err("it is empty".into());
    }
    if SHORTHANDS.iter().any(|s| s.eq_ignore_ascii_case(expr)) {
        return Ok(());
    }
    let mut spec = Spec::default();
    let mut cur = Cursor {
        text: expr.as_bytes(),
        pos: 0,
    };
    parse_weekdays(&mut cur)?;
    if !parse_date(&mut cur, &mut spec)? {
        parse_time(&mut cur, &mut spec)?;
    }
    if cur.at(0) != 0 {
        return Err(format!("unexpected {} after the time", cur.here()));
    }
    normalize(&mut spec);
    validate(&spec)
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// systemd's `timezone_is_valid()` with the zone list of [`crate::tzdata`] for the files of
/// `/usr/share/zoneinfo`.
pub(crate) fn is_time_zone(name: &str) -> bool {
    if name == "UTC" {
        return true;
    }
    let known = |zone: &str| crate::tzdata::ZONES.binary_search(&zone).is_ok();
    match name.split_once('/') {
        Some(("posix" | "right", zone)) => zone != "posixrules" && known(zone),
        _ => known(name),
    }
}

/// Weekdays (`Mon`, `Mon..Fri`, `Sat,Sun`, any case) at the start, if any.
fn parse_weekdays(cur: &mut Cursor<'_>) -> Result<(), String> {
    let mut range_from: Option<u8> = None;
    let mut first = true;
    loop {
        let rest = cur.rest();
        let Some(&(name, number)) = WEEKDAYS.iter().find(|(name, _)| {
            rest.len() >= name.len()
                && rest.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        }) else {
            return if first {
                Ok(())
            } else {
                Err(format!("expected a weekday at {}", cur.here()))
            };
        };
        if !matches!(cur.at(name.len()), 0 | b'-' | b'.' | b',' | b' ') {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            return Err(format!(
                "'{word}' is not a weekday (Mon, Tue, … or Monday, Tuesday, …)"
            ));
        }
        if let Some(from) = range_from
            && from > number
        {
            return Err(format!(
                "the weekday range ending with {name} runs backwards; write it from Monday to Sunday (Mon..Fri)"
            ));
        }
        cur.pos += name.len();
        match cur.at(0) {
            0 => return Ok(()),
            b' ' => {
                cur.skip_spaces();
                return Ok(());
            }
            b'.' => {
                if range_from.is_some() {
                    return Err("a weekday range cannot continue with another range".into());
                }
                if cur.at(1) != b'.' {
                    return Err("write a weekday range with '..' (Mon..Fri)".into());
                }
                range_from = Some(number);
                cur.pos += 2;
            }
            b'-' => {
                if range_from.is_some() {
                    return Err("a weekday range cannot continue with another range".into());
                }
                range_from = Some(number);
                cur.pos += 1;
            }
            _ => {
                range_from = None;
                cur.pos += 1;
            }
        }
        if matches!(cur.at(0), 0 | b' ') {
            cur.skip_spaces();
            return match range_from {
                None => Ok(()),
                Some(_) => Err(format!("the weekday range after {name} has no end")),
            };
        }
        first = false;
    }
}

/// The date (`Y-M-D`, `M-D`, with `~` for days from the end of the month) or `@EPOCH`.
/// Returns whether the expression is complete (`@EPOCH` takes no time after it). A first field
/// followed by `:` or the end is a time: the cursor is left before it.
fn parse_date(cur: &mut Cursor<'_>, spec: &mut Spec) -> Result<bool, String> {
    if cur.at(0) == 0 {
        return Ok(false);
    }
    if cur.at(0) == b'@' {
        cur.pos += 1;
        return parse_epoch(cur, spec).map(|()| true);
    }
    let start = cur.pos;
    let first = parse_chain(cur, false, "date")?;
    if matches!(cur.at(0), 0 | b':') {
        cur.pos = start;
        return Ok(false);
    }
    date_separator(cur, spec)?;
    let second = parse_chain(cur, false, "date")?;
    if matches!(cur.at(0), 0 | b' ') {
        cur.skip_spaces();
        spec.month = first;
        spec.day = second;
        return Ok(false);
    }
    if spec.end_of_month {
        return Err("'~' (days from the end of the month) goes between month and day only".into());
    }
    date_separator(cur, spec)?;
    let third = parse_chain(cur, false, "date")?;
    if !matches!(cur.at(0), 0 | b' ') {
        return Err(format!("unexpected {} after the date", cur.here()));
    }
    cur.skip_spaces();
    spec.year = first;
    spec.month = second;
    spec.day = third;
    Ok(false)
}

fn date_separator(cur: &mut Cursor<'_>, spec: &mut Spec) -> Result<(), String> {
    match cur.at(0) {
        b'~' => spec.end_of_month = true,
        b'-' => {}
        _ => {
            return Err(format!(
                "unexpected {} in the date (fields are separated by '-')",
                cur.here()
            ));
        }
    }
    cur.pos += 1;
    Ok(())
}

/// `@SECONDS` since the epoch, read as C's `strtoul` reads it (leading spaces, a sign).
fn parse_epoch(cur: &mut Cursor<'_>, spec: &mut Spec) -> Result<(), String> {
    let mut pos = cur.pos;
    while cur.text.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let negative = match cur.text.get(pos) {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    let digits = cur.text[pos.min(cur.text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err("'@' must be followed by seconds since 1970-01-01 UTC".into());
    }
    let number: u64 = std::str::from_utf8(&cur.text[pos..pos + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or("the number after '@' is too large")?;
    cur.pos = pos + digits;
    let seconds = if negative {
        number.wrapping_neg()
    } else {
        number
    } as i64;
    if !(0..END_OF_EPOCHS).contains(&seconds) {
        return Err(format!(
            "@{seconds} is outside the years systemd can schedule ({}-{})",
            YEARS.0, YEARS.1
        ));
    }
    // A valid point in time: every field is in range by construction.
    let fixed = |value: i64| {
        Some(vec![Component {
            start: value,
            stop: -1,
            repeat: 0,
        }])
    };
    spec.year = fixed(YEARS.0);
    spec.month = fixed(1);
    spec.day = fixed(1);
    spec.hour = fixed(0);
    spec.minute = fixed(0);
    spec.second = fixed(0);
    Ok(())
}

/// `HH:MM[:SS[.ffffff]]`; no time at all means 00:00:00.
fn parse_time(cur: &mut Cursor<'_>, spec: &mut Spec) -> Result<(), String> {
    let zero = || {
        Some(vec![Component {
            start: 0,
            stop: -1,
            repeat: 0,
        }])
    };
    if cur.at(0) == 0 {
        spec.hour = zero();
        spec.minute = zero();
        spec.second = zero();
        return Ok(());
    }
    spec.hour = parse_chain(cur, false, "hour")?;
    if cur.at(0) != b':' {
        return Err(format!(
            "expected ':' after the hour, found {} (a time is HH:MM or HH:MM:SS)",
            cur.here()
        ));
    }
    cur.pos += 1;
    spec.minute = parse_chain(cur, false, "minute")?;
    if cur.at(0) == 0 {
        spec.second = zero();
        return Ok(());
    }
    if cur.at(0) != b':' {
        return Err(format!("unexpected {} after the minutes", cur.here()));
    }
    cur.pos += 1;
    spec.second = parse_chain(cur, true, "second")?;
    if cur.at(0) != 0 {
        return Err(format!("unexpected {} after the seconds", cur.here()));
    }
    Ok(())
}

/// One field: `*` or a comma-separated list of values, ranges and repetitions. `usec`: the
/// seconds field, which takes fractions and is kept in microseconds.
fn parse_chain(cur: &mut Cursor<'_>, usec: bool, field: &str) -> Result<Chain, String> {
    if cur.at(0) == b'*' {
        cur.pos += 1;
        return Ok(usec.then(|| {
            vec![Component {
                start: 0,
                stop: -1,
                repeat: USEC_PER_SEC,
            }]
        }));
    }
    let mut chain = Vec::new();
    loop {
        if chain.len() >= MAX_LIST {
            return Err(format!("the {field} list has more than {MAX_LIST} entries"));
        }
        let start = parse_decimal(cur, usec, field)?;
        let mut stop = -1;
        let mut repeat = 0;
        if cur.at(0) == b'.' && cur.at(1) == b'.' {
            cur.pos += 2;
            stop = parse_decimal(cur, usec, field)?;
            repeat = if usec { USEC_PER_SEC } else { 1 };
        }
        if cur.at(0) == b'/' {
            cur.pos += 1;
            repeat = parse_decimal(cur, usec, field)?;
            if repeat == 0 {
                return Err(format!("a {field} repetition of /0 never advances"));
            }
        } else if usec && stop >= 0 && start + repeat > stop {
            return Err(format!(
                "the second range {}..{} is shorter than a second; add a repetition (/0.5)",
                seconds(start),
                seconds(stop)
            ));
        }
        if !matches!(cur.at(0), 0 | b' ' | b',' | b'-' | b'~' | b':') {
            return Err(format!("unexpected {} in the {field}", cur.here()));
        }
        chain.push(Component {
            start,
            stop,
            repeat,
        });
        if cur.at(0) != b',' {
            return Ok(Some(chain));
        }
        cur.pos += 1;
    }
}

/// A number as systemd's `parse_component_decimal()` reads it: digits (seconds also a fraction,
/// rounded to microseconds), at most `INT_MAX`.
fn parse_decimal(cur: &mut Cursor<'_>, usec: bool, field: &str) -> Result<i64, String> {
    if !cur.at(0).is_ascii_digit() {
        return Err(format!(
            "expected a number or '*' in the {field}, found {}",
            cur.here()
        ));
    }
    let digits = cur.text[cur.pos..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let too_large = || format!("a number in the {field} is too large");
    let mut value: u64 = std::str::from_utf8(&cur.text[cur.pos..cur.pos + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(too_large)?;
    cur.pos += digits;
    if usec {
        value = value
            .checked_mul(USEC_PER_SEC as u64)
            .ok_or_else(too_large)?;
        if cur.at(0) == b'.' && cur.at(1) != b'.' {
            cur.pos += 1;
            let fraction = parse_fraction(cur)?;
            value = value.checked_add(fraction).ok_or_else(too_large)?;
        }
    }
    if value > INT_MAX as u64 {
        return Err(too_large());
    }
    Ok(value as i64)
}

/// Six digits of a fraction (fewer are padded), rounded up by a seventh of 5 or more; further
/// digits are skipped (systemd's `parse_fractional_part_u`).
fn parse_fraction(cur: &mut Cursor<'_>) -> Result<u64, String> {
    let mut value = 0;
    let mut taken = 0;
    while taken < 6 && cur.at(0).is_ascii_digit() {
        value = value * 10 + u64::from(cur.at(0) - b'0');
        cur.pos += 1;
        taken += 1;
    }
    if taken == 0 {
        return Err("expected digits after the decimal point of the seconds".into());
    }
    if taken == 6 && (b'5'..=b'9').contains(&cur.at(0)) {
        value += 1;
    }
    value *= 10u64.pow(6 - taken);
    while cur.at(0).is_ascii_digit() {
        cur.pos += 1;
    }
    Ok(value)
}

/// systemd's `calendar_spec_normalize()`, as far as validity depends on it.
fn normalize(spec: &mut Spec) {
    if spec.end_of_month && spec.day.is_none() {
        spec.end_of_month = false;
    }
    if let Some(years) = &mut spec.year {
        // Two-digit years: 0-69 are 2000-2069, 70-99 are 1970-1999.
        let fix = |year: &mut i64| match *year {
            0..70 => *year += 2000,
            70..100 => *year += 1900,
            _ => {}
        };
        for c in years {
            fix(&mut c.start);
            fix(&mut c.stop);
        }
    }
    for chain in [
        &mut spec.year,
        &mut spec.month,
        &mut spec.day,
        &mut spec.hour,
        &mut spec.minute,
        &mut spec.second,
    ] {
        let Some(list) = chain else { continue };
        for c in list.iter_mut() {
            if c.stop > c.start && c.repeat > 0 {
                c.stop -= (c.stop - c.start) % c.repeat;
            }
            // A repetition that never fires, or a range of one value, is that one value.
            if (c.stop > c.start && c.repeat > 0 && c.start + c.repeat > c.stop)
                || c.start == c.stop
            {
                c.repeat = 0;
                c.stop = -1;
            }
        }
        // Sorted and without repeats: the position of an entry matters below.
        list.sort_by_key(|c| (c.start, c.stop, c.repeat));
        list.dedup_by_key(|c| (c.start, c.stop, c.repeat));
    }
}

/// systemd's `calendar_spec_valid()`: every value, range end and repetition in range.
fn validate(spec: &Spec) -> Result<(), String> {
    let fields: [(&str, &Chain, i64, i64); 6] = [
        ("year", &spec.year, YEARS.0, YEARS.1),
        ("month", &spec.month, 1, 12),
        ("day", &spec.day, 1, 31),
        ("hour", &spec.hour, 0, 23),
        ("minute", &spec.minute, 0, 59),
        ("second", &spec.second, 0, 60 * USEC_PER_SEC - 1),
    ];
    for (field, chain, from, mut to) in fields {
        let end_of_month = field == "day" && spec.end_of_month;
        for c in chain.iter().flatten() {
            if end_of_month {
                // At most 28 days from the end of the month — and systemd 252 takes 3 more
                // off for each further entry of the (sorted) list: `*~2,26` is refused.
                to -= 3;
            }
            check_component(field, *c, from, to, end_of_month)?;
        }
    }
    Ok(())
}

fn check_component(
    field: &str,
    c: Component,
    from: i64,
    to: i64,
    end_of_month: bool,
) -> Result<(), String> {
    let usec = field == "second";
    let show = |v: i64| if usec { seconds(v) } else { v.to_string() };
    let tilde = if end_of_month { "~" } else { "" };
    let range = format!("{tilde}{}-{tilde}{}", show(from), show(to));
    let out_of_range = |v: i64| {
        let counted = if end_of_month {
            ": ~N counts days back from the month's last day"
        } else {
            ""
        };
        format!(
            "{field} {tilde}{} is out of range ({range}){counted}",
            show(v)
        )
    };
    if c.start < from || c.start > to {
        return Err(out_of_range(c.start));
    }
    let too_long = || {
        format!(
            "the {field} repetition /{} is too long to fire within {range}",
            show(c.repeat)
        )
    };
    if c.repeat > to - from {
        return Err(too_long());
    }
    if c.stop >= 0 {
        if c.stop < from || c.stop > to {
            return Err(out_of_range(c.stop));
        }
        if c.start + c.repeat > c.stop {
            return Err(format!(
                "the {field} range {}..{} runs backwards",
                show(c.start),
                show(c.stop)
            ));
        }
    } else if (end_of_month && c.start - c.repeat < from)
        || (!end_of_month && c.start + c.repeat > to)
    {
        return Err(too_long());
    }
    Ok(())
}

/// Microseconds as seconds: `59`, `10.5`.
fn seconds(usec: i64) -> String {
    let (whole, frac) = (usec / USEC_PER_SEC, usec % USEC_PER_SEC);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:06}")
            .trim_end_matches('0')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        check(text).is_ok()
    }

    #[test]
    fn shorthands_and_forms_from_the_manual() {
        for good in [
            "minutely",
            "HOURLY",
            "daily",
            "weekly",
            "monthly",
            "yearly",
            "annually",
            "quarterly",
            "semiannually",
            "Sat *-*-* 00:00:00",
            "Mon..Fri 04:30",
            "mon,fri 12:00",
            "Monday-Wednesday",
            "Sat,Sun,",
            "*-*-* 05:00:00",
            "2026-12-24 18:00",
            "12-25",
            "*-*~01",
            "*-02~1..3",
            "*:0/15",
            "*:*:0/0.5",
            "00:00:10.25",
            "*-*-* 05:00 UTC",
            "daily Europe/Berlin",
            "daily posix/Europe/Berlin",
            "daily America/Argentina/Buenos_Aires",
            "@1767225600",
            "69-01-01",
            "5..5/10:00",
        ] {
            assert!(ok(good), "{good:?}: {:?}", check(good));
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (bad, why) in [
            ("*-*-* 25:00", "hour 25 is out of range (0-23)"),
            ("*-*-* 05:60", "minute 60 is out of range (0-59)"),
            ("*-13-01", "month 13 is out of range (1-12)"),
            ("*-*~29", "day ~29 is out of range (~1-~28)"),
            ("2200-01-01", "year 2200 is out of range (1970-2199)"),
            ("Fri..Mon", "runs backwards"),
            ("Mon..", "has no end"),
            ("Mond", "'Mond' is not a weekday"),
            ("*:*/15", "unexpected '/'"),
            ("12", "expected ':' after the hour"),
            ("*:30/30", "repetition /30 is too long"),
            ("00:00:10.5..11", "shorter than a second"),
            ("", "it is empty"),
            ("daily\tUTC", "control character"),
            ("daily Europe/Nowhere", "expected a number"),
            ("@-1", "outside the years"),
        ] {
            let err = Calendar::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(
                err.starts_with(&format!("\"{}\"", bad.escape_debug())),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn time_zones() {
        for zone in [
            "UTC",
            "Europe/Berlin",
            "CET",
            "Etc/GMT+5",
            "posix/UTC",
            "right/Asia/Tokyo",
        ] {
            assert!(is_time_zone(zone), "{zone}");
        }
        for zone in [
            "utc",
            "Europe/Nowhere",
            "localtime",
            "posix/posixrules",
            "Europe//Berlin",
            "/UTC",
            "",
        ] {
            assert!(!is_time_zone(zone), "{zone}");
        }
        assert!(
            crate::tzdata::ZONES.windows(2).all(|w| w[0] < w[1]),
            "sorted"
        );
    }

    #[test]
    fn lists_are_limited_like_systemd() {
        let list = |n: usize| format!("*:{}", vec!["0"; n].join(","));
        assert!(ok(&list(MAX_LIST)));
        assert!(!ok(&list(MAX_LIST + 1)));
    }

    #[test]
    fn the_text_is_kept() {
        let c = Calendar::parse("12-25 ").unwrap();
        assert_eq!(c.to_string(), "12-25");
        assert_eq!(seconds(10_500_000), "10.5");
        assert_eq!(seconds(59_000_000), "59");
    }
}
