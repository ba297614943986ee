//! left4me content jobs: run an untrusted program in the sandbox through `systemd-run`, stream
//! its progress, record it in the job ledger, and publish its output as the new content of a
//! content dir only if it succeeded. `left4mectl overlay build` is one client; game installs
//! through SteamCMD and workshop downloads are meant to be others.
//!
//! A [`Job`] is plain data (the command, the sandbox [`Profile`], the [`NetworkPolicy`], the
//! [`Limits`], the content dir it publishes to). [`Job::plan`] makes the [`Plan`] of one run
//! without touching the host; [`pipeline::run`] carries it out and returns a [`Report`] whose
//! [`Status`] is an enum. The pieces, one module each:
//!
//! - [`preflight`]: root, systemd, the users, the overlay's lock, the disk (bytes and inodes);
//! - [`mod@unit`]: the transient unit's properties and the runner's typed command line
//!   ([`left4me_contract::SandboxArgs`]), with [`netrange`] and [`resolver`] for its network;
//! - [`systemd`]: the narrow seam through which `systemd-run` and `systemctl` are called
//!   ([`UnitRunner`]); `testing` (the `testing` feature) has its recording double;
//! - [`stream`]: the output, sanitized, line by line to the caller's [`Progress`];
//! - [`disk`]: the guard that stops a job filling the state dir's file system (bytes or inodes);
//! - [`verdict`]: systemd-run's summary judged into a [`Status`];
//! - [`content`], [`check`], [`publish`]: the output dir, its check, the `RENAME_EXCHANGE`
//!   publish and the retirement of replaced content while instances still mount it, all through
//!   descriptors of the root-owned `overlays/` (`left4me-statedir`), never by path;
//! - [`ledger`]: the SQLite job ledger, in root's admin dir;
//! - [`workshop`]: workshop overlays: the download job, the content-addressed cache of VPKs,
//!   the hard-linked trees and the cache's gc.
//!
//! What this crate must not do: parse command-line arguments, print (everything goes through
//! [`Progress`] and the returned values), read spec files, or know about instances beyond
//! finding their mounts. Its errors are `thiserror` enums, one per module;
//! [`preflight::PreflightError::is_usage`] tells the refusals that are the operator's to fix.

#![forbid(unsafe_code)]

pub mod check;
pub mod content;
pub mod disk;
pub mod job;
pub mod ledger;
pub mod netrange;
pub mod pipeline;
pub mod preflight;
pub mod progress;
pub mod publish;
mod record;
pub mod resolver;
pub mod steamcmd;
pub mod stream;
pub mod systemd;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod unit;
pub mod verdict;
pub mod workshop;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use content::{CopyStats, OverlayDirs};
pub use job::{Host, Job, JobKind, Limits, NetworkPolicy, Plan};
pub use ledger::{Ledger, LedgerStatus, Record};
pub use left4me_contract::Profile;
pub use pipeline::{JobError, Report, run};
pub use progress::{Event, Progress, Seeded, Start, Warning};
pub use publish::Retired;
pub use stream::Stop;
pub use systemd::{SystemdRun, UnitRunner};
pub use unit::TransientUnit;
pub use verdict::{Failure, Status, Summary};

/// A file operation that failed on a path: `{action} {path}: {source}`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct PathIo {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl PathIo {
    /// A `map_err` adapter: `.map_err(PathIo::at("read", path))`.
    pub fn at(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PathIo {
        let path = path.to_path_buf();
        move |source| PathIo {
            action,
            path,
            source,
        }
    }
}

/// `512 B`, `3.0 MiB`: a size for people.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A short human span: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

/// An error and its sources, `: `-separated, as `anyhow` prints `{:#}`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_and_spans() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h03m");
    }
}
