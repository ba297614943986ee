//! The steps every job shares, whatever it runs: the ledger opened and cleared of rows its
//! left4mectl never completed, one unit run recorded in it (row begun, output streamed, row
//! completed), and the verdict on the disk. Overlay builds ([`crate::pipeline`]) and SteamCMD
//! runs ([`crate::steamcmd`]) are both made of these.

use std::time::{Duration, Instant};

use crate::disk::DiskGuard;
use crate::error_chain;
use crate::job::{Host, JobKind, Limits};
use crate::ledger::{Ending, Ledger, LedgerStatus, now_ms};
use crate::pipeline::JobError;
use crate::progress::{Event, Progress, Warning};
use crate::stream::{self, Stop, Streamed};
use crate::systemd::UnitRunner;
use crate::unit::TransientUnit;
use crate::verdict::{Status, judge};

/// Opens the ledger (created when missing) for a job of `kind` named `name`: side files
/// another user planted are reported, and earlier `running` rows of its family are marked
/// abandoned (the caller holds the job's lock, so none is really running).
pub(crate) fn open_ledger(
    host: &Host,
    kind: JobKind,
    name: &str,
    progress: &mut dyn Progress,
) -> Result<Ledger, JobError> {
    let ledger = Ledger::open(&host.database, true)?.expect("create opens or fails");
    for path in ledger.removed_side_files() {
        progress.event(Event::Warning(&Warning::ForeignLedgerFile(path.clone())));
    }
    let abandoned = ledger.abandon_running(name, kind.family())?;
    if abandoned > 0 {
        progress.event(Event::Abandoned(abandoned));
    }
    Ok(ledger)
}

/// One unit run as the ledger knows it.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub ledger_id: i64,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub elapsed: Duration,
    pub streamed: Streamed,
}

/// Records a run of `unit` (a job of `kind` named `name`) in `ledger` and runs it, streaming
/// its output to `progress` under the disk `guard`; a run whose output could not be streamed
/// is completed as failed before the error is returned.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_recorded(
    ledger: &Ledger,
    kind: JobKind,
    name: &str,
    unit: &TransientUnit,
    guard: &DiskGuard,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn Progress,
) -> Result<Recorded, JobError> {
    let started_ms = now_ms();
    let ledger_id = ledger.begin(kind, name, &unit.unit, started_ms)?;
    let started = Instant::now();
    let streamed = stream::run_unit(runner, unit, guard, stop, progress);
    let elapsed = started.elapsed();
    match streamed {
        Ok(streamed) => Ok(Recorded {
            ledger_id,
            started_ms,
            elapsed,
            streamed,
        }),
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
            Err(err.into())
        }
    }
}

/// The status of a streamed run under `limits`, with the disk checked once more (a job that
/// filled the disk and ended before the guard looked fails all the same).
pub(crate) fn judge_streamed(streamed: &Streamed, limits: &Limits, guard: &DiskGuard) -> Status {
    let status = judge(
        &streamed.summary,
        streamed.run_status,
        limits,
        streamed.interrupted,
        streamed.guard.clone(),
    );
    if status == Status::Succeeded
        && let Some(failure) = guard.check(false)
    {
        return Status::Failed(failure);
    }
    status
}

/// Completes the row of `recorded` with `status`, its detail and the run's last lines.
pub(crate) fn complete(
    ledger: &Ledger,
    recorded: &Recorded,
    status: &Status,
) -> Result<(), JobError> {
    finish(
        ledger,
        recorded.ledger_id,
        status.ledger_status(),
        &status.detail(),
        &recorded.streamed,
        &recorded.streamed.tail,
    )
}

/// Completes row `id`: `status`, its one-line `detail`, and what the run printed (`tail`).
pub(crate) fn finish(
    ledger: &Ledger,
    id: i64,
    status: LedgerStatus,
    detail: &str,
    streamed: &Streamed,
    tail: &[String],
) -> Result<(), JobError> {
    ledger.finish(
        id,
        &Ending {
            ended_ms: now_ms(),
            status,
            result: streamed.summary.result.as_deref(),
            exit_status: streamed.summary.exit_status,
            detail,
            log_tail: &tail.join("\n"),
        },
    )?;
    Ok(())
}
