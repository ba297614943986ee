//! `left4mectl overlay build NAME`: run a script overlay's build in a transient unit and swap
//! its output in when it succeeds.
//!
//! In order: refuse a second build of the same overlay (a lock file, and a look for a unit of
//! an earlier left4mectl that was killed); retire old content dirs no mount uses any more;
//! create `overlays/.NAME.build-ID` owned by the game user and seed it with the current
//! content; write the build's resolv.conf; record the build in the ledger; run
//! `systemd-run --wait --pipe --collect` with the properties of [`BuildUnit`], streaming its
//! output with the elapsed time in front of every line; then check the output and exchange it
//! with `overlays/NAME` ([`crate::content`]), or delete it. While the build runs, a guard stops
//! it when the state dir's file system runs low ([`disk_reserve`]), and Ctrl-C / SIGTERM stop
//! the unit instead of leaving it behind.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use left4me_spec::{Catalog, OverlayDef, OverlayKind};
use rustix::fs::FlockOperation;

use crate::build_unit::{BuildRequest, BuildUnit, MAX_SCRIPT_BYTES, NetworkAccess};
use crate::content::{self, OverlayDirs, Retired};
use crate::error::{EXIT_OK, UsageError};
use crate::ledger::{self, Ending, Ledger, TAIL_LINES, format_duration};
use crate::output::shell_quote;
use crate::passwd::{self, PASSWD};
use crate::resolver::{self, ResolverPlan};
use crate::{Ctx, overlay, systemd};

/// Where builds' resolv.conf files live while they run.
pub const RUNTIME_DIR: &str = "/run/left4me/builds";

/// The lines `systemd-run --wait` prints after the unit has ended (its own, not the script's).
const SUMMARY_PREFIXES: &[&str] = &[
    "Finished with result: ",
    "Main processes terminated with: ",
    "Service runtime: ",
    "CPU time consumed: ",
    "IP traffic received: ",
    "IP traffic sent: ",
    "IO bytes read: ",
    "IO bytes written: ",
];

/// The longest output line shown or kept; longer ones are cut.
const MAX_LINE: usize = 2000;

/// What `overlay build` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// Print the systemd-run command line, change nothing.
    DryRun,
    /// Print the unit as a unit file, change nothing.
    UnitFile,
}

/// The free space the state dir's file system keeps during a build: 5 % of it, at least
/// 16 MiB and at most 1 GiB. A build that eats into it is killed.
pub fn disk_reserve(total_bytes: u64) -> u64 {
    (total_bytes / 20).clamp(16 << 20, 1 << 30)
}

/// `(free, total)` bytes of the file system holding `path`.
fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

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

/// Makes untrusted output safe for a terminal: a carriage-return progress line keeps its last
/// state, control characters (escape sequences!) are shown as `\xNN`, long lines are cut.
pub fn sanitize(line: &str) -> String {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line
        .rsplit('\r')
        .find(|segment| !segment.is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if out.len() >= MAX_LINE {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// systemd-run's summary of the ended unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `success`, `exit-code`, `signal`, `timeout`, `oom-kill`, …
    pub result: Option<String>,
    /// The main process's exit status, when it exited.
    pub exit_status: Option<i64>,
    /// The signal that killed it (`TERM`, `KILL`, …), when one did.
    pub signal: Option<String>,
    /// The other summary lines (runtime, traffic), as printed.
    pub lines: Vec<String>,
}

impl Summary {
    pub fn parse(lines: &[String]) -> Self {
        let mut summary = Summary::default();
        for line in lines {
            if let Some(result) = line.strip_prefix("Finished with result: ") {
                summary.result = Some(result.trim().to_owned());
            } else if let Some(how) = line.strip_prefix("Main processes terminated with: ") {
                // code=exited/status=3 or code=killed/status=TERM
                let (code, status) = how.split_once('/').unwrap_or((how, ""));
                let status = status.trim_start_matches("status=").trim();
                match code {
                    "code=exited" => summary.exit_status = status.parse().ok(),
                    _ => summary.signal = Some(status.to_owned()),
                }
            } else {
                summary.lines.push(line.clone());
            }
        }
        summary
    }
}

/// What the runner's exit status means.
pub fn describe_exit(status: i64) -> String {
    match status {
        125 => "the sandbox could not be set up (left4me-sandbox exit status 125; its error is \
                in the output above)"
            .into(),
        126 => "the script could not be executed (exit status 126)".into(),
        127 => "the script's interpreter was not found (exit status 127)".into(),
        159 => {
            "the script was killed by SIGSYS: it used a forbidden system call architecture".into()
        }
        s if s > 128 => format!("the script was killed by signal {}", s - 128),
        s => format!("the script exited with status {s}"),
    }
}

/// The outcome of one build, for the ledger and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// `success`, `failed`, `interrupted`.
    status: &'static str,
    detail: String,
}

fn judge(
    summary: &Summary,
    run_status: Option<i32>,
    def_limits: &left4me_spec::ScriptLimits,
    interrupted: bool,
    guard: Option<&str>,
) -> Outcome {
    let failed = |detail: String| Outcome {
        status: "failed",
        detail,
    };
    if let Some(why) = guard {
        return failed(why.to_owned());
    }
    if interrupted {
        return Outcome {
            status: "interrupted",
            detail: "stopped by a signal to left4mectl (Ctrl-C?)".into(),
        };
    }
    match summary.result.as_deref() {
        Some("success") if run_status == Some(0) => Outcome {
            status: "success",
            detail: "the script succeeded".into(),
        },
        // The kernel's OOM killer sends SIGKILL; when it hits the runner's direct child,
        // systemd sees an exit status, not an oom-kill result.
        Some("exit-code") if summary.exit_status == Some(137) => failed(format!(
            "the script was killed by SIGKILL: usually the memory limit ([limits] memory_max = \
             \"{}\")",
            def_limits.memory_max
        )),
        Some("exit-code") => failed(describe_exit(summary.exit_status.unwrap_or(1))),
        Some("timeout") => failed(format!(
            "the build ran past its time limit ([limits] timeout = \"{}\") and was stopped",
            def_limits.timeout
        )),
        Some("oom-kill") => failed(format!(
            "the build ran out of memory ([limits] memory_max = \"{}\") and was stopped",
            def_limits.memory_max
        )),
        Some("signal") => failed(format!(
            "the build was killed by signal {}",
            summary.signal.as_deref().unwrap_or("?")
        )),
        Some(other) => failed(format!("systemd ended the build with result '{other}'")),
        None => failed(format!(
            "systemd-run failed (exit status {}) before the build ran; see its message above",
            run_status.map_or("?".into(), |s| s.to_string())
        )),
    }
}

/// The build's network: off, or the allowed ports with the resolver.
fn network_access(
    network: bool,
    ports: &[u16],
    resolv_conf: &Path,
) -> (NetworkAccess, Option<ResolverPlan>) {
    if !network {
        return (NetworkAccess::Off, None);
    }
    let etc = fs::read_to_string(resolver::ETC_RESOLV_CONF).unwrap_or_default();
    let upstream = fs::read_to_string(resolver::RESOLVED_UPSTREAM).ok();
    let plan = resolver::plan(&etc, upstream.as_deref());
    (
        NetworkAccess::On {
            ports: ports.to_vec(),
            resolv_conf: Some(resolv_conf.to_path_buf()),
            exceptions: plan.exceptions.clone(),
        },
        Some(plan),
    )
}

/// Units of earlier builds of `name` that are still loaded (a left4mectl that was killed).
fn running_units(name: &str) -> Vec<String> {
    let pattern = format!("left4me-build-{name}-*.service");
    let Ok(out) = systemd::systemctl(&["list-units", "--all", "--plain", "--no-legend", &pattern])
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|unit| {
            unit.strip_prefix(&format!("left4me-build-{name}-"))
                .and_then(|rest| rest.strip_suffix(".service"))
                .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_owned)
        .collect()
}

/// The exclusive lock of one overlay's builds.
fn lock_builds(path: &Path, name: &str) -> anyhow::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the build lock {}", path.display()))?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(UsageError::new(format!(
            "overlay {name} is being built already (by another left4mectl); wait for it: \
             `left4mectl overlay jobs {name}`"
        ))
        .into()),
        Err(e) => Err(anyhow::Error::from(std::io::Error::from(e))
            .context(format!("cannot lock {}", path.display()))),
    }
}

/// `overlay build NAME`.
pub fn build(ctx: &Ctx, name: &str, mode: Mode) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let def = overlay::load_def(&catalog, name)?;
    let OverlayKind::Script {
        script,
        network,
        allow_ports,
        limits,
    } = &def.kind
    else {
        return Err(UsageError::new(format!(
            "overlay {name} is a manual overlay: its content is put into {} by hand; only \
             script overlays are built",
            catalog.layout.overlay_content(name).display()
        ))
        .into());
    };
    // Measured as it goes on the command line: systemd-run's `$` escaping doubles each `$`.
    let on_command_line = crate::build_unit::escape_for_exec(script).len();
    if on_command_line > MAX_SCRIPT_BYTES {
        return Err(UsageError::new(format!(
            "the script of overlay {name} is {on_command_line} bytes on the command line, more \
             than the {MAX_SCRIPT_BYTES} one argument can hold; move the bulk into a file the \
             script downloads"
        ))
        .into());
    }
    let dirs = OverlayDirs::new(&catalog.layout.state_dir.join("overlays"), name);
    let id = content::new_build_id()?;
    let output = dirs.build(&id);
    let resolv_conf = Path::new(RUNTIME_DIR).join(format!("{name}-{id}.resolv.conf"));
    let (network_access, resolver_plan) = network_access(*network, allow_ports, &resolv_conf);
    let request = BuildRequest {
        overlay: name,
        id: &id,
        output: &output,
        game_user: &catalog.host.game_user,
        sandbox_user: &catalog.host.sandbox_user,
        network: network_access,
        limits,
        script,
    };
    let unit = BuildUnit::new(&request);
    match mode {
        Mode::DryRun => {
            let mut line = vec!["systemd-run".to_owned()];
            line.extend(unit.systemd_run_args());
            let quoted: Vec<String> = line.iter().map(|a| shell_quote(a)).collect();
            crate::output::emit(&format!("{}\n", quoted.join(" ")))?;
            return Ok(EXIT_OK);
        }
        Mode::UnitFile => {
            crate::output::emit(&unit.unit_file())?;
            return Ok(EXIT_OK);
        }
        Mode::Run => {}
    }
    Build {
        ctx,
        catalog: &catalog,
        def: &def,
        dirs,
        id,
        unit,
        resolv_conf,
        resolver_plan,
    }
    .run()
}

struct Build<'a> {
    ctx: &'a Ctx,
    catalog: &'a Catalog,
    def: &'a OverlayDef,
    dirs: OverlayDirs,
    id: String,
    unit: BuildUnit,
    resolv_conf: PathBuf,
    resolver_plan: Option<ResolverPlan>,
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

impl Build<'_> {
    fn say(&self, line: &str) -> anyhow::Result<()> {
        crate::output::emit(&format!("{line}\n"))?;
        Ok(())
    }

    fn run(self) -> anyhow::Result<u8> {
        let name = self.def.name.as_str();
        let OverlayKind::Script {
            network,
            allow_ports,
            limits,
            ..
        } = &self.def.kind
        else {
            unreachable!("checked by build()");
        };
        if !rustix::process::geteuid().is_root() {
            return Err(UsageError::new(
                "overlay build needs root: it starts a system unit and writes the state dir",
            )
            .into());
        }
        if !systemd::systemd_running() {
            return Err(UsageError::new(
                "systemd is not running here: builds run as systemd units (systemd-run)",
            )
            .into());
        }
        let game = passwd::lookup(Path::new(PASSWD), &self.catalog.host.game_user, "game_user")?;
        passwd::lookup(
            Path::new(PASSWD),
            &self.catalog.host.sandbox_user,
            "sandbox_user",
        )?;
        if !self.dirs.overlays.is_dir() {
            fs::create_dir_all(&self.dirs.overlays)
                .with_context(|| format!("cannot create {}", self.dirs.overlays.display()))?;
            std::os::unix::fs::chown(&self.dirs.overlays, Some(game.uid), Some(game.gid))?;
        }
        fs::create_dir_all(RUNTIME_DIR).with_context(|| format!("cannot create {RUNTIME_DIR}"))?;
        let _lock = lock_builds(&Path::new(RUNTIME_DIR).join(format!("{name}.lock")), name)?;
        let stale_units = running_units(name);
        if let Some(unit) = stale_units.first() {
            return Err(UsageError::new(format!(
                "an earlier build of overlay {name} still runs as {unit} (its left4mectl was \
                 stopped); wait for it or `systemctl stop {unit}`"
            ))
            .into());
        }
        let ledger =
            Ledger::open(&self.catalog.layout.database(), true)?.expect("create opens or fails");
        let abandoned = ledger.abandon_running(name)?;
        if abandoned > 0 {
            self.ctx.note(1, || {
                format!("marked {abandoned} unfinished build(s) abandoned")
            });
        }
        let runtime = self.catalog.layout.runtime_root();
        let (builds, _) = self.dirs.leftovers()?;
        for stale in builds {
            fs::remove_dir_all(&stale).with_context(|| {
                format!("cannot remove the stale build dir {}", stale.display())
            })?;
            self.say(&format!("removed the stale build dir {}", stale.display()))?;
        }
        for retired in content::retire(&self.dirs, &runtime)? {
            if let Retired::Removed(path) = retired {
                self.say(&format!("removed old content {}", path.display()))?;
            }
        }

        let (free, total) = disk_space(&self.dirs.overlays)
            .with_context(|| format!("cannot stat {}", self.dirs.overlays.display()))?;
        let reserve = disk_reserve(total);
        if free <= reserve {
            anyhow::bail!(
                "the file system of {} has {} free, not more than the {} builds keep free; make \
                 room first",
                self.dirs.overlays.display(),
                format_bytes(free),
                format_bytes(reserve)
            );
        }

        // The fresh output dir, seeded with the current content; removed unless swapped in.
        let output = self.dirs.build(&self.id);
        content::create_owned_dir(&output, game)?;
        let mut output_guard = Cleanup {
            path: Some(output.clone()),
            dir: true,
        };
        let current = self.dirs.current();
        let seeded = if current.is_dir() {
            let stats = content::seed(&current, &output, game)?;
            format!(
                "seeded with {} ({} files, {})",
                current.display(),
                stats.files,
                format_bytes(stats.bytes)
            )
        } else {
            "empty: the overlay has no content yet".to_owned()
        };
        let _resolv_guard = match &self.resolver_plan {
            Some(plan) => {
                crate::store::write_atomic(
                    &self.resolv_conf,
                    &plan.render(),
                    crate::store::Replace::Yes,
                )?;
                Some(Cleanup {
                    path: Some(self.resolv_conf.clone()),
                    dir: false,
                })
            }
            None => None,
        };

        let network_line = if *network {
            let ports: Vec<String> = allow_ports.iter().map(u16::to_string).collect();
            format!(
                "TCP to ports {} of public addresses; DNS {}",
                ports.join(", "),
                self.resolver_plan
                    .as_ref()
                    .map_or_else(String::new, ResolverPlan::describe)
            )
        } else {
            "none".to_owned()
        };
        self.say(&format!("overlay {name}: building in {}", self.unit.unit))?;
        self.say(
            crate::output::fields(&[
                ("  output", format!("{} ({seeded})", output.display())),
                ("  network", network_line),
                (
                    "  limits",
                    format!(
                        "memory {}, tasks {}, time {}",
                        limits.memory_max, limits.tasks_max, limits.timeout
                    ),
                ),
            ])
            .trim_end(),
        )?;

        let started_ms = ledger::now_ms();
        let job = ledger.begin(name, &self.unit.unit, started_ms)?;
        let started = Instant::now();
        let streamed = self.stream(&output, reserve);
        let elapsed = started.elapsed();
        let Streamed {
            tail,
            summary,
            run_status,
            interrupted,
            guard,
        } = match streamed {
            Ok(streamed) => streamed,
            Err(err) => {
                let _ = ledger.finish(
                    job,
                    &Ending {
                        ended_ms: ledger::now_ms(),
                        status: "failed",
                        result: None,
                        exit_status: None,
                        detail: &format!("{err:#}"),
                        log_tail: "",
                    },
                );
                return Err(err);
            }
        };
        let mut outcome = judge(&summary, run_status, limits, interrupted, guard.as_deref());
        // A script that filled the disk and ended before the guard looked.
        if outcome.status == "success"
            && let Ok((free, _)) = disk_space(&self.dirs.overlays)
            && free < reserve
        {
            outcome = Outcome {
                status: "failed",
                detail: format!(
                    "the build left the state dir's file system with {} free, less than the {} \
                     builds keep free",
                    format_bytes(free),
                    format_bytes(reserve)
                ),
            };
        }
        let mut retired = Vec::new();
        if outcome.status == "success" {
            let problems = content::check_output(&output, game)?;
            if problems.is_empty() {
                let swapped = content::swap_in(&current, &output)?;
                // From here `output` is live content or, after an exchange, the previous
                // content that running instances may still have mounted: never delete it.
                output_guard.path = None;
                if swapped {
                    let old = self.dirs.old(&self.id);
                    if let Err(err) = fs::rename(&output, &old) {
                        eprintln!(
                            "warning: the previous content stays in {}: cannot move it to {}: {err}",
                            output.display(),
                            old.display()
                        );
                    }
                }
                match content::retire(&self.dirs, &runtime) {
                    Ok(dirs) => retired = dirs,
                    Err(err) => eprintln!("warning: old content not removed: {err}"),
                }
            } else {
                outcome = Outcome {
                    status: "failed",
                    detail: format!("the output was refused: {}", problems.join("; ")),
                };
            }
        }
        drop(output_guard);
        let tail_text: Vec<String> = tail.into_iter().collect();
        ledger.finish(
            job,
            &Ending {
                ended_ms: ledger::now_ms(),
                status: outcome.status,
                result: summary.result.as_deref(),
                exit_status: summary.exit_status,
                detail: &outcome.detail,
                log_tail: &tail_text.join("\n"),
            },
        )?;
        for line in &summary.lines {
            self.ctx.note(1, || format!("systemd: {line}"));
        }
        let took = format_duration(elapsed);
        if outcome.status != "success" {
            return Err(anyhow::anyhow!(
                "overlay {name}: build {} after {took}: {}; {} is unchanged (build log: \
                 `left4mectl overlay jobs {name}`)",
                outcome.status,
                outcome.detail,
                current.display()
            ));
        }
        let mut previous = Vec::new();
        for r in retired {
            match r {
                Retired::Removed(path) => previous.push(format!("removed {}", path.display())),
                Retired::Kept { path, instances } => previous.push(format!(
                    "kept in {} while {} still mount{} it (removed by a later build once they \
                     restart)",
                    path.display(),
                    instances.join(", "),
                    if instances.len() == 1 { "s" } else { "" }
                )),
            }
        }
        let previous = if previous.is_empty() {
            String::new()
        } else {
            format!("; previous content {}", previous.join(", "))
        };
        self.say(&format!(
            "overlay {name}: built in {took}; {} holds the new content{previous}; running \
             instances see it after their next restart",
            current.display()
        ))?;
        Ok(EXIT_OK)
    }

    /// Runs systemd-run, streaming its output; returns what it printed.
    fn stream(&self, output: &Path, reserve: u64) -> anyhow::Result<Streamed> {
        let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
        let mut command = Command::new("systemd-run");
        command
            .args(self.unit.systemd_run_args())
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("cannot duplicate a pipe")?)
            .stderr(writer)
            // Ctrl-C reaches left4mectl only; it stops the unit (systemd-run would just quit).
            .process_group(0);
        let mut child = command
            .spawn()
            .context("cannot run systemd-run (is systemd installed?)")?;
        drop(command);

        let done = Arc::new(AtomicBool::new(false));
        let interrupted = Arc::new(AtomicBool::new(false));
        let guard_message: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])
        .context("cannot install signal handlers")?;
        let signal_handle = signals.handle();
        let unit = self.unit.unit.clone();
        let stopper = {
            let interrupted = interrupted.clone();
            let unit = unit.clone();
            std::thread::spawn(move || {
                for signal in signals.forever() {
                    if !interrupted.swap(true, Ordering::SeqCst) {
                        eprintln!("left4mectl: signal {signal}: stopping {unit}");
                        let _ = systemd::systemctl(&["stop", "--no-block", &unit]);
                    }
                }
            })
        };
        let watcher = {
            let done = done.clone();
            let guard_message = guard_message.clone();
            let unit = unit.clone();
            let dir = output.to_path_buf();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Ok((free, _)) = disk_space(&dir)
                        && free < reserve
                    {
                        let _ = systemd::systemctl(&["kill", "--signal=SIGKILL", &unit]);
                        *guard_message.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                            "the state dir's file system ran low ({} free, builds keep {} \
                             free): the build was killed",
                            format_bytes(free),
                            format_bytes(reserve)
                        ));
                        return;
                    }
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })
        };

        let started = Instant::now();
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut held: Vec<String> = Vec::new();
        let mut first = true;
        let mut out = std::io::stdout().lock();
        let mut show = |tail: &mut VecDeque<String>, line: String, at: Duration| {
            let _ = writeln!(out, "[{:>7.1}s] {line}", at.as_secs_f64());
            let _ = out.flush();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        };
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::from(e).context("reading the build output")),
            }
            let line = sanitize(&String::from_utf8_lossy(&buf));
            if first {
                first = false;
                if line.starts_with(&format!("Running as unit: {unit}")) {
                    continue;
                }
            }
            if SUMMARY_PREFIXES.iter().any(|p| line.starts_with(p)) {
                held.push(line);
                continue;
            }
            let at = started.elapsed();
            for earlier in held.drain(..) {
                show(&mut tail, earlier, at);
            }
            show(&mut tail, line, at);
        }
        let status = child.wait().context("waiting for systemd-run")?;
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        signal_handle.close();
        let _ = stopper.join();
        let _ = watcher.join();
        let guard = guard_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Ok(Streamed {
            tail,
            summary: Summary::parse(&held),
            run_status: status.code(),
            interrupted: interrupted.load(Ordering::SeqCst),
            guard,
        })
    }
}

struct Streamed {
    tail: VecDeque<String>,
    summary: Summary,
    run_status: Option<i32>,
    interrupted: bool,
    guard: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use left4me_spec::ScriptLimits;

    #[test]
    fn sanitizes_terminal_escapes_and_progress() {
        assert_eq!(sanitize("plain\n"), "plain");
        assert_eq!(
            sanitize("\x1b]52;c;ZXZpbA==\x07x"),
            "\\x1b]52;c;ZXZpbA==\\x07x"
        );
        assert_eq!(sanitize(" 10%\r 50%\r100%\r\n"), "100%");
        assert_eq!(sanitize("a\tb"), "a\tb");
        assert!(sanitize(&"x".repeat(5000)).ends_with('…'));
        assert!(sanitize(&"x".repeat(5000)).len() < 2100);
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn parses_systemd_run_summaries() {
        let s = Summary::parse(&lines(
            "Finished with result: exit-code\nMain processes terminated with: \
             code=exited/status=3\nService runtime: 2ms\nIP traffic received: 0B",
        ));
        assert_eq!(s.result.as_deref(), Some("exit-code"));
        assert_eq!(s.exit_status, Some(3));
        assert_eq!(s.signal, None);
        assert_eq!(s.lines, ["Service runtime: 2ms", "IP traffic received: 0B"]);
        let s = Summary::parse(&lines(
            "Finished with result: timeout\nMain processes terminated with: \
             code=killed/status=TERM",
        ));
        assert_eq!(s.result.as_deref(), Some("timeout"));
        assert_eq!(s.signal.as_deref(), Some("TERM"));
    }

    #[test]
    fn judges_outcomes() {
        let limits = ScriptLimits::default();
        let summary = |text: &str| Summary::parse(&lines(text));
        let ok = summary(
            "Finished with result: success\nMain processes terminated with: code=exited/status=0",
        );
        assert_eq!(judge(&ok, Some(0), &limits, false, None).status, "success");
        assert_eq!(
            judge(&ok, Some(0), &limits, true, None).status,
            "interrupted"
        );
        let full = judge(&ok, Some(0), &limits, false, Some("disk"));
        assert_eq!((full.status, full.detail.as_str()), ("failed", "disk"));
        let timeout = judge(
            &summary("Finished with result: timeout"),
            Some(1),
            &limits,
            false,
            None,
        );
        assert!(
            timeout.detail.contains("timeout = \"1h\""),
            "{}",
            timeout.detail
        );
        let oom = judge(
            &summary("Finished with result: oom-kill"),
            Some(1),
            &limits,
            false,
            None,
        );
        assert!(oom.detail.contains("memory_max = \"4G\""));
        let exit = summary(
            "Finished with result: exit-code\nMain processes terminated with: code=exited/status=125",
        );
        assert!(
            judge(&exit, Some(125), &limits, false, None)
                .detail
                .contains("could not be set up")
        );
        let none = judge(&Summary::default(), Some(1), &limits, false, None);
        assert!(
            none.detail
                .starts_with("systemd-run failed (exit status 1)")
        );
        assert_eq!(describe_exit(3), "the script exited with status 3");
        assert!(describe_exit(159).contains("SIGSYS"));
        assert_eq!(describe_exit(137), "the script was killed by signal 9");
    }

    #[test]
    fn disk_reserves() {
        assert_eq!(disk_reserve(100 << 20), 16 << 20);
        assert_eq!(disk_reserve(1 << 30), (1 << 30) / 20);
        assert_eq!(disk_reserve(1 << 40), 1 << 30);
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
    }
}
