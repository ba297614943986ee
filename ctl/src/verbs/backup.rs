//! `left4mectl backup` and, in [`restore`], `left4mectl restore` (docs/backup.md).
//!
//! A backup is one archive ([`crate::archive`]) of what cannot be had again: host.toml, the
//! instance specs, blueprints and overlay definitions, the content of manual overlays, each
//! selected instance's upper layer and its RCON password. The game install, the workshop cache
//! and the content of script and workshop overlays are left out: the manifest lists those
//! overlays as rebuildable. Upper layers and overlay content are read through descriptors
//! beneath the state dir ([`tree`]), each file once, archived exactly as checksummed; a running
//! instance is frozen (`systemctl freeze`, where systemd can: cgroup v2) while its files are
//! read, so its upper layer is archived as one moment, and thawed afterwards, also on error.

pub(crate) mod restore;
pub(crate) mod tree;

use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use left4me_spec::{Catalog, Layout, OverlayDef, OverlayKind, list_names};
use left4me_statedir::StateDir;

use crate::Ctx;
use crate::archive::{self, Entry, FORMAT_VERSION, Item, Kind, Manifest, Rebuildable};
use crate::error::UsageError;
use crate::store::TempFile;
use crate::systemd;

/// Where backups go by default, in root's admin dir.
pub const BACKUPS_DIR: &str = "backups";
/// File names of the backups `--keep` rotates: `left4me-HOST-TIMESTAMP.tar.zst`.
const PREFIX: &str = "left4me-";
const SUFFIX: &str = ".tar.zst";

/// `left4mectl backup [-o FILE] [NAME…] [--keep N]`.
pub(crate) fn backup(
    ctx: &Ctx,
    output: Option<&Path>,
    names: &[String],
    keep: Option<usize>,
) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let layout = &catalog.layout;
    let names = selected(&catalog, names)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let (path, rotate_dir) = match output {
        Some(path) => (path.to_owned(), None),
        None => {
            let dir = layout.admin_dir.join(BACKUPS_DIR);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let file = format!("{PREFIX}{host}-{}{SUFFIX}", timestamp(now, true));
            (dir.join(file), Some(dir))
        }
    };

    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let mut rebuildable = Vec::new();
    config_items(layout, &names, &mut items)?;
    let state = match StateDir::open(&layout.state_dir) {
        Ok(state) => Some(state),
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err.into()),
    };
    for name in spec_names(&layout.overlay_defs_dir())? {
        let file = layout.overlay_def_file(&name);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match OverlayDef::parse(&name, &file, &text).map(|d| d.kind) {
            Ok(OverlayKind::Manual) => {
                let content = match &state {
                    Some(state) => state.dir().open_dir_if_exists(format!("overlays/{name}"))?,
                    None => None,
                };
                if let Some(dir) = content {
                    let prefix = format!("overlays/{name}");
                    tree::collect(dir, &prefix, Kind::OverlayContent, &mut items, &mut skipped)?;
                }
            }
            Ok(other) => rebuildable.push(Rebuildable {
                name,
                kind: OverlayKind::name(&other).to_owned(),
            }),
            Err(err) => skipped.push(format!(
                "overlays/{name}: its definition is invalid ({err})"
            )),
        }
    }
    for name in &names {
        match left4me_statedir::secrets::rcon_password(&layout.admin_dir, name) {
            Ok(password) => items.push(memory_item(
                format!("secrets/rcon/{name}"),
                Kind::Secret,
                0o600,
                format!("{password}\n").into_bytes(),
            )),
            Err(err) if err.is_missing() => {}
            Err(err) => return Err(err.into()),
        }
    }
    // Freeze every running instance whose upper layer is archived until it is written.
    let mut frozen = Frozen::default();
    for name in &names {
        let Some(state) = &state else { break };
        let Some(upper) = state
            .dir()
            .open_dir_if_exists(format!("runtime/{name}/upper"))?
        else {
            continue;
        };
        frozen.freeze(name)?;
        let prefix = format!("upper/{name}");
        tree::collect(upper, &prefix, Kind::Upper, &mut items, &mut skipped)?;
    }
    let manifest_of = |items: &[Item], notes: Vec<String>| Manifest {
        format: FORMAT_VERSION,
        left4me_version: env!("CARGO_PKG_VERSION").to_owned(),
        created: timestamp(now, false),
        host,
        instances: names.clone(),
        rebuildable,
        skipped: skipped.into_iter().chain(notes).collect(),
        files: items.iter().map(|i| i.entry.clone()).collect(),
    };
    let manifest = write_atomically(&path, |file| {
        let dir = parent_of(&path);
        let (spool, _) = TempFile::create(&dir, ".left4me-backup-spool", 0o600)?;
        let mut spool_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(spool.path())
            .with_context(|| format!("cannot open {}", spool.path().display()))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        Ok(archive::write(
            out,
            &mut spool_file,
            &mut items,
            manifest_of,
            &path,
        )?)
    })?;
    let thawed = frozen.thaw_all();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let content: u64 = manifest.files.iter().map(|e| e.size).sum();
    println!(
        "wrote {} ({} of {} in {} files; instances: {})",
        path.display(),
        left4me_jobs::format_bytes(size),
        left4me_jobs::format_bytes(content),
        manifest.files.len(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    for line in &manifest.skipped {
        println!("  not archived: {line}");
    }
    for overlay in &manifest.rebuildable {
        println!(
            "  overlay {} ({}) is rebuildable, its content is not archived",
            overlay.name, overlay.kind
        );
    }
    thawed?;
    if let Some(keep) = keep {
        let dir = rotate_dir.unwrap_or_else(|| parent_of(&path));
        for removed in rotate(&dir, keep)? {
            println!("removed old backup {}", removed.display());
        }
    }
    Ok(0)
}

/// The instances to archive: `names` (each must have a spec file), or every instance.
fn selected(catalog: &Catalog, names: &[String]) -> anyhow::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(catalog.instances.iter().map(|(n, _)| n.clone()).collect());
    }
    for name in names {
        left4me_spec::check_name(name).map_err(|e| UsageError::new(e.to_string()))?;
        if catalog.get(name).is_none() {
            return Err(UsageError::new(format!(
                "no instance {name} ({} does not exist); see `left4mectl list`",
                catalog.layout.instance_file(name).display()
            ))
            .into());
        }
    }
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    Ok(names)
}

/// host.toml, the specs of `names`, every blueprint and overlay definition.
fn config_items(layout: &Layout, names: &[String], items: &mut Vec<Item>) -> anyhow::Result<()> {
    let mut add = |file: PathBuf, path: String, kind: Kind| -> anyhow::Result<()> {
        match std::fs::read(&file) {
            Ok(bytes) => {
                items.push(memory_item(path, kind, 0o644, bytes));
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && kind == Kind::Host => Ok(()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", file.display())),
        }
    };
    add(layout.host_file(), "config/host.toml".into(), Kind::Host)?;
    for name in names {
        add(
            layout.instance_file(name),
            format!("config/instances/{name}.toml"),
            Kind::Instance,
        )?;
    }
    for name in spec_names(&layout.blueprints_dir())? {
        let path = format!("config/blueprints/{name}.toml");
        add(layout.blueprint_file(&name), path, Kind::Blueprint)?;
    }
    for name in spec_names(&layout.overlay_defs_dir())? {
        let path = format!("config/overlays/{name}.toml");
        add(layout.overlay_def_file(&name), path, Kind::OverlayDef)?;
    }
    Ok(())
}

/// The names of the `*.toml` files in `dir` with a valid name.
pub(crate) fn spec_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(list_names(dir)?
        .into_iter()
        .filter_map(|(name, ok)| ok.is_ok().then_some(name))
        .collect())
}

fn memory_item(path: String, kind: Kind, mode: u32, bytes: Vec<u8>) -> Item {
    Item {
        entry: Entry::file(&path, kind, mode),
        source: Some(Box::new(bytes)),
    }
}

/// The instances frozen for the backup; each is thawed by [`Frozen::thaw_all`] or, on an
/// early return, when this is dropped.
#[derive(Debug, Default)]
struct Frozen(Vec<String>);

impl Frozen {
    /// Freezes `name`'s unit when it is running (`systemctl freeze`: its processes stop where
    /// they are, so its files hold still while they are read).
    fn freeze(&mut self, name: &str) -> anyhow::Result<()> {
        if !systemd::systemd_running() {
            return Ok(());
        }
        let unit = systemd::unit_name(name);
        if !systemd::show_one(&unit)?.is_active() {
            return Ok(());
        }
        // systemd freezes only on the unified cgroup hierarchy (v2); elsewhere the upper
        // layer is read live, each file once, archived exactly as checksummed.
        match systemd::systemctl(&["freeze", &unit]) {
            Ok(_) => self.0.push(unit),
            Err(err) => eprintln!(
                "note: cannot freeze {unit} ({}); reading its upper layer while it runs, file \
                 by file",
                format!("{err:#}").lines().last().unwrap_or_default().trim()
            ),
        }
        Ok(())
    }

    fn thaw_all(&mut self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for unit in self.0.drain(..) {
            if let Err(err) = systemd::systemctl(&["thaw", &unit]) {
                failed.push(format!("{unit}: {err:#}"));
            }
        }
        anyhow::ensure!(
            failed.is_empty(),
            "cannot thaw {}: run `systemctl thaw` on each",
            failed.join("; ")
        );
        Ok(())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(err) = self.thaw_all() {
            eprintln!("error: {err:#}");
        }
    }
}

/// Writes `path` through a temp file beside it (mode 0600, created exclusively, removed on
/// error): `fill`, fsync, rename into place, fsync of the directory.
fn write_atomically<T>(
    path: &Path,
    fill: impl FnOnce(&File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .context("the archive path has no file name")?;
    let (temp, file) = TempFile::create(&dir, &name.to_string_lossy(), 0o600)?;
    let value = fill(&file)?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", temp.path().display()))?;
    std::fs::rename(temp.path(), path)
        .with_context(|| format!("cannot rename {} into place", temp.path().display()))?;
    temp.keep();
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync {}", dir.display()))?;
    Ok(value)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Removes all but the newest `keep` backups (`left4me-*.tar.zst`, by modification time) in
/// `dir`; returns what it removed.
fn rotate(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut backups = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        if name.starts_with(PREFIX) && name.ends_with(SUFFIX) && meta.is_file() {
            backups.push((meta.modified()?, name, entry.path()));
        }
    }
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, _, path) in backups.into_iter().take(excess) {
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        removed.push(path);
    }
    Ok(removed)
}

/// `secs` since the epoch in UTC: `2026-12-06T05:40:00Z`, or `20261206T054000Z` (`compact`,
/// for file names).
fn timestamp(secs: u64, compact: bool) -> String {
    let utc = crate::output::format_utc(secs as i64).replace(' ', "T") + "Z";
    if compact {
        utc.replace(['-', ':'], "")
    } else {
        utc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_796_535_600, true), "20261206T054000Z");
        assert_eq!(timestamp(951_782_400, false), "2000-02-29T00:00:00Z");
    }
}
