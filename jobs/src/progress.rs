//! What a running job tells its caller, as it happens: the library never prints; the caller's
//! [`Progress`] decides how (left4mectl prints each output line with the elapsed time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::content::CopyStats;
use crate::job::{Limits, NetworkPolicy};
use crate::publish::PublishError;
use crate::resolver::ResolverPlan;

/// Receives a job's events. Called from the job's thread and its signal watcher, one call at a
/// time.
pub trait Progress: Send {
    fn event(&mut self, event: Event<'_>);
}

impl<F: FnMut(Event<'_>) + Send> Progress for F {
    fn event(&mut self, event: Event<'_>) {
        self(event)
    }
}

/// One thing that happened.
#[derive(Debug)]
pub enum Event<'a> {
    /// Earlier unfinished runs found `running` in the ledger were marked `abandoned`.
    Abandoned(usize),
    /// The build dir of an earlier run that never ended was removed.
    StaleBuildRemoved(&'a Path),
    /// Content replaced by an earlier run, no longer mounted, was removed.
    OldContentRemoved(&'a Path),
    /// The unit is about to start.
    Starting(&'a Start<'a>),
    /// One line of the job's output (sanitized), `at` after the start.
    Line { at: Duration, text: &'a str },
    /// A signal to this process: the unit is being stopped.
    Stopping { signal: i32, unit: &'a str },
    /// Something went wrong that does not change the job's outcome.
    Warning(&'a Warning),
}

/// What the job starts with.
#[derive(Debug)]
pub struct Start<'a> {
    pub unit: &'a str,
    /// The dir the command fills.
    pub output: &'a Path,
    pub seeded: &'a Seeded,
    pub network: &'a NetworkPolicy,
    /// The job's resolver, when it has network.
    pub resolver: Option<&'a ResolverPlan>,
    pub limits: &'a Limits,
}

/// What the output dir holds before the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// A copy of the current content.
    From { dir: PathBuf, stats: CopyStats },
    /// Nothing: there is no content yet.
    Empty,
    /// Nothing: a download dir, filled with only what is missing (workshop items).
    Fresh,
}

/// Something the operator should know that does not change the job's outcome.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    /// A ledger side file (journal, WAL) another user planted was removed before the open.
    #[error("removing {}: not written by this user", .0.display())]
    ForeignLedgerFile(PathBuf),
    #[error("the previous content stays in {}: {error}", at.display())]
    OldContentStays {
        at: PathBuf,
        error: left4me_statedir::DirError,
    },
    #[error("old content not removed: {0}")]
    RetireFailed(PublishError),
}
