//! The job verbs: `left4mectl overlay build NAME`, a script overlay's build as a content job
//! of `left4me-jobs`, and `overlay jobs`, the job ledger.
//!
//! This verb only maps the overlay definition and host.toml to a [`Job`], shows the plan
//! (`--dry-run`, `--unit-file`) or runs it, prints the job's progress (every output line with
//! the elapsed time in front) and the verdict. Preflight, the transient unit, the sandbox
//! invocation, the disk guard, the output check, the publish and the ledger are the library's.

use std::ffi::OsString;

use left4me_jobs::pipeline::JobError;
use left4me_jobs::unit::{MAX_ARG_BYTES, escape_for_exec};
use left4me_jobs::{
    Event, Job, JobKind, Limits, NetworkPolicy, OverlayDirs, Profile, Progress, Report, Retired,
    Seeded, Start, Status, Stop, SystemdRun, format_bytes, format_duration,
};
use left4me_spec::{OverlayKind, Refresh};

use super::{self as overlay, check_overlay_name, format_utc_ms, job_host, read_ledger, workshop};
use crate::Ctx;
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, fields, progress, shell_quote, table};
use crate::systemd;

/// What `overlay build` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// Print the systemd-run command line, change nothing.
    DryRun,
    /// Print the unit as a unit file, change nothing.
    UnitFile,
}

/// `overlay build NAME`: a script overlay's script in the sandbox, or a workshop overlay's
/// items ([`super::workshop`]).
pub fn build(ctx: &Ctx, name: &str, mode: Mode) -> anyhow::Result<u8> {
    build_outcome(ctx, name, mode).map(|_| EXIT_OK)
}

/// [`build`], saying what became of the content: `built` (a script overlay), `published`,
/// `unchanged` (a workshop overlay) or `dry-run`; a failed build is the error.
pub(crate) fn build_outcome(ctx: &Ctx, name: &str, mode: Mode) -> anyhow::Result<String> {
    let catalog = ctx.catalog()?;
    let def = overlay::load_def(&catalog, name)?;
    match &def.kind {
        OverlayKind::Script { .. } => {
            build_script(ctx, &catalog, name, &def.kind, mode)?;
            Ok(if mode == Mode::Run {
                "built"
            } else {
                "dry-run"
            }
            .to_owned())
        }
        OverlayKind::Workshop {
            items,
            collections,
            exclude,
            ..
        } => {
            if mode == Mode::UnitFile {
                return Err(UsageError::new(format!(
                    "overlay {name} is a workshop overlay: its download unit exists only for \
                     what the cache lacks; `left4mectl overlay build {name} --dry-run` shows \
                     what a build would download"
                ))
                .into());
            }
            let lists = workshop::Lists {
                items,
                collections,
                exclude,
            };
            let built = workshop::build(ctx, &catalog, name, &lists, mode == Mode::DryRun)?;
            finish_workshop(&built)
        }
        OverlayKind::Manual => Err(UsageError::new(format!(
            "overlay {name} is a manual overlay: its content is put into {} by hand; only \
             script and workshop overlays are built",
            catalog.layout.overlay_content(name).display()
        ))
        .into()),
    }
}

/// Prints a workshop build's line (a failure is the error) and turns the nightly refresh on
/// after a good build.
fn finish_workshop(built: &workshop::Built) -> anyhow::Result<String> {
    match built.outcome {
        "failed" => return Err(anyhow::anyhow!("{}", built.summary)),
        "dry-run" => progress(&format!("{}\n", built.summary))?,
        _ => {
            let timer = enable_refresh_timer();
            progress(&format!("{}{timer}\n", built.summary))?;
        }
    }
    Ok(built.outcome.to_owned())
}

/// Turns the nightly refresh on after a good build of an overlay that refreshes.
pub(crate) fn enable_refresh_timer() -> String {
    systemd::enable_timer("left4me-overlay-refresh.timer", "refreshes it nightly")
}

/// A script overlay's build.
fn build_script(
    ctx: &Ctx,
    catalog: &left4me_spec::Catalog,
    name: &str,
    kind: &OverlayKind,
    mode: Mode,
) -> anyhow::Result<u8> {
    let OverlayKind::Script {
        script,
        network,
        allow_ports,
        limits,
        refresh,
    } = kind
    else {
        unreachable!("the caller matched a script overlay");
    };
    // Measured as it goes on the command line: systemd-run's `$` escaping doubles each `$`.
    let on_command_line = escape_for_exec(script).len();
    if on_command_line > MAX_ARG_BYTES {
        return Err(UsageError::new(format!(
            "the script of overlay {name} is {on_command_line} bytes on the command line, more \
             than the {MAX_ARG_BYTES} one argument can hold; move the bulk into a file the \
             script downloads"
        ))
        .into());
    }
    let job = Job {
        kind: JobKind::OverlayBuild,
        name: name.to_owned(),
        command: ["/bin/bash", "-c", script.as_str()]
            .map(OsString::from)
            .to_vec(),
        profile: Profile::Script,
        network: if *network {
            NetworkPolicy::Public {
                ports: allow_ports.clone(),
            }
        } else {
            NetworkPolicy::Off
        },
        limits: Limits {
            memory_max: limits.memory_max.to_string(),
            tasks_max: limits.tasks_max,
            timeout: limits.timeout.to_string(),
        },
        output: OverlayDirs::new(&catalog.layout.state_dir, name),
        game_user: catalog.host.game_user.clone(),
        sandbox_user: catalog.host.sandbox_user.clone(),
    };
    let host = job_host(&catalog.layout);
    let plan = job.plan(&host)?;
    match mode {
        Mode::DryRun => {
            let line: Vec<String> = std::iter::once(OsString::from("systemd-run"))
                .chain(plan.unit.systemd_run_args())
                .map(|arg| shell_quote(&arg.to_string_lossy()))
                .collect();
            emit(&format!("{}\n", line.join(" ")))?;
            return Ok(EXIT_OK);
        }
        Mode::UnitFile => {
            emit(&plan.unit.unit_file())?;
            return Ok(EXIT_OK);
        }
        Mode::Run => {}
    }
    let mut printer = Printer::new(name, ctx.verbose);
    let report = left4me_jobs::run(&job, &plan, &host, &SystemdRun, &Stop::new(), &mut printer)
        .map_err(|err| match err {
            JobError::Preflight(p) if p.is_usage() => UsageError::new(p.to_string()).into(),
            other => anyhow::Error::from(other),
        })?;
    for line in &report.summary.lines {
        ctx.note(1, || format!("systemd: {line}"));
    }
    let code = verdict(name, &report)?;
    if *refresh == Refresh::Daily {
        let timer = enable_refresh_timer();
        if !timer.is_empty() {
            progress(&format!("overlay {name}: refresh = \"daily\"{timer}\n"))?;
        }
    }
    Ok(code)
}

/// `overlay jobs [NAME] [--json] [--log] [-n N]`.
pub fn jobs(
    ctx: &Ctx,
    name: Option<&str>,
    json: bool,
    log: bool,
    limit: usize,
) -> anyhow::Result<u8> {
    // The game's SteamCMD runs share the ledger under their own name (`game jobs` lists them
    // too).
    let game = name == Some(left4me_jobs::steamcmd::LEDGER_NAME);
    if let Some(name) = name.filter(|_| !game) {
        check_overlay_name(name)?;
    }
    list_jobs(ctx, name, json, log, limit)
}

/// The ledger's jobs of `name` (every job when `None`): a table, `--json`, or with `--log` the
/// last lines of each job's output. `game jobs` shows the game's (`game:222860`).
pub fn list_jobs(
    ctx: &Ctx,
    name: Option<&str>,
    json: bool,
    log: bool,
    limit: usize,
) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let jobs = match read_ledger(&catalog) {
        Some(ledger) => ledger.jobs(name, limit)?,
        None => Vec::new(),
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&jobs)?))?;
        return Ok(EXIT_OK);
    }
    if jobs.is_empty() {
        emit(&format!(
            "no jobs recorded{} in {}\n",
            match name {
                Some(left4me_jobs::steamcmd::LEDGER_NAME) => " for the game (SteamCMD runs)".into(),
                Some(n) => format!(" for {n}"),
                None => String::new(),
            },
            catalog.layout.database().display()
        ))?;
        return Ok(EXIT_OK);
    }
    let cells: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.to_string(),
                job.overlay.clone(),
                format_utc_ms(job.started_ms),
                job.duration().map_or("-".into(), format_duration),
                job.status.to_string(),
                job.exit_status.map_or("-".into(), |s| s.to_string()),
                job.detail.clone(),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "ID",
            "NAME",
            "STARTED (UTC)",
            "TOOK",
            "STATUS",
            "EXIT",
            "DETAIL",
        ],
        &cells,
    );
    if log {
        for job in &jobs {
            text.push_str(&format!(
                "\n--- job {} of {} ({}), last lines of its output:\n{}\n",
                job.id,
                job.overlay,
                job.unit,
                if job.log_tail.is_empty() {
                    "(none)"
                } else {
                    &job.log_tail
                }
            ));
        }
    }
    emit(&text)?;
    Ok(EXIT_OK)
}

/// The operator's last line: what was built and what became of the previous content, or why
/// nothing changed (an error, so the exit status says it too).
fn verdict(name: &str, report: &Report) -> anyhow::Result<u8> {
    let took = format_duration(report.elapsed);
    let current = report.content.display();
    if report.status != Status::Succeeded {
        return Err(anyhow::anyhow!(
            "overlay {name}: build {} after {took}: {}; {current} is unchanged (build log: \
             `left4mectl overlay jobs {name}`)",
            report.status.ledger_status(),
            report.status.detail(),
        ));
    }
    let previous: Vec<String> = report
        .retired
        .iter()
        .map(|r| match r {
            Retired::Removed(path) => format!("removed {}", path.display()),
            Retired::Kept { path, instances } => format!(
                "kept in {} while {} still mount{} it (removed by a later build once they \
                 restart)",
                path.display(),
                instances.join(", "),
                if instances.len() == 1 { "s" } else { "" }
            ),
        })
        .collect();
    let previous = if previous.is_empty() {
        String::new()
    } else {
        format!("; previous content {}", previous.join(", "))
    };
    progress(&format!(
        "overlay {name}: built in {took}; {current} holds the new content{previous}; running \
         instances see it after their next restart\n"
    ))?;
    Ok(EXIT_OK)
}

/// Prints a build's events: notes and the header on stdout, each output line with the time
/// since the start, warnings on stderr.
pub(crate) struct Printer<'a> {
    name: &'a str,
    verbose: u8,
}

impl<'a> Printer<'a> {
    pub(crate) fn new(name: &'a str, verbose: u8) -> Self {
        Printer { name, verbose }
    }

    fn header(&self, start: &Start<'_>) -> String {
        let seeded = match start.seeded {
            Seeded::From { dir, stats } => format!(
                "seeded with {} ({} files, {})",
                dir.display(),
                stats.files,
                format_bytes(stats.bytes)
            ),
            Seeded::Empty => "empty: the overlay has no content yet".to_owned(),
            Seeded::Fresh => "empty: only the items the cache lacks are downloaded".to_owned(),
        };
        let network = match start.network {
            NetworkPolicy::Public { ports } => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!(
                    "TCP to ports {} of public addresses; DNS {}",
                    ports.join(", "),
                    start.resolver.map_or_else(String::new, |r| r.describe())
                )
            }
            NetworkPolicy::Off => "none".to_owned(),
        };
        let limits = start.limits;
        let details = fields(&[
            ("  output", format!("{} ({seeded})", start.output.display())),
            ("  network", network),
            (
                "  limits",
                format!(
                    "memory {}, tasks {}, time {}",
                    limits.memory_max, limits.tasks_max, limits.timeout
                ),
            ),
        ]);
        format!(
            "overlay {}: building in {}\n{}\n",
            self.name,
            start.unit,
            details.trim_end()
        )
    }
}

impl Progress for Printer<'_> {
    fn event(&mut self, event: Event<'_>) {
        let text = match event {
            Event::Abandoned(count) => {
                if self.verbose >= 1 {
                    eprintln!("marked {count} unfinished build(s) abandoned");
                }
                return;
            }
            Event::StaleBuildRemoved(path) => {
                format!("removed the stale build dir {}\n", path.display())
            }
            Event::OldContentRemoved(path) => format!("removed old content {}\n", path.display()),
            Event::Starting(start) => self.header(start),
            Event::Line { at, text } => format!("[{:>7.1}s] {text}\n", at.as_secs_f64()),
            Event::Stopping { signal, unit } => {
                eprintln!("left4mectl: signal {signal}: stopping {unit}");
                return;
            }
            Event::Warning(warning) => {
                eprintln!("warning: {warning}");
                return;
            }
        };
        // A closed stdout does not stop the build; its outcome is in the ledger.
        let _ = progress(&text);
    }
}
