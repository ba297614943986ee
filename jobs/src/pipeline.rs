//! One run of a job, start to end: [`run`].
//!
//! In order: the [`crate::preflight`] checks and the overlay's lock; `overlays/` opened beneath
//! the state dir (every later action on content goes through that descriptor); earlier
//! unfinished rows of the ledger marked abandoned; stale build dirs removed and old content that
//! no mount uses any more retired; the output dir created by root and handed to the game user,
//! and seeded with the current content; the resolver file written in root's run dir; the run recorded in the ledger; the unit run with
//! its output streamed ([`crate::stream`]); the outcome judged ([`crate::verdict`]); then, only
//! on success, the output checked ([`crate::check`]) and published ([`crate::publish`]), or
//! else deleted. The ledger row is completed either way.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use left4me_contract::Ids;

use crate::check::{self, CheckError};
use crate::content::{self, ContentError, Overlays};
use crate::job::{Host, Job, Plan, Resolver};
use crate::ledger::LedgerError;
use crate::preflight::{self, PreflightError};
use crate::progress::{Event, Progress, Seeded, Start};
use crate::publish::{self, PublishError, Retired};
use crate::record::{self, Recorded};
use crate::stream::{Stop, StreamError, Streamed};
use crate::systemd::UnitRunner;
use crate::verdict::{Failure, Status, Summary};

/// Why a job could not be carried out (as opposed to a job that ran and failed: that is a
/// [`Report`] with [`Status::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Dir(#[from] left4me_statedir::DirError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(
        "{} is not root's own directory (owner uid {uid}, mode {mode:04o}): the build's \
         resolv.conf is written there as root; run `systemd-tmpfiles --create left4me.conf` or \
         remove it",
        path.display()
    )]
    RunDir { path: PathBuf, uid: u32, mode: u32 },
    #[error("cannot write {}", path.display())]
    Resolver {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The ledger row (`left4mectl overlay jobs` shows its log tail).
    pub ledger_id: i64,
    pub unit: String,
    pub status: Status,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub elapsed: Duration,
    /// Bytes in regular files of the output when the command ended.
    pub bytes_written: u64,
    pub summary: Summary,
    /// The content dir: new content when the job succeeded, unchanged otherwise.
    pub content: PathBuf,
    /// What became of replaced content (after a publish).
    pub retired: Vec<Retired>,
    /// The last lines of the output.
    pub log_tail: Vec<String>,
}

/// Removes a build dir (an entry of `overlays/`) when dropped unless disarmed.
struct BuildDirGuard<'a> {
    overlays: &'a Overlays,
    entry: Option<String>,
}

impl Drop for BuildDirGuard<'_> {
    fn drop(&mut self) {
        if let Some(entry) = &self.entry {
            let _ = self.overlays.remove(entry);
        }
    }
}

/// Removes a file of root's run dir when dropped.
pub(crate) struct FileGuard(pub(crate) PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Carries out `plan` of `job` on `host`: systemd through `runner`, events to `progress`;
/// `stop` (also requested by SIGINT, SIGTERM and SIGHUP while the unit runs) stops the unit.
pub fn run(
    job: &Job,
    plan: &Plan,
    host: &Host,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn Progress,
) -> Result<Report, JobError> {
    preflight::check_host(runner)?;
    let game = preflight::check_users(job, host)?;
    let _lock = job
        .output
        .lock(&host.locks_dir)
        .map_err(PreflightError::from)?;
    preflight::check_no_earlier_unit(job, runner)?;
    let overlays = job.output.open(true)?.expect("create opens or fails");
    let ledger = record::open_ledger(host, job.kind, &job.name, progress)?;
    clear_leftovers(&overlays, host, progress)?;
    let guard = preflight::check_disk(overlays.dir().path())?;

    let (mut output_guard, seeded) = create_output(&overlays, plan, game)?;
    let _resolv_guard = match &plan.resolver {
        Some(resolver) => Some(write_resolver(resolver, &host.run_dir)?),
        None => None,
    };
    progress.event(Event::Starting(&Start {
        unit: &plan.unit.unit,
        output: &plan.output,
        seeded: &seeded,
        network: &job.network,
        resolver: plan.resolver.as_ref().map(|r| &r.plan),
        limits: &job.limits,
    }));

    let Recorded {
        ledger_id,
        started_ms,
        elapsed,
        streamed,
    } = record::run_recorded(
        &ledger, job.kind, &job.name, &plan.unit, &guard, runner, stop, progress,
    )?;
    let status = record::judge_streamed(&streamed, &job.limits, &guard);
    let bytes_written = overlays
        .dir()
        .open_dir(overlays.names().build_name(&plan.id))
        .and_then(|build| build.usage())
        .map_or(0, |usage| usage.bytes);
    let (status, retired) = if status == Status::Succeeded {
        publish_output(&overlays, plan, host, game, &mut output_guard, progress)?
    } else {
        (status, Vec::new())
    };
    drop(output_guard);
    record::finish(
        &ledger,
        ledger_id,
        status.ledger_status(),
        &status.detail(),
        &streamed,
        &streamed.tail,
    )?;
    let Streamed { tail, summary, .. } = streamed;
    Ok(Report {
        ledger_id,
        unit: plan.unit.unit.clone(),
        status,
        started_ms,
        elapsed,
        bytes_written,
        summary,
        content: job.output.current(),
        retired,
        log_tail: tail,
    })
}

/// The fresh output dir, created by root in `overlays/` for the game user and seeded with the
/// current content; removed when the returned guard drops, unless the output was published.
fn create_output<'a>(
    overlays: &'a Overlays,
    plan: &Plan,
    game: Ids,
) -> Result<(BuildDirGuard<'a>, Seeded), JobError> {
    let build = overlays.create_build(&plan.id, game)?;
    let guard = BuildDirGuard {
        overlays,
        entry: Some(overlays.names().build_name(&plan.id)),
    };
    let seeded = match overlays.current()? {
        Some(current) => Seeded::From {
            stats: content::seed(&current, &build, game)?,
            dir: current.path().to_path_buf(),
        },
        None => Seeded::Empty,
    };
    Ok((guard, seeded))
}

/// Removes the build dirs of earlier runs that never ended and retires old content.
pub(crate) fn clear_leftovers(
    overlays: &Overlays,
    host: &Host,
    progress: &mut dyn Progress,
) -> Result<(), JobError> {
    let (builds, _) = overlays.leftovers()?;
    for stale in builds {
        overlays.remove(&stale)?;
        progress.event(Event::StaleBuildRemoved(&overlays.path(&stale)));
    }
    for retired in publish::retire(overlays, &host.runtime_root)? {
        if let Retired::Removed(path) = retired {
            progress.event(Event::OldContentRemoved(&path));
        }
    }
    Ok(())
}

/// Creates root's run dir (0700) when missing and refuses one root does not own alone: a
/// file root writes there by path must not be redirectable.
fn ensure_run_dir(run_dir: &Path) -> Result<(), JobError> {
    let io_error = |source| JobError::Resolver {
        path: run_dir.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(run_dir)
        .map_err(io_error)?;
    for dir in [Some(run_dir), run_dir.parent()].into_iter().flatten() {
        let meta = fs::symlink_metadata(dir).map_err(io_error)?;
        let mode = meta.mode() & 0o7777;
        if !meta.is_dir() || meta.uid() != 0 || mode & 0o022 != 0 {
            return Err(JobError::RunDir {
                path: dir.to_path_buf(),
                uid: meta.uid(),
                mode,
            });
        }
    }
    Ok(())
}

/// Writes the job's resolv.conf (readable by the unit's user) in root's `run_dir`; removed
/// when the guard drops.
pub(crate) fn write_resolver(resolver: &Resolver, run_dir: &Path) -> Result<FileGuard, JobError> {
    ensure_run_dir(run_dir)?;
    let error = |source| JobError::Resolver {
        path: resolver.path.clone(),
        source,
    };
    let _ = fs::remove_file(&resolver.path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32) // fits in i32 (0o400000)
        .open(&resolver.path)
        .map_err(error)?;
    let cleanup = FileGuard(resolver.path.clone());
    file.write_all(resolver.plan.render().as_bytes())
        .map_err(error)?;
    Ok(cleanup)
}

/// Checks the output and, when it passes, exchanges it with the content dir; the previous
/// content becomes `.NAME.old-ID` and old dirs no mount uses are removed.
fn publish_output(
    overlays: &Overlays,
    plan: &Plan,
    host: &Host,
    game: Ids,
    output_guard: &mut BuildDirGuard<'_>,
    progress: &mut dyn Progress,
) -> Result<(Status, Vec<Retired>), JobError> {
    let build = overlays
        .dir()
        .open_dir(overlays.names().build_name(&plan.id))?;
    let problems = check::check_output(&build, game)?;
    drop(build);
    if !problems.is_empty() {
        return Ok((Status::Failed(Failure::Refused(problems)), Vec::new()));
    }
    let retired = publish::publish_build(overlays, &plan.id, &host.runtime_root, progress)?;
    // From here the output is live content or, after an exchange, the previous content that
    // running instances may still have mounted: never delete it.
    output_guard.entry = None;
    Ok((Status::Succeeded, retired))
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod privileged_tests;
