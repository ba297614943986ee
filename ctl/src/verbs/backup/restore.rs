//! `left4mectl restore FILE [--dry-run] [--replace] [NAME…]` (docs/backup.md).
//!
//! In this order, and nothing is written before the last step: read the whole archive and check
//! every entry against the manifest ([`archive::read`]); decide what to write, refusing an
//! existing instance (or a blueprint or overlay definition that differs) without `--replace`,
//! and the upper layer of a running instance always; validate every restored spec against the
//! host as it would be afterwards (a copy of the config dir with the archive's files in it,
//! loaded by the same `Catalog` code as the generator: ports unique and in range, blueprints
//! present). Then write: secrets, upper layers and manual overlay content (each built in a
//! fresh root-only directory beside its place, then swapped in), then the spec files, each
//! atomically; record the revisions; `daemon-reload`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use left4me_contract::passwd::{self, PASSWD};
use left4me_history::Kind as HistoryKind;
use left4me_spec::{Catalog, HostConfig, Layout};
use left4me_statedir::{Dir, Lock, StateDir, Subject};

use super::tree::TreeWriter;
use crate::Ctx;
use crate::archive::{self, ArchiveError, Kind, Manifest};
use crate::error::UsageError;
use crate::systemd;

/// The largest config file or secret restored (they are read into memory).
const SMALL_MAX: u64 = 4 << 20;
/// The directory an upper layer is built in, beside `upper`.
const UPPER_TEMP: &str = ".upper-restore";

/// One config file to write.
#[derive(Debug)]
struct ConfigWrite {
    /// Its path in the archive (`config/instances/coop1.toml`).
    entry: String,
    /// What it is in the spec history, and its name there.
    kind: HistoryKind,
    name: String,
    path: PathBuf,
    /// The file's text on this host before (`None`: a new file).
    old: Option<String>,
    text: String,
    replace: bool,
}

/// What a restore does.
#[derive(Debug, Default)]
struct Plan {
    names: Vec<String>,
    config: Vec<ConfigWrite>,
    /// What is left as it is, and why.
    kept: Vec<String>,
    uppers: Vec<String>,
    contents: Vec<String>,
    secrets: Vec<(String, String)>,
    /// The game user (uid, gid), who owns restored trees.
    owner: (u32, u32),
}

/// `left4mectl restore`.
pub(crate) fn restore(
    ctx: &Ctx,
    file: &Path,
    dry_run: bool,
    replace: bool,
    names: &[String],
) -> anyhow::Result<u8> {
    let mut archive_file =
        File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut small = BTreeMap::new();
    let manifest = archive::read(&mut archive_file, file, |entry, reader| {
        if matches!(entry.kind, Kind::Upper | Kind::OverlayContent) || entry.dir {
            return Ok(());
        }
        if entry.size > SMALL_MAX {
            return Err(io::Error::other("too large for a config file or secret"));
        }
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        small.insert(entry.path.clone(), bytes);
        Ok(())
    })
    .map_err(refusal)?;
    // The config dir's lock, with the spec history open: each spec written is a revision.
    let lock = if dry_run { None } else { Some(ctx.lock()?) };
    let mut plan = plan_config(ctx, &manifest, &small, names, replace)?;
    let (layout, host) = validate(ctx, &plan)?;
    plan_state(&layout, &host, &manifest, &mut plan, replace)?;
    print_plan(&plan, &manifest, dry_run);
    if dry_run {
        return Ok(0);
    }
    write_state(&layout, &plan, &manifest, &mut archive_file, file)?;
    let recorder = lock.as_ref().expect("taken unless --dry-run");
    for write in &plan.config {
        let rev = recorder.write(
            write.kind,
            &write.name,
            &write.path,
            write.old.as_deref(),
            &write.text,
            "restore",
        )?;
        println!("wrote {} (revision {rev})", write.path.display());
    }
    println!("{}", crate::reload::daemon_reload(ctx.no_reload)?);
    if !plan.names.is_empty() {
        println!("start them: left4mectl start {}", plan.names.join(" "));
    }
    for overlay in &manifest.rebuildable {
        println!(
            "rebuild overlay {} ({}, not in backups): left4mectl overlay build {}",
            overlay.name, overlay.kind, overlay.name
        );
    }
    Ok(0)
}

/// A corrupted archive is a refusal (exit status 2: nothing was changed); other errors are
/// runtime errors.
fn refusal(err: ArchiveError) -> anyhow::Error {
    match err {
        ArchiveError::Corrupt { .. } => UsageError::new(err.to_string()).into(),
        other => other.into(),
    }
}

/// The file stem of `rel` (`instances/coop1.toml` → `coop1`).
fn stem(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    file.strip_suffix(".toml").unwrap_or(file).to_owned()
}

/// The config files to write, refusing conflicts (all of them named in one error).
fn plan_config(
    ctx: &Ctx,
    manifest: &Manifest,
    small: &BTreeMap<String, Vec<u8>>,
    names: &[String],
    replace: bool,
) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    for name in names {
        if !manifest.instances.contains(name) {
            return Err(UsageError::new(format!(
                "the archive has no instance {name} (it has: {})",
                manifest.instances.join(", ")
            ))
            .into());
        }
    }
    plan.names = if names.is_empty() {
        manifest.instances.clone()
    } else {
        names.to_vec()
    };
    let mut conflicts = Vec::new();
    for (entry, bytes) in small {
        let Some(rel) = entry.strip_prefix("config/") else {
            continue;
        };
        let kind = manifest
            .files
            .iter()
            .find(|e| &e.path == entry)
            .map(|e| e.kind);
        if kind == Some(Kind::Instance) {
            let stem = rel
                .trim_start_matches("instances/")
                .trim_end_matches(".toml");
            if !plan.names.iter().any(|n| n == stem) {
                continue;
            }
        }
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| UsageError::new(format!("{entry} in the archive is not UTF-8 text")))?;
        let path = ctx.config_dir.join(rel);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let (history_kind, name) = match kind {
            Some(Kind::Host) => (HistoryKind::Host, "host".to_owned()),
            Some(Kind::Instance) => (HistoryKind::Instance, stem(rel)),
            Some(Kind::Blueprint) => (HistoryKind::Blueprint, stem(rel)),
            _ => (HistoryKind::Overlay, stem(rel)),
        };
        let shown = path.display().to_string();
        let write = |old: Option<String>, replace: bool| ConfigWrite {
            entry: entry.clone(),
            kind: history_kind,
            name: name.clone(),
            path: path.clone(),
            old,
            text: text.clone(),
            replace,
        };
        match (kind, current) {
            (_, None) => plan.config.push(write(None, false)),
            (Some(Kind::Host), Some(current)) => {
                if current != text {
                    plan.kept.push(format!(
                        "{shown}: this host's is kept (the archive's differs)"
                    ));
                }
            }
            (Some(Kind::Instance), Some(current)) if !replace => {
                let same = if current == text { ", the same" } else { "" };
                conflicts.push(format!("{shown} exists{same}"));
            }
            (_, Some(current)) if current == text => {}
            (_, Some(_)) if !replace => conflicts.push(format!("{shown} exists and differs")),
            (_, Some(current)) => plan.config.push(write(Some(current), true)),
        }
    }
    if !conflicts.is_empty() {
        return Err(UsageError::new(format!(
            "not restoring: {}; pass --replace to overwrite (nothing was written)",
            conflicts.join("; ")
        ))
        .into());
    }
    for name in &plan.names {
        if let Some(bytes) = small.get(&format!("secrets/rcon/{name}")) {
            let text = String::from_utf8_lossy(bytes);
            let password = text.strip_suffix('\n').unwrap_or(&text);
            if !left4me_statedir::secrets::is_valid_password(password) {
                return Err(UsageError::new(format!(
                    "the archive's RCON password of {name} is malformed; nothing was written"
                ))
                .into());
            }
            plan.secrets.push((name.clone(), password.to_owned()));
        }
    }
    Ok(plan)
}

/// Validates the restored instances against the host as it would be after the restore, and
/// returns that host's layout.
fn validate(ctx: &Ctx, plan: &Plan) -> anyhow::Result<(Layout, HostConfig)> {
    let staged = Staged::new()?;
    for sub in ["", "instances", "blueprints", "overlays"] {
        let from = ctx.config_dir.join(sub);
        let to = staged.0.join(sub);
        std::fs::create_dir_all(&to)?;
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_file() && name.to_string_lossy().ends_with(".toml") {
                std::fs::copy(entry.path(), to.join(&name))?;
            }
        }
    }
    for write in &plan.config {
        let rel = write.entry.strip_prefix("config/").expect("config entries");
        std::fs::write(staged.0.join(rel), &write.text)?;
    }
    let catalog = Catalog::load(&staged.0, ctx.state_dir.clone())
        .map_err(|err| UsageError::new(staged.unstage(&err.to_string(), &ctx.config_dir)))?;
    // Every restored instance must be valid, and no instance valid now may become invalid
    // (a restored port taken by another instance makes one of the two invalid).
    let now = ctx.catalog().ok();
    let valid_now = |name: &str| {
        now.as_ref()
            .and_then(|c| c.get(name))
            .is_some_and(|r| r.is_ok())
    };
    let mut problems = Vec::new();
    for (name, result) in &catalog.instances {
        if let Err(err) = result
            && (plan.names.contains(name) || valid_now(name))
        {
            problems.push(staged.unstage(&err.to_string(), &ctx.config_dir));
        }
    }
    for name in &plan.names {
        if catalog.get(name).is_none() {
            problems.push(format!("instance {name} has no spec in the archive"));
        }
    }
    if !problems.is_empty() {
        return Err(UsageError::new(format!(
            "not restoring, the restored specs would not be valid on this host: {}; nothing was \
             written",
            problems.join("; ")
        ))
        .into());
    }
    let mut layout = catalog.layout;
    layout.config_dir = ctx.config_dir.clone();
    Ok((layout, catalog.host))
}

/// A temporary copy of the config dir; removed when dropped.
struct Staged(PathBuf);

impl Staged {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "left4me-restore-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Staged(dir))
    }

    /// `message` with the staged dir's path replaced by the real config dir.
    fn unstage(&self, message: &str, config_dir: &Path) -> String {
        message.replace(
            &self.0.to_string_lossy().into_owned(),
            &config_dir.to_string_lossy(),
        )
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The upper layers and overlay contents to write, refusing conflicts.
fn plan_state(
    layout: &Layout,
    host: &HostConfig,
    manifest: &Manifest,
    plan: &mut Plan,
    replace: bool,
) -> anyhow::Result<()> {
    let tops = |kind: Kind| -> Vec<String> {
        manifest
            .files
            .iter()
            .filter(|e| e.kind == kind && e.dir && e.path.matches('/').count() == 1)
            .map(|e| e.path.split('/').nth(1).expect("checked path").to_owned())
            .collect()
    };
    let uppers: Vec<String> = tops(Kind::Upper)
        .into_iter()
        .filter(|n| plan.names.contains(n))
        .collect();
    let contents = tops(Kind::OverlayContent);
    if uppers.is_empty() && contents.is_empty() {
        return Ok(());
    }
    let state = StateDir::open(&layout.state_dir).map_err(|err| {
        UsageError::new(format!(
            "{err}; the state dir must exist to restore upper layers and overlay content \
             (install left4me first); nothing was written"
        ))
    })?;
    let ids = passwd::lookup(Path::new(PASSWD), &host.game_user, "game_user in host.toml")?;
    plan.owner = (ids.uid, ids.gid);
    let mut conflicts = Vec::new();
    for name in uppers {
        let exists = state
            .dir()
            .open_dir_if_exists(format!("runtime/{name}"))?
            .map(|dir| dir.contains("upper"))
            .transpose()?
            .unwrap_or(false);
        let unit = systemd::unit_name(&name);
        if exists && systemd::systemd_running() && systemd::show_one(&unit)?.is_active() {
            conflicts.push(format!(
                "{name} is running: stop it first (`left4mectl stop {name}`)"
            ));
        } else if exists && !replace {
            conflicts.push(format!(
                "{name} has an upper layer ({}); pass --replace to overwrite it",
                layout.runtime(&name).upper.display()
            ));
        } else {
            plan.uppers.push(name);
        }
    }
    let overlays = state.dir().open_dir_if_exists("overlays")?;
    for name in contents {
        let exists = match &overlays {
            Some(dir) => dir.contains(&name)?,
            None => false,
        };
        if exists {
            plan.kept.push(format!(
                "{}: this host's overlay content is kept (remove it first to restore the \
                 archive's)",
                layout.overlay_content(&name).display()
            ));
        } else {
            plan.contents.push(name);
        }
    }
    if !conflicts.is_empty() {
        return Err(UsageError::new(format!(
            "not restoring: {}; nothing was written",
            conflicts.join("; ")
        ))
        .into());
    }
    Ok(())
}

fn print_plan(plan: &Plan, manifest: &Manifest, dry_run: bool) {
    let verb = if dry_run {
        "would restore"
    } else {
        "restoring"
    };
    println!(
        "{verb} from a backup of {} made {} (left4me {}):",
        manifest.host, manifest.created, manifest.left4me_version
    );
    for write in &plan.config {
        let how = if write.replace { "replace" } else { "write" };
        println!("  {how} {}", write.path.display());
    }
    for name in &plan.uppers {
        println!("  upper layer of {name}");
    }
    for (name, _) in &plan.secrets {
        println!("  RCON password of {name}");
    }
    for name in &plan.contents {
        println!("  content of manual overlay {name}");
    }
    for kept in &plan.kept {
        println!("  keep {kept}");
    }
}

/// A tree being built, and how it is put in place.
struct Building {
    writer: TreeWriter,
    /// The directory holding the temp dir and the final entry.
    parent: Dir,
    temp: String,
    target: String,
    /// The top's mode from the manifest.
    mode: u32,
    /// Whether the target exists and is exchanged (then removed) rather than renamed to.
    exchange: bool,
    _lock: Lock,
}

/// Writes the upper layers and overlay contents, then the secrets.
fn write_state(
    layout: &Layout,
    plan: &Plan,
    manifest: &Manifest,
    archive_file: &mut File,
    file: &Path,
) -> anyhow::Result<()> {
    if !plan.uppers.is_empty() || !plan.contents.is_empty() {
        write_trees(layout, plan, manifest, archive_file, file)?;
    }
    for (name, password) in &plan.secrets {
        left4me_statedir::secrets::set_rcon_password(&layout.admin_dir, name, password)?;
    }
    Ok(())
}

/// Builds every upper layer and overlay content from a second read of the archive, each in a
/// root-only temp dir beside its place, and puts them in place once all are built.
fn write_trees(
    layout: &Layout,
    plan: &Plan,
    manifest: &Manifest,
    archive_file: &mut File,
    file: &Path,
) -> anyhow::Result<()> {
    let owner = plan.owner;
    let mode_of = |path: &str| {
        manifest
            .files
            .iter()
            .find(|e| e.path == path)
            .map_or(0o755, |e| e.mode)
    };
    let state = StateDir::open(&layout.state_dir)?;
    let mut building: HashMap<String, Building> = HashMap::new();
    let result = (|| -> anyhow::Result<()> {
        for name in &plan.uppers {
            let lock = Lock::take(&layout.locks_dir(), Subject::Instance(name), true)?;
            let runtime = left4me_overlay::InstanceRuntime::new(&layout.state_dir, name)?;
            let game = left4me_overlay::Owner {
                uid: owner.0,
                gid: owner.1,
            };
            left4me_overlay::ensure_runtime_dirs(&runtime, game)?;
            let parent = state.open_dir(format!("runtime/{name}"))?;
            let top = format!("upper/{name}");
            let b = start(parent, UPPER_TEMP.into(), "upper".into(), &top, owner, lock)?;
            building.insert(
                top.clone(),
                Building {
                    mode: mode_of(&top),
                    ..b
                },
            );
        }
        for name in &plan.contents {
            let lock = Lock::take(&layout.locks_dir(), Subject::Overlay(name), true)?;
            let parent = match state.dir().open_dir_if_exists("overlays")? {
                Some(dir) => dir,
                None => state.dir().create_dir("overlays", (0, 0), 0o755)?,
            };
            let top = format!("overlays/{name}");
            let temp = format!(".{name}.restore");
            let b = start(parent, temp, name.clone(), &top, owner, lock)?;
            building.insert(
                top.clone(),
                Building {
                    mode: mode_of(&top),
                    ..b
                },
            );
        }
        archive::read(archive_file, file, |entry, reader| {
            let top: String = entry
                .path
                .splitn(3, '/')
                .take(2)
                .collect::<Vec<_>>()
                .join("/");
            let Some(b) = building.get_mut(&top) else {
                return Ok(());
            };
            let added = if entry.dir {
                b.writer.add_dir(entry)
            } else {
                b.writer.add_file(entry, reader)
            };
            added.map_err(io::Error::other)
        })?;
        Ok(())
    })();
    if let Err(err) = result {
        for b in building.values() {
            let _ = b.parent.remove_tree(&b.temp);
        }
        return Err(err);
    }
    for (_, b) in building {
        b.writer.finish(b.mode)?;
        if b.exchange {
            b.parent.exchange(&b.temp, &b.target)?;
            b.parent.remove_tree(&b.temp)?;
        } else {
            b.parent.rename(&b.temp, &b.target)?;
        }
    }
    Ok(())
}

/// Makes the root-only temp dir `temp` in `parent` (removing a stale one first).
fn start(
    parent: Dir,
    temp: String,
    target: String,
    top: &str,
    owner: (u32, u32),
    lock: Lock,
) -> anyhow::Result<Building> {
    parent.remove_tree(&temp)?;
    let dir = parent.create_dir(&temp, (0, 0), 0o700)?;
    let exchange = parent.contains(&target)?;
    Ok(Building {
        writer: TreeWriter::new(dir, top, owner),
        parent,
        temp,
        target,
        mode: 0o755,
        exchange,
        _lock: lock,
    })
}
