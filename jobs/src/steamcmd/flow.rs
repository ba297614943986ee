//! [`run`]: one game job, from the preflight to the appmanifest check.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use left4me_game::steamcmd::appinfo;
use left4me_game::steamcmd::args::{self, AppUpdate, Login, Platform};
use left4me_game::steamcmd::manifest::{self, AppManifest};
use left4me_game::steamcmd::output::{self, Remedy, SteamError, Verdict};

use super::files::GameDirs;
use super::tap::Tap;
use super::{
    Action, GameEvent, GameFailure, GameJob, GameJobError, GameProgress, GameReport, GameStatus,
    INSTALL_DIR_IN_SANDBOX, LEDGER_NAME, Pass, SELF_UPDATE_BYTES, SteamcmdUnit, steam_ports,
};
use crate::content;
use crate::disk::{DiskGuard, room};
use crate::job::{Host, NetworkPolicy, Resolver};
use crate::ledger::{Ledger, LedgerStatus};
use crate::pipeline::write_resolver;
use crate::preflight;
use crate::progress::{Event, Seeded, Start};
use crate::record;
use crate::stream::Stop;
use crate::systemd::UnitRunner;
use crate::unit::TransientUnit;
use crate::verdict::{Failure, Status};

/// The L4D2 dedicated server takes about 10 GiB on disk; 12 GiB leaves room for what SteamCMD
/// stages on the way.
pub const INSTALL_ESTIMATE: u64 = 12 << 30;

/// The least an update is budgeted.
pub const UPDATE_MINIMUM: u64 = 1 << 30;

/// The bytes a job is expected to write, when the caller does not say: a first install
/// [`INSTALL_ESTIMATE`]; an update or validate a quarter of the current install's
/// `SizeOnDisk` (changed files are downloaded and copied up into the new layer whole; a
/// quarter is a generous guess for a game update), at least [`UPDATE_MINIMUM`]; a check
/// nothing. It is a preflight courtesy: the disk guard stops a run that eats into the reserve
/// whatever the guess was.
pub fn estimate_download(action: Action, current: Option<&AppManifest>) -> u64 {
    match (action, current) {
        (Action::Check, _) => 0,
        (_, Some(current)) if current.size_on_disk > 0 && action != Action::Install => {
            (current.size_on_disk / 4).max(UPDATE_MINIMUM)
        }
        (Action::Install, _) => INSTALL_ESTIMATE,
        _ => INSTALL_ESTIMATE / 4,
    }
}

/// How one run ended.
enum RunEnd {
    Steam(Verdict),
    Unit(Failure),
    Interrupted,
}

/// The state of one job across its runs.
struct Runner<'a, 'p> {
    job: &'a GameJob,
    host: &'a Host,
    runner: &'a dyn UnitRunner,
    stop: &'a Stop,
    dirs: &'a GameDirs,
    ledger: &'a Ledger,
    guard: &'a DiskGuard,
    tap: Tap<'p>,
    report: GameReport,
}

/// Carries out `job` on `host`: systemd through `runner`, events to `progress`; `stop` (also
/// requested by SIGINT, SIGTERM and SIGHUP while a unit runs) stops it.
pub fn run(
    job: &GameJob,
    host: &Host,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn GameProgress,
) -> Result<GameReport, GameJobError> {
    let started = Instant::now();
    let kind = job.action.kind();
    preflight::check_host(runner)?;
    preflight::check_user_names(&job.game_user, &job.sandbox_user, host)?;
    preflight::check_no_earlier_units(kind, LEDGER_NAME, runner)?;
    // Refuse arguments SteamCMD would misread before anything changes.
    first_passes(job)
        .first()
        .map(|pass| argv_for(job, pass, None))
        .transpose()?;
    let dirs = GameDirs::open(job)?;
    let guard = check_room(job, &dirs)?;
    let mut tap = Tap::new(progress, job.beta_password.as_ref().map(|s| s.expose()));
    let ledger = record::open_ledger(host, kind, LEDGER_NAME, &mut tap)?;
    match job.action {
        Action::Check => {
            dirs.forget_appinfo()?;
        }
        _ => dirs.create_steamapps()?,
    }
    let mut state = Runner {
        job,
        host,
        runner,
        stop,
        dirs: &dirs,
        ledger: &ledger,
        guard: &guard,
        tap,
        report: GameReport {
            status: GameStatus::Interrupted,
            build_id: None,
            bytes_downloaded: 0,
            bytes_written: 0,
            passes: Vec::new(),
            platform_workaround: false,
            ledger_ids: Vec::new(),
            elapsed: Duration::ZERO,
            log_tail: Vec::new(),
        },
    };
    state.report.status = state.passes()?;
    state.report.bytes_written = dirs.tree_bytes();
    state.report.elapsed = started.elapsed();
    Ok(state.report)
}

/// The passes a job starts with: one linux pass (`validate` for install and validate); a
/// check has one pass of its own.
fn first_passes(job: &GameJob) -> Vec<Pass> {
    vec![Pass {
        platform: (job.action != Action::Check).then_some(Platform::Linux),
        validate: matches!(job.action, Action::Install | Action::Validate),
    }]
}

/// The name of a run's `+runscript` file in SteamCMD's home.
fn script_name(id: &str) -> String {
    format!(".left4me-run-{id}.txt")
}

/// SteamCMD's arguments for `pass`, and the `+runscript` text when a beta password must stay
/// off the command line (`id`: the run's id, naming the script).
fn argv_for(
    job: &GameJob,
    pass: &Pass,
    id: Option<&str>,
) -> Result<(Vec<String>, Option<String>), GameJobError> {
    if job.action == Action::Check {
        return Ok((args::app_info(&job.login)?, None));
    }
    let update = AppUpdate {
        install_dir: INSTALL_DIR_IN_SANDBOX,
        login: &job.login,
        platform: pass.platform,
        branch: &job.branch,
        beta_password: job.beta_password.as_ref().map(|s| s.expose()),
        validate: pass.validate,
    };
    if update.beta_password.is_some() && update.branch != args::PUBLIC_BRANCH {
        let script = format!("/home/steamcmd/{}", script_name(id.unwrap_or("check")));
        let (argv, text) = update.script(&script)?;
        Ok((argv, Some(text)))
    } else {
        Ok((update.argv()?, None))
    }
}

/// The disk guard, once the file system has room for the download, SteamCMD's self-update
/// and the guard's reserve.
fn check_room(job: &GameJob, dirs: &GameDirs) -> Result<DiskGuard, GameJobError> {
    let guard = preflight::check_disk(&job.output)?;
    let current = match job.action {
        Action::Update | Action::Validate if !job.lowers.is_empty() => dirs
            .read_manifest()?
            .and_then(|text| manifest::parse(&text).ok()),
        _ => None,
    };
    let needed = job
        .expected_download
        .unwrap_or_else(|| estimate_download(job.action, current.as_ref()))
        + SELF_UPDATE_BYTES;
    let free = room(&job.output)
        .map_err(crate::PathIo::at("statvfs", &job.output))?
        .bytes_free;
    if free < needed.saturating_add(guard.reserve.bytes) {
        return Err(GameJobError::NoRoom {
            path: job.output.clone(),
            free,
            needed,
            reserve: guard.reserve.bytes,
        });
    }
    Ok(guard)
}

/// Sleeps `wait` unless a stop is requested first; whether it slept the whole time.
fn pause(wait: Duration, stop: &Stop) -> bool {
    let end = Instant::now() + wait;
    while !stop.is_requested() {
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
    false
}

impl Runner<'_, '_> {
    /// Runs passes until the job succeeds, fails or is stopped.
    fn passes(&mut self) -> Result<GameStatus, GameJobError> {
        let job = self.job;
        let mut queue: VecDeque<Pass> = first_passes(job).into();
        let (mut retries, mut waits) = (0u32, 0u32);
        while let Some(pass) = queue.front().copied() {
            let end = self.run_once(&pass)?;
            let run = self.report.passes.len() as u32;
            let verdict = match end {
                RunEnd::Interrupted => return Ok(GameStatus::Interrupted),
                RunEnd::Unit(failure) => return Ok(GameStatus::Failed(GameFailure::Job(failure))),
                RunEnd::Steam(verdict) => verdict,
            };
            let wait = match verdict.remedy() {
                None => {
                    queue.pop_front();
                    if queue.is_empty() {
                        return self.conclude();
                    }
                    continue;
                }
                Some(Remedy::PlatformWorkaround)
                    if job.login == Login::Anonymous
                        && job.action != Action::Check
                        && !self.report.platform_workaround =>
                {
                    self.report.platform_workaround = true;
                    self.tap.tell(GameEvent::PlatformWorkaround);
                    queue = VecDeque::from([
                        Pass {
                            platform: Some(Platform::Windows),
                            validate: false,
                        },
                        Pass {
                            platform: Some(Platform::Linux),
                            validate: true,
                        },
                    ]);
                    continue;
                }
                Some(Remedy::Retry) if retries + 1 < job.retry.attempts => {
                    retries += 1;
                    job.retry.backoff_for(retries)
                }
                Some(Remedy::Wait) if waits < job.retry.rate_limit_retries => {
                    waits += 1;
                    job.retry.rate_limit_wait
                }
                Some(Remedy::Retry | Remedy::Wait) => {
                    return Ok(GameStatus::Failed(GameFailure::GaveUp {
                        verdict,
                        runs: run,
                    }));
                }
                Some(_) => return Ok(GameStatus::Failed(self.fatal(verdict))),
            };
            self.tap.tell(GameEvent::Waiting {
                why: &verdict,
                wait,
            });
            if !pause(wait, self.stop) {
                return Ok(GameStatus::Interrupted);
            }
        }
        self.conclude()
    }

    /// A final verdict as a failure, disk full with the free space.
    fn fatal(&self, verdict: Verdict) -> GameFailure {
        match verdict {
            Verdict::Error(SteamError::DiskFull { state }) => GameFailure::DiskFull {
                state,
                free: room(&self.job.output).map_or(0, |r| r.bytes_free),
            },
            verdict => GameFailure::Steam(verdict),
        }
    }

    /// One SteamCMD run of `pass` in its own unit, recorded in the ledger.
    fn run_once(&mut self, pass: &Pass) -> Result<RunEnd, GameJobError> {
        let job = self.job;
        let id = content::new_build_id()?;
        let (argv, script) = argv_for(job, pass, Some(&id))?;
        let _script = match &script {
            Some(text) => Some(self.dirs.write_private(&script_name(&id), text)?),
            None => None,
        };
        let network = NetworkPolicy::Public {
            ports: steam_ports(),
        };
        let resolver = Resolver::for_run(self.host, &format!("game-{id}"));
        let _resolv_guard = write_resolver(&resolver, &self.host.run_dir)?;
        let unit = SteamcmdUnit {
            kind: job.action.kind(),
            id: &id,
            game_user: &job.game_user,
            sandbox_user: &job.sandbox_user,
            limits: &job.limits,
            output: &job.output,
            lowers: &job.lowers,
            home: &job.home,
            resolver: Some(&resolver),
            args: argv.into_iter().map(OsString::from).collect(),
        }
        .unit();
        self.report.passes.push(*pass);
        let run = self.report.passes.len() as u32;
        self.tap.tell(GameEvent::Run { pass, run });
        self.tap.begin_run();
        self.tap.event_starting(&unit, job, &network, &resolver);
        let recorded = record::run_recorded(
            self.ledger,
            job.action.kind(),
            LEDGER_NAME,
            &unit,
            self.guard,
            self.runner,
            self.stop,
            &mut self.tap,
        )?;
        self.report.ledger_ids.push(recorded.ledger_id);
        let tail: Vec<String> = recorded
            .streamed
            .tail
            .iter()
            .map(|line| self.tap.scrub(line))
            .collect();
        let end = match record::judge_streamed(&recorded.streamed, &job.limits, self.guard) {
            Status::Interrupted => RunEnd::Interrupted,
            Status::Succeeded => RunEnd::Steam(self.judge(0)),
            // SteamCMD's own exit status (the runner's are 125 and up).
            Status::Failed(Failure::Exit(status)) if (0..125).contains(&status) => {
                RunEnd::Steam(self.judge(status as i32))
            }
            Status::Failed(failure) => RunEnd::Unit(failure),
        };
        let (status, detail) = match &end {
            RunEnd::Interrupted => (LedgerStatus::Interrupted, "stopped by a signal".to_owned()),
            RunEnd::Unit(failure) => (LedgerStatus::Failed, failure.to_string()),
            RunEnd::Steam(Verdict::Claimed) => {
                (LedgerStatus::Success, format!("{}", Verdict::Claimed))
            }
            RunEnd::Steam(verdict) => (LedgerStatus::Failed, verdict.to_string()),
        };
        record::finish(
            self.ledger,
            recorded.ledger_id,
            status,
            &detail,
            &recorded.streamed,
            &tail,
        )?;
        self.report.log_tail = tail;
        Ok(end)
    }

    /// The run's verdict from its lines and SteamCMD's exit status.
    fn judge(&self, exit: i32) -> Verdict {
        output::judge(&self.tap.lines, exit, self.job.action != Action::Check)
    }

    /// After the last pass claimed success: the appmanifest checked (an update), or the remote
    /// build read (a check). A failed check completes the last ledger row as failed.
    fn conclude(&mut self) -> Result<GameStatus, GameJobError> {
        let job = self.job;
        let status = if job.action == Action::Check {
            match appinfo::remote_build(&self.tap.text, &job.branch) {
                Ok(build) => {
                    self.report.build_id = Some(build);
                    GameStatus::Succeeded
                }
                Err(err) => GameStatus::Failed(GameFailure::AppInfo(err)),
            }
        } else {
            match self
                .dirs
                .read_manifest()?
                .map(|text| manifest::parse(&text))
            {
                None => GameStatus::Failed(GameFailure::NoManifest),
                Some(Err(err)) => GameStatus::Failed(GameFailure::BadManifest(err)),
                Some(Ok(found)) => {
                    self.report.build_id = Some(found.buildid);
                    self.report.bytes_downloaded = found.bytes_downloaded;
                    let problems = found.problems(&job.branch, job.expected_build);
                    if problems.is_empty() {
                        GameStatus::Succeeded
                    } else {
                        GameStatus::Failed(GameFailure::Manifest(problems))
                    }
                }
            }
        };
        if let (GameStatus::Failed(failure), Some(&id)) = (&status, self.report.ledger_ids.last()) {
            self.ledger
                .finish_detail(id, LedgerStatus::Failed, &failure.to_string())?;
        }
        Ok(status)
    }
}

impl Tap<'_> {
    /// Tells the caller the unit is about to start.
    fn event_starting(
        &mut self,
        unit: &TransientUnit,
        job: &GameJob,
        network: &NetworkPolicy,
        resolver: &Resolver,
    ) {
        self.tell(GameEvent::Job(Event::Starting(&Start {
            unit: &unit.unit,
            output: &job.output,
            seeded: &Seeded::Empty,
            network,
            resolver: Some(&resolver.plan),
            limits: &job.limits,
        })));
    }
}
