//! One run of a job, start to end: [`run`].
//!
//! In order: the [`crate::preflight`] checks and the job's lock; earlier unfinished
//! rows of the ledger marked abandoned; stale build dirs removed and old content that no mount
//! uses any more retired; the output dir created (owned by the game user) and seeded with the
//! current content; the resolver file written; the run recorded in the ledger; the unit run with
//! its output streamed ([`crate::stream`]); the outcome judged ([`crate::verdict`]); then, only
//! on success, the output checked ([`crate::check`]) and published ([`crate::publish`]), or
//! else deleted. The ledger row is completed either way.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use left4me_contract::Ids;

use crate::check::{self, CheckError};
use crate::content::{self, ContentError};
use crate::disk::DiskGuard;
use crate::error_chain;
use crate::job::{Host, Job, Plan, Resolver};
use crate::ledger::{Ending, Ledger, LedgerError, LedgerStatus, now_ms};
use crate::preflight::{self, PreflightError};
use crate::progress::{Event, Progress, Seeded, Start, Warning};
use crate::publish::{self, PublishError, Retired};
use crate::stream::{self, Stop, StreamError, Streamed};
use crate::systemd::UnitRunner;
use crate::verdict::{Failure, Status, Summary, judge};

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
    Publish(#[from] PublishError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("cannot remove the stale build dir {}", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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

/// Removes a path when dropped unless disarmed.
struct Cleanup {
    path: Option<PathBuf>,
    dir: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = if self.dir {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
        }
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
    preflight::ensure_owned_dir(&job.output.overlays, game)?;
    let _lock = preflight::lock(job, host)?;
    preflight::check_no_earlier_unit(job, runner)?;
    let ledger = Ledger::open(&host.database, true)?.expect("create opens or fails");
    for path in ledger.removed_side_files() {
        progress.event(Event::Warning(&Warning::ForeignLedgerFile(path.clone())));
    }
    let abandoned = ledger.abandon_running(&job.name)?;
    if abandoned > 0 {
        progress.event(Event::Abandoned(abandoned));
    }
    clear_leftovers(job, host, progress)?;
    let guard = preflight::check_disk(&job.output.overlays)?;

    let (mut output_guard, seeded) = create_output(job, plan, game)?;
    let _resolv_guard = match &plan.resolver {
        Some(resolver) => Some(write_resolver(resolver)?),
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

    let started_ms = now_ms();
    let ledger_id = ledger.begin(job.kind, &job.name, &plan.unit.unit, started_ms)?;
    let started = Instant::now();
    let streamed = stream::run_unit(runner, &plan.unit, &guard, stop, progress);
    let elapsed = started.elapsed();
    let streamed = match streamed {
        Ok(streamed) => streamed,
        Err(err) => {
            let _ = ledger.finish(
                ledger_id,
                &Ending {
                    ended_ms: now_ms(),
                    status: LedgerStatus::Failed,
                    result: None,
                    exit_status: None,
                    detail: &error_chain(&err),
                    log_tail: "",
                },
            );
            return Err(err.into());
        }
    };
    let (status, bytes_written) = judge_run(job, &streamed, &guard, &plan.output);
    let (status, retired) = if status == Status::Succeeded {
        publish_output(job, plan, host, game, &mut output_guard, progress)?
    } else {
        (status, Vec::new())
    };
    drop(output_guard);
    let Streamed { tail, summary, .. } = streamed;
    ledger.finish(
        ledger_id,
        &Ending {
            ended_ms: now_ms(),
            status: status.ledger_status(),
            result: summary.result.as_deref(),
            exit_status: summary.exit_status,
            detail: &status.detail(),
            log_tail: &tail.join("\n"),
        },
    )?;
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

/// The fresh output dir, seeded with the current content; removed when the returned guard
/// drops, unless the output was published.
fn create_output(job: &Job, plan: &Plan, game: Ids) -> Result<(Cleanup, Seeded), JobError> {
    content::create_owned_dir(&plan.output, game)?;
    let guard = Cleanup {
        path: Some(plan.output.clone()),
        dir: true,
    };
    let current = job.output.current();
    let seeded = if current.is_dir() {
        let stats = content::seed(&current, &plan.output, game)?;
        Seeded::From {
            dir: current,
            stats,
        }
    } else {
        Seeded::Empty
    };
    Ok((guard, seeded))
}

/// Removes the build dirs of earlier runs that never ended and retires old content.
fn clear_leftovers(job: &Job, host: &Host, progress: &mut dyn Progress) -> Result<(), JobError> {
    let (builds, _) = job.output.leftovers()?;
    for stale in builds {
        fs::remove_dir_all(&stale).map_err(|source| JobError::RemoveStale {
            path: stale.clone(),
            source,
        })?;
        progress.event(Event::StaleBuildRemoved(&stale));
    }
    for retired in publish::retire(&job.output, &host.runtime_root)? {
        if let Retired::Removed(path) = retired {
            progress.event(Event::OldContentRemoved(&path));
        }
    }
    Ok(())
}

/// Writes the job's resolv.conf (readable by the unit's user); removed when the guard drops.
fn write_resolver(resolver: &Resolver) -> Result<Cleanup, JobError> {
    let error = |source| JobError::Resolver {
        path: resolver.path.clone(),
        source,
    };
    let _ = fs::remove_file(&resolver.path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&resolver.path)
        .map_err(error)?;
    let cleanup = Cleanup {
        path: Some(resolver.path.clone()),
        dir: false,
    };
    file.write_all(resolver.plan.render().as_bytes())
        .map_err(error)?;
    Ok(cleanup)
}

/// The run's status, with the disk checked once more, and the output's size.
fn judge_run(job: &Job, streamed: &Streamed, guard: &DiskGuard, output: &Path) -> (Status, u64) {
    let mut status = judge(
        &streamed.summary,
        streamed.run_status,
        &job.limits,
        streamed.interrupted,
        streamed.guard.clone(),
    );
    // A job that filled the disk and ended before the guard looked.
    if status == Status::Succeeded
        && let Some(failure) = guard.check(false)
    {
        status = Status::Failed(failure);
    }
    (status, content::tree_size(output))
}

/// Checks the output and, when it passes, exchanges it with the content dir; the previous
/// content becomes `.NAME.old-ID` and old dirs no mount uses are removed.
fn publish_output(
    job: &Job,
    plan: &Plan,
    host: &Host,
    game: Ids,
    output_guard: &mut Cleanup,
    progress: &mut dyn Progress,
) -> Result<(Status, Vec<Retired>), JobError> {
    let problems = check::check_output(&plan.output, game)?;
    if !problems.is_empty() {
        return Ok((Status::Failed(Failure::Refused(problems)), Vec::new()));
    }
    let swapped = publish::swap_in(&job.output.current(), &plan.output)?;
    // From here the output is live content or, after an exchange, the previous content that
    // running instances may still have mounted: never delete it.
    output_guard.path = None;
    if swapped {
        let old = job.output.old(&plan.id);
        if let Err(error) = fs::rename(&plan.output, &old) {
            progress.event(Event::Warning(&Warning::OldContentStays {
                at: plan.output.clone(),
                to: old,
                error,
            }));
        }
    }
    let retired = match publish::retire(&job.output, &host.runtime_root) {
        Ok(retired) => retired,
        Err(err) => {
            progress.event(Event::Warning(&Warning::RetireFailed(err)));
            Vec::new()
        }
    };
    Ok((Status::Succeeded, retired))
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
