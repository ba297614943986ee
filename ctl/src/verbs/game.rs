//! The game verbs: `left4mectl game install|update|check|versions|validate|gc|login`
//! (DESIGN §8, docs/game.md).
//!
//! Each verb is a short script over three libraries: the version store (`left4me_game::store`:
//! staging, publish, current, gc), the SteamCMD job (`left4me_jobs::steamcmd`: the sandboxed
//! runs, retries, the appmanifest check) and, for `update --restart`, the rollout
//! (`crate::rollout`). Every verb that changes the game holds the game lock from its first
//! look at the store to its publish; the rollout runs after the lock is released, so `gc`,
//! `versions` and `status` work while it waits for players to leave.

mod fleet;
mod printer;
mod session;

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use left4me_game::store::{self, How, NewVersion, Staging};
use left4me_jobs::SystemdRun;
use left4me_jobs::steamcmd::{Action, GameReport, GameStatus, login};
use left4me_spec::{Catalog, Duration as SpecDuration};
use serde::Serialize;

use crate::Ctx;
use crate::cli::{GameInstallArgs, GameUpdateArgs};
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, format_size, format_utc, table};
use crate::rollout::{Event as RolloutEvent, Rollout};
use crate::systemd;
use printer::Printer;
use session::{Branch, Game, LOGIN_FILE};

/// `game check`: a newer build is out.
const EXIT_NEWER: u8 = 1;
/// `game check`: the check itself failed.
const EXIT_CHECK_FAILED: u8 = 2;

/// How often `update --restart when-empty` asks busy instances again.
const ROLLOUT_POLL: Duration = Duration::from_secs(5);

/// `game install [--branch B]`.
pub fn install(ctx: &Ctx, args: &GameInstallArgs) -> anyhow::Result<u8> {
    let game = Game::open(ctx)?;
    if let Some(current) = game.store.current()? {
        emit(&format!(
            "version {current} is installed already: updating it (`left4mectl game update`)\n"
        ))?;
        let password = args.beta_password_file.as_deref();
        return update_locked(ctx, game, Some(&args.branch), password, None);
    }
    let branch = Branch {
        password: game.beta_password(&args.branch, args.beta_password_file.as_deref())?,
        name: args.branch.clone(),
    };
    let mut printer = Printer::new(ctx.verbose);
    game.bootstrap(&mut printer)?;
    let staging = game.store.begin(None)?;
    let (staging, report) = game.run(Action::Install, &branch, staging, &mut printer)?;
    let Some(build_id) = built(&report) else {
        game.store.abandon(staging)?;
        return Err(failed("install", &report));
    };
    let version = game.publish(
        staging,
        NewVersion {
            build_id,
            branch: args.branch.clone(),
            how: How::Install,
            platform_workaround: report.platform_workaround,
        },
    )?;
    let timer = enable_update_timer();
    emit(&format!(
        "installed version {} (build {build_id}, branch {}, {}) in {}{}; it is current{timer}\n",
        version.id,
        version.branch,
        format_size(version.bytes),
        left4me_jobs::format_duration(report.elapsed),
        path_taken(&report)
    ))?;
    Ok(EXIT_OK)
}

/// The build a job installed, when it succeeded.
fn built(report: &GameReport) -> Option<u64> {
    match report.status {
        GameStatus::Succeeded => report.build_id,
        _ => None,
    }
}

/// The failure of a job as the verb's error (exit status 1).
fn failed(verb: &str, report: &GameReport) -> anyhow::Error {
    let tail = if report.log_tail.is_empty() {
        String::new()
    } else {
        format!(
            "\n  SteamCMD's last lines:\n    {}",
            report.log_tail.join("\n    ")
        )
    };
    anyhow::anyhow!(
        "game {verb}: {}; the current version and every running instance are unchanged (log: \
         `left4mectl game jobs --log`){tail}",
        report.verdict()
    )
}

fn path_taken(report: &GameReport) -> &'static str {
    if report.platform_workaround {
        " (anonymous install refused with \"Invalid platform\": installed by the known \
         workaround, a windows pass then a linux pass with validate)"
    } else {
        ""
    }
}

/// Turns the daily update check on after the first install (when systemd runs).
fn enable_update_timer() -> String {
    systemd::enable_timer("left4me-game-update.timer", "checks for updates daily")
}

/// `game update [--restart WHEN] [--max-wait D] [--branch B]`.
pub fn update(ctx: &Ctx, args: &GameUpdateArgs) -> anyhow::Result<u8> {
    let max_wait = parse_span("--max-wait", &args.max_wait)?;
    let game = Game::open(ctx)?;
    let rollout = Rollout {
        policy: args.restart,
        max_wait,
        poll: ROLLOUT_POLL,
    };
    let password = args.beta_password_file.as_deref();
    update_locked(ctx, game, args.branch.as_deref(), password, Some(rollout))
}

fn parse_span(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let span = SpecDuration::parse(text).map_err(|e| UsageError::new(format!("{flag}: {e}")))?;
    // `infinity` waits for as long as it takes.
    Ok(span
        .as_micros()
        .map_or(Duration::MAX, Duration::from_micros))
}

/// The update with the lock held; the rollout (if any) after it is released.
fn update_locked(
    ctx: &Ctx,
    game: Game,
    branch: Option<&str>,
    password_file: Option<&Path>,
    rollout: Option<Rollout>,
) -> anyhow::Result<u8> {
    let Some(current) = game.store.current()? else {
        return Err(UsageError::new(
            "no game version is installed yet: run `left4mectl game install` first",
        )
        .into());
    };
    let parent = game.store.version(&current)?;
    let branch = branch.unwrap_or(&parent.branch).to_owned();
    let password = game.beta_password(&branch, password_file)?;
    let mut printer = Printer::new(ctx.verbose);
    game.bootstrap(&mut printer)?;
    let staging = game.store.begin(Some(&current))?;
    let job_branch = Branch {
        name: branch.clone(),
        password,
    };
    let (staging, report) = game.run(Action::Update, &job_branch, staging, &mut printer)?;
    let Some(build_id) = built(&report) else {
        game.store.abandon(staging)?;
        return Err(failed("update", &report));
    };
    if build_id == parent.build_id && branch == parent.branch {
        game.store.abandon(staging)?;
        emit(&format!(
            "version {current} (build {build_id}, branch {branch}) is up to date\n"
        ))?;
    } else {
        let version = game.publish(
            staging,
            NewVersion {
                build_id,
                branch: branch.clone(),
                how: How::Update,
                platform_workaround: report.platform_workaround,
            },
        )?;
        let squashed = if version.how == How::Squash {
            " (squashed into a full tree: the chain reached its limit)".to_owned()
        } else {
            format!(", a delta over {current}")
        };
        emit(&format!(
            "updated to version {} (build {build_id}, branch {branch}; {} on disk{squashed}) in \
             {}; it is current\n",
            version.id,
            format_size(version.bytes),
            left4me_jobs::format_duration(report.elapsed),
        ))?;
    }
    let catalog = game.catalog.clone();
    let state_dir = game.state_dir.clone();
    drop(game);
    match rollout {
        Some(rollout) => roll_out(&catalog, &state_dir, rollout),
        None => Ok(EXIT_OK),
    }
}

/// Moves running instances onto the versions a start would mount now, as `rollout` says.
fn roll_out(catalog: &Catalog, state_dir: &Path, rollout: Rollout) -> anyhow::Result<u8> {
    let mut fleet = fleet::SystemdFleet::new(catalog, state_dir);
    let describe = |v: &Option<String>| v.clone().unwrap_or_else(|| "installation/".into());
    // A busy instance is asked every few seconds for hours: say so when its count changes.
    let mut last_busy = std::collections::HashMap::new();
    let outcome = rollout.run(&mut fleet, &mut |event| {
        if let RolloutEvent::Busy { name, players, .. } = event
            && last_busy.insert(name.clone(), *players) == Some(*players)
        {
            return;
        }
        let line = match event {
            RolloutEvent::Acted {
                name,
                from,
                to,
                downtime,
                ..
            } => format!(
                "restarted {name}: {} -> {} (down {:.1} s)",
                describe(from),
                describe(to),
                downtime.as_secs_f64()
            ),
            RolloutEvent::Busy { name, players, .. } => match players {
                Some(n) => format!("{name} has {n} player(s): it moves when they leave"),
                None => format!("{name} does not answer queries: asked again later"),
            },
            RolloutEvent::Failed { name, error } => format!("{name} did not restart: {error}"),
            RolloutEvent::Dropped { name } => {
                format!("{name} no longer needs a restart (stopped, or its version changed)")
            }
            RolloutEvent::Announced { .. } | RolloutEvent::Warning { .. } => return,
        };
        let _ = emit(&format!("{line}\n"));
    })?;
    for behind in &outcome.left {
        let players = behind
            .players
            .map_or(String::new(), |n| format!(" ({n} player(s))"));
        emit(&format!(
            "{} still runs {}{players}; it moves to {} at its next restart\n",
            behind.name,
            describe(&behind.version),
            describe(&behind.target)
        ))?;
    }
    if outcome.failed.is_empty() {
        Ok(EXIT_OK)
    } else {
        Err(anyhow::anyhow!(
            "{} did not restart onto the new version: see `left4mectl status NAME`",
            outcome.failed.join(", ")
        ))
    }
}

/// What `game check` found, as `--json` prints it.
#[derive(Debug, Default, Serialize)]
struct CheckReport {
    /// The current version (`null`: none installed, or the store cannot be read).
    current: Option<String>,
    current_build: Option<u64>,
    branch: Option<String>,
    /// The newest build of the branch on Steam (`null`: the check failed).
    remote_build: Option<u64>,
    /// `null` when the check failed (exit status 2).
    update_available: Option<bool>,
    /// Why the check failed.
    error: Option<String>,
}

/// `game check [--branch B] [--json]`: exit 0 up to date, 1 a newer build, 2 the check
/// failed — whatever failed (the store, SteamCMD's bootstrap, Steam), so that the update
/// timer's `game check || …` never takes a broken check for a newer build.
pub fn check(ctx: &Ctx, branch: Option<&str>, json: bool) -> anyhow::Result<u8> {
    let mut report = CheckReport::default();
    let outcome = check_remote(ctx, branch, &mut report);
    if let Err(err) = &outcome {
        // Once the current version is known to exist, say that it stays.
        let line = match (&report.current, report.current_build) {
            (Some(id), Some(_)) => format!("{err:#} (current version {id} is unchanged)"),
            _ => format!("{err:#}"),
        };
        eprintln!("error: game check: {line}");
        report.error = Some(line);
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else if let (Some(current), Some(current_build), Some(branch), Some(remote)) = (
        &report.current,
        report.current_build,
        &report.branch,
        report.remote_build,
    ) {
        if remote != current_build {
            emit(&format!(
                "build {remote} is out on branch {branch} (current version {current} is build \
                 {current_build}): `left4mectl game update` installs it\n"
            ))?;
        } else {
            emit(&format!(
                "up to date: version {current} is build {remote}, the newest on branch {branch}\n"
            ))?;
        }
    }
    Ok(match (outcome, report.update_available) {
        (Ok(()), Some(true)) => EXIT_NEWER,
        (Ok(()), Some(false)) => EXIT_OK,
        _ => EXIT_CHECK_FAILED,
    })
}

/// Asks Steam for the branch's newest build, filling `report` as it learns things.
fn check_remote(ctx: &Ctx, branch: Option<&str>, report: &mut CheckReport) -> anyhow::Result<()> {
    let game = Game::open(ctx)?;
    let Some(id) = game.store.current()? else {
        anyhow::bail!("no game version is installed: run `left4mectl game install`");
    };
    report.current = Some(id.clone());
    let current = game.store.version(&id)?;
    let branch = branch.unwrap_or(&current.branch).to_owned();
    report.current_build = Some(current.build_id);
    report.branch = Some(branch.clone());
    let mut printer = Printer::quiet(ctx.verbose);
    game.bootstrap(&mut printer)?;
    let staging = game.store.begin(None)?;
    let job_branch = Branch {
        password: game.beta_password(&branch, None)?,
        name: branch,
    };
    let (staging, run) = game.run(Action::Check, &job_branch, staging, &mut printer)?;
    game.store.abandon(staging)?;
    let remote = match (&run.status, run.build_id) {
        (GameStatus::Succeeded, Some(build)) => build,
        _ => anyhow::bail!("{}", run.verdict()),
    };
    report.remote_build = Some(remote);
    report.update_available = Some(remote != current.build_id);
    Ok(())
}

/// One row of `game versions --json`.
#[derive(Debug, Serialize)]
struct VersionRow {
    id: String,
    build_id: u64,
    branch: String,
    parent: Option<String>,
    how: String,
    bytes: u64,
    created: u64,
    platform_workaround: bool,
    current: bool,
    pinned_by: Vec<String>,
    running: Vec<String>,
}

/// `game versions [--json]`.
pub fn versions(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    let game = Game::open(ctx)?;
    let current = game.store.current()?;
    let running = store::running_versions(&game.state_dir).unwrap_or_default();
    let pins = game.pins();
    let rows: Vec<VersionRow> = game
        .store
        .versions()?
        .into_iter()
        .map(|v| VersionRow {
            current: current.as_deref() == Some(v.id.as_str()),
            pinned_by: names_with(&pins, &v.id),
            running: running
                .iter()
                .filter(|(_, id)| **id == v.id)
                .map(|(name, _)| name.clone())
                .collect(),
            id: v.id,
            build_id: v.build_id,
            branch: v.branch,
            parent: v.parent,
            how: v.how.to_string(),
            bytes: v.bytes,
            created: v.created,
            platform_workaround: v.platform_workaround,
        })
        .collect();
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        emit("no game versions: `left4mectl game install` installs the game\n")?;
        return Ok(EXIT_OK);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut flags = Vec::new();
            if r.current {
                flags.push("current".to_owned());
            }
            if !r.pinned_by.is_empty() {
                flags.push(format!("pinned by {}", r.pinned_by.join(",")));
            }
            vec![
                r.id.clone(),
                r.build_id.to_string(),
                r.branch.clone(),
                match &r.parent {
                    Some(p) => format!("{} (delta over {p})", format_size(r.bytes)),
                    None => format!("{} (full)", format_size(r.bytes)),
                },
                format_utc(i64::try_from(r.created).unwrap_or(i64::MAX)),
                if r.running.is_empty() {
                    "-".into()
                } else {
                    r.running.join(",")
                },
                if flags.is_empty() {
                    "-".into()
                } else {
                    flags.join("; ")
                },
            ]
        })
        .collect();
    emit(&table(
        &[
            "ID", "BUILD", "BRANCH", "DISK", "CREATED", "RUNNING", "STATE",
        ],
        &cells,
    ))?;
    Ok(EXIT_OK)
}

fn names_with(pins: &[(String, String)], id: &str) -> Vec<String> {
    pins.iter()
        .filter(|(pin, _)| pin == id)
        .map(|(_, name)| name.clone())
        .collect()
}

/// `game validate`.
pub fn validate(ctx: &Ctx) -> anyhow::Result<u8> {
    let game = Game::open(ctx)?;
    let Some(current) = game.store.current()? else {
        return Err(UsageError::new(
            "no game version is installed yet: run `left4mectl game install` first",
        )
        .into());
    };
    let parent = game.store.version(&current)?;
    let mut printer = Printer::new(ctx.verbose);
    game.bootstrap(&mut printer)?;
    let staging = game.store.begin(Some(&current))?;
    let branch = Branch {
        password: game.beta_password(&parent.branch, None)?,
        name: parent.branch.clone(),
    };
    let (staging, report) = game.run(Action::Validate, &branch, staging, &mut printer)?;
    let Some(build_id) = built(&report) else {
        game.store.abandon(staging)?;
        return Err(failed("validate", &report));
    };
    if !repaired(&staging)? && build_id == parent.build_id {
        game.store.abandon(staging)?;
        emit(&format!(
            "version {current}: every file is as Steam's manifest says; nothing to repair\n"
        ))?;
        return Ok(EXIT_OK);
    }
    let version = game.publish(
        staging,
        NewVersion {
            build_id,
            branch: parent.branch.clone(),
            how: How::Validate,
            platform_workaround: report.platform_workaround,
        },
    )?;
    emit(&format!(
        "version {current} had files that differ from Steam's manifest: the repaired version \
         {} ({} rewritten) is current; instances move to it at their next restart\n",
        version.id,
        format_size(version.bytes)
    ))?;
    Ok(EXIT_OK)
}

/// Whether SteamCMD wrote anything into the new layer besides its own bookkeeping
/// (`steamapps/`: the appmanifest and download dirs).
fn repaired(staging: &Staging) -> anyhow::Result<bool> {
    let entries = std::fs::read_dir(&staging.tree)
        .with_context(|| format!("read {}", staging.tree.display()))?;
    for entry in entries {
        if entry?.file_name() != "steamapps" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `game use ID`.
pub fn use_version(ctx: &Ctx, id: &str) -> anyhow::Result<u8> {
    if !left4me_contract::game::is_valid_version_id(id) {
        return Err(UsageError::new(format!(
            "{id:?} is not a version id (a Steam build id, maybe with -N): `left4mectl game \
             versions` lists them"
        ))
        .into());
    }
    let game = Game::open(ctx)?;
    // The whole chain must be there, or instances could not mount it.
    game.store.chain(id)?;
    let before = game.store.current()?;
    if before.as_deref() == Some(id) {
        emit(&format!("version {id} is current already\n"))?;
        return Ok(EXIT_OK);
    }
    game.store.set_current(id)?;
    emit(&format!(
        "version {id} is current (was {}); instances mount it from their next start (`left4mectl \
         restart NAME`; `left4mectl list` flags who runs another)\n",
        before.as_deref().unwrap_or("none")
    ))?;
    Ok(EXIT_OK)
}

/// `game gc`.
pub fn gc(ctx: &Ctx) -> anyhow::Result<u8> {
    let game = Game::open(ctx)?;
    let before: u64 = game.store.versions()?.iter().map(|v| v.bytes).sum();
    // The store keeps what PID 1's mount table shows mounted by itself; the pins are ours.
    let keep: BTreeSet<String> = game.pins().into_iter().map(|(id, _)| id).collect();
    let removed = game.store.gc(&keep)?;
    let after: u64 = game.store.versions()?.iter().map(|v| v.bytes).sum();
    if removed.is_empty() {
        emit(
            "nothing to remove: every version is current, pinned, running or the base of one \
             that is kept\n",
        )?;
    } else {
        emit(&format!(
            "removed version{} {} ({} freed)\n",
            if removed.len() == 1 { "" } else { "s" },
            removed.join(", "),
            format_size(before.saturating_sub(after))
        ))?;
    }
    Ok(EXIT_OK)
}

/// `game login USER`. SteamCMD asks for the password and the Steam Guard code on the terminal
/// (`systemd-run --pty`); without one its prompt would wait forever, its unit holding off
/// every other game job, so no terminal is refused at once.
pub fn login(ctx: &Ctx, user: &str) -> anyhow::Result<u8> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError::new(format!(
            "game login asks for the password and Steam Guard code of {user} on a terminal, and \
             stdin is not one: run it in an interactive shell (over ssh: `ssh -t`)"
        ))
        .into());
    }
    let game = Game::open(ctx)?;
    let mut printer = Printer::new(ctx.verbose);
    game.bootstrap(&mut printer)?;
    let staging = game.store.begin(None)?;
    let job = login::LoginJob {
        user: user.to_owned(),
        state_dir: game.state_dir.clone(),
        output: staging.dir.clone(),
        home: game.home(),
        game_user: game.catalog.host.game_user.clone(),
        sandbox_user: game.catalog.host.sandbox_user.clone(),
        limits: Game::limits(),
    };
    let report = login::login(&job, &game.host, &SystemdRun, &mut printer);
    game.store.abandon(staging)?;
    let report = report?;
    if report.exit_status != Some(0) {
        let why = match report.exit_status {
            Some(5) => "5: Steam refused the login".to_owned(),
            Some(s) => s.to_string(),
            None => "unknown: it was killed".to_owned(),
        };
        return Err(anyhow::anyhow!(
            "game login: SteamCMD did not log {user} in (exit status {why}); nothing was \
             cached: check the account name, the password and the Steam Guard code (Steam \
             mails it, or the Steam app shows it), then run `left4mectl game login {user}` \
             again"
        ));
    }
    let path = game.catalog.layout.admin_dir.join(LOGIN_FILE);
    crate::store::write_atomic(&path, &format!("{user}\n"), crate::store::Replace::Yes)?;
    emit(&format!(
        "SteamCMD cached the credentials of {user}: installs and updates log in as {user} \
         from now on (remove {} to go back to anonymous)\n",
        path.display()
    ))?;
    Ok(EXIT_OK)
}
