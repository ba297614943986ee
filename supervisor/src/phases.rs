//! The three phases of `left4me-server@NAME.service`, as the binary runs them:
//! `prepare` (ExecStartPre, root), `run` (ExecStart, game user), `cleanup` (ExecStopPost, root).

use std::path::{Path, PathBuf};
use std::time::Duration;

use left4me_overlay::{
    InstanceRuntime, MountError, MountPlan, RealSys, ResolvedPlan, StagedFile, UnmountOutcome,
    plan::PlanError, read_beneath, resolve::LayerError, resolve_plan, stage::StageError,
};
use left4me_spec::{
    Catalog, ErrorKind, HostConfig, Instance, Layout, SERVER_CFG, SpecError, alias_cfgs,
    check_name, load_instance, lower_layers, render_server_cfg, srcds_argv,
};

use left4me_statedir::{Lock, LockError, Subject};
use rustix::fs::AtFlags;
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
         (put it in <state>/installation, or `left4mectl game install` once that exists) and \
         start the instance again",
        layer.display()
    )]
    NoGame { layer: PathBuf },
    #[error("cannot check {}/srcds_run: {source}", layer.display())]
    GameCheck {
        layer: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Lock(#[from] LockError),
}

impl PhaseError {
    pub fn exit_code(&self) -> i32 {
        match self {
            PhaseError::Spec(_) | PhaseError::Plan(_) => EXIT_BAD_SPEC,
            PhaseError::Layer(_)
            | PhaseError::Stage(_)
            | PhaseError::NoGame { .. }
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
            | PhaseError::Lock(_) => EXIT_RUNTIME,
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

/// `prepare NAME`: check the spec against every other instance, open every layer once, read the
/// aliased overlays' cfg files from those layers, create the runtime dirs, stage the cfg files
/// into the upper dir and mount the same layers (keeping a matching mount). Call
/// `join_pid1_mount_namespace` first. Holds the instance's lock throughout, waiting while
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
    let plan = MountPlan::new(&catalog.layout.state_dir, name, &lower_layers(&instance))?;
    let resolved = resolve_plan(&plan)?;
    check_game_installed(&resolved)?;
    let files = cfg_files(&resolved, &instance)?;
    let report = left4me_overlay::prepare(&RealSys::new(), &resolved, game, &files)?;
    Ok(report.to_string())
}

/// The bottom layer (the game install) must hold `srcds_run`; checked through its descriptor.
fn check_game_installed(resolved: &ResolvedPlan<'_>) -> Result<(), PhaseError> {
    let Some(bottom) = resolved.layers().last() else {
        return Ok(());
    };
    match rustix::fs::statat(&bottom.fd, "srcds_run", AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(()),
        Err(Errno::NOENT) => Err(PhaseError::NoGame {
            layer: bottom.path.clone(),
        }),
        Err(e) => Err(PhaseError::GameCheck {
            layer: bottom.path.clone(),
            source: e.into(),
        }),
    }
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

/// The files staged into the upper dir: each aliased overlay's server.cfg as
/// `server_overlay_<alias>.cfg` (read from the layers opened for the mount), and the composed
/// server.cfg that executes them.
fn cfg_files(
    resolved: &ResolvedPlan<'_>,
    instance: &Instance,
) -> Result<Vec<StagedFile>, PhaseError> {
    let mut files = Vec::new();
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
