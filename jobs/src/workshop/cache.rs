//! The workshop cache, `<state_dir>/workshop_cache/ID/HCONTENT.vpk`: one root-owned, 0444 file
//! per version of an item, never written in place (a new version is a new `HCONTENT.vpk`).
//!
//! `workshop_cache/` is root's (0755). A download runs in the sandbox into a dir the game user
//! owns (the sandbox's idmap writes as the game user there), `.build-RUNID/out`, inside a build
//! dir that is root's with mode 0700: no process of the game user can reach the downloads by
//! any path, so none can open one for writing, write it, and keep writing through that
//! descriptor after root adopted the file (`booted_root_race` did exactly that when the build
//! dir was the game user's: the cache then held planted bytes under root's 0444). Root still
//! adopts each file without trusting the download dir: it renames the entry out into a
//! root-owned name of its own (`.incoming-RUNID-ID-HCONTENT`), so nobody else can swap it any
//! more, opens that with `O_NOFOLLOW`, checks what it opened (a regular file with one link, the
//! size the API gave, a VPK header), makes it root's and read-only on the descriptor, and
//! renames it to `ID/HCONTENT.vpk` without replacing one that is there.
//!
//! Overlay trees hard-link these files ([`Cache::link_into`]), so a file's link count is the
//! number of trees that use it plus one: [`Cache::gc`] removes the files whose count is 1.
//! Every action goes through the descriptor of `workshop_cache/` opened beneath the state dir;
//! nothing below the state dir is followed. The callers hold the cache's lock
//! (`Subject::WorkshopCache`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use left4me_contract::Ids;
use left4me_statedir::{Dir, DirError, EntryStat, FileType, RemoveError, StateDir, Usage};
use left4me_workshop::WorkshopId;
use left4me_workshop::vpk::{HEADER_LEN, check_header};
use rustix::fs::{Gid, Mode, Uid};
use rustix::io::Errno;

/// The cache's entry in the state dir.
pub const CACHE_DIR: &str = "workshop_cache";

/// Why the cache could not be opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error(
        "cannot hard-link {} into {}: the workshop cache and overlays/ must be on one file \
         system (both under the state dir, not separate mounts)",
        from.display(),
        to.display()
    )]
    CrossDevice { from: PathBuf, to: PathBuf },
}

/// `workshop_cache/`, opened and checked root's.
#[derive(Debug)]
pub struct Cache {
    dir: Dir,
}

/// What [`Cache::gc`] removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Cache files no tree links, with their sizes.
    pub removed: Vec<(PathBuf, u64)>,
    /// `ID/` dirs left empty.
    pub removed_dirs: Vec<PathBuf>,
    /// Old overlay content no instance mounted any more, retired first (the files only it
    /// linked are among `removed`).
    pub retired: Vec<PathBuf>,
    /// Build dirs and incoming files of runs that never ended.
    pub stale: Vec<PathBuf>,
    /// The cache files that stay (linked by some tree) and their bytes.
    pub kept: Usage,
    /// Nothing was removed: this is what would be.
    pub dry_run: bool,
}

impl GcReport {
    /// The bytes of the removed files.
    pub fn removed_bytes(&self) -> u64 {
        self.removed.iter().map(|(_, bytes)| bytes).sum()
    }
}

/// What became of one downloaded file ([`Cache::adopt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// It is in the cache (ours, or the same version adopted first).
    Adopted,
    /// The download did not leave it.
    Missing,
    /// It failed a check, and why; it was removed.
    Refused(String),
}

/// `ID/HCONTENT.vpk`'s file name.
pub fn file_name(hcontent: u64) -> String {
    format!("{hcontent}.vpk")
}

/// The name the download writes item `id` version `hcontent` under in its build dir.
pub fn download_name(id: WorkshopId, hcontent: u64) -> String {
    format!("{id}-{hcontent}.vpk")
}

/// The build dir of run `run_id` (root's, 0700).
pub fn build_name(run_id: &str) -> String {
    format!(".build-{run_id}")
}

/// The download dir in a build dir: the sandbox's output, the game user's.
pub const DOWNLOAD_DIR: &str = "out";

fn is_stale_name(name: &str) -> bool {
    name.starts_with(".build-") || name.starts_with(".incoming-")
}

fn is_id(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

impl Cache {
    /// Opens `workshop_cache/` beneath the state dir, creating it (root, 0755) when missing
    /// and `create` is set; `None` when it is missing otherwise. One not root's, or writable by
    /// others, is refused.
    pub fn open(state_dir: &Path, create: bool) -> Result<Option<Cache>, CacheError> {
        let state = StateDir::open(state_dir)?;
        let dir = match state.dir().open_dir_if_exists(CACHE_DIR)? {
            Some(dir) => dir,
            None if create => match state.dir().create_dir(CACHE_DIR, (0, 0), 0o755) {
                Ok(dir) => dir,
                Err(DirError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    state.open_dir(CACHE_DIR)?
                }
                Err(err) => return Err(err.into()),
            },
            None => return Ok(None),
        };
        dir.check_root_owned()?;
        Ok(Some(Cache { dir }))
    }

    /// The descriptor of `workshop_cache/`.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// `workshop_cache/ID/HCONTENT.vpk`, for messages.
    pub fn path(&self, id: WorkshopId, hcontent: u64) -> PathBuf {
        self.dir
            .path()
            .join(id.to_string())
            .join(file_name(hcontent))
    }

    /// What `ID/HCONTENT.vpk` is, when it is a root-owned regular file of `size` bytes.
    pub fn stat(
        &self,
        id: WorkshopId,
        hcontent: u64,
        size: u64,
    ) -> Result<Option<EntryStat>, CacheError> {
        let Some(item_dir) = self.dir.open_dir_if_exists(id.to_string())? else {
            return Ok(None);
        };
        Ok(item_dir
            .stat_entry(&file_name(hcontent))?
            .filter(|s| s.kind == FileType::RegularFile && s.uid == 0 && s.size == size))
    }

    /// Whether the cache holds item `id` version `hcontent` (`size` bytes).
    pub fn has(&self, id: WorkshopId, hcontent: u64, size: u64) -> Result<bool, CacheError> {
        Ok(self.stat(id, hcontent, size)?.is_some())
    }

    /// Creates the build dir of run `run_id` (root's, 0700) and in it the download dir (0755),
    /// handed to `owner` (the game user); returns the download dir. The build dir keeps every
    /// process of `owner` out: only the sandbox, given the download dir by root, writes there.
    pub fn create_build(&self, run_id: &str, owner: Ids) -> Result<Dir, CacheError> {
        let build = self.dir.create_dir(&build_name(run_id), (0, 0), 0o700)?;
        Ok(build.create_dir(DOWNLOAD_DIR, (owner.uid, owner.gid), 0o755)?)
    }

    /// Removes the entry `name` of the cache dir (a build dir, an incoming file).
    pub fn remove(&self, name: &str) -> Result<bool, CacheError> {
        Ok(self.dir.remove_tree(name)?)
    }

    /// Adopts the file the download of run `run_id` wrote for item `id` version `hcontent`
    /// into `build`.
    pub fn adopt(
        &self,
        build: &Dir,
        run_id: &str,
        id: WorkshopId,
        hcontent: u64,
        size: u64,
    ) -> Result<Adoption, CacheError> {
        let incoming = format!(".incoming-{run_id}-{id}-{hcontent}");
        match build.rename_noreplace(&download_name(id, hcontent), &self.dir, &incoming) {
            Ok(()) => {}
            Err(DirError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
            {
                return Ok(Adoption::Missing);
            }
            Err(err) => return Err(err.into()),
        }
        let verdict = match self.check_incoming(&incoming, size) {
            Ok(Ok(())) => self.place(&incoming, id, hcontent),
            Ok(Err(why)) => Ok(Adoption::Refused(why)),
            Err(err) => Err(err),
        };
        if !matches!(verdict, Ok(Adoption::Adopted)) {
            self.dir.remove_tree(&incoming)?;
        }
        verdict
    }

    /// Checks the incoming entry `name` (now root's alone to rename) through its descriptor
    /// and, when it passes, makes it root's, 0444.
    fn check_incoming(&self, name: &str, size: u64) -> Result<Result<(), String>, CacheError> {
        let Some(seen) = self.dir.stat_entry(name)? else {
            return Ok(Err("vanished before it was checked".into()));
        };
        match seen.kind {
            FileType::RegularFile => {}
            FileType::Symlink => return Ok(Err("a symbolic link, not a file".into())),
            FileType::Directory => return Ok(Err("a directory, not a file".into())),
            other => return Ok(Err(format!("not a regular file ({other:?})"))),
        }
        let fd = self.dir.open_file(name)?;
        let path = self.dir.path().join(name);
        let stat = EntryStat::of_fd(&fd).map_err(io("stat", &path))?;
        if stat.kind != FileType::RegularFile || stat.ino != seen.ino {
            return Ok(Err("changed while it was checked".into()));
        }
        if stat.nlink != 1 {
            return Ok(Err(format!(
                "has {} hard links: a downloaded file must have exactly one",
                stat.nlink
            )));
        }
        if stat.size != size {
            return Ok(Err(format!("got {} bytes, the API said {size}", stat.size)));
        }
        let file = std::fs::File::from(fd);
        let mut head = Vec::with_capacity(HEADER_LEN);
        (&file)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|source| DirError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        if let Err(why) = check_header(&head) {
            return Ok(Err(why.to_string()));
        }
        // On the descriptor checked: a rename can no longer make these land elsewhere.
        rustix::fs::fchown(&file, Some(Uid::ROOT), Some(Gid::ROOT)).map_err(io("chown", &path))?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o444)).map_err(io("chmod", &path))?;
        Ok(Ok(()))
    }

    /// Renames the checked incoming entry to `ID/HCONTENT.vpk` (creating `ID/`, root 0755);
    /// a file already there wins (the same version, adopted first: ours is removed).
    fn place(&self, incoming: &str, id: WorkshopId, hcontent: u64) -> Result<Adoption, CacheError> {
        let id_name = id.to_string();
        let item_dir = match self.dir.open_dir_if_exists(&id_name)? {
            Some(dir) => dir,
            None => match self.dir.create_dir(&id_name, (0, 0), 0o755) {
                Ok(dir) => dir,
                Err(DirError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    self.dir.open_dir(&id_name)?
                }
                Err(err) => return Err(err.into()),
            },
        };
        item_dir.check_root_owned()?;
        match self
            .dir
            .rename_noreplace(incoming, &item_dir, &file_name(hcontent))
        {
            Ok(()) => Ok(Adoption::Adopted),
            // One adopted earlier is the same version of the item: it stays, ours goes.
            Err(DirError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::EXIST.raw_os_error()) =>
            {
                self.dir.remove_tree(incoming)?;
                Ok(Adoption::Adopted)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Hard-links `ID/HCONTENT.vpk` into the open dir `to` as `name`.
    pub fn link_into(
        &self,
        to: &Dir,
        name: &str,
        id: WorkshopId,
        hcontent: u64,
    ) -> Result<(), CacheError> {
        let item_dir = self.dir.open_dir(id.to_string())?;
        match item_dir.link_to(&file_name(hcontent), to, name) {
            Err(DirError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::XDEV.raw_os_error()) =>
            {
                Err(CacheError::CrossDevice {
                    from: self.path(id, hcontent),
                    to: to.path().join(name),
                })
            }
            other => Ok(other?),
        }
    }

    /// Removes the build dirs and incoming files of runs that never ended (the caller holds
    /// the cache's lock, so none is running); what it removed.
    pub fn clear_stale(&self, dry_run: bool) -> Result<Vec<PathBuf>, CacheError> {
        let mut stale = Vec::new();
        for entry in self.dir.entries()? {
            let Some(name) = entry.to_str().filter(|n| is_stale_name(n)) else {
                continue;
            };
            if !dry_run {
                self.dir.remove_tree(name)?;
            }
            stale.push(self.dir.path().join(name));
        }
        stale.sort();
        Ok(stale)
    }

    /// Removes every cache file no tree links (link count 1), the `ID/` dirs left empty and
    /// stale build and incoming entries; with `dry_run`, only says what it would remove.
    pub fn gc(&self, dry_run: bool, released: &super::Links) -> Result<GcReport, CacheError> {
        let mut report = GcReport {
            stale: self.clear_stale(dry_run)?,
            dry_run,
            ..GcReport::default()
        };
        let mut ids: Vec<String> = self
            .dir
            .entries()?
            .into_iter()
            .filter_map(|e| e.into_string().ok())
            .filter(|n| is_id(n))
            .collect();
        ids.sort();
        for id in ids {
            let Some(EntryStat {
                kind: FileType::Directory,
                ..
            }) = self.dir.stat_entry(&id)?
            else {
                continue;
            };
            let item_dir = self.dir.open_dir(&id)?;
            let mut names: Vec<String> = item_dir
                .entries()?
                .into_iter()
                .filter_map(|e| e.into_string().ok())
                .collect();
            names.sort();
            let mut left = names.len();
            for name in names {
                let Some(stat) = item_dir.stat_entry(&name)? else {
                    left -= 1;
                    continue;
                };
                let dropped = released.get(&(stat.dev, stat.ino)).copied().unwrap_or(0);
                if stat.kind == FileType::RegularFile && stat.nlink.saturating_sub(dropped) == 1 {
                    if !dry_run {
                        item_dir.remove_file(&name)?;
                    }
                    report
                        .removed
                        .push((item_dir.path().join(&name), stat.size));
                    left -= 1;
                } else if stat.kind == FileType::RegularFile {
                    report.kept.files += 1;
                    report.kept.bytes += stat.size;
                }
            }
            if left == 0 && (dry_run || self.dir.remove_empty_dir(&id)?) {
                report.removed_dirs.push(self.dir.path().join(&id));
            }
        }
        Ok(report)
    }

    /// The files of the cache and their bytes (each file once, however many trees link it).
    pub fn usage(&self) -> Result<Usage, CacheError> {
        Ok(self.dir.usage()?)
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> DirError {
    let path = path.to_path_buf();
    move |errno| DirError::Io {
        action,
        path,
        source: errno.into(),
    }
}
