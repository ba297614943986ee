//! The immutable game versions (DESIGN §8, docs/game.md "On disk"): `game/versions/ID`,
//! `game/current`, chains of deltas, staging and publishing a new version, squashing a chain
//! that grew too long, and removing what nothing keeps.
//!
//! Root's side: every action goes through `left4me-statedir` descriptors opened beneath the
//! state dir (`game/` and `game/versions/` are opened once, by [`Store::open`]); nothing is
//! done by a path. Paths in the values returned ([`Staging`], [`Store::layers`]) are for the
//! sandbox's command line and the mount plan, which open them again beneath the state dir.
//!
//! The callers serialize: every verb that changes the game holds the state dir's one game lock
//! (`left4me_statedir::Subject::Game`) while it uses a [`Store`].
//!
//! This file is the API; `store/` holds the parts: `files` (small files, written atomically),
//! `meta` (`version.toml`), `squash` (copying a chain's merged view into a full tree) and
//! `running` (which version each instance has mounted, from PID 1's mountinfo).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use left4me_contract::game::{
    CURRENT, GAME, MAX_CHAIN, METADATA, STAGING_PREFIX, TREE, VERSIONS, WORK, is_valid_version_id,
};
use left4me_statedir::{Dir, DirError, RemoveError, StateDir};

mod files;
mod meta;
mod running;
mod squash;
#[cfg(test)]
mod tests;

pub use meta::{How, Version};
pub use running::{mounted_versions, running_versions, running_versions_in};

/// The prefix a version being removed by [`Store::gc`] is renamed to first, so a half-removed
/// version is never listed; the next [`Store::begin`] or `gc` finishes the removal.
const REMOVING_PREFIX: &str = ".old-";

/// The highest `-N` suffix a republished build may get (the ID rule's limit).
const MAX_SUFFIX: u32 = 9999;

/// Why a store action failed. Every variant names the file, directory or version concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "game version {id} does not exist ({} is missing): `left4mectl game versions` lists the \
         versions there are",
        path.display()
    )]
    NotFound { id: String, path: PathBuf },
    #[error(
        "{id:?} is not a game version id: an id is a Steam build id, optionally with -N \
         (e.g. 12345678 or 12345678-2)"
    )]
    BadId { id: String },
    #[error("{}: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
    #[error(
        "game version {id} builds on {parent}, which does not exist: the chain is broken; \
         install the game again (`left4mectl game validate`)"
    )]
    BrokenChain { id: String, parent: String },
    #[error(
        "game version {id} has a chain of more than {MAX_CHAIN} layers (a loop in the parent \
         ids?): install the game again (`left4mectl game validate`)"
    )]
    ChainTooLong { id: String },
    #[error("{} no longer exists: was the staging dir removed by another job?", path.display())]
    StagingGone { path: PathBuf },
    #[error(
        "build {build_id} has been published {MAX_SUFFIX} times: remove old versions \
         (`left4mectl game gc`)"
    )]
    IdsExhausted { build_id: u64 },
    #[error("cannot read the mount table {}: {reason}", path.display())]
    MountTable { path: PathBuf, reason: String },
    #[error("squashing into {}: {reason}", path.display())]
    Squash { path: PathBuf, reason: String },
}

/// The game versions of one state dir: `game/` and `game/versions/`, opened.
#[derive(Debug)]
pub struct Store {
    /// The state dir's path (for the absolute paths handed to the sandbox; never acted on).
    state_path: PathBuf,
    game: Dir,
    versions: Dir,
}

/// A version being made: `game/versions/.new-JOB/{tree,work}`, all absolute paths (for the
/// sandbox's command line: SteamCMD's overlay has `tree` as upper, `work` as work dir and
/// `lowers` as lower layers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staging {
    /// The job id: 8 lowercase hex digits.
    pub job: String,
    /// `…/game/versions/.new-JOB`.
    pub dir: PathBuf,
    /// `…/.new-JOB/tree`: the new layer (overlayfs upper).
    pub tree: PathBuf,
    /// `…/.new-JOB/work`: overlayfs' work dir (removed at publish).
    pub work: PathBuf,
    /// The version the new one is a delta over (`None`: a full install).
    pub parent: Option<String>,
    /// The parent's chain as absolute `…/game/versions/ID/tree` paths, newest first.
    pub lowers: Vec<PathBuf>,
}

/// What the caller knows about a version it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// The Steam build id SteamCMD installed (checked in the appmanifest).
    pub build_id: u64,
    /// The branch (`public` unless a beta was asked for).
    pub branch: String,
    /// Which verb made it.
    pub how: How,
    /// Whether the anonymous "Invalid platform" two-pass workaround was taken.
    pub platform_workaround: bool,
}

/// The game layers an instance mounts below its overlays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameLayers {
    /// No version is current and none is pinned: the hand-installed `installation/`.
    Installation,
    /// A version's chain: `layers` are state-dir-relative `game/versions/ID/tree`, newest first.
    Version { id: String, layers: Vec<String> },
}

impl GameLayers {
    /// The state-dir-relative lower layers, newest first (`["installation"]` for
    /// [`GameLayers::Installation`]).
    pub fn layers(&self) -> Vec<String> {
        match self {
            GameLayers::Installation => vec![left4me_contract::LAYER_ROOTS[0].to_owned()],
            GameLayers::Version { layers, .. } => layers.clone(),
        }
    }

    /// The version id, `None` for the hand-installed tree.
    pub fn id(&self) -> Option<&str> {
        match self {
            GameLayers::Installation => None,
            GameLayers::Version { id, .. } => Some(id),
        }
    }
}

/// The state-dir-relative layer of version `id`: `game/versions/ID/tree`.
pub fn layer_path(id: &str) -> String {
    format!("{GAME}/{VERSIONS}/{id}/{TREE}")
}

/// [`Store::resolve`] for a state dir that may have no store yet: without `game/`, an unpinned
/// instance uses `installation/` and a pin is a version that does not exist.
pub fn resolve(state: &StateDir, pin: Option<&str>) -> Result<GameLayers, StoreError> {
    resolve_in(state.dir(), pin)
}

/// [`resolve`] beneath any directory descriptor (a caller that is not root cannot open a
/// [`StateDir`] of its own).
pub fn resolve_in(state: &Dir, pin: Option<&str>) -> Result<GameLayers, StoreError> {
    match Store::open_in(state, false)? {
        Some(store) => store.resolve(pin),
        None => match pin {
            None => Ok(GameLayers::Installation),
            Some(id) => {
                check_id(id)?;
                Err(StoreError::NotFound {
                    id: id.to_owned(),
                    path: state.path().join(GAME).join(VERSIONS).join(id),
                })
            }
        },
    }
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if is_valid_version_id(id) {
        Ok(())
    } else {
        Err(StoreError::BadId { id: id.to_owned() })
    }
}

/// The effective uid and gid: root's in production (the owner of everything under `game/`).
fn caller() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

impl Store {
    /// Opens the store of `state`. When `create`, makes `game/` and `game/versions/` (owned by
    /// the caller, root in production, mode 0755) if missing; otherwise `None` when either is
    /// missing. As root, both must be root's alone (the ownership rule).
    pub fn open(state: &StateDir, create: bool) -> Result<Option<Store>, StoreError> {
        Store::open_in(state.dir(), create)
    }

    /// [`Store::open`] beneath any directory descriptor (tests use a temporary directory).
    pub fn open_in(state: &Dir, create: bool) -> Result<Option<Store>, StoreError> {
        let Some(game) = open_or_create(state, GAME, create)? else {
            return Ok(None);
        };
        let Some(versions) = open_or_create(&game, VERSIONS, create)? else {
            return Ok(None);
        };
        if rustix::process::geteuid().is_root() {
            game.check_root_owned()?;
            versions.check_root_owned()?;
        }
        Ok(Some(Store {
            state_path: state.path().to_owned(),
            game,
            versions,
        }))
    }

    /// The current version's id, `None` when `game/current` does not exist.
    pub fn current(&self) -> Result<Option<String>, StoreError> {
        let Some(text) = files::read_small(&self.game, CURRENT)? else {
            return Ok(None);
        };
        let id = text.trim_end_matches('\n');
        if !is_valid_version_id(id) {
            return Err(StoreError::Metadata {
                path: self.game.path().join(CURRENT),
                reason: format!(
                    "holds {id:?}, not a version id: `left4mectl game versions` lists the \
                     versions; fix or remove the file"
                ),
            });
        }
        Ok(Some(id.to_owned()))
    }

    /// Makes `id` (an existing version) current: `game/current` replaced atomically.
    pub fn set_current(&self, id: &str) -> Result<(), StoreError> {
        self.version(id)?;
        files::write_atomic(&self.game, CURRENT, format!("{id}\n").as_bytes())
    }

    /// Every published version, oldest first (by creation time, then build id and id).
    pub fn versions(&self) -> Result<Vec<Version>, StoreError> {
        let mut versions = Vec::new();
        for name in self.versions.entries()? {
            let Some(name) = name.to_str() else { continue };
            if is_valid_version_id(name) {
                versions.push(self.version(name)?);
            }
        }
        versions.sort_by(|a, b| {
            (a.created, a.build_id, suffix(&a.id)).cmp(&(b.created, b.build_id, suffix(&b.id)))
        });
        Ok(versions)
    }

    /// The version `id` and its metadata.
    pub fn version(&self, id: &str) -> Result<Version, StoreError> {
        check_id(id)?;
        let Some(dir) = self.versions.open_dir_if_exists(id)? else {
            return Err(self.not_found(id));
        };
        let path = dir.path().join(METADATA);
        let Some(text) = files::read_small(&dir, METADATA)? else {
            return Err(StoreError::NotFound {
                id: id.into(),
                path,
            });
        };
        meta::parse(id, &path, &text)
    }

    /// The chain of `id`: itself, its parent, … down to a full tree (newest first). Fails on a
    /// missing parent or a chain longer than [`MAX_CHAIN`].
    pub fn chain(&self, id: &str) -> Result<Vec<Version>, StoreError> {
        let mut chain = vec![self.version(id)?];
        while let Some(parent) = chain.last().and_then(|v| v.parent.clone()) {
            if chain.len() >= MAX_CHAIN {
                return Err(StoreError::ChainTooLong { id: id.into() });
            }
            match self.version(&parent) {
                Ok(version) => chain.push(version),
                Err(StoreError::NotFound { .. }) => {
                    let child = chain.last().map(|v| v.id.clone()).unwrap_or_default();
                    return Err(StoreError::BrokenChain { id: child, parent });
                }
                Err(other) => return Err(other),
            }
        }
        Ok(chain)
    }

    /// The lower layers of version `id` relative to the state dir (`game/versions/ID/tree`),
    /// newest first: what an instance's lowerdir stack gets below its overlays.
    pub fn layers(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.chain(id)?.iter().map(|v| layer_path(&v.id)).collect())
    }

    /// The game layers a start mounts: the chain of `pin` when given, else of the current
    /// version, else the hand-installed `installation/`.
    pub fn resolve(&self, pin: Option<&str>) -> Result<GameLayers, StoreError> {
        let id = match pin {
            Some(id) => id.to_owned(),
            None => match self.current()? {
                Some(id) => id,
                None => return Ok(GameLayers::Installation),
            },
        };
        let layers = self.layers(&id)?;
        Ok(GameLayers::Version { id, layers })
    }

    /// Starts a new version over `parent` (`None`: a full install): removes what failed or
    /// killed jobs left (`.new-*`, `.old-*`), then makes `.new-JOB/{tree,work}` (the caller's,
    /// root in production, 0755). Hold the game lock: a staging dir of a running job would be
    /// removed too.
    pub fn begin(&self, parent: Option<&str>) -> Result<Staging, StoreError> {
        let lowers = match parent {
            Some(id) => self.layers(id)?,
            None => Vec::new(),
        };
        self.remove_leftovers()?;
        let job = job_id()?;
        let name = format!("{STAGING_PREFIX}{job}");
        let owner = caller();
        let dir = self.versions.create_dir(&name, owner, 0o755)?;
        dir.create_dir(TREE, owner, 0o755)?;
        dir.create_dir(WORK, owner, 0o755)?;
        let abs = self.versions.path().join(&name);
        Ok(Staging {
            job,
            tree: abs.join(TREE),
            work: abs.join(WORK),
            dir: abs,
            parent: parent.map(str::to_owned),
            lowers: lowers.iter().map(|l| self.state_path.join(l)).collect(),
        })
    }

    /// Publishes a staging dir SteamCMD finished: removes `work/`, squashes when the parent's
    /// chain is already [`MAX_CHAIN`] long, measures `tree/`, writes `version.toml`, renames
    /// `.new-JOB` to the new id (the build id, or `BUILD-N` when taken) and makes it current.
    pub fn publish(&self, staging: Staging, new: NewVersion) -> Result<Version, StoreError> {
        let name = format!("{STAGING_PREFIX}{}", staging.job);
        let Some(dir) = self.versions.open_dir_if_exists(&name)? else {
            return Err(StoreError::StagingGone { path: staging.dir });
        };
        // overlayfs leaves `work/work` (root, mode 0): the version never needs it.
        dir.remove_tree(WORK)?;
        let mut parent = staging.parent.clone();
        let mut how = new.how;
        if let Some(id) = &parent {
            let chain = self.chain(id)?;
            if chain.len() >= MAX_CHAIN {
                let mut layers = vec![dir.open_dir(TREE)?];
                for version in &chain {
                    layers.push(self.versions.open_dir(Path::new(&version.id).join(TREE))?);
                }
                squash::squash_into(&dir, &layers, squash::SQUASHED)?;
                drop(layers);
                dir.remove_tree(TREE)?;
                dir.rename(squash::SQUASHED, TREE)?;
                parent = None;
                how = How::Squash;
            }
        }
        let bytes = dir.open_dir(TREE)?.usage()?.bytes;
        let id = self.free_id(new.build_id)?;
        let version = Version {
            id: id.clone(),
            build_id: new.build_id,
            branch: new.branch,
            parent,
            created: now(),
            bytes,
            how,
            platform_workaround: new.platform_workaround,
        };
        let text = meta::render(&version, &dir.path().join(METADATA))?;
        files::write_atomic(&dir, METADATA, text.as_bytes())?;
        rustix::fs::syncfs(dir.fd()).map_err(|e| StoreError::Io {
            action: "sync the file system of",
            path: dir.path().to_owned(),
            source: e.into(),
        })?;
        self.versions.rename(&name, &id)?;
        rustix::fs::fsync(self.versions.fd()).map_err(|e| StoreError::Io {
            action: "fsync",
            path: self.versions.path().to_owned(),
            source: e.into(),
        })?;
        self.set_current(&id)?;
        Ok(version)
    }

    /// Removes a staging dir (a failed or cancelled job).
    pub fn abandon(&self, staging: Staging) -> Result<(), StoreError> {
        self.versions
            .remove_tree(&format!("{STAGING_PREFIX}{}", staging.job))?;
        Ok(())
    }

    /// Removes every version that is not current, not in `keep` (the caller passes the pinned
    /// and mounted ids), not used by any overlay in PID 1's mount table, and not in the chain
    /// of a kept version. Returns the ids removed, oldest first. Hold the game lock: an update's
    /// SteamCMD overlay (in the sandbox's own mount namespace, not PID 1's) uses its parent's
    /// chain, and the lock is what keeps gc away from it.
    pub fn gc(&self, keep: &BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        let mut roots = keep.clone();
        roots.extend(mounted_versions(&self.state_path)?);
        self.gc_keeping(&roots)
    }

    /// [`Store::gc`] without reading the mount table: `roots` is everything to keep.
    fn gc_keeping(&self, roots: &BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        let mut roots = roots.clone();
        roots.extend(self.current()?);
        let mut kept = BTreeSet::new();
        for id in &roots {
            if !is_valid_version_id(id) || !self.versions.contains(id)? {
                continue;
            }
            kept.extend(self.chain(id)?.into_iter().map(|v| v.id));
        }
        self.remove_leftovers_with(REMOVING_PREFIX)?;
        let mut removed = Vec::new();
        for version in self.versions()? {
            if kept.contains(&version.id) {
                continue;
            }
            let doomed = format!("{REMOVING_PREFIX}{}", version.id);
            self.versions.rename(&version.id, &doomed)?;
            self.versions.remove_tree(&doomed)?;
            removed.push(version.id);
        }
        Ok(removed)
    }

    fn not_found(&self, id: &str) -> StoreError {
        StoreError::NotFound {
            id: id.to_owned(),
            path: self.versions.path().join(id),
        }
    }

    /// The first free id for `build_id`: the build id, else `BUILD-2`, `BUILD-3`, …
    fn free_id(&self, build_id: u64) -> Result<String, StoreError> {
        let base = build_id.to_string();
        if !self.versions.contains(&base)? {
            return Ok(base);
        }
        for n in 2..=MAX_SUFFIX {
            let id = format!("{base}-{n}");
            if !self.versions.contains(&id)? {
                return Ok(id);
            }
        }
        Err(StoreError::IdsExhausted { build_id })
    }

    fn remove_leftovers(&self) -> Result<(), StoreError> {
        self.remove_leftovers_with(STAGING_PREFIX)?;
        self.remove_leftovers_with(REMOVING_PREFIX)
    }

    fn remove_leftovers_with(&self, prefix: &str) -> Result<(), StoreError> {
        for name in self.versions.entries()? {
            if let Some(name) = name.to_str().filter(|n| n.starts_with(prefix)) {
                self.versions.remove_tree(name)?;
            }
        }
        Ok(())
    }
}

fn open_or_create(parent: &Dir, name: &str, create: bool) -> Result<Option<Dir>, StoreError> {
    match parent.open_dir_if_exists(name)? {
        Some(dir) => Ok(Some(dir)),
        None if create => Ok(Some(parent.create_dir(name, caller(), 0o755)?)),
        None => Ok(None),
    }
}

/// The `-N` of an id (1 without one), for ordering republished builds.
fn suffix(id: &str) -> u32 {
    id.split_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random job id: 8 lowercase hex digits.
fn job_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 4];
    let path = Path::new("/dev/urandom");
    std::io::Read::read_exact(
        &mut std::fs::File::open(path).map_err(|source| StoreError::Io {
            action: "open",
            path: path.to_owned(),
            source,
        })?,
        &mut bytes,
    )
    .map_err(|source| StoreError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok(format!("{:08x}", u32::from_be_bytes(bytes)))
}
