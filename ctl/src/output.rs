//! How left4mectl shows things: stdout that tolerates a closed pipe, aligned tables and
//! `label  value` fields, shell quoting, the one-line forms of spec values (limits, overlays,
//! arguments) and of spec errors, and times, spans and sizes.

use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use left4me_spec::{OverlayRef, Resources, SpecError};

/// Writes `text` to stdout; a closed pipe (`left4mectl list | head -1`) is not an error.
pub fn emit(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Where [`progress`] writes: stderr once set.
static PROGRESS_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends [`progress`] to stderr from now on: a verb whose stdout is JSON (`overlay refresh
/// --json`) keeps the running commentary of the jobs it runs off it.
pub fn progress_to_stderr() {
    PROGRESS_TO_STDERR.store(true, Ordering::Relaxed);
}

/// Writes a long job's running commentary (its plan, output lines, verdict): stdout, like
/// [`emit`], or stderr after [`progress_to_stderr`].
pub fn progress(text: &str) -> io::Result<()> {
    if !PROGRESS_TO_STDERR.load(Ordering::Relaxed) {
        return emit(text);
    }
    let mut err = io::stderr().lock();
    err.write_all(text.as_bytes()).and_then(|()| err.flush())
}

/// A table with a header row; columns are separated by two spaces and the last one is not
/// padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `label  value` lines with the labels padded to one width; a multi-line value continues
/// under its first line.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(format!("{label:<width$}  {first}").trim_end());
        out.push('\n');
        for line in lines {
            out.push_str(format!("{:<width$}  {line}", "").trim_end());
            out.push('\n');
        }
    }
    out
}

/// Quotes `arg` for a POSIX shell; plain words are left as they are.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `-` for an empty value.
pub fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// Arguments as one shell-quoted line.
pub fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cpu_affinity=2-3 memory_max=2G …`: the resource limits that are set.
pub fn limits_line(res: &Resources) -> String {
    res.entries()
        .into_iter()
        .map(|(key, _, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per overlay, lowest first.
pub fn overlay_lines(overlays: &[OverlayRef]) -> String {
    overlays
        .iter()
        .map(|o| match &o.alias {
            Some(alias) => format!("{}  (alias {alias})", o.path),
            None => o.path.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A spec error without its file: `key 'port': REASON`, for lines that name the file already.
pub fn spec_problem(err: &SpecError) -> String {
    match &err.key {
        Some(key) => format!("key '{key}': {}", err.reason),
        None => err.reason.clone(),
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-21 23:42:51 UTC (3min 2s ago)`.
pub fn format_since(at: u64, now: u64) -> String {
    format!(
        "{} UTC ({} ago)",
        format_utc(at as i64),
        format_span(now.saturating_sub(at))
    )
}

/// `42s`, `3min 2s`, `2h 5min`, `3d 4h`.
pub fn format_span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}min {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}min", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `512B`, `952.0K`, `1.4G`, as systemd prints sizes.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// `YYYY-MM-DD HH:MM:SS` of Unix seconds, in UTC (no time zone database needed).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["coop1".into(), "27015".into(), "ok".into()],
            vec!["versus-long".into(), "27016".into(), "error: x".into()],
        ];
        assert_eq!(
            table(&["NAME", "PORT", "STATUS"], &rows),
            "NAME         PORT   STATUS\ncoop1        27015  ok\nversus-long  27016  error: x\n"
        );
    }

    #[test]
    fn fields_align_and_continue() {
        let text = fields(&[("port", "27015".into()), ("config", "a\nb".into())]);
        assert_eq!(text, "port    27015\nconfig  a\n        b\n");
    }

    #[test]
    fn formats_times_and_sizes() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_795_304_571), "2026-11-21 23:42:51");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(
            format_since(1_795_304_571, 1_795_304_571 + 182),
            "2026-11-21 23:42:51 UTC (3min 2s ago)"
        );
        assert_eq!(format_span(42), "42s");
        assert_eq!(format_span(182), "3min 2s");
        assert_eq!(format_span(7500), "2h 5min");
        assert_eq!(format_span(3 * 86_400 + 4 * 3600), "3d 4h");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(974_848), "952.0K");
        assert_eq!(format_size(1_503_238_554), "1.4G");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("+map"), "+map");
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
