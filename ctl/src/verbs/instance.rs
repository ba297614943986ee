//! The instance verbs: `left4mectl create`, `edit`, `set`, `show`, `list`, `validate` and
//! `render`.

use std::path::Path;

use left4me_spec::{
    Bind, Blueprint, Catalog, HostConfig, Instance, InstanceFile, OverlayDef, RestartDropins,
    SERVER_CFG, Schedule, Settings, SpecError, alias_cfgs, list_names, load_blueprint,
    lower_layers_over, render_dropin, render_restart_dropins, render_server_cfg, restart_argv,
    srcds_argv,
};
use left4me_statedir::secrets;
use serde::Serialize;

use crate::change::{self, NewSpec, SpecKind, check_spec_name, missing, peek};
use crate::cli::{CreateArgs, SetArgs};
use crate::content_view;
use crate::error::{EXIT_INVALID, EXIT_OK, UsageError};
use crate::game_view::{GameView, GameViews, is_running};
use crate::output::{
    emit, fields, limits_line, or_dash, overlay_lines, quoted, spec_problem, table,
};
use crate::systemd::{Live, live_states};
use crate::verbs::players::{self, PlayerCount};
use crate::{Ctx, store};

/// `create NAME --port P …`.
pub fn create(ctx: &Ctx, args: &CreateArgs) -> anyhow::Result<u8> {
    let text = NewSpec {
        blueprint: args.blueprint.as_deref(),
        port: Some(args.port),
        map: args.map.as_deref(),
        maxplayers: args.layers.maxplayers,
        overlays: &args.layers.overlays,
    }
    .render(SpecKind::Instance, &args.name);
    let status = change::create(ctx, SpecKind::Instance, &args.name, &text)?;
    make_rcon_password(ctx, &args.name)?;
    Ok(status)
}

/// Gives a new instance a fresh RCON password (root only: an ordinary user testing specs has
/// no admin dir; the instance's first start makes one then).
fn make_rcon_password(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        ctx.note(1, || {
            format!("not root: {name}'s RCON password is made at its first start")
        });
        return Ok(());
    }
    let admin = ctx.catalog()?.layout.admin_dir;
    secrets::rotate_rcon_password(&admin, name)?;
    ctx.note(1, || {
        format!(
            "made {name}'s RCON password in {}",
            secrets::rcon_password_file(&admin, name).display()
        )
    });
    Ok(())
}

/// Removes a deleted instance's RCON password; says what it removed (root only, like
/// [`make_rcon_password`]).
pub(crate) fn remove_rcon_password(admin: &Path, name: &str) -> anyhow::Result<Option<String>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let file = secrets::rcon_password_file(admin, name);
    if !file.exists() {
        return Ok(None);
    }
    secrets::remove_rcon_password(admin, name)?;
    Ok(Some(format!(
        "removed its RCON password {}",
        file.display()
    )))
}

/// `edit NAME`.
pub fn edit(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    change::edit(ctx, SpecKind::Instance, name)
}

/// `set NAME KEY=VALUE… --unset KEY…`.
pub fn set(ctx: &Ctx, args: &SetArgs) -> anyhow::Result<u8> {
    change::set(ctx, SpecKind::Instance, args)
}

/// The valid instance `name`, or why there is none.
pub(crate) fn valid_instance(catalog: &Catalog, name: &str) -> anyhow::Result<Instance> {
    check_spec_name(SpecKind::Instance, name)?;
    match catalog.get(name) {
        None => Err(missing(
            SpecKind::Instance,
            name,
            &catalog.layout.instance_file(name),
        )
        .into()),
        Some(Err(err)) => Err(err.clone().into()),
        Some(Ok(instance)) => Ok(instance.clone()),
    }
}

/// `show NAME [--json]`.
pub fn show(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let instance = valid_instance(&catalog, name)?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&instance)?))?;
    } else {
        emit(&describe_instance(&instance, &catalog))?;
    }
    Ok(EXIT_OK)
}

/// Where the instance's scalar settings come from: its own file, its blueprint or the defaults.
struct Origins {
    own: Settings,
    blueprint: Option<Settings>,
}

impl Origins {
    /// Re-reads the instance's file and blueprint (both valid: the instance resolved).
    fn of(instance: &Instance, catalog: &Catalog) -> Option<Self> {
        let text = left4me_spec::read_spec(&instance.file).ok()?;
        let own = InstanceFile::parse(&instance.name, &instance.file, &text)
            .ok()?
            .settings;
        let blueprint = match &instance.blueprint {
            Some(name) => Some(load_blueprint(&catalog.layout, name).ok()?.settings),
            None => None,
        };
        Some(Origins { own, blueprint })
    }

    /// `value` tagged with where it comes from, when that is not the instance's own file.
    fn tag(&self, value: String, set: impl Fn(&Settings) -> bool) -> String {
        if set(&self.own) {
            value
        } else if self.blueprint.as_ref().is_some_and(&set) {
            format!("{value}  (blueprint)")
        } else {
            format!("{value}  (default)")
        }
    }
}

fn describe_instance(instance: &Instance, catalog: &Catalog) -> String {
    let blueprint = match &instance.blueprint {
        Some(b) => format!("{b} ({})", catalog.layout.blueprint_file(b).display()),
        None => "-".into(),
    };
    let origins = Origins::of(instance, catalog);
    let tag = |value: String, set: fn(&Settings) -> bool| match &origins {
        Some(origins) => origins.tag(value, set),
        None => value,
    };
    let inherited = origins
        .as_ref()
        .and_then(|o| o.blueprint.as_ref())
        .map_or(0, |b| b.overlays.len());
    let overlays: Vec<String> = overlay_lines(&instance.overlays)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i < inherited {
                format!("{line}  (blueprint)")
            } else {
                line.to_owned()
            }
        })
        .collect();
    fields(&[
        ("instance", instance.name.clone()),
        ("file", instance.file.display().to_string()),
        ("blueprint", blueprint),
        ("port", instance.port.to_string()),
        ("map", tag(instance.map.clone(), |s| s.map.is_some())),
        (
            "maxplayers",
            tag(
                instance.maxplayers.map_or("-".into(), |m| m.to_string()),
                |s| s.maxplayers.is_some(),
            ),
        ),
        ("args", or_dash(quoted(&instance.args))),
        ("overlays", or_dash(overlays.join("\n"))),
        (
            "game_version",
            match &instance.game_version {
                Some(id) => tag(id.clone(), |s| s.game_version.is_some()),
                None => "- (the current version at each start)".into(),
            },
        ),
        ("resources", or_dash(limits_line(&instance.resources))),
        (
            "ready_timeout",
            tag(instance.ready_timeout.to_string(), |s| {
                s.health.ready_timeout.is_some()
            }),
        ),
        (
            "watchdog",
            tag(instance.watchdog.to_string(), |s| {
                s.health.watchdog.is_some()
            }),
        ),
        (
            "schedule",
            match &instance.schedule {
                Some(schedule) => tag(describe_schedule(schedule), |s| s.schedule.present),
                None => "-".into(),
            },
        ),
        ("config", or_dash(instance.config.clone())),
    ])
}

/// `*-*-* 05:00:00: restart when empty, at most 2h` for `show`.
fn describe_schedule(schedule: &Schedule) -> String {
    match &schedule.max_wait {
        Some(wait) => format!(
            "restart at {}, once empty (at most {wait}, then anyway)",
            schedule.restart
        ),
        None => format!("restart at {}, players or not", schedule.restart),
    }
}

/// One line of `list`; `--json` prints these as they are, with the live unit state of all
/// rows filled from a single `systemctl show` call ([`live_states`]).
#[derive(Debug, Serialize)]
struct ListRow {
    name: String,
    file: String,
    port: Option<u16>,
    /// The UDP client port; `null` for a spec that does not load.
    client_port: Option<u16>,
    /// The UDP SourceTV port; `null` when SourceTV is off or the spec does not load.
    tv_port: Option<u16>,
    map: Option<String>,
    blueprint: Option<String>,
    ok: bool,
    /// The whole error line, naming the file.
    error: Option<String>,
    /// The error without the file, for the table.
    #[serde(skip)]
    problem: Option<String>,
    /// All `null` when systemd is not running.
    #[serde(flatten)]
    live: Live,
    /// The game version it runs and would run (`update_pending`).
    #[serde(flatten)]
    game: GameView,
    /// Human players and the limit, from A2S_INFO (`null`: not running or not answering).
    #[serde(flatten)]
    players: PlayerCount,
    /// The overlays republished since it started ("content update pending"; a restart mounts
    /// them).
    content_pending: Vec<String>,
}

fn list_rows(catalog: &Catalog) -> Vec<ListRow> {
    catalog
        .instances
        .iter()
        .map(|(name, entry)| match entry {
            Ok(instance) => ListRow {
                name: name.clone(),
                file: instance.file.display().to_string(),
                port: Some(instance.port),
                client_port: Some(instance.client_port),
                tv_port: instance.tv_port,
                map: Some(instance.map.clone()),
                blueprint: instance.blueprint.clone(),
                ok: true,
                error: None,
                problem: None,
                live: Default::default(),
                game: Default::default(),
                players: Default::default(),
                content_pending: Vec::new(),
            },
            Err(err) => {
                let face = peek(&err.file);
                ListRow {
                    name: name.clone(),
                    file: err.file.display().to_string(),
                    port: face.port,
                    client_port: None,
                    tv_port: None,
                    map: face.map,
                    blueprint: face.blueprint,
                    ok: false,
                    error: Some(err.to_string()),
                    problem: Some(spec_problem(err)),
                    live: Default::default(),
                    game: Default::default(),
                    players: Default::default(),
                    content_pending: Vec::new(),
                }
            }
        })
        .collect()
}

fn list_table(rows: &[ListRow]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let status = match &row.problem {
                Some(problem) => format!("error: {problem}"),
                None => "ok".into(),
            };
            vec![
                row.name.clone(),
                row.port.map_or("-".into(), |p| p.to_string()),
                dash(&row.map),
                dash(&row.blueprint),
                status,
            ]
        })
        .collect();
    table(&["NAME", "PORT", "MAP", "BLUEPRINT", "SPEC"], &cells)
}

/// The table with the live state: the spec's validity in short, the unit's state, whether it
/// starts at boot, and the supervisor's status line (or, for a bad spec, what is wrong).
fn live_table(rows: &[ListRow]) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let boot = match row.live.enabled {
                Some(true) => "enabled",
                Some(false) => "disabled",
                None => "-",
            };
            let status = match &row.problem {
                Some(problem) => format!("spec error: {problem}"),
                None => match content_view::describe(&row.content_pending) {
                    Some(pending) => format!("{}; {pending}", dash(&row.live.status_text)),
                    None => dash(&row.live.status_text),
                },
            };
            vec![
                row.name.clone(),
                row.port.map_or("-".into(), |p| p.to_string()),
                dash(&row.map),
                dash(&row.blueprint),
                if row.ok { "ok" } else { "error" }.into(),
                row.live.state_cell(),
                row.players.cell(),
                boot.into(),
                row.game.cell(is_running(row.live.active_state.as_deref())),
                status,
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "PORT",
            "MAP",
            "BLUEPRINT",
            "SPEC",
            "STATE",
            "PLAYERS",
            "BOOT",
            "GAME",
            "STATUS",
        ],
        &cells,
    )
}

/// `list [--json]`.
pub fn list(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let mut rows = list_rows(&catalog);
    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    let live = live_states(&names);
    let with_live = live.is_some();
    for (row, state) in rows.iter_mut().zip(live.into_iter().flatten()) {
        row.live = state;
    }
    let asked: Vec<(Option<u16>, bool)> = rows
        .iter()
        .map(|row| {
            (
                row.port.filter(|_| row.ok),
                row.live.active_state.as_deref() == Some("active"),
            )
        })
        .collect();
    for (row, count) in rows.iter_mut().zip(players::counts(&asked)) {
        row.players = count;
    }
    let views = GameViews::load(&catalog.layout.state_dir);
    for row in &mut rows {
        let active = is_running(row.live.active_state.as_deref());
        row.game = match catalog.get(&row.name) {
            Some(Ok(instance)) => views.of(instance, active),
            _ => views.running_only(&row.name),
        };
        row.content_pending =
            content_view::pending_layers(&catalog.layout.state_dir, &row.name, active);
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else if rows.is_empty() {
        emit(&format!(
            "no instances in {}; create one with `left4mectl create NAME --port PORT`\n",
            catalog.layout.instances_dir().display()
        ))?;
    } else if with_live {
        emit(&live_table(&rows))?;
    } else {
        emit(&list_table(&rows))?;
    }
    Ok(EXIT_OK)
}

/// `validate [NAME|FILE]`.
pub fn validate(ctx: &Ctx, target: Option<&str>) -> anyhow::Result<u8> {
    match target {
        None => validate_all(ctx),
        Some(t) if t.contains('/') || t.ends_with(".toml") => validate_file(ctx, Path::new(t)),
        Some(name) => {
            let catalog = ctx.catalog()?;
            let instance = valid_instance(&catalog, name)?;
            emit(&format!("{}: ok\n", instance.file.display()))?;
            Ok(EXIT_OK)
        }
    }
}

fn validate_all(ctx: &Ctx) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let layout = &catalog.layout;
    let mut out = String::new();
    let mut bad = 0;
    let mut report = |file: &Path, result: Result<(), SpecError>| match result {
        Ok(()) => {
            if ctx.verbose > 0 {
                out.push_str(&format!("{}: ok\n", file.display()));
            }
        }
        Err(err) => {
            bad += 1;
            out.push_str(&format!("{err}\n"));
        }
    };
    for (name, entry) in &catalog.instances {
        report(
            &layout.instance_file(name),
            entry.as_ref().map(drop).map_err(Clone::clone),
        );
    }
    let blueprints = list_names(&layout.blueprints_dir())?;
    for (name, checked) in &blueprints {
        let file = layout.blueprint_file(name);
        report(
            &file,
            checked
                .clone()
                .and_then(|()| left4me_spec::load_blueprint(layout, name).map(drop)),
        );
    }
    let overlays = list_names(&layout.overlay_defs_dir())?;
    for (name, checked) in &overlays {
        let file = layout.overlay_def_file(name);
        let result = checked.clone().and_then(|()| {
            let text = left4me_spec::read_spec(&file).map_err(|err| SpecError {
                kind: left4me_spec::ErrorKind::Io,
                file: file.clone(),
                key: None,
                reason: format!("cannot read: {err}"),
            })?;
            OverlayDef::parse(name, &file, &text).map(drop)
        });
        report(&file, result);
    }
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let checked = format!(
        "checked {}, {}, {}",
        count(catalog.instances.len(), "instance"),
        count(blueprints.len(), "blueprint"),
        count(overlays.len(), "overlay definition"),
    );
    if bad == 0 {
        out.push_str(&format!("{checked}: all valid\n"));
    } else {
        out.push_str(&format!("{checked}: {bad} invalid\n"));
    }
    emit(&out)?;
    Ok(if bad == 0 { EXIT_OK } else { EXIT_INVALID })
}

fn validate_file(ctx: &Ctx, path: &Path) -> anyhow::Result<u8> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".toml"))
        .ok_or_else(|| {
            UsageError::new(format!(
                "{}: expected a NAME.toml spec file",
                left4me_contract::printable::path(path)
            ))
        })?;
    let text = match left4me_spec::read_spec(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError::new(format!(
                "{}: no such file",
                left4me_contract::printable::path(path)
            ))
            .into());
        }
        Err(source) => {
            return Err(store::StoreError::Read {
                path: path.to_path_buf(),
                source,
            }
            .into());
        }
    };
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let what = if stem == "host" && parent != Some("instances") {
        HostConfig::parse(path, &text)?;
        "host settings"
    } else {
        match parent {
            Some("blueprints") => {
                Blueprint::parse(stem, path, &text)?;
                "blueprint"
            }
            Some("overlays") => {
                OverlayDef::parse(stem, path, &text)?;
                "overlay definition"
            }
            _ => {
                ctx.catalog()?.check_instance_text(stem, path, &text)?;
                "instance spec"
            }
        }
    };
    emit(&format!(
        "{}: ok ({what})\n",
        left4me_contract::printable::path(path)
    ))?;
    Ok(EXIT_OK)
}

/// `render NAME --json`.
#[derive(Debug, Serialize)]
struct Rendered {
    name: String,
    dropin: RenderedFile,
    server_cfg: RenderedFile,
    /// Absolute lower dirs, topmost first: the overlays, then the game's layers a start would
    /// mount now (empty when that is unknown: `game_error`).
    lowerdirs: Vec<String>,
    /// The game version a start would mount now (`null`: `installation/`).
    game_version: Option<String>,
    /// Whether the spec pins it (`game_version =`).
    game_version_pinned: bool,
    /// Why the game's layers are unknown (a pin naming no version, …).
    game_error: Option<String>,
    alias_cfgs: Vec<RenderedAlias>,
    /// Every socket srcds binds: what the drop-in's `SocketBindAllow=` lines allow.
    binds: Vec<Bind>,
    argv: Vec<String>,
    cwd: String,
    env: std::collections::BTreeMap<String, String>,
    /// `[schedule]`: the restart timer's and service's drop-ins and the command the service
    /// runs; `null` without a schedule.
    schedule: Option<RenderedSchedule>,
}

#[derive(Debug, Serialize)]
struct RenderedSchedule {
    timer: RenderedFile,
    service: RenderedFile,
    argv: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RenderedFile {
    path: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct RenderedAlias {
    alias: String,
    source: String,
    target: String,
}

fn render_instance(instance: &Instance, catalog: &Catalog) -> Rendered {
    let layout = &catalog.layout;
    let name = &instance.name;
    let runtime = layout.runtime(name);
    let (merged, upper) = (runtime.merged, runtime.upper);
    let game = GameViews::load(&layout.state_dir).layers(instance);
    Rendered {
        name: name.clone(),
        dropin: RenderedFile {
            path: format!("left4me-server@{name}.service.d/50-left4me.conf"),
            text: render_dropin(instance, layout, &catalog.host),
        },
        server_cfg: RenderedFile {
            path: upper.join(SERVER_CFG).display().to_string(),
            text: render_server_cfg(instance),
        },
        lowerdirs: lower_layers_over(instance, &game.as_ref().map_or(Vec::new(), |g| g.layers()))
            .iter()
            .map(|layer| layout.state_dir.join(layer).display().to_string())
            .collect(),
        game_version: game.as_ref().ok().and_then(|g| g.id().map(str::to_owned)),
        game_version_pinned: instance.game_version.is_some(),
        game_error: game.err(),
        alias_cfgs: alias_cfgs(instance)
            .into_iter()
            .map(|cfg| RenderedAlias {
                source: layout
                    .state_dir
                    .join(&cfg.layer)
                    .join(cfg.source)
                    .display()
                    .to_string(),
                target: upper.join(&cfg.target).display().to_string(),
                alias: cfg.alias,
            })
            .collect(),
        binds: instance.ports().binds(),
        argv: srcds_argv(instance, &merged),
        cwd: merged.join("left4dead2").display().to_string(),
        env: [("HOME".to_owned(), layout.state_dir.display().to_string())].into(),
        schedule: render_restart_dropins(instance).map(|dropins| RenderedSchedule {
            timer: RenderedFile {
                path: format!("{}.d/50-left4me.conf", RestartDropins::timer_unit(name)),
                text: dropins.timer,
            },
            service: RenderedFile {
                path: format!("{}.d/50-left4me.conf", RestartDropins::service_unit(name)),
                text: dropins.service,
            },
            argv: instance
                .schedule
                .as_ref()
                .map_or(Vec::new(), |s| restart_argv(name, s)),
        }),
    }
}

/// `render NAME [--json]`.
pub fn render(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let instance = valid_instance(&catalog, name)?;
    let r = render_instance(&instance, &catalog);
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
        return Ok(EXIT_OK);
    }
    let section = |title: String, body: String| {
        let body = if body.is_empty() {
            "(none)\n".into()
        } else {
            body
        };
        format!("=== {title} ===\n{body}")
    };
    let lines = |items: Vec<String>| items.iter().map(|l| format!("{l}\n")).collect::<String>();
    let out = [
        section(
            format!("drop-in {} (in the generator's output dir)", r.dropin.path),
            r.dropin.text,
        ),
        section(
            format!("server.cfg {}", r.server_cfg.path),
            r.server_cfg.text,
        ),
        section(
            format!(
                "overlay lowerdir stack, topmost first; game: {}",
                match (&r.game_version, &r.game_error) {
                    (_, Some(error)) => format!("error: {error}"),
                    (Some(id), None) if r.game_version_pinned => {
                        format!("game version {id}, pinned by game_version")
                    }
                    (Some(id), None) => format!("game version {id} (current)"),
                    (None, None) => "installation/ (no game version is current)".into(),
                }
            ),
            lines(r.lowerdirs),
        ),
        section(
            "alias cfgs staged into the upper dir (source -> target)".into(),
            lines(
                r.alias_cfgs
                    .iter()
                    .map(|a| format!("{} -> {}", a.source, a.target))
                    .collect(),
            ),
        ),
        section(
            "ports srcds binds (the drop-in allows exactly these)".into(),
            lines(
                r.binds
                    .iter()
                    .map(|b| format!("{} {} ({})", b.protocol, b.port, b.role))
                    .collect(),
            ),
        ),
        section(
            format!("srcds command line (cwd {}, HOME={})", r.cwd, r.env["HOME"]),
            format!("{}\n", quoted(&r.argv)),
        ),
        section(
            "scheduled restart ([schedule]; drop-ins in the generator's output dir)".into(),
            r.schedule.map_or(String::new(), |s| {
                format!(
                    "--- {}\n{}--- {}\n{}command: {}\n",
                    s.timer.path,
                    s.timer.text,
                    s.service.path,
                    s.service.text,
                    quoted(&s.argv)
                )
            }),
        ),
    ]
    .join("\n");
    emit(&out)?;
    Ok(EXIT_OK)
}
