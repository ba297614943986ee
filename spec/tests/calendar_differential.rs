//! The calendar check against the real thing: every expression of the corpus goes through
//! `systemd-analyze calendar` (systemd 252 on the development and CI machines) and through
//! [`left4me_spec::Calendar::parse`], and the verdicts must agree. Needs only `systemd-analyze`
//! and the tz database (`tzdata`); fails loudly without them.
//!
//! `systemd-analyze` runs with `TZ=UTC`, so the local zone's abbreviations are `UTC` only (see
//! spec/src/calendar.rs for how host-dependent zones are decided).

use std::process::Command;

use left4me_spec::Calendar;

/// Expressions systemd 252 accepts.
const VALID: &[&str] = &[
    // shorthands, any case, and systemd's compatibility spellings
    "minutely",
    "hourly",
    "daily",
    "DAILY",
    "weekly",
    "monthly",
    "yearly",
    "annually",
    "anually",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "bi-annually",
    // weekdays
    "Mon",
    "mon",
    "Monday",
    "Mon..Fri",
    "mon..fri 04:30",
    "Monday..Friday 12:00",
    "Mon-Fri",
    "Sat,Sun",
    "Sat,Sun,",
    "Mon,Wed..Fri 22:00",
    "Mon   12:00",
    "Sun..Sun",
    "Mon..Sun 00:00",
    // dates
    "*-*-*",
    "*-*-* 05:00:00",
    "*-*-* 05:00",
    "2026-12-24 18:00",
    "2026-12-24",
    "12-25",
    "12-25 ",
    "*-*-* ",
    "69-01-01",
    "70-01-01",
    "1970-01-01",
    "2199-12-31 23:59:59",
    "2000-01-01",
    "*-02-30",
    "*-01,07-01",
    "*-1..6-1",
    "2024/2-01-01",
    "*-*-1/7",
    "*-*~01",
    "*-*~28",
    "*-02~03",
    "02~1..3",
    "*-*~7/2",
    "*-*~1..7",
    "*~2,25",
    "*~1,2,3,4,5,6,7",
    // times
    "*:0/15",
    "*:00/15:00",
    "*:0/59",
    "0/2:00",
    "8..18:00",
    "5..5/10:00",
    "0..23/24:00",
    "8..18/3:30",
    "00:00:10.5",
    "00:00:10.25",
    "*:*:0/0.5",
    "*:*:10..20",
    "*:*:10..11.5/0.5",
    "*:*:59.999999",
    "*:*:59.9999994",
    "12:00:00.1234567",
    "Sat *-*-* 00:00:00",
    "Fri *-*-1..7 18:00",
    // time zones
    "*-*-* 05:00 UTC",
    "daily utc",
    "daily UTC",
    "daily Europe/Berlin",
    "Mon..Fri 04:30 America/New_York",
    "daily America/Argentina/Buenos_Aires",
    "daily Etc/UTC",
    "daily CET",
    "daily posix/Europe/Berlin",
    "daily right/UTC",
    "daily US/Eastern",
    // epochs
    "@0",
    "@1767225600",
    "@ 5",
    "@+5",
    "@-0",
    "@7258118399",
];

/// Expressions systemd 252 refuses.
const INVALID: &[&str] = &[
    "",
    " ",
    " daily",
    "daily ",
    "hourlyx",
    "UTC",
    " UTC",
    "daily Europe/Nowhere",
    "daily europe/berlin",
    "daily Europe//Berlin",
    "Europe/Berlin",
    "daily Europe/Berlin UTC",
    "Mond",
    "Mo",
    "Mon..",
    "Mon-",
    "Fri..Mon",
    "Mon.Fri",
    "Mon..Wed..Fri",
    "Mon..Wed-Fri",
    "Mon,5",
    "Mon,,Tue",
    "*-*-* 25:00",
    "*-*-* 24:00",
    "*-*-* 05:60",
    "*:*:60",
    "*-13-01",
    "*-00-01",
    "*-*-00",
    "*-*-32",
    "*-*~29",
    "*-*~0",
    "*-*~1/2",
    "*~2,26",
    "*~26,2",
    "*~1,2,3,4,5,6,7,8,9",
    "2200-01-01",
    "1969-12-31",
    "100-01-01",
    "2024~02-03",
    "2024-02~03~04",
    "12",
    "Mon 12",
    "12:00 ",
    "12:00:00 ",
    "12.5:00",
    "*:*/15",
    "*/2:00",
    "*:30/30",
    "*:0/60",
    "*:0/0",
    "10..5:00",
    "00:00:10.5..11",
    "*:*:5.",
    "*:*:59.9999995",
    "*:*:10...20",
    "1-2-3-4",
    "**",
    "*-*-*x",
    "-1:00",
    "+1:00",
    "1 2",
    "99999999999:00",
    "*:*:2147",
    "@",
    "@-1",
    "@5x",
    "@5 12:00",
    "@7258118400",
    "@99999999999999999999999",
    "now",
    "tomorrow",
    "Mon 12:00 Fri",
];

/// Whether `systemd-analyze calendar` accepts `expr`.
fn systemd_accepts(expr: &str) -> bool {
    let out = Command::new("systemd-analyze")
        .args(["calendar", "--"])
        .arg(expr)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run systemd-analyze ({err}); install systemd, the test needs it")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("Failed to parse calendar specification"),
        "systemd-analyze calendar {expr:?} failed for another reason: {stderr}"
    );
    out.status.success()
}

#[test]
fn calendar_verdicts_match_systemd_analyze() {
    assert!(
        std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").is_file(),
        "the tz database is missing: install tzdata"
    );
    // 241 list entries is systemd's limit; 242 is one too many.
    let list = |n: usize| format!("*:{}", vec!["0"; n].join(","));
    let (long_ok, long_bad) = (list(241), list(242));
    let valid = VALID.iter().copied().chain([long_ok.as_str()]);
    let invalid = INVALID.iter().copied().chain([long_bad.as_str()]);
    let mut disagreements = Vec::new();
    let mut count = 0;
    for (expected, expr) in valid.map(|e| (true, e)).chain(invalid.map(|e| (false, e))) {
        count += 1;
        let systemd = systemd_accepts(expr);
        let ours = Calendar::parse(expr);
        if systemd != expected {
            disagreements.push(format!(
                "{expr:?}: the corpus says {}, systemd-analyze {}",
                verdict(expected),
                verdict(systemd)
            ));
        }
        if ours.is_ok() != systemd {
            disagreements.push(format!(
                "{expr:?}: systemd-analyze {}, Calendar::parse {} ({ours:?})",
                verdict(systemd),
                verdict(ours.is_ok())
            ));
        }
    }
    assert!(count >= 60, "the corpus has only {count} expressions");
    assert!(
        disagreements.is_empty(),
        "{} of {count} disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    println!("{count} expressions: Calendar::parse agrees with systemd-analyze calendar on each");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "accepts" } else { "refuses" }
}

/// A small deterministic generator (an LCG: the corpus is the same on every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A number, mostly in the ranges that matter (0-70), sometimes well beyond.
    fn number(&mut self) -> String {
        match self.below(10) {
            0 => (1960 + self.below(260)).to_string(),
            1 => self.below(200).to_string(),
            _ => self.below(70).to_string(),
        }
    }

    /// One field: `*`, a value, a range, a repetition or a list of these.
    fn field(&mut self, seconds: bool) -> String {
        let value = |g: &mut Lcg| {
            let mut v = g.number();
            if seconds && g.below(4) == 0 {
                v = format!("{v}.{}", g.pick(&["5", "25", "9999995", "", "0000004"]));
            }
            v
        };
        match self.below(7) {
            0 | 1 => "*".into(),
            2 => value(self),
            3 => format!("{}..{}", value(self), value(self)),
            4 => format!("{}/{}", value(self), value(self)),
            5 => format!("{}..{}/{}", value(self), value(self), value(self)),
            _ => format!("{},{}", value(self), value(self)),
        }
    }

    fn expression(&mut self) -> String {
        if self.below(25) == 0 {
            return format!("@{}", self.below(8_000_000_000));
        }
        let mut parts = Vec::new();
        if self.below(3) == 0 {
            parts.push(
                self.pick(&[
                    "Mon",
                    "mon..fri",
                    "Sat,Sun",
                    "Fri..Mon",
                    "Tue-",
                    "Wednesday,",
                ])
                .to_owned(),
            );
        }
        match self.below(4) {
            0 => {}
            1 => parts.push(format!("{}-{}", self.field(false), self.field(false))),
            2 => parts.push(format!(
                "{}-{}{}{}",
                self.field(false),
                self.field(false),
                self.pick(&["-", "-", "~"]),
                self.field(false)
            )),
            _ => parts.push(format!("{}~{}", self.field(false), self.field(false))),
        }
        match self.below(3) {
            0 => {}
            1 => parts.push(format!("{}:{}", self.field(false), self.field(false))),
            _ => parts.push(format!(
                "{}:{}:{}",
                self.field(false),
                self.field(false),
                self.field(true)
            )),
        }
        match self.below(6) {
            0 => parts.push("UTC".into()),
            1 => parts.push(self.pick(&["Europe/Berlin", "Nowhere/Zone", "utc"]).into()),
            _ => {}
        }
        let sep = self.pick(&[" ", " ", " ", "  "]);
        parts.join(sep)
    }
}

#[test]
fn random_calendar_verdicts_match_systemd_analyze() {
    let mut lcg = Lcg(0x001e_f74e);
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    let count = 400;
    for _ in 0..count {
        let expr = lcg.expression();
        let systemd = systemd_accepts(&expr);
        accepted += usize::from(systemd);
        let ours = Calendar::parse(&expr);
        if ours.is_ok() != systemd {
            disagreements.push(format!(
                "{expr:?}: systemd-analyze {}, Calendar::parse {} ({ours:?})",
                verdict(systemd),
                verdict(ours.is_ok())
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {count} disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    println!("{count} generated expressions ({accepted} valid): all verdicts agree");
}
