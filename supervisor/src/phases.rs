//! The three phases of `left4me-server@NAME.service`, as the binary runs them:
//! `prepare` (ExecStartPre, root), `run` (ExecStart, game user), `cleanup` (ExecStopPost, root).

use std::path::{Path, PathBuf};
use std::time::Duration;

use left4me_overlay::{
    InstanceRuntime, MountError, MountPlan, RealSys, ResolvedPlan, StagedFile, UnmountOutcome,
    plan::PlanError, read_beneath, resolve::LayerError, resolve_plan, stage::StageError,
};
use left4me_spec::{
    Catalog, ErrorKind, HostConfig, Instance, Layout, RCON_CFG, SERVER_CFG, SpecError, alias_cfgs,
    check_name, load_instance, lower_layers_over, render_rcon_cfg, render_server_cfg, srcds_argv,
};

use left4me_game::store::{self, GameLayers, StoreError};
use left4me_statedir::secrets::{SecretError, ensure_rcon_password};
use left4me_statedir::{Dir, Lock, LockError, StateDir, Subject};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::exit::{EXIT_BAD_LAYER, EXIT_BAD_SPEC, EXIT_MOUNT_FAILED, EXIT_RUNTIME};
use crate::notify::Notifier;
use crate::run::{RunConfig, RunError, run};
use crate::users::{UserError, lookup};

/// Why a phase failed; [`PhaseError::exit_code`] says how the process ends.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Layer(#[from] LayerError),
    #[error("{0}")]
    Stage(#[from] StageError),
    #[error("{0}")]
    Mount(#[from] MountError),
    #[error("{0}")]
    User(#[from] UserError),
    #[error("{0}")]
    Run(#[from] RunError),
    #[error(
        "the game tree is not mounted at {}: `left4me-supervisor prepare {name}` must run \
         first (the unit's ExecStartPre does)",
        merged.display()
    )]
    NotPrepared { name: String, merged: PathBuf },
    #[error(
        "the game is not installed: the bottom layer {} has no srcds_run; install the game \
         (`left4mectl game install`, or by hand into <state>/installation) and start the \
         instance again",
        layer.display()
    )]
    NoGame { layer: PathBuf },
    #[error(
        "game version {id} has no srcds_run (in {}): install the game again (`left4mectl game \
         validate`) or pin another version, and start the instance again",
        layer.display()
    )]
    NoGameInVersion { id: String, layer: PathBuf },
    #[error(
        "{}: key 'game_version': game version {id} does not exist: `left4mectl game versions` \
         lists the versions there are; change or remove the pin ({source})",
        file.display()
    )]
    PinnedVersionMissing {
        file: PathBuf,
        id: String,
        source: StoreError,
    },
    #[error("{0}")]
    Game(StoreError),
    #[error("{0}")]
    StateDir(#[from] left4me_statedir::DirError),
    #[error("cannot check {}/srcds_run: {source}", layer.display())]
    GameCheck {
        layer: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Lock(#[from] LockError),
    #[error("{0}")]
    Secret(#[from] SecretError),
}

impl PhaseError {
    pub fn exit_code(&self) -> i32 {
        match self {
            PhaseError::Spec(_) | PhaseError::Plan(_) => EXIT_BAD_SPEC,
            PhaseError::Layer(_)
            | PhaseError::Stage(_)
            | PhaseError::NoGame { .. }
            | PhaseError::NoGameInVersion { .. }
            | PhaseError::PinnedVersionMissing { .. }
            | PhaseError::Game(_)
            | PhaseError::GameCheck { .. } => EXIT_BAD_LAYER,
            PhaseError::Mount(
                MountError::Layer(_)
                | MountError::FuseTaint(_)
                | MountError::Stage(_)
                | MountError::Dir(_),
            ) => EXIT_BAD_LAYER,
            PhaseError::Mount(_) => EXIT_MOUNT_FAILED,
            PhaseError::User(_)
            | PhaseError::Run(_)
            | PhaseError::NotPrepared { .. }
            | PhaseError::StateDir(_)
            | PhaseError::Lock(_)
            | PhaseError::Secret(_) => EXIT_RUNTIME,
        }
    }
}

fn checked_name(name: &str) -> Result<(), SpecError> {
    check_name(name).map_err(|why| SpecError {
        kind: ErrorKind::Invalid,
        file: PathBuf::from(name),
        key: None,
        reason: format!("instance {why}"),
    })
}

/// The host settings and paths, from host.toml and the environment overrides.
fn host_layout() -> Result<(HostConfig, Layout), SpecError> {
    left4me_spec::load_host(&Layout::config_dir_from_env(), Layout::state_dir_from_env())
}

/// `prepare NAME`: check the spec against every other instance, resolve the game version once
/// (the spec's `game_version` pin, else `game/current`, else the hand-installed
/// `installation/`) and log it (`LEFT4ME_GAME_VERSION=`), open every layer once, read the
/// aliased overlays' cfg files from those layers, create the runtime dirs, stage the cfg files
/// into the upper dir and mount the same layers (keeping a mount of exactly these layers).
/// Call `join_pid1_mount_namespace` first. Holds the instance's lock throughout, waiting while
/// `left4mectl reset` holds it. Returns the log line saying what was done.
pub fn prepare(name: &str) -> Result<String, PhaseError> {
    checked_name(name)?;
    let catalog = Catalog::load_from_env()?;
    let _lock = Lock::take(&catalog.layout.locks_dir(), Subject::Instance(name), true)?;
    let instance = match catalog.get(name) {
        Some(entry) => entry.clone()?,
        None => return Err(missing_spec(&catalog.layout, name).into()),
    };
    let game = lookup(Path::new("/"), &catalog.host.game_user)?;
    let version = game_layers(&catalog.layout.state_dir, &instance)?;
    let game_layers = version.layers();
    let plan = MountPlan::new(
        &catalog.layout.state_dir,
        name,
        &lower_layers_over(&instance, &game_layers),
    )?;
    let resolved = resolve_plan(&plan)?;
    check_game_installed(&resolved, &version)?;
    match version.id() {
        Some(id) => log::info!(
            LEFT4ME_GAME_VERSION = id;
            "left4me-supervisor: {name}: game version {id} ({} layer{}){}",
            game_layers.len(),
            if game_layers.len() == 1 { "" } else { "s" },
            if instance.game_version.is_some() { ", pinned by game_version" } else { "" }
        ),
        None => log::info!(
            "left4me-supervisor: {name}: game from installation/ (no game version is current)"
        ),
    }
    // An instance whose spec was written by hand gets its RCON password at its first start.
    let password = ensure_rcon_password(&catalog.layout.admin_dir, name)?;
    let files = cfg_files(&resolved, &instance, &password)?;
    let report = left4me_overlay::prepare(&RealSys::new(), &resolved, game, &files)?;
    Ok(report.to_string())
}

/// The game layers the instance starts on: its pin, else the current version, else
/// `installation/`. A pin naming no version fails naming the spec file and key.
fn game_layers(state_dir: &Path, instance: &Instance) -> Result<GameLayers, PhaseError> {
    let pin = instance.game_version.as_deref();
    let result = if rustix::process::geteuid().is_root() {
        let state = StateDir::open(state_dir)?;
        store::resolve(&state, pin)
    } else {
        // Not root (tests): nothing to be redirected into; open it plainly.
        let fd = rustix::fs::open(
            state_dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| left4me_statedir::DirError::Io {
            action: "open the state dir",
            path: state_dir.to_owned(),
            source: e.into(),
        })?;
        store::resolve_in(&Dir::from_fd(fd, state_dir.to_owned()), pin)
    };
    result.map_err(|source| match (pin, source) {
        (Some(id), source @ StoreError::NotFound { .. }) => PhaseError::PinnedVersionMissing {
            file: instance
                .game_version_file
                .clone()
                .unwrap_or_else(|| instance.file.clone()),
            id: id.to_owned(),
            source,
        },
        (_, source) => PhaseError::Game(source),
    })
}

/// The game layers (the bottom of the stack) must provide `srcds_run`: the newest game layer
/// that has the name decides (a whiteout, char 0:0, is a deletion). Checked through the layers'
/// descriptors.
fn check_game_installed(
    resolved: &ResolvedPlan<'_>,
    version: &GameLayers,
) -> Result<(), PhaseError> {
    let layers = resolved.layers();
    let game = &layers[layers.len().saturating_sub(version.layers().len())..];
    let Some(bottom) = game.last() else {
        return Ok(());
    };
    let missing = || match version.id() {
        Some(id) => PhaseError::NoGameInVersion {
            id: id.to_owned(),
            layer: bottom.path.clone(),
        },
        None => PhaseError::NoGame {
            layer: bottom.path.clone(),
        },
    };
    for layer in game {
        match rustix::fs::statat(&layer.fd, "srcds_run", AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat)
                if FileType::from_raw_mode(stat.st_mode) == FileType::CharacterDevice
                    && stat.st_rdev == 0 =>
            {
                return Err(missing());
            }
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => continue,
            Err(e) => {
                return Err(PhaseError::GameCheck {
                    layer: layer.path.clone(),
                    source: e.into(),
                });
            }
        }
    }
    Err(missing())
}

fn missing_spec(layout: &Layout, name: &str) -> SpecError {
    let file = layout.instance_file(name);
    SpecError {
        kind: ErrorKind::NotFound,
        reason: format!(
            "no such instance spec; create it with `left4mectl create {name} --port PORT`"
        ),
        file,
        key: None,
    }
}

/// The files staged into the upper dir: the RCON cfg holding `password` (readable by the game
/// user alone), each aliased overlay's server.cfg as `server_overlay_<alias>.cfg` (read from
/// the layers opened for the mount), and the composed server.cfg that executes them.
fn cfg_files(
    resolved: &ResolvedPlan<'_>,
    instance: &Instance,
    password: &str,
) -> Result<Vec<StagedFile>, PhaseError> {
    let mut files = vec![StagedFile::private(
        RCON_CFG,
        render_rcon_cfg(&instance.name, password),
    )];
    for cfg in alias_cfgs(instance) {
        let layer = resolved.layer(Path::new(&cfg.layer))?;
        let contents = match read_beneath(&layer.fd, cfg.source)? {
            Some(contents) => contents,
            None => {
                log::warn!(
                    "left4me-supervisor: warning: overlay {} has no {}; `exec server_overlay_{}` will run an empty file",
                    cfg.layer,
                    cfg.source,
                    cfg.alias
                );
                format!("// {} has no {}\n", cfg.layer, cfg.source).into_bytes()
            }
        };
        files.push(StagedFile::new(cfg.target, contents));
    }
    files.push(StagedFile::new(SERVER_CFG, render_server_cfg(instance)));
    Ok(files)
}

/// `cleanup NAME`: unmount the overlay if mounted and remove overlayfs' root-owned `work/work`.
/// Needs only the state dir, so it works for a broken or deleted spec too. Call
/// `join_pid1_mount_namespace` first.
pub fn cleanup(name: &str) -> Result<String, PhaseError> {
    checked_name(name)?;
    let (_, layout) = host_layout()?;
    let runtime = InstanceRuntime::new(&layout.state_dir, name)?;
    let report = left4me_overlay::unmount(&RealSys::new(), &runtime)?;
    let removed: Vec<String> = report
        .removed
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let moved = if report.moved.is_empty() {
        String::new()
    } else {
        let points: Vec<String> = report
            .moved
            .iter()
            .map(|p| left4me_contract::printable::path(p).to_string())
            .collect();
        format!(
            "; found by its mount tag away from merged and unmounted: {} (something renamed a \
             directory on the way)",
            points.join(", ")
        )
    };
    Ok(match report.outcome {
        UnmountOutcome::NotMounted => format!("{name}: nothing mounted"),
        UnmountOutcome::Unmounted { mounts } => format!(
            "{name}: unmounted {} ({mounts} mount{}){}{moved}",
            runtime.dirs.merged.display(),
            if mounts == 1 { "" } else { "s" },
            if removed.is_empty() {
                String::new()
            } else {
                format!(", removed {}", removed.join(", "))
            }
        ),
    })
}

/// `run NAME`: supervise the game until it exits; returns the exit code.
pub fn run_instance(name: &str, notifier: &Notifier) -> Result<i32, PhaseError> {
    checked_name(name)?;
    let (host, layout) = host_layout()?;
    let instance = load_instance(&layout, &host, name)?;
    let merged = layout.runtime(name).merged;
    if !merged.join("srcds_run").exists() {
        return Err(PhaseError::NotPrepared {
            name: name.to_owned(),
            merged,
        });
    }
    let game_user = if rustix::process::geteuid().is_root() {
        Some(lookup(Path::new("/"), &host.game_user)?)
    } else {
        None
    };
    let config = RunConfig {
        name: name.to_owned(),
        argv: srcds_argv(&instance, &merged),
        cwd: merged.join("left4dead2"),
        home: layout.state_dir.clone(),
        port: instance.port,
        ready_timeout: instance
            .ready_timeout
            .as_micros()
            .map(Duration::from_micros),
        game_user,
    };
    Ok(run(&config, notifier)?)
}
